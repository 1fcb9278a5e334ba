"""Coordinator failover in a cluster of three `once broker --storage postgres` processes: the
broker that takes over `__consumer_offsets-0` from a SIGKILLed one serves the groups the database
holds, not what it loaded at its own start, so a group keeps its committed offsets across the
move."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

import confluent_helpers as ck
from support import Deadline, index_of, record_count, scaled_timeout, unique_topic, wait_until
from test_postgres_cluster import lease, pg, three  # noqa: F401  (pg is a fixture)


def bootstrap(brokers) -> str:
    return ",".join(b.bootstrap for b in brokers)


def test_a_group_keeps_its_committed_offsets_when_its_coordinator_dies(pg, broker_factory):
    topic = unique_topic("cluster-group-failover")
    url, brokers = three(pg, broker_factory, {topic: 3})
    n = record_count(3000)
    ck.produce_indexed(brokers[0], topic, range(n), **{"bootstrap.servers": bootstrap(brokers), "enable.idempotence": True})
    holder, _ = lease(pg, url, "__consumer_offsets", 0)
    survivors = [b for n_, b in zip((1, 2, 3), brokers) if n_ != holder]
    config = {
        "group.id": "failover-group", "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
    }
    first = Consumer({"bootstrap.servers": bootstrap(brokers), **config})
    first.subscribe([topic])
    seen: list[int] = []
    committed: dict[int, int] = {}
    while len(seen) < n // 2:
        msgs = first.consume(num_messages=200, timeout=1)
        for m in msgs:
            assert m.error() is None, m.error()
            seen.append(index_of(m.value()))
            committed[m.partition()] = m.offset() + 1
        if msgs:
            first.commit(offsets=[TopicPartition(topic, p, o) for p, o in committed.items()], asynchronous=False)
    brokers[holder - 1].kill9()
    first.close()
    wait_until(lambda: lease(pg, url, "__consumer_offsets", 0)[0] != holder, 60, "__consumer_offsets-0 moving")

    second = Consumer({"bootstrap.servers": bootstrap(survivors), **config})
    try:
        # The group re-forms on the new coordinator, which answers the offsets committed before.
        stored = {
            tp.partition: tp.offset
            for tp in second.committed([TopicPartition(topic, p) for p in range(3)], timeout=scaled_timeout(120))
        }
        assert {p: o for p, o in stored.items() if o >= 0} == committed
        second.subscribe([topic])
        rest: list[int] = []
        deadline = Deadline(scaled_timeout(120), "the second consumer reading the rest")
        while len(set(seen) | set(rest)) < n:
            deadline.check(f"({len(rest)} records read after the failover)")
            for m in second.consume(num_messages=500, timeout=1):
                assert m.error() is None, m.error()
                rest.append(index_of(m.value()))
    finally:
        second.close()
    # No record lost; every record read before was committed, so none comes back.
    assert set(seen) | set(rest) == set(range(n))
    assert len(rest) == len(set(rest)) and not set(rest) & set(seen)
