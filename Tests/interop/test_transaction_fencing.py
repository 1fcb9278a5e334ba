"""Exactly-once defects seen only at the protocol's edges, against a real broker: a zombie's
KIP-360 epoch bump after a new instance (or a timeout) must be fenced, never handed the new
epoch; read_committed ListOffsets by time stops at the LSO; a transaction's offset never
overwrites a newer plain commit. Raw InitProducerId frames where no client library lets a test
choose the expected producer id and epoch."""

from __future__ import annotations

import re
import struct
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition

import confluent_helpers as ck
import kafka_wire as wire
from once_broker import broker_binary
from support import Deadline, unique_topic
from test_transactions import txn_producer

INIT_PRODUCER_ID = 22
PRODUCER_FENCED = 90
CONCURRENT_TRANSACTIONS = 51
COORDINATOR_LOAD_IN_PROGRESS = 14


def init_producer_id(broker, transactional_id: str, producer_id: int = -1, epoch: int = -1,
                     timeout_ms: int = 60_000) -> tuple[int, int, int]:
    """InitProducerId v4 (flexible) with an expected producer id and epoch (KIP-360), retried while
    the coordinator answers CONCURRENT_TRANSACTIONS. Returns (error, producer id, epoch)."""
    host, port = broker.bootstrap.split(":")
    deadline = Deadline(30, "InitProducerId")
    while True:
        body = (wire.uvarint(len(transactional_id.encode()) + 1) + transactional_id.encode()
                + struct.pack(">iqh", timeout_ms, producer_id, epoch) + b"\x00")
        with wire.connect((host, int(port))) as sock:
            sock.sendall(wire.frame(wire.request_header(INIT_PRODUCER_ID, 4, 1, flexible=True) + body))
            payload = wire.read_frame(sock)
        # Response header v1: correlation id and tagged fields; then throttle, error, id, epoch.
        (correlation,) = struct.unpack_from(">i", payload, 0)
        assert correlation == 1
        _throttle, error, pid, got_epoch = struct.unpack_from(">ihqh", payload, 5)
        if error not in (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS):
            return error, pid, got_epoch
        deadline.check()
        time.sleep(0.1)


def test_zombie_kip360_bump_after_a_new_instance_is_fenced(broker):
    tid = unique_topic("tid-zombie")
    error, pid, old_epoch = init_producer_id(broker, tid)
    assert error == 0
    error, new_pid, new_epoch = init_producer_id(broker, tid)  # a new instance: no expected epoch
    assert (error, new_pid, new_epoch) == (0, pid, old_epoch + 1)
    # The old instance bumps its own epoch after an abortable error, as librdkafka does.
    error, _, _ = init_producer_id(broker, tid, pid, old_epoch)
    assert error == PRODUCER_FENCED, "the zombie must not be handed the new instance's epoch"
    # The new instance's own bump, and its retry after a lost answer, both get one new epoch.
    error, _, bumped = init_producer_id(broker, tid, pid, new_epoch)
    assert (error, bumped) == (0, new_epoch + 1)
    error, _, retried = init_producer_id(broker, tid, pid, new_epoch)
    assert (error, retried) == (0, new_epoch + 1)


def test_timed_out_producer_is_fenced_when_it_bumps_its_epoch(broker_factory):
    broker = broker_factory(extra_args=["--transaction-timeout-check-interval-ms", "200"])
    topic = unique_topic("txn-timeout-bump")
    ck.create_topic(broker, topic, 1)
    tid = unique_topic("tid-timeout")
    producer = txn_producer(broker, tid, **{"transaction.timeout.ms": 1000})
    producer.begin_transaction()
    producer.produce(topic, value=b"abandoned")
    producer.flush(30)
    deadline = Deadline(30, "the timeout abort")
    while True:
        described = subprocess.run(
            [str(broker_binary()), "txn", "describe", tid, "--bootstrap-server", broker.bootstrap],
            capture_output=True, text=True, timeout=60)
        assert described.returncode == 0, described.stderr
        if "CompleteAbort" in described.stdout:
            match = re.search(r"producer:\s+(\d+) epoch (\d+)", described.stdout)
            producer_id, epoch = int(match.group(1)), int(match.group(2))
            break
        deadline.check()
        time.sleep(0.2)
    # The epoch the timed-out producer holds is the one before the fence.
    error, _, _ = init_producer_id(broker, tid, producer_id, epoch - 1)
    assert error == PRODUCER_FENCED


def test_read_committed_offsets_for_times_stop_at_the_lso(broker):
    topic = unique_topic("lso-times")
    ck.create_topic(broker, topic, 1)
    plain = ck.producer(broker)
    plain.produce(topic, value=b"plain", timestamp=1_000_000)
    plain.flush(30)
    txn = txn_producer(broker, unique_topic("tid-lso"))
    txn.begin_transaction()
    txn.produce(topic, value=b"open", timestamp=2_000_000)
    txn.flush(30)
    tp = KTopicPartition(topic, 0)
    for isolation, expected in (("read_committed", None), ("read_uncommitted", 1)):
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level=isolation)
        try:
            found = consumer.offsets_for_times({tp: 1_500_000})[tp]
            assert (found.offset if found else None) == expected, isolation
        finally:
            consumer.close()
    txn.commit_transaction(30)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed")
    try:
        assert consumer.offsets_for_times({tp: 1_500_000})[tp].offset == 1
    finally:
        consumer.close()


def test_transactional_offset_never_overwrites_a_newer_plain_commit(broker):
    topic = unique_topic("eos-offsets")
    ck.create_topic(broker, topic, 1)
    group = unique_topic("group")
    reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    reader.assign([TopicPartition(topic, 0)])
    txn = txn_producer(broker, unique_topic("tid-offsets"))
    txn.begin_transaction()
    txn.send_offsets_to_transaction([TopicPartition(topic, 0, 10)], reader.consumer_group_metadata(), 30)
    # A plain commit of the same partition after the transaction's offset was written.
    reader.commit(offsets=[TopicPartition(topic, 0, 20)], asynchronous=False)
    txn.commit_transaction(30)
    assert reader.committed([TopicPartition(topic, 0)], 30)[0].offset == 20
    reader.close()
    broker.kill9()
    broker.restart()
    again = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        assert again.committed([TopicPartition(topic, 0)], 30)[0].offset == 20, "and replaying the log agrees"
    finally:
        again.close()
