"""The errors real clients see must be the Kafka error codes they know how to handle, not
silence, hangs or dropped connections."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import OffsetOutOfRangeError

from confluent_helpers import admin, consumer, create_topic, partition_count, produce_indexed, producer
from support import Deadline, index_of, key_for, unique_topic, value_for

NO_AUTO_CREATE = ["--auto-create-topics", "false"]
UNKNOWN_TOPIC_CODES = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
OUT_OF_RANGE_CODES = {KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET}


def test_producing_to_an_unknown_topic_fails_delivery_when_auto_create_is_off(broker_factory):
    broker = broker_factory(extra_args=NO_AUTO_CREATE)
    topic = unique_topic("missing")
    reports: list = []
    client = producer(broker, **{"message.timeout.ms": 15_000, "topic.metadata.propagation.max.ms": 1_000})
    try:
        client.produce(topic, key=b"k", value=b"v", on_delivery=lambda err, msg: reports.append(err))
    except Exception as immediate:  # librdkafka may already know the topic is missing
        reports.append(immediate.args[0])
    assert client.flush(60) == 0
    assert len(reports) == 1
    err = reports[0]
    assert err is not None, "record to a missing topic was acknowledged"
    assert err.code() in UNKNOWN_TOPIC_CODES, f"want UNKNOWN_TOPIC_OR_PART, got {err}"
    assert partition_count(broker, topic) is None, "topic was created although auto-create is off"


def test_metadata_for_an_unknown_topic_reports_unknown_topic_when_auto_create_is_off(broker_factory):
    broker = broker_factory(extra_args=NO_AUTO_CREATE)
    topic = unique_topic("missing-meta")
    meta = admin(broker).list_topics(topic=topic, timeout=20)
    entry = meta.topics.get(topic)
    assert entry is not None, "the requested topic is absent from the response"
    assert entry.error is not None and entry.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, entry.error
    assert not entry.partitions
    assert partition_count(broker, topic) is None


def test_auto_create_off_by_environment(broker_factory):
    broker = broker_factory(env={"ONCE_AUTO_CREATE_TOPICS": "false"})
    topic = unique_topic("missing-env")
    entry = admin(broker).list_topics(topic=topic, timeout=20).topics.get(topic)
    assert entry is not None and entry.error is not None
    assert entry.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_auto_create_on_creates_the_topic_on_first_produce(broker):
    topic = unique_topic("auto")
    deliveries = produce_indexed(broker, topic, range(10))
    assert {d.partition for d in deliveries.values()} == {0}
    assert partition_count(broker, topic) == 1


def _first_error(client, seconds: float = 30):
    deadline = Deadline(seconds, "a consumer error")
    while True:
        deadline.check()
        msg = client.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            return msg.error()
        raise AssertionError(f"got a record at offset {msg.offset()} instead of an error")


def test_fetch_past_the_end_is_offset_out_of_range(broker_factory):
    broker = broker_factory(extra_args=NO_AUTO_CREATE)
    topic = unique_topic("range")
    create_topic(broker, topic, 1)
    produce_indexed(broker, topic, range(10), partition=0)

    strict = consumer(broker, **{"auto.offset.reset": "error", "enable.partition.eof": False})
    try:
        strict.assign([TopicPartition(topic, 0, 1000)])
        err = _first_error(strict)
        assert err.code() in OUT_OF_RANGE_CODES, f"want OFFSET_OUT_OF_RANGE, got {err}"
    finally:
        strict.close()

    # With a reset policy the same error makes librdkafka start over at the earliest offset.
    lenient = consumer(broker, **{"auto.offset.reset": "earliest", "enable.partition.eof": False})
    try:
        lenient.assign([TopicPartition(topic, 0, 1000)])
        deadline = Deadline(30, "the first record after an offset reset")
        while True:
            deadline.check()
            msg = lenient.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            assert (msg.offset(), index_of(msg.value()), msg.key()) == (0, 0, key_for(0))
            break
    finally:
        lenient.close()


def test_kafka_python_sees_offset_out_of_range(broker):
    topic = unique_topic("range-kp")
    create_topic(broker, topic, 1)
    produce_indexed(broker, topic, range(5), partition=0)

    tp = KpTopicPartition(topic, 0)
    client = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="none")
    try:
        client.assign([tp])
        client.seek(tp, 500)
        with pytest.raises(OffsetOutOfRangeError):
            deadline = Deadline(30, "OffsetOutOfRangeError from kafka-python")
            while True:
                deadline.check()
                got = client.poll(timeout_ms=500)
                assert not got, f"records returned past the end: {got}"
        client.seek(tp, 3)
        deadline = Deadline(30, "records from offset 3")
        records = []
        while len(records) < 2:
            deadline.check()
            for batch in client.poll(timeout_ms=500).values():
                records.extend(batch)
        assert [(r.offset, r.value) for r in records] == [(3, value_for(3)), (4, value_for(4))]
    finally:
        client.close()
