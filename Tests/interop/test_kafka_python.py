"""kafka-python (a pure-Python client with its own protocol code) against a real broker: the
same shape as the librdkafka tests, through a second, independent implementation."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from support import (
    Deadline,
    index_of,
    key_for,
    record_count,
    scaled_timeout,
    unique_topic,
    value_for,
    wait_until,
)

PARTITIONS = 3


def admin_client(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30_000)


def topic_partitions(broker, topic: str) -> set[int] | None:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        consumer.topics()  # refreshes cluster metadata for all topics without creating any
        return consumer.partitions_for_topic(topic) or None  # unknown topics come back as None or set()
    finally:
        consumer.close()


def create_topic(broker, topic: str, partitions: int) -> None:
    admin = admin_client(broker)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)], timeout_ms=30_000)
    finally:
        admin.close()
    wait_until(lambda: topic_partitions(broker, topic) == set(range(partitions)), 30, f"{topic} in metadata")


def assigned_consumer(broker, partitions: list[TopicPartition]) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
    )
    consumer.assign(partitions)
    return consumer


def produce(broker, topic: str, indices, *, partition=None, timestamp_for=None):
    # kafka-python 3 turns idempotence on by default; the idempotent producer has its own tests,
    # this suite checks the plain acks=all path every client version supports.
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5, retries=5, enable_idempotence=False
    )
    try:
        futures = []
        for i in indices:
            futures.append(
                (
                    i,
                    producer.send(
                        topic,
                        key=key_for(i),
                        value=value_for(i),
                        partition=partition,
                        timestamp_ms=timestamp_for(i) if timestamp_for else None,
                    ),
                )
            )
        producer.flush(timeout=scaled_timeout(60))
        return {i: future.get(timeout=30) for i, future in futures}
    finally:
        producer.close(timeout=10)


def read_until(consumer: KafkaConsumer, ends: dict[TopicPartition, int], seconds: float):
    """Polls until every partition's position reaches its end offset."""
    records = []
    deadline = Deadline(seconds, "kafka-python consumer to reach the end offsets")
    while any(consumer.position(tp) < end for tp, end in ends.items()):
        deadline.check(f"({len(records)} records so far)")
        for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
            records.extend(batch)
    return records


@pytest.mark.timeout_seconds(scaled_timeout(240, per_record=0.004))
def test_keyed_records_come_back_exactly_once_in_produce_order(broker):
    count = record_count()
    topic = unique_topic("kp-bulk")
    create_topic(broker, topic, PARTITIONS)

    metadata = produce(broker, topic, range(count))
    per_partition = Counter(m.partition for m in metadata.values())
    assert sum(per_partition.values()) == count
    for partition in range(PARTITIONS):
        offsets = sorted(m.offset for m in metadata.values() if m.partition == partition)
        assert offsets == list(range(per_partition[partition])), f"partition {partition} offsets are not dense"
    keys: dict[bytes, set[int]] = defaultdict(set)
    for i, m in metadata.items():
        keys[key_for(i)].add(m.partition)
    assert all(len(p) == 1 for p in keys.values()), "a key was written to more than one partition"

    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer = assigned_consumer(broker, tps)
    try:
        assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
        ends = consumer.end_offsets(tps)
        assert ends == {tp: per_partition[tp.partition] for tp in tps}
        consumer.seek_to_beginning()
        records = read_until(consumer, ends, scaled_timeout(60))
    finally:
        consumer.close()

    seen = {}
    for r in records:
        i = index_of(r.value)
        assert i not in seen, f"record {i} read twice"
        seen[i] = r
        assert (r.partition, r.offset) == (metadata[i].partition, metadata[i].offset), f"record {i} moved"
        assert r.key == key_for(i)
    assert len(seen) == count
    for partition in range(PARTITIONS):
        indices = [index_of(r.value) for r in records if r.partition == partition]
        assert indices == sorted(indices), f"partition {partition} is not in produce order"


def test_seek_to_an_offset_and_offsets_for_times(broker):
    topic = unique_topic("kp-seek")
    create_topic(broker, topic, 1)
    base = (int(time.time()) - 3600) * 1000
    produce(broker, topic, range(40), partition=0, timestamp_for=lambda i: base + i * 1000)

    tp = TopicPartition(topic, 0)
    consumer = assigned_consumer(broker, [tp])
    try:
        consumer.seek(tp, 25)
        tail = read_until(consumer, {tp: 40}, 60)
        assert [r.offset for r in tail] == list(range(25, 40))
        assert [r.value for r in tail] == [value_for(i) for i in range(25, 40)]
        assert [r.timestamp for r in tail] == [base + i * 1000 for i in range(25, 40)]

        found = consumer.offsets_for_times({tp: base + 12_500})
        assert found[tp] is not None and found[tp].offset == 13, found
        assert found[tp].timestamp == base + 13_000
        exact = consumer.offsets_for_times({tp: base + 7_000})
        assert exact[tp].offset == 7, exact
        beyond = consumer.offsets_for_times({tp: base + 40_000})
        assert beyond[tp] is None, beyond

        consumer.seek(tp, found[tp].offset)
        [first, *_] = read_until(consumer, {tp: 40}, 60)
        assert first.offset == 13 and first.value == value_for(13)

        consumer.seek_to_beginning(tp)
        assert consumer.position(tp) == 0
        consumer.seek_to_end(tp)
        assert consumer.position(tp) == 40
    finally:
        consumer.close()


def test_admin_create_list_and_delete(broker):
    topic = unique_topic("kp-admin")
    create_topic(broker, topic, PARTITIONS)

    admin = admin_client(broker)
    try:
        assert topic in admin.list_topics()
        [described] = admin.describe_topics([topic])
        assert described["error_code"] == 0, described
        assert sorted(p["partition_index"] for p in described["partitions"]) == list(range(PARTITIONS))
        assert all(p["leader_id"] == 1 for p in described["partitions"]), described

        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=30_000)

        admin.delete_topics([topic], timeout_ms=30_000)
    finally:
        admin.close()
    wait_until(lambda: topic_partitions(broker, topic) is None, 30, f"{topic} to leave metadata")
