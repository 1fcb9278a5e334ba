"""Administrative requests a careless or hostile client can send: deleting the coordinators'
internal topics, and CreateTopics big enough to exhaust the broker. Each is refused with the code
Kafka gives, leaves nothing behind, and never stalls the other clients."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import NewTopic

from confluent_helpers import admin, create_topic, partition_count, produce_indexed, read_to_end
from support import index_of, unique_topic

INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUEST = 42
POLICY_VIOLATION = 44


def _error_code(future, seconds: float = 120) -> int:
    try:
        future.result(timeout=seconds)
    except KafkaException as failure:
        return failure.args[0].code()
    return 0


def _transaction(broker, transactional_id: str, topic: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=value)
    producer.commit_transaction(60)


def _partition_directories(broker, topic: str) -> list[str]:
    return sorted(p.name for p in Path(broker.data_dir).iterdir() if p.name.startswith(topic + "-"))


def test_internal_topics_cannot_be_deleted(broker):
    topic = unique_topic("txn-out")
    create_topic(broker, topic, 1)
    _transaction(broker, "guard-1", topic, b"before")
    assert partition_count(broker, "__transaction_state") is not None

    client = admin(broker)
    futures = client.delete_topics(["__transaction_state"], operation_timeout=30, request_timeout=30)
    assert _error_code(futures["__transaction_state"]) == INVALID_TOPIC_EXCEPTION
    assert partition_count(broker, "__transaction_state") is not None

    # Nor can they grow: the coordinators' keys would move to other partitions.
    from confluent_kafka.admin import NewPartitions
    grown = client.create_partitions([NewPartitions("__transaction_state", 4)], request_timeout=30)
    assert _error_code(grown["__transaction_state"]) == INVALID_REQUEST
    assert partition_count(broker, "__transaction_state") == 1

    # Transactions of a known and of a new transactional id still work.
    _transaction(broker, "guard-1", topic, b"after")
    _transaction(broker, "guard-2", topic, b"new id")
    values = [r.value for r in read_to_end(broker, topic, [0], **{"isolation.level": "read_committed"})]
    assert values == [b"before", b"after", b"new id"]


def test_create_topics_over_the_request_limit_is_refused_whole(broker):
    client = admin(broker)
    huge = unique_topic("huge")
    futures = client.create_topics([NewTopic(huge, num_partitions=100_000, replication_factor=1)], request_timeout=60)
    assert _error_code(futures[huge]) == POLICY_VIOLATION
    # Two topics that fit one by one but not together fail together, as Kafka's controller does.
    pair = [unique_topic("half-a"), unique_topic("half-b")]
    futures = client.create_topics([NewTopic(name, num_partitions=6_000, replication_factor=1) for name in pair], request_timeout=60)
    assert [_error_code(futures[name]) for name in pair] == [POLICY_VIOLATION, POLICY_VIOLATION]
    for name in [huge, *pair]:
        assert partition_count(broker, name) is None
        assert _partition_directories(broker, name) == []


def test_the_broker_wide_partition_limit(broker_factory):
    broker = broker_factory(extra_args=["--max-partitions", "50"])
    client = admin(broker)
    first, second = unique_topic("fits"), unique_topic("over")
    assert _error_code(client.create_topics([NewTopic(first, num_partitions=40, replication_factor=1)])[first]) == 0
    assert _error_code(client.create_topics([NewTopic(second, num_partitions=20, replication_factor=1)])[second]) == POLICY_VIOLATION
    assert partition_count(broker, second) is None
    assert _partition_directories(broker, second) == []
    assert len(_partition_directories(broker, first)) == 40


def _produce_while(producer: Producer, topic: str, first: int, operation, what: str) -> int:
    """Produces records one at a time, each acknowledged within a generous bound, until
    `operation` is done; returns how many were acknowledged while it was still running."""
    during = 0
    for i in range(first, first + 20):
        reports = []
        producer.produce(topic, key=b"k", value=str(i).encode(), on_delivery=lambda err, msg: reports.append(err))
        assert producer.flush(10) == 0, f"record {i} not acknowledged within 10 s while {what} ran"
        assert reports == [None], reports
        if not operation.done():
            during += 1
    assert during > 0, f"{what} finished before the producer started: nothing was proved"
    return during


@pytest.mark.timeout_seconds(400)
def test_a_big_create_or_delete_topics_does_not_stall_other_clients(broker):
    busy = unique_topic("busy")
    create_topic(broker, busy, 1)
    client = admin(broker)
    big = unique_topic("big")
    # Before the file work moved off the event loops, every request waited for all of it.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    creation = client.create_topics([NewTopic(big, num_partitions=10_000, replication_factor=1)], request_timeout=280)[big]
    _produce_while(producer, busy, 0, creation, "a 10,000-partition CreateTopics")
    assert _error_code(creation, 280) == 0
    assert partition_count(broker, big) == 10_000

    deletion = client.delete_topics([big], request_timeout=280)[big]
    _produce_while(producer, busy, 20, deletion, "deleting 10,000 partitions")
    assert _error_code(deletion, 280) == 0
    assert partition_count(broker, big) is None
    assert _partition_directories(broker, big) == []
    assert [r.value for r in read_to_end(broker, busy, [0])] == [str(i).encode() for i in range(40)]


def test_a_failed_creation_leaves_no_directory_behind(broker_factory, tmp_path):
    # A descriptor limit makes creation fail part-way through, the way 100,000 partitions once did.
    wrapper = tmp_path / "once-few-fds"
    real = broker_factory(start=False).binary
    wrapper.write_text(f"#!/bin/sh\nulimit -n 300\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    broker = broker_factory(start=False)
    broker.binary = wrapper
    broker.start()

    client = admin(broker)
    doomed = unique_topic("doomed")
    code = _error_code(client.create_topics([NewTopic(doomed, num_partitions=2_000, replication_factor=1)])[doomed])
    if code == 0:
        pytest.skip("2,000 partitions fit in 300 descriptors here, so no creation failed part-way")
    assert partition_count(broker, doomed) is None
    assert _partition_directories(broker, doomed) == []
    # The broker still serves, and has its descriptors back.
    small = unique_topic("after")
    assert _error_code(client.create_topics([NewTopic(small, num_partitions=4, replication_factor=1)])[small]) == 0
    produce_indexed(broker, small, range(10), partition=0)
    assert [index_of(r.value) for r in read_to_end(broker, small, [0])] == list(range(10))
    broker.stop()
    broker.start()
    assert _partition_directories(broker, doomed) == []
    assert partition_count(broker, doomed) is None
