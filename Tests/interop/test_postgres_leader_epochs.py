"""OffsetForLeaderEpoch over the postgres engine: every leader epoch taken (a restart, a handoff, a
takeover after SIGKILL) is recorded with the log end it began at, and the broker answers as
Kafka's leader-epoch cache does (raw frames, every version, every error); a confluent-kafka
consumer reading through a SIGKILL of the leader and then a handoff validates its position with
it and resumes exactly where it was. The file engine, whose epoch never changes, answers no epoch."""

from __future__ import annotations

import logging
import urllib.request

import pytest
from confluent_kafka import KafkaError, TopicPartition

import confluent_helpers as ck
from kafka_wire import EpochEndOffset, offset_for_leader_epoch
from record_batches import batch, good_records
from support import index_of, unique_topic, value_for, wait_until
from test_postgres_cluster import database, lease, pg, spread, start  # noqa: F401 (pg is a fixture)
from test_postgres_storage import NOT_LEADER_OR_FOLLOWER, address, produce_to_partitions

UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_AUTHORIZATION_FAILED = 29
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75


def ask(broker, topic: str, partition: int, epoch: int, current: int = -1, **kw) -> EpochEndOffset:
    return offset_for_leader_epoch(address(broker), {topic: [(partition, current, epoch)]}, **kw)[topic][0]


def answer(broker, topic: str, epoch: int, current: int = -1) -> tuple[int, int, int]:
    got = ask(broker, topic, 0, epoch, current)
    return got.error_code, got.leader_epoch, got.end_offset


def produce(broker, topic: str, name: str, n: int) -> None:
    assert produce_to_partitions(address(broker), topic, {0: batch(good_records(name, n), n)}) == {0: 0}


