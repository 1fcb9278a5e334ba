"""confluent-kafka (librdkafka) against a real broker: admin, acks=all producing, reading by
assignment, offsets and timestamps."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TopicPartition
from confluent_kafka.admin import NewTopic

from confluent_helpers import (
    admin,
    check_exactly_once_in_order,
    consumer,
    create_topic,
    first_record_from,
    partition_count,
    produce_indexed,
    read_to_end,
    watermarks,
)
from support import index_of, key_for, record_count, scaled_timeout, unique_topic, value_for, wait_until

PARTITIONS = 3


def test_admin_creates_a_topic_that_metadata_lists(broker):
    topic = unique_topic("ck-create")
    create_topic(broker, topic, PARTITIONS)
    meta = admin(broker).list_topics(timeout=20)
    entry = meta.topics[topic]
    assert entry.error is None
    assert sorted(entry.partitions) == list(range(PARTITIONS))
    for partition in entry.partitions.values():
        assert partition.leader == 1, partition
        assert list(partition.replicas) == [1]
        assert list(partition.isrs) == [1]
    assert [b.id for b in meta.brokers.values()] == [1]
    assert (meta.brokers[1].host, meta.brokers[1].port) == ("127.0.0.1", broker.port)


def test_creating_an_existing_topic_is_refused(broker):
    topic = unique_topic("ck-twice")
    create_topic(broker, topic, PARTITIONS)
    again = NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)
    client = admin(broker)
    futures = client.create_topics([again], operation_timeout=30, request_timeout=30)
    with pytest.raises(Exception) as failure:
        futures[topic].result(timeout=60)
    assert "TOPIC_ALREADY_EXISTS" in str(failure.value) or "already exists" in str(failure.value), failure.value


@pytest.mark.timeout_seconds(scaled_timeout(180))
def test_keyed_records_come_back_exactly_once_in_produce_order(broker):
    count = record_count()
    topic = unique_topic("ck-bulk")
    create_topic(broker, topic, PARTITIONS)

    deliveries = produce_indexed(broker, topic, range(count))

    per_partition = Counter(d.partition for d in deliveries.values())
    for partition in range(PARTITIONS):
        offsets = sorted(d.offset for d in deliveries.values() if d.partition == partition)
        assert offsets == list(range(per_partition[partition])), f"partition {partition} offsets are not dense from 0"

    partitions_per_key: dict[bytes, set[int]] = defaultdict(set)
    for index, delivery in deliveries.items():
        partitions_per_key[key_for(index)].add(delivery.partition)
    split = {k: v for k, v in partitions_per_key.items() if len(v) > 1}
    assert not split, f"keys spread over several partitions: {list(split.items())[:5]}"

    records = read_to_end(broker, topic, range(PARTITIONS), seconds=scaled_timeout(60))
    check_exactly_once_in_order(records, deliveries)
    assert len(records) == count

    for partition in range(PARTITIONS):
        assert watermarks(broker, topic, partition) == (0, per_partition[partition])


def test_assigning_at_an_offset_starts_there(broker):
    topic = unique_topic("ck-offset")
    create_topic(broker, topic, PARTITIONS)
    deliveries = produce_indexed(broker, topic, range(300), partition=1)
    assert {d.partition for d in deliveries.values()} == {1}

    for offset in (0, 1, 137, 299):
        record = first_record_from(broker, topic, 1, offset)
        assert record.offset == offset
        assert record.partition == 1
        assert record.value == value_for(offset)
        assert record.key == key_for(offset)

    tail = read_to_end(broker, topic, [1], start=250)
    assert [r.offset for r in tail] == list(range(250, 300))


def test_offsets_for_times_finds_the_first_record_at_or_after_a_timestamp(broker):
    topic = unique_topic("ck-time")
    create_topic(broker, topic, 1)
    base = (int(time.time()) - 3600) * 1000
    stamp = lambda i: base + i * 1000  # noqa: E731
    produce_indexed(broker, topic, range(20), partition=0, timestamp_for=stamp)

    client = consumer(broker)
    try:
        cases = {
            base - 5000: 0,  # before everything: the first record
            stamp(5): 5,  # exact match
            stamp(5) + 500: 6,  # between two records: the later one
            stamp(19): 19,
            stamp(19) + 1: -1,  # after everything: no such record
        }
        for target, expected in cases.items():
            [found] = client.offsets_for_times([TopicPartition(topic, 0, target)], timeout=20)
            assert found.error is None, found.error
            assert found.offset == expected, f"timestamp {target - base:+d}ms: offset {found.offset}, want {expected}"
    finally:
        client.close()

    record = first_record_from(broker, topic, 0, 6)
    assert record.timestamp == (TIMESTAMP_CREATE_TIME, stamp(6))
    assert index_of(record.value) == 6


def test_record_timestamps_round_trip(broker):
    topic = unique_topic("ck-stamps")
    create_topic(broker, topic, 1)
    base = (int(time.time()) - 60) * 1000
    produce_indexed(broker, topic, range(50), partition=0, timestamp_for=lambda i: base + 7 * i)
    records = read_to_end(broker, topic, [0])
    assert [r.timestamp for r in records] == [(TIMESTAMP_CREATE_TIME, base + 7 * i) for i in range(50)]


def test_delete_topic_removes_it_from_metadata(broker):
    topic = unique_topic("ck-delete")
    keep = unique_topic("ck-keep")
    create_topic(broker, topic, PARTITIONS)
    create_topic(broker, keep, 1)
    produce_indexed(broker, topic, range(20))

    client = admin(broker)
    futures = client.delete_topics([topic], operation_timeout=30, request_timeout=30)
    futures[topic].result(timeout=60)
    wait_until(lambda: partition_count(broker, topic) is None, 30, f"{topic} to leave metadata")
    assert partition_count(broker, keep) == 1
