"""A partition whose COMMIT or ABORT marker was lost (its log tail cut, as a power cut under flush
none can) keeps an open transaction its coordinator considers finished. The broker aborts it by
itself, and operators have Kafka's tools for it: `once txn find-hanging` and `abort-hanging`
(WriteTxnMarkers), which refuse a transaction its coordinator still considers live."""

from __future__ import annotations

import struct
import subprocess
import time

import confluent_helpers as ck
import kafka_wire as wire
from once_broker import broker_binary
from support import Deadline, unique_topic
from test_transactions import read_values, txn_producer

WRITE_TXN_MARKERS = 27
INVALID_TXN_STATE = 48


def cut_last_batch(broker, topic: str, partition: int = 0) -> None:
    """Stops the broker and cuts the partition's last batch (here: a transaction marker) off its log."""
    broker.kill9()
    log = broker.data_dir / f"{topic}-{partition}" / ("0" * 20 + ".log")
    data = log.read_bytes()
    position, last = 0, 0
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, position + 8)
        last = position
        position += 12 + length
    # Attributes are the int16 at byte 21 of a batch; 0x20 marks a control batch (the marker).
    assert data[last + 22] & 0x20, "the last batch is the transaction's marker"
    with open(log, "r+b") as f:
        f.truncate(last)


def committed_then_cut(broker, topic: str) -> None:
    ck.create_topic(broker, topic, 1)
    producer = txn_producer(broker, unique_topic("tid-cut"))
    producer.begin_transaction()
    producer.produce(topic, value=b"lost-with-its-marker")
    producer.commit_transaction(30)
    cut_last_batch(broker, topic)
    broker.restart()


def once_txn(broker, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(broker_binary()), "txn", *args, "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60)


def test_broker_aborts_a_transaction_whose_marker_was_cut_off(broker):
    topic = unique_topic("hanging-auto")
    committed_then_cut(broker, topic)
    plain = ck.producer(broker)
    plain.produce(topic, value=b"after")
    plain.flush(30)
    deadline = Deadline(30, "read_committed to get past the hanging transaction")
    while read_values(broker, topic, "read_committed") != [b"after"]:
        deadline.check()
        time.sleep(0.3)


def test_find_hanging_and_abort_hanging_from_the_cli(broker_factory):
    # No periodic check during the test: only the operator's tools end the hanging transaction.
    broker = broker_factory(extra_args=["--transaction-timeout-check-interval-ms", "3600000"])
    topic = unique_topic("hanging-cli")
    committed_then_cut(broker, topic)
    plain = ck.producer(broker)
    plain.produce(topic, value=b"after")
    plain.flush(30)
    # A live transaction on the same partition, which neither tool may touch.
    live = txn_producer(broker, unique_topic("tid-live"))
    live.begin_transaction()
    live.produce(topic, value=b"live")
    live.flush(30)
    assert read_values(broker, topic, "read_committed") == []

    found = once_txn(broker, "find-hanging", "--topic", topic)
    assert found.returncode == 0, found.stderr
    rows = [line.split("\t") for line in found.stdout.splitlines()[1:]]
    assert len(rows) == 1, found.stdout
    producer_id = rows[0][2]
    assert rows[0][:2] == [topic, "0"] and rows[0][4] == "0", rows
    # `txn list --hanging` is the same finder over every topic; this broker holds only this one.
    listed = once_txn(broker, "list", "--hanging")
    assert listed.returncode == 0 and listed.stdout == found.stdout, (listed.stdout, found.stdout)

    live_id = next(int(r[1]) for r in (line.split("\t") for line in subprocess.run(
        [str(broker_binary()), "producers", "describe", topic, "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=60).stdout.splitlines()[1:]) if r[1] != producer_id and int(r[5]) >= 0)
    refused = once_txn(broker, "abort-hanging", "--topic", topic, "--partition", "0", "--producer-id", str(live_id))
    assert refused.returncode != 0 and "no hanging transaction" in refused.stderr, refused
    assert write_abort_marker(broker, topic, live_id) == INVALID_TXN_STATE, "the broker itself refuses a live one"

    aborted = once_txn(broker, "abort-hanging", "--topic", topic, "--partition", "0", "--producer-id", producer_id)
    assert aborted.returncode == 0, aborted.stderr
    assert once_txn(broker, "find-hanging", "--topic", topic).stdout.splitlines()[1:] == []
    # The reader now gets as far as the live transaction, which is still open.
    assert read_values(broker, topic, "read_committed") == [b"after"]
    live.commit_transaction(30)
    assert read_values(broker, topic, "read_committed") == [b"after", b"live"]


def test_abort_hanging_answers_once_its_marker_is_durable_under_flush_always(broker_factory):
    # Under --flush always consumers read only what is durable, so the marker is fetchable (the
    # high watermark past it) exactly when it is on disk: the moment the answer says it is done.
    broker = broker_factory(extra_args=["--flush", "always", "--transaction-timeout-check-interval-ms", "3600000"])
    topic = unique_topic("hanging-always")
    committed_then_cut(broker, topic)
    # librdkafka asks read_committed: the end it sees is the last stable offset.
    assert ck.watermarks(broker, topic, 0) == (0, 0), "the hanging transaction holds the last stable offset"
    found = once_txn(broker, "find-hanging", "--topic", topic)
    rows = [line.split("\t") for line in found.stdout.splitlines()[1:]]
    assert len(rows) == 1, found.stdout
    assert write_abort_marker(broker, topic, int(rows[0][2])) == 0
    assert ck.watermarks(broker, topic, 0) == (0, 2), "WriteTxnMarkers answered before its marker was durable"
    assert read_values(broker, topic, "read_committed") == []


def write_abort_marker(broker, topic: str, producer_id: int) -> int:
    """A raw WriteTxnMarkers v1 ABORT for one partition; returns the partition's error code."""
    name = topic.encode()
    body = (wire.uvarint(2)  # one marker
            + struct.pack(">qh?", producer_id, 0, False)
            + wire.uvarint(2) + wire.uvarint(len(name) + 1) + name + wire.uvarint(2) + struct.pack(">i", 0) + b"\x00"
            + struct.pack(">i", -1) + b"\x00"
            + b"\x00")
    host, port = broker.bootstrap.split(":")
    with wire.connect((host, int(port))) as sock:
        sock.sendall(wire.frame(wire.request_header(WRITE_TXN_MARKERS, 1, 1, flexible=True) + body))
        payload = wire.read_frame(sock)
    # Header v1 (correlation id, tags), markers[1]: producer id, topics[1]: name, partitions[1]: index, error.
    pos = 5
    pos += 1  # markers count
    pos += 8  # producer id
    pos += 1  # topics count
    name_length = payload[pos] - 1
    pos += 1 + name_length
    pos += 1  # partitions count
    (_index, error) = struct.unpack_from(">ih", payload, pos)
    return error
