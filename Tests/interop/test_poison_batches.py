"""Batches whose CRC is right but whose records are malformed must be refused with the code Kafka
gives (INVALID_RECORD, or CORRUPT_MESSAGE for bytes a codec rejects) whatever the acks, and must
never reach the log: a consumer reads every good record around them."""

from __future__ import annotations

import gzip

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from confluent_helpers import admin, create_topic, produce_indexed, read_to_end, watermarks
from record_batches import batch, good_records, produce, record, varint
from support import Deadline, index_of, unique_topic, value_for, wait_until

INVALID_RECORD = 87
CORRUPT_MESSAGE = 2
GZIP = 1


def _body(header_count: int, headers: bytes = b"") -> bytes:
    return b"\x00" + varint(0) + varint(0) + varint(1) + b"k" + varint(1) + b"v" + varint(header_count) + headers


def _sized(body: bytes) -> bytes:
    return varint(len(body)) + body


# name -> (records section, declared record count, codec, expected code, index of the bad record or None)
POISON = {
    "truncated last record": (good_records("p", 3)[:-2], 3, 0, INVALID_RECORD, 2),
    "record length varint that overflows": (
        good_records("p", 1) + b"\xff\xff\xff\xff\xff\x01" + b"\x00" * 12, 2, 0, INVALID_RECORD, 1),
    "more records declared than present": (good_records("p", 3), 4, 0, INVALID_RECORD, 3),
    "fewer records declared than present": (good_records("p", 3), 2, 0, INVALID_RECORD, 1),
    "negative record length": (varint(-3) + _body(0), 1, 0, INVALID_RECORD, 0),
    "negative header count": (_sized(_body(-1)), 1, 0, INVALID_RECORD, 0),
    "header count larger than the record": (_sized(_body(50, varint(1) + b"h" + varint(-1))), 1, 0, INVALID_RECORD, 0),
    "negative header key length": (_sized(_body(1, varint(-1) + varint(-1))), 1, 0, INVALID_RECORD, 0),
    "bytes gzip rejects": (b"\x1f\x8b" + b"\xff" * 40, 1, GZIP, CORRUPT_MESSAGE, None),
    "truncated record inside gzip": (gzip.compress(good_records("p", 3)[:-2]), 3, GZIP, INVALID_RECORD, 2),
    "cut gzip stream": (gzip.compress(good_records("p", 3))[:-9], 3, GZIP, INVALID_RECORD, None),
}


@pytest.mark.parametrize("acks", [1, -1])
def test_poison_batches_are_refused_and_never_stored(broker, acks):
    topic = unique_topic("poison")
    create_topic(broker, topic, 1)
    address = ("127.0.0.1", broker.port)
    before = produce_indexed(broker, topic, range(0, 5), partition=0)
    assert watermarks(broker, topic, 0) == (0, 5)

    for name, (section, count, codec, code, bad_index) in POISON.items():
        answer = produce(address, topic, batch(section, count, codec=codec), acks=acks)
        assert answer.error_code == code, f"{name}: want error {code}, got {answer}"
        assert answer.error_message, f"{name}: no error message"
        if bad_index is not None:
            assert [index for index, _ in answer.record_errors] == [bad_index], f"{name}: {answer.record_errors}"
        assert watermarks(broker, topic, 0) == (0, 5), f"{name} changed the high watermark"

    # The same path accepts a well-formed batch, so the refusals above are about the records.
    good = produce(address, topic, batch(good_records("raw", 3), 3), acks=acks)
    assert (good.error_code, good.base_offset) == (0, 5), good
    gzipped = produce(address, topic, batch(gzip.compress(good_records("gz", 2)), 2, codec=GZIP), acks=acks)
    assert (gzipped.error_code, gzipped.base_offset) == (0, 8), gzipped
    after = produce_indexed(broker, topic, range(5, 10), partition=0)
    assert min(d.offset for d in after.values()) == 10

    records = read_to_end(broker, topic, [0])
    assert [r.offset for r in records] == list(range(15))
    assert [r.value for r in records[:5]] == [value_for(i) for i in range(5)]
    assert [r.value for r in records[5:8]] == [f"raw-v{i}".encode() for i in range(3)]
    assert [r.value for r in records[8:10]] == [f"gz-v{i}".encode() for i in range(2)]
    assert [index_of(r.value) for r in records[10:]] == list(range(5, 10))
    assert len(before) == 5
    # kafka-python raised CorruptRecordError at a stored poison batch; it reads the same 15.
    assert _kafka_python_offsets(broker, topic, 15) == list(range(15))


def _kafka_python_offsets(broker, topic: str, count: int) -> list[int]:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partition = KpTopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        offsets: list[int] = []
        deadline = Deadline(60, f"{count} records from kafka-python")
        while len(offsets) < count:
            deadline.check(f"({len(offsets)} so far)")
            for batch in consumer.poll(timeout_ms=500).values():
                offsets.extend(message.offset for message in batch)
        return offsets
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_from_confluent_kafka_still_work(broker, codec):
    topic = unique_topic(f"codec-{codec}")
    create_topic(broker, topic, 1)
    produced = produce_indexed(
        broker, topic, range(2_000), partition=0, **{"compression.type": codec, "linger.ms": 50, "batch.num.messages": 500})
    records = read_to_end(broker, topic, [0])
    assert [index_of(r.value) for r in records] == list(range(2_000))
    assert sorted(d.offset for d in produced.values()) == list(range(2_000))


def test_keyless_records_on_a_compacted_topic_are_invalid_record(broker):
    topic = unique_topic("compacted")
    client = admin(broker)
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"})],
        operation_timeout=30, request_timeout=30)
    futures[topic].result(timeout=60)
    wait_until(lambda: watermarks(broker, topic, 0) == (0, 0), 30, f"topic {topic} readable")
    address = ("127.0.0.1", broker.port)

    section = record(0, b"k0", b"v0") + record(1, None, b"v1") + record(2, b"k2", b"v2") + record(3, None, b"v3")
    answer = produce(address, topic, batch(section, 4), acks=-1)
    assert answer.error_code == INVALID_RECORD, answer
    assert [index for index, _ in answer.record_errors] == [1, 3], answer

    reports = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "message.timeout.ms": 30_000})
    # Flushed one by one: in one batch, the keyless record would take the keyed one down with it.
    producer.produce(topic, value=b"no key", on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(60) == 0
    producer.produce(topic, key=b"k", value=b"keyed", on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(60) == 0
    assert len(reports) == 2, reports
    assert reports[0] is not None and reports[0].code() == INVALID_RECORD, reports[0]
    assert reports[1] is None, reports[1]
    records = read_to_end(broker, topic, [0])
    assert [(r.key, r.value) for r in records] == [(b"k", b"keyed")]


def test_gzip_batches_from_kafka_python_still_work(broker):
    # kafka-python writes gzip itself (Python's gzip module), a second implementation of the framing.
    topic = unique_topic("kp-gzip")
    create_topic(broker, topic, 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", acks="all", linger_ms=20)
    futures = [producer.send(topic, key=b"k", value=value_for(i), partition=0) for i in range(500)]
    producer.flush(60)
    assert sorted(f.get(timeout=60).offset for f in futures) == list(range(500))
    producer.close()
    assert [index_of(r.value) for r in read_to_end(broker, topic, [0])] == list(range(500))