def requests_answered(broker, api: str) -> float:
    text = urllib.request.urlopen(broker.metrics_url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("once_requests_total{") and f'api="{api}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.timeout_seconds(300)
def test_the_epoch_history_answers_as_kafka_through_restarts_trims_and_a_handoff(pg, broker_factory):
    url = pg.new_database()
    topic = unique_topic("epochs")
    first = start(broker_factory, url, 1)
    ck.create_topic(first, topic, 1)
    produce(first, topic, "e0", 3)  # epoch 0 writes 0..<3
    first.stop()
    first.restart()
    produce(first, topic, "e1", 2)  # epoch 1 writes 3..<5
    first.stop()
    first.restart()  # epoch 2 starts at 5 and writes nothing
    first.stop()
    first.restart()  # epoch 3 starts at 5 too: epoch 2 owns no offsets
    produce(first, topic, "e3", 1)
    assert lease(pg, url, topic, 0) == (1, 3)
    rows = pg.psql(
        f"SELECT leader_epoch, start_offset FROM once.partition_leader_epochs WHERE topic = '{topic}' ORDER BY 1",
        database(url))
    assert rows.split() == ["0|0", "1|3", "2|5", "3|5"], "every epoch taken has its row, written with the lease"

    assert answer(first, topic, 0) == (0, 0, 3)
    assert answer(first, topic, 1) == (0, 1, 5)
    assert answer(first, topic, 2) == (0, 1, 5), "an epoch with no offsets answers the largest smaller one"
    assert answer(first, topic, 3) == (0, 3, 6), "the current epoch ends at the log end"
    assert answer(first, topic, 4) == (0, -1, -1), "an epoch above the current one is unknown"
    assert answer(first, topic, -1) == (0, -1, -1)
    assert answer(first, topic, 1, current=3) == (0, 1, 5)
    assert answer(first, topic, 1, current=2) == (FENCED_LEADER_EPOCH, -1, -1)
    assert answer(first, topic, 1, current=4) == (UNKNOWN_LEADER_EPOCH, -1, -1)
    assert answer(first, unique_topic("no-such"), 0)[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert ask(first, topic, 7, 0).error_code == UNKNOWN_TOPIC_OR_PARTITION
    # Every version, and the replica id as Kafka treats it: a consumer (-1), a follower (a broker
    # id) and a debugging client (-2) get the leader's one answer.
    for version in (2, 3, 4):
        for replica in (-1, 2, -2):
            got = ask(first, topic, 0, 1, version=version, replica_id=replica)
            assert got == EpochEndOffset(0, 0, 1, 5), (version, replica, got)
    # Many partitions in one request, answered in order.
    many = offset_for_leader_epoch(address(first), {topic: [(0, -1, 0), (0, -1, 3), (9, -1, 0)]})[topic]
    assert [(p.error_code, p.leader_epoch, p.end_offset) for p in many] == [
        (0, 0, 3), (0, 3, 6), (UNKNOWN_TOPIC_OR_PARTITION, -1, -1)]

    # DeleteRecords past epoch 0: the history is cut from the start, as Kafka's cache is, and a
    # restart (which reloads it from the database, trimmed rows and all) answers the same.
    admin = ck.admin(first)
    for future in admin.delete_records([TopicPartition(topic, 0, 4)]).values():
        assert future.result(30).low_watermark == 4
    assert answer(first, topic, 0) == (0, 0, 4), "an epoch below the first answers the log start"
    assert answer(first, topic, 1) == (0, 1, 5)
    first.stop()
    first.restart()
    assert pg.psql(
        f"SELECT min(leader_epoch) FROM once.partition_leader_epochs WHERE topic = '{topic}'", database(url)) == "1"
    assert answer(first, topic, 0) == (0, 0, 4)
    assert answer(first, topic, 1) == (0, 1, 5)
    assert answer(first, topic, 4) == (0, 4, 6), "the restart took epoch 4 at the log end"

    # A second broker: whichever does not lead answers NOT_LEADER_OR_FOLLOWER; a handoff records
    # the new epoch too.
    second = start(broker_factory, url, 2)
    wait_until(lambda: spread(pg, url, [1, 2]), 60, "leadership spread over the two brokers")
    holder, epoch = lease(pg, url, topic, 0)
    brokers = {1: first, 2: second}
    leader, other = brokers[holder], brokers[3 - holder]
    wait_until(lambda: answer(other, topic, 1)[0] == NOT_LEADER_OR_FOLLOWER, 30, "the non-leader refusing")
    wait_until(lambda: answer(leader, topic, epoch) == (0, epoch, 6), 30, "the leader answering its epoch")
    assert answer(leader, topic, 1) == (0, 1, 5)


def test_the_file_engine_answers_no_epoch(broker):
    topic = unique_topic("epochs-file")
    ck.create_topic(broker, topic, 1)
    producer = ck.producer(broker)
    producer.produce(topic, value=b"x", partition=0)
    assert producer.flush(30) == 0
    # Its leader epoch is -1 for good (Metadata says so, so clients never ask); a raw request
    # gets Kafka's answer for a log without epochs.
    assert answer(broker, topic, 0) == (0, -1, -1)
    assert answer(broker, topic, 0, current=0) == (0, -1, -1)
    assert answer(broker, unique_topic("no-such"), 0)[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert requests_answered(broker, "OffsetForLeaderEpoch") == 3


@pytest.mark.timeout_seconds(300)
def test_a_consumer_reading_through_a_handoff_and_a_sigkill_resumes_where_it_was(pg, broker_factory):
    topic = unique_topic("epochs-consumer")
    url = pg.new_database()
    brokers = [start(broker_factory, url, 1)]
    ck.create_topic(brokers[0], topic, 1)
    producer = ck.producer(brokers[0], **{"enable.idempotence": True})
    client_log: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            client_log.append(record.getMessage())

    logger = logging.getLogger(f"librdkafka-{topic}")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Capture())
    consumer = ck.consumer(brokers[0], **{
        "enable.partition.eof": False, "topic.metadata.refresh.interval.ms": 1000, "debug": "consumer,fetch",
        "logger": logger})
    seen: list[int] = []
    offsets: list[int] = []
    sent = 0

    def send(n: int) -> None:
        nonlocal sent
        for i in range(sent, sent + n):
            producer.produce(topic, value=value_for(i), partition=0)
        sent += n
        assert producer.flush(120) == 0

    def pump() -> None:
        """Consumes what is there; librdkafka's log lines, too, reach the logger only on a poll."""
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            assert msg.error() is None or msg.error().code() != KafkaError._LOG_TRUNCATION, msg.error()
            if msg.error() is None:
                seen.append(index_of(msg.value()))
                offsets.append(msg.offset())

    def read_until(count: int) -> None:
        wait_until(lambda: pump() or len(seen) >= count, 120, f"the consumer reading {count} records ({len(seen)} so far)")

    def validated(node: int, before: float, end: int, epoch: int) -> None:
        """The consumer asked the new leader and librdkafka accepted its answer: the old epoch's
        end is where the consumer is, so nothing was truncated."""
        wait_until(
            lambda: requests_answered(brokers[node - 1], "OffsetForLeaderEpoch") > before, 30,
            f"the consumer validating its position with OffsetForLeaderEpoch at broker {node}")
        line = f"offset and epoch validation succeeded: broker end offset {end} (offset leader epoch {epoch})"
        wait_until(lambda: pump() or any(line in m for m in client_log), 30, f"librdkafka logging '{line}'")

    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        send(200)
        read_until(200)
        epochs = [lease(pg, url, topic, 0)]
        assert epochs[0][0] == 1
        # Two brokers join: the first holds more than its share and hands the data partition off
        # (the placement keeps a holder's first partitions in name order; internal ones sort first).
        brokers += [start(broker_factory, url, n) for n in (2, 3)]
        wait_until(lambda: spread(pg, url, [1, 2, 3]) and lease(pg, url, topic, 0)[0] != 1, 60, "the handoff")
        assert "handed off leadership" in brokers[0].log_text()
        epochs.append(lease(pg, url, topic, 0))
        # The joiners started counting at zero, after the consumer's last position check.
        validated(epochs[1][0], 0, 200, epochs[0][1])
        send(200)
        read_until(400)
        # The new leader dies; a live broker takes its lease at the next epoch.
        counted = {n: requests_answered(b, "OffsetForLeaderEpoch") for n, b in zip((1, 2, 3), brokers)}
        brokers[epochs[1][0] - 1].kill9()
        wait_until(lambda: lease(pg, url, topic, 0)[0] != epochs[1][0], 60, "the lease taken after SIGKILL")
        epochs.append(lease(pg, url, topic, 0))
        validated(epochs[2][0], counted[epochs[2][0]], 400, epochs[1][1])
        send(200)
        read_until(600)
    finally:
        consumer.close()
    assert [e for _, e in epochs] == sorted({e for _, e in epochs}), epochs
    assert seen == list(range(600)), "no record lost and none read twice across the leader changes"
    assert offsets == list(range(600))
    leader = brokers[epochs[2][0] - 1]
    assert answer(leader, topic, epochs[0][1]) == (0, epochs[0][1], 200)
    assert answer(leader, topic, epochs[1][1]) == (0, epochs[1][1], 400)
    assert answer(leader, topic, epochs[2][1]) == (0, epochs[2][1], 600)


def test_offset_for_leader_epoch_needs_topic_describe_or_cluster_action(broker_factory):
    """As Kafka's KafkaApis: Cluster CLUSTER_ACTION (a replica) answers every topic; otherwise
    each topic needs DESCRIBE, and the others get TOPIC_AUTHORIZATION_FAILED per partition."""
    from confluent_kafka.admin import AclOperation, ResourceType
    from test_acls import ANONYMOUS_IS_SUPER, acl

    public, secret = unique_topic("epochs-public"), unique_topic("epochs-secret")
    broker = broker_factory(extra_args=ANONYMOUS_IS_SUPER)
    ck.create_topic(broker, public, 1)
    ck.create_topic(broker, secret, 1)

    def grant(*bindings) -> None:
        broker.stop()
        broker.extra_args = ANONYMOUS_IS_SUPER
        broker.restart()
        admin = ck.admin(broker)
        for future in admin.create_acls(list(bindings)).values():
            future.result(timeout=30)
        broker.stop()
        broker.extra_args = ["--authorizer", "on", "--super-users", "User:admin"]
        broker.restart()

    def codes() -> dict[str, int]:
        answer = offset_for_leader_epoch(address(broker), {public: [(0, -1, 0)], secret: [(0, -1, 0)]})
        return {name: results[0].error_code for name, results in answer.items()}

    grant(acl(ResourceType.TOPIC, public, "User:ANONYMOUS", AclOperation.DESCRIBE))
    assert codes() == {public: 0, secret: TOPIC_AUTHORIZATION_FAILED}
    grant(acl(ResourceType.BROKER, "kafka-cluster", "User:ANONYMOUS", AclOperation.CLUSTER_ACTION))
    assert codes() == {public: 0, secret: 0}
