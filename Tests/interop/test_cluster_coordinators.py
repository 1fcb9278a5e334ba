"""Coordinators in a cluster of three `once broker --storage postgres` processes: every broker's
FindCoordinator names the leader of the key's internal partition, every other broker answers
NOT_COORDINATOR to coordinator requests (raw frames: a client goes to the coordinator on its own
and hides the refusal), a consumer group bootstrapped through any broker commits through the
coordinator, and idempotent producers of different brokers never share a producer id."""

from __future__ import annotations

import struct

from confluent_kafka import Consumer, TopicPartition

import confluent_helpers as ck
from kafka_wire import connect, frame, read_frame, request_header
from support import unique_topic, wait_until
from test_postgres_cluster import lease, leaders_in_metadata, pg, three  # noqa: F401  (pg is a fixture)
from test_postgres_storage import _string, address

FIND_COORDINATOR = 10
HEARTBEAT = 12
INIT_PRODUCER_ID = 22
NOT_COORDINATOR = 16
UNKNOWN_MEMBER_ID = 25


def call(broker, api_key: int, version: int, body: bytes) -> bytes:
    with connect(address(broker)) as sock:
        sock.sendall(frame(request_header(api_key, version, 5, flexible=False) + body))
        payload = read_frame(sock)
    return payload[4:]  # past the correlation id


def find_coordinator(broker, key: str, key_type: int) -> tuple[int, int]:
    """FindCoordinator v1: (error code, node id)."""
    answer = call(broker, FIND_COORDINATOR, 1, _string(key) + struct.pack(">b", key_type))
    (error,) = struct.unpack_from(">h", answer, 4)
    (n,) = struct.unpack_from(">h", answer, 6)
    (node,) = struct.unpack_from(">i", answer, 8 + max(n, 0))
    return error, node


def init_producer_id(broker, transactional_id: str | None) -> tuple[int, int]:
    """InitProducerId v1: (error code, producer id)."""
    answer = call(broker, INIT_PRODUCER_ID, 1, _string(transactional_id) + struct.pack(">i", 60_000))
    error, producer_id = struct.unpack_from(">hq", answer, 4)
    return error, producer_id


def heartbeat_error(broker, group: str) -> int:
    answer = call(broker, HEARTBEAT, 0, _string(group) + struct.pack(">i", 1) + _string("nobody"))
    return struct.unpack_from(">h", answer, 0)[0]


def test_only_the_internal_partitions_leader_coordinates(pg, broker_factory):
    url, brokers = three(pg, broker_factory)
    # The internal partitions are led by whichever broker holds their lease.
    offsets_leader = lease(pg, url, "__consumer_offsets", 0)[0]
    txn_leader = lease(pg, url, "__transaction_state", 0)[0]
    for b in brokers:
        wait_until(lambda b=b: find_coordinator(b, "g", 0) == (0, offsets_leader), 30, f"{b.bootstrap} naming the group coordinator")
        wait_until(lambda b=b: find_coordinator(b, "tx", 1) == (0, txn_leader), 30, f"{b.bootstrap} naming the transaction coordinator")
    for node, b in zip((1, 2, 3), brokers):
        if node == offsets_leader:
            assert heartbeat_error(b, "g") == UNKNOWN_MEMBER_ID
        else:
            assert heartbeat_error(b, "g") == NOT_COORDINATOR
        error, producer_id = init_producer_id(b, f"tx-{node}")
        if node == txn_leader:
            assert (error, producer_id >= 0) == (0, True)
        else:
            assert (error, producer_id) == (NOT_COORDINATOR, -1)


def test_idempotent_producers_of_different_brokers_never_share_an_id(pg, broker_factory):
    _, brokers = three(pg, broker_factory)
    ids = []
    for _ in range(3):
        for b in brokers:
            error, producer_id = init_producer_id(b, None)
            assert error == 0
            ids.append(producer_id)
    assert len(set(ids)) == len(ids), ids
    # A restarted broker takes a new block rather than resuming a reservation it read at start.
    brokers[1].kill9()
    brokers[1].restart()
    error, producer_id = init_producer_id(brokers[1], None)
    assert error == 0 and producer_id not in ids


def test_a_group_bootstrapped_through_any_broker_commits_through_its_coordinator(pg, broker_factory):
    topic = unique_topic("cluster-group")
    url, brokers = three(pg, broker_factory, {topic: 2})
    offsets_leader = lease(pg, url, "__consumer_offsets", 0)[0]
    elsewhere = [b for n, b in zip((1, 2, 3), brokers) if n != offsets_leader]
    holders = {p: lease(pg, url, topic, p)[0] for p in range(2)}
    for b in brokers:
        wait_until(lambda b=b: leaders_in_metadata(b, topic) == holders, 30, "every broker seeing the leases")
    producer = ck.producer(elsewhere[0])
    for i in range(10):
        producer.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    assert producer.flush(30) == 0
    group = unique_topic("g")
    consumer = Consumer({
        "bootstrap.servers": elsewhere[0].bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen = []

    def consumed_all() -> bool:
        m = consumer.poll(1.0)
        if m is not None and m.error() is None:
            seen.append(m)
        return len(seen) >= 10

    try:
        wait_until(consumed_all, 60, "ten records consumed")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    ends = {}
    for m in seen:
        ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)
    reader = Consumer({"bootstrap.servers": elsewhere[-1].bootstrap, "group.id": group})
    try:
        committed = reader.committed([TopicPartition(topic, p) for p in range(2)], timeout=30)
    finally:
        reader.close()
    assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == ends
    assert sum(ends.values()) == 10
