"""kill -9 and restart on the same data directory: an acknowledged record (acks=all) must
survive, exactly once, at the offset the broker acknowledged, and offsets must carry on."""

from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka import KafkaError

from confluent_helpers import (
    Delivery,
    check_exactly_once_in_order,
    create_topic,
    partition_count,
    produce_indexed,
    producer,
    read_to_end,
    watermarks,
)
from support import index_of, key_for, record_count, scaled_timeout, unique_topic, value_for

PARTITIONS = 3


def check_offsets_continue(broker, topic: str, before: Counter, more: dict[int, Delivery]) -> None:
    for partition in range(PARTITIONS):
        new = sorted(d.offset for d in more.values() if d.partition == partition)
        expected = list(range(before[partition], before[partition] + len(new)))
        assert new == expected, f"partition {partition}: offsets after restart {new[:5]}..., want {expected[:5]}..."
        assert watermarks(broker, topic, partition) == (0, before[partition] + len(new))


@pytest.mark.timeout_seconds(scaled_timeout(240, per_record=0.004))
def test_acknowledged_records_survive_kill9(broker):
    count = record_count()
    topic = unique_topic("crash-acked")
    create_topic(broker, topic, PARTITIONS)
    deliveries = produce_indexed(broker, topic, range(count))

    broker.kill9()
    broker.restart()

    assert partition_count(broker, topic) == PARTITIONS, "topic lost or changed by the restart"
    records = read_to_end(broker, topic, range(PARTITIONS), seconds=scaled_timeout(60))
    check_exactly_once_in_order(records, deliveries)
    before = Counter(d.partition for d in deliveries.values())
    for partition in range(PARTITIONS):
        assert watermarks(broker, topic, partition) == (0, before[partition])

    more_count = max(100, count // 10)
    more = produce_indexed(broker, topic, range(count, count + more_count))
    check_offsets_continue(broker, topic, before, more)

    everything = read_to_end(broker, topic, range(PARTITIONS), seconds=scaled_timeout(60))
    check_exactly_once_in_order(everything, {**deliveries, **more})


@pytest.mark.timeout_seconds(scaled_timeout(240, per_record=0.004))
def test_kill9_while_producing_keeps_every_acknowledged_record(broker):
    count = record_count()
    topic = unique_topic("crash-midway")
    create_topic(broker, topic, PARTITIONS)

    acked: dict[int, Delivery] = {}
    failed: dict[int, KafkaError] = {}

    def on_delivery(err, msg) -> None:
        index = index_of(msg.value())
        if err is None:
            acked[index] = Delivery(msg.partition(), msg.offset())
        else:
            failed[index] = err

    # Undelivered records must fail while the broker is down, not wait for the restart.
    client = producer(broker, **{"message.timeout.ms": 10_000, "request.timeout.ms": 5_000})
    # A bounded window of unacknowledged records keeps some in flight when the kill lands,
    # however fast or slow the broker is.
    window = max(100, count // 20)
    kill_after = count // 3
    produced = 0
    killed = False
    for i in range(count):
        while produced - len(acked) - len(failed) >= window:
            client.poll(0.05)
        if len(acked) >= kill_after:
            broker.kill9()
            killed = True
            break
        client.produce(topic, key=key_for(i), value=value_for(i), on_delivery=on_delivery)
        produced += 1
        client.poll(0)
    assert killed, f"never saw {kill_after} acknowledgements before running out of records"
    assert not failed, f"delivery errors before the kill: {list(failed.items())[:5]}"
    assert client.flush(60) == 0
    assert len(acked) + len(failed) == produced, "a record got no delivery report"
    assert set(acked).isdisjoint(failed)

    broker.restart()
    records = read_to_end(broker, topic, range(PARTITIONS), seconds=scaled_timeout(60))

    seen: dict[int, tuple[int, int]] = {}
    for r in records:
        index = index_of(r.value)
        assert index not in seen, f"record {index} stored twice"
        seen[index] = (r.partition, r.offset)
        assert index < produced, f"record {index} was never produced"
        assert r.key == key_for(index)
    lost = sorted(i for i in acked if i not in seen)
    assert not lost, f"{len(lost)} acknowledged records lost by kill -9, first: {lost[:10]}"
    moved = [i for i, d in acked.items() if seen[i] != (d.partition, d.offset)]
    assert not moved, f"acknowledged records at a different offset after restart: {moved[:10]}"
    for partition in range(PARTITIONS):
        items = [r for r in records if r.partition == partition]
        assert [r.offset for r in items] == list(range(len(items))), f"partition {partition} has offset gaps"
        indices = [index_of(r.value) for r in items]
        assert indices == sorted(indices), f"partition {partition} is not in produce order"

    before = Counter(r.partition for r in records)
    more = produce_indexed(broker, topic, range(count, count + 100))
    check_offsets_continue(broker, topic, before, more)


@pytest.mark.timeout_seconds(scaled_timeout(180))
def test_graceful_restart_keeps_topics_and_records(broker):
    topic = unique_topic("restart-clean")
    create_topic(broker, topic, PARTITIONS)
    # Enough data that each partition holds more than one fetch's worth (1 MiB) of records.
    deliveries = produce_indexed(broker, topic, range(record_count()))

    broker.stop()
    broker.restart()

    assert partition_count(broker, topic) == PARTITIONS
    check_exactly_once_in_order(read_to_end(broker, topic, range(PARTITIONS)), deliveries)

    more = produce_indexed(broker, topic, range(record_count(), record_count() + 100))
    check_offsets_continue(broker, topic, Counter(d.partition for d in deliveries.values()), more)


def test_repeated_kill9_keeps_every_generation(broker):
    topic = unique_topic("crash-repeat")
    create_topic(broker, topic, 1)
    deliveries: dict[int, Delivery] = {}
    for generation in range(3):
        batch = range(generation * 500, (generation + 1) * 500)
        deliveries.update(produce_indexed(broker, topic, batch, partition=0))
        broker.kill9()
        broker.restart()
    records = read_to_end(broker, topic, [0])
    check_exactly_once_in_order(records, deliveries)
    assert [r.offset for r in records] == list(range(1500))
