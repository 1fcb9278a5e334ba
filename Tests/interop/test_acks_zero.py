"""acks=0 produce is never answered; as Kafka does, a refused one closes the connection, which is the
only signal such a producer gets. An accepted one leaves the connection open for what follows."""

from __future__ import annotations

from confluent_helpers import create_topic, read_to_end
from kafka_wire import api_versions_request, closed_by_peer, connect, parse_api_versions, read_frame
from record_batches import batch, good_records, produce_request
from support import unique_topic


def _address(broker) -> tuple[str, int]:
    return ("127.0.0.1", broker.port)


def test_accepted_acks_zero_produce_keeps_the_connection_and_stores_the_records(broker):
    topic = unique_topic("acks0-ok")
    create_topic(broker, topic, 1)
    with connect(_address(broker)) as sock:
        sock.sendall(produce_request(topic, 0, batch(good_records("ok", 5), 5), acks=0, correlation_id=1))
        # No answer for the produce; the next request on the same connection is answered.
        sock.sendall(api_versions_request(3, correlation_id=2))
        answer = parse_api_versions(read_frame(sock), 3)
        assert answer.correlation_id == 2, "the first answer must be the ApiVersions one"
        assert answer.error_code == 0
    records = read_to_end(broker, topic, [0])
    assert [r.value for r in records] == [f"ok-v{i}".encode() for i in range(5)]


def test_refused_acks_zero_produce_closes_the_connection_and_nothing_else(broker):
    topic = unique_topic("acks0-refused")
    create_topic(broker, topic, 1)
    with connect(_address(broker)) as bystander, connect(_address(broker)) as sock:
        # Partition 7 of a one-partition topic: UNKNOWN_TOPIC_OR_PARTITION, which acks=0 cannot carry.
        sock.sendall(produce_request(topic, 7, batch(good_records("lost", 3), 3), acks=0, correlation_id=1))
        assert closed_by_peer(sock), "a refused acks=0 produce must close its connection"
        bystander.sendall(api_versions_request(3, correlation_id=9))
        assert parse_api_versions(read_frame(bystander), 3).error_code == 0
    assert read_to_end(broker, topic, [0]) == []
