"""confluent-kafka (librdkafka) helpers: create topics, produce with delivery reports, read
partitions back to their end by assignment."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from support import Deadline, index_of, key_for, scaled_timeout, value_for, wait_until


@dataclass(frozen=True)
class Delivery:
    partition: int
    offset: int


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: tuple[int, int]


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def partition_count(broker, topic: str) -> int | None:
    """Partitions the broker reports for `topic` without asking it to create the topic."""
    meta = admin(broker).list_topics(timeout=20)
    entry = meta.topics.get(topic)
    if entry is None or entry.error is not None:
        return None
    return len(entry.partitions)


def create_topic(broker, topic: str, partitions: int) -> None:
    # The futures die with their client, so the client must outlive the wait.
    client = admin(broker)
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=30, request_timeout=30
    )
    futures[topic].result(timeout=60)
    wait_until(lambda: partition_count(broker, topic) == partitions, 30, f"topic {topic} in metadata")


def producer(broker, **overrides) -> Producer:
    config = {"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, **overrides}
    return Producer(config)


class DeliveryRecorder:
    """Delivery reports by record index, for producers whose produce loop a test shapes itself
    (brokers killed or started mid-run, several producer threads). A failed report and a second
    report for one index are errors; `check` asserts there were none. Thread-safe, since
    confluent-kafka calls it from whichever thread polls."""

    def __init__(self) -> None:
        self.deliveries: dict[int, Delivery] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, err, msg) -> None:
        index = index_of(msg.value())
        with self._lock:
            if err is not None:
                self.errors.append(f"record {index}: {err}")
            elif index in self.deliveries:
                self.errors.append(f"record {index}: second delivery report")
            else:
                self.deliveries[index] = Delivery(msg.partition(), msg.offset())

    def produce(self, client: Producer, topic: str, i: int, **kwargs) -> None:
        """Sends record `i` with this recorder as its report, waiting while librdkafka's queue is full."""
        while True:
            try:
                client.produce(topic, key=key_for(i), value=value_for(i), on_delivery=self, **kwargs)
                break
            except BufferError:
                client.poll(0.1)
        client.poll(0)

    def check(self, expected: int | None = None) -> None:
        assert not self.errors, f"{len(self.errors)} delivery errors, first: {self.errors[:5]}"
        if expected is not None:
            assert len(self.deliveries) == expected, f"{expected} produced but {len(self.deliveries)} delivery reports"


def produce_indexed(
    broker,
    topic: str,
    indices: Iterable[int],
    *,
    partition: int | None = None,
    timestamp_for: Callable[[int], int] | None = None,
    flush_seconds: float | None = None,
    **overrides,
) -> dict[int, Delivery]:
    """Produces `value_for(i)` keyed by `key_for(i)` for each index; every delivery report must be clean."""
    recorder = DeliveryRecorder()
    client = producer(broker, **overrides)
    expected = 0
    for i in indices:
        expected += 1
        kwargs = {}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_for is not None:
            kwargs["timestamp"] = timestamp_for(i)
        recorder.produce(client, topic, i, **kwargs)
    remaining = client.flush(flush_seconds if flush_seconds is not None else scaled_timeout(60))
    assert remaining == 0, f"{remaining} records still unacknowledged after flush"
    recorder.check(expected)
    return recorder.deliveries


def consumer(broker, **overrides) -> Consumer:
    config = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": "interop-assign-only",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        **overrides,
    }
    return Consumer(config)


def read_to_end(
    broker,
    topic: str,
    partitions: Iterable[int],
    *,
    start: int = OFFSET_BEGINNING,
    seconds: float | None = None,
    **overrides,
) -> list[Record]:
    """Assigns the partitions at `start` (no group membership) and reads until each reports end of partition."""
    partitions = list(partitions)
    client = consumer(broker, **overrides)
    records: list[Record] = []
    try:
        client.assign([TopicPartition(topic, p, start) for p in partitions])
        pending = set(partitions)
        deadline = Deadline(seconds or scaled_timeout(60), f"end of partitions {sorted(pending)} of {topic}")
        while pending:
            deadline.check(f"(still waiting for {sorted(pending)}, {len(records)} records so far)")
            for msg in client.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise AssertionError(f"consumer error on {topic}[{msg.partition()}]: {err}")
                records.append(Record(msg.partition(), msg.offset(), msg.key(), msg.value(), msg.timestamp()))
                pending.add(msg.partition())
    finally:
        client.close()
    return records


def first_record_from(broker, topic: str, partition: int, offset: int, seconds: float = 60) -> Record:
    """The first record a consumer assigned at `offset` receives."""
    client = consumer(broker, **{"enable.partition.eof": False})
    try:
        client.assign([TopicPartition(topic, partition, offset)])
        deadline = Deadline(seconds, f"a record from {topic}[{partition}] at offset {offset}")
        while True:
            deadline.check()
            msg = client.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                raise AssertionError(f"consumer error: {msg.error()}")
            return Record(msg.partition(), msg.offset(), msg.key(), msg.value(), msg.timestamp())
    finally:
        client.close()


def watermarks(broker, topic: str, partition: int) -> tuple[int, int]:
    client = consumer(broker)
    try:
        return client.get_watermark_offsets(TopicPartition(topic, partition), timeout=20, cached=False)
    finally:
        client.close()


def check_exactly_once_in_order(records: list[Record], deliveries: dict[int, Delivery]) -> None:
    """Every acknowledged record appears once, at the offset its delivery report gave, in produce order."""
    seen: dict[int, Record] = {}
    for record in records:
        index = index_of(record.value)
        assert index not in seen, f"record {index} read twice: {seen[index]} and {record}"
        seen[index] = record
    missing = sorted(set(deliveries) - set(seen))
    assert not missing, f"{len(missing)} acknowledged records missing, first: {missing[:10]}"
    unexpected = sorted(set(seen) - set(deliveries))
    assert not unexpected, f"{len(unexpected)} records never produced, first: {unexpected[:10]}"

    for index, record in seen.items():
        delivery = deliveries[index]
        assert (record.partition, record.offset) == (delivery.partition, delivery.offset), (
            f"record {index} read at {record.partition}/{record.offset}, acknowledged at {delivery}"
        )
        assert record.key == key_for(index), f"record {index} has key {record.key!r}"

    by_partition: dict[int, list[Record]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    for partition, items in by_partition.items():
        offsets = [r.offset for r in items]
        assert offsets == sorted(offsets), f"partition {partition} delivered offsets out of order"
        indices = [index_of(r.value) for r in items]
        assert indices == sorted(indices), f"partition {partition} is not in produce order"
