"""Transactions V2 (KIP-890 part 2) on the wire: ApiVersions finalizes transaction.version 2;
Produce v12 adds its partition to the transaction with no AddPartitionsToTxn; EndTxn v5 bumps the
epoch and answers it, so a Produce or EndTxn delayed from the previous transaction is fenced with
Kafka's codes (KAFKA-17754). No client in the suite speaks V2 and none can send a delayed request on
cue, so these are raw frames (independent of the broker's codec); read_committed librdkafka
consumers check what became visible. OnceClient's V2 producer runs end to end, next to a librdkafka
(V1) producer on the same topic."""

from __future__ import annotations

import struct
import subprocess
import threading

import pytest

from confluent_kafka import TopicPartition

import confluent_helpers as ck
import kafka_wire as wire
from once_broker import broker_binary
from record_batches import crc32c, record
from support import index_of, unique_topic, value_for
from test_transaction_fencing import init_producer_id
from test_transactions import txn_producer

PRODUCE = 0
END_TXN = 26
TXN_OFFSET_COMMIT = 28
NONE = 0
INVALID_PRODUCER_EPOCH = 47
PRODUCER_FENCED = 90
TRANSACTIONAL = 0x10


def compact_bytes(data: bytes) -> bytes:
    return wire.uvarint(len(data) + 1) + data


def txn_batch(producer_id: int, epoch: int, sequence: int, values: list[bytes]) -> bytes:
    """A transactional RecordBatch v2 (attributes bit 4) for the producer at `sequence`."""
    section = b"".join(record(i, None, v) for i, v in enumerate(values))
    ts = 1_700_000_000_000
    after_crc = struct.pack(">hiqqqhii", TRANSACTIONAL, len(values) - 1, ts, ts, producer_id, epoch, sequence,
                            len(values)) + section
    length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, length, -1, 2, crc32c(after_crc)) + after_crc


def produce_v12_request(transactional_id: str, topic: str, partition: int, records: bytes, correlation_id: int = 7) -> bytes:
    body = (wire.compact_string(transactional_id) + struct.pack(">hi", -1, 30_000)
            + wire.uvarint(2) + wire.compact_string(topic)
            + wire.uvarint(2) + struct.pack(">i", partition) + compact_bytes(records) + b"\x00"
            + b"\x00" + b"\x00")
    return wire.request_header(PRODUCE, 12, correlation_id, flexible=True) + body


def produce_v12(broker, transactional_id: str, topic: str, partition: int, records: bytes) -> int:
    """Produce v12 (flexible) of one partition; returns the partition's error code."""
    return produce_v12_error(_round_trip(broker, produce_v12_request(transactional_id, topic, partition, records)))


def produce_v12_error(payload: bytes) -> int:
    """The first partition's error code in a Produce v12 response."""
    pos = 4 + 1  # correlation id, response header tags
    _, pos = wire._read_uvarint(payload, pos)  # topics
    name_length, pos = wire._read_uvarint(payload, pos)
    pos += name_length - 1
    _, pos = wire._read_uvarint(payload, pos)  # partitions
    _index, error = struct.unpack_from(">ih", payload, pos)
    return error


def end_txn_v5(broker, transactional_id: str, producer_id: int, epoch: int, commit: bool) -> tuple[int, int, int]:
    """EndTxn v5; returns (error, producer id, epoch) as the coordinator answered them."""
    body = wire.compact_string(transactional_id) + struct.pack(">qh?", producer_id, epoch, commit) + b"\x00"
    payload = _round_trip(broker, wire.request_header(END_TXN, 5, 9, flexible=True) + body)
    _throttle, error, pid, got_epoch = struct.unpack_from(">ihqh", payload, 5)
    return error, pid, got_epoch


def txn_offset_commit_v5(broker, transactional_id: str, group: str, producer_id: int, epoch: int,
                         topic: str, offset: int) -> int:
    """TxnOffsetCommit v5 (no AddOffsetsToTxn before it) of one partition; returns its error code."""
    body = (wire.compact_string(transactional_id) + wire.compact_string(group)
            + struct.pack(">qhi", producer_id, epoch, -1) + wire.compact_string("") + b"\x00"  # member id, no instance id
            + wire.uvarint(2) + wire.compact_string(topic)
            + wire.uvarint(2) + struct.pack(">iqi", 0, offset, -1) + b"\x00" + b"\x00"  # null metadata, tags
            + b"\x00" + b"\x00")
    payload = _round_trip(broker, wire.request_header(TXN_OFFSET_COMMIT, 5, 11, flexible=True) + body)
    pos = 4 + 1 + 4  # correlation id, header tags, throttle time
    _, pos = wire._read_uvarint(payload, pos)
    name_length, pos = wire._read_uvarint(payload, pos)
    pos += name_length - 1
    _, pos = wire._read_uvarint(payload, pos)
    _index, error = struct.unpack_from(">ih", payload, pos)
    return error


def _round_trip(broker, request: bytes) -> bytes:
    host, port = broker.bootstrap.split(":")
    with wire.connect((host, int(port))) as sock:
        sock.sendall(wire.frame(request))
        return wire.read_frame(sock)


def committed_values(broker, topic: str, partitions=(0,)) -> list[bytes]:
    return [r.value for r in ck.read_to_end(broker, topic, list(partitions), **{"isolation.level": "read_committed"})]


def features(broker, version: int) -> tuple[dict[str, tuple[int, int]], dict[str, int], int]:
    """ApiVersions' supported features, finalized features (by level) and their epoch."""
    host, port = broker.bootstrap.split(":")
    with wire.connect((host, int(port))) as sock:
        sock.sendall(wire.api_versions_request(version, 3))
        payload = wire.read_frame(sock)
    pos = 6
    count, pos = wire._read_uvarint(payload, pos)
    for _ in range(count - 1):
        pos = wire._skip_tags(payload, pos + 6)
    pos += 4  # throttle time
    supported: dict[str, tuple[int, int]] = {}
    finalized: dict[str, int] = {}
    epoch = -1
    tags, pos = wire._read_uvarint(payload, pos)
    for _ in range(tags):
        tag, pos = wire._read_uvarint(payload, pos)
        size, pos = wire._read_uvarint(payload, pos)
        field, pos = payload[pos:pos + size], pos + size
        if tag == 1:
            (epoch,) = struct.unpack(">q", field)
        elif tag in (0, 2):
            entries, at = wire._read_uvarint(field, 0)
            for _ in range(entries - 1):
                name_length, at = wire._read_uvarint(field, at)
                name = field[at:at + name_length - 1].decode()
                a, b = struct.unpack_from(">hh", field, at + name_length - 1)
                at = wire._skip_tags(field, at + name_length - 1 + 4)
                if tag == 0:
                    supported[name] = (a, b)
                else:
                    finalized[name] = a  # max version level; min equals it for a finalized feature
    return supported, finalized, epoch


def test_api_versions_finalizes_transaction_version_2(broker):
    supported, finalized, epoch = features(broker, 4)
    assert supported.get("transaction.version") == (0, 2)
    assert finalized.get("transaction.version") == 2 and epoch >= 0
    # Below v4 a supported range from 0 is left out (older Java clients reject it); finalized stays.
    supported_v3, finalized_v3, _ = features(broker, 3)
    assert "transaction.version" not in supported_v3
    assert finalized_v3.get("transaction.version") == 2


def test_produce_v12_adds_the_partition_and_end_txn_v5_bumps_the_epoch(broker):
    topic, tid = unique_topic("v2-implicit"), unique_topic("v2-tid")
    ck.create_topic(broker, topic, 2)
    error, pid, epoch = init_producer_id(broker, tid)
    assert error == NONE
    # No AddPartitionsToTxn: the partitions join on their first write.
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch, 0, [b"a0", b"a1"])) == NONE
    assert produce_v12(broker, tid, topic, 1, txn_batch(pid, epoch, 0, [b"a2"])) == NONE
    assert committed_values(broker, topic, (0, 1)) == [], "nothing is visible before the commit"
    error, next_pid, next_epoch = end_txn_v5(broker, tid, pid, epoch, commit=True)
    assert (error, next_pid, next_epoch) == (NONE, pid, epoch + 1)
    assert sorted(committed_values(broker, topic, (0, 1))) == [b"a0", b"a1", b"a2"]

    # A retried EndTxn of that commit (its answer lost) gets the same answer.
    assert end_txn_v5(broker, tid, pid, epoch, commit=True) == (NONE, pid, epoch + 1)

    # The next transaction runs at the bumped epoch, its sequences from 0 again; an abort bumps too.
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, next_epoch, 0, [b"b0"])) == NONE
    assert end_txn_v5(broker, tid, pid, next_epoch, commit=False) == (NONE, pid, next_epoch + 1)
    assert sorted(committed_values(broker, topic, (0, 1))) == [b"a0", b"a1", b"a2"]


@pytest.mark.parametrize("flush", ["none", "always"])
def test_produce_v12_pipelined_on_one_connection_is_appended_in_request_order(broker_factory, flush):
    """Pipelining (max.in.flight) of one transaction's batches to one partition: each Produce v12
    waits for the coordinator to add its partition, the first the longest (it writes the addition,
    and under `--flush always` syncs it), and the broker must still append them in the order they
    were sent, or a later batch is refused as out of order. The concurrent simulator found this."""
    broker = broker_factory(extra_args=["--flush", flush])
    topic, tid = unique_topic("v2-pipelined"), unique_topic("v2-tid")
    ck.create_topic(broker, topic, 1)
    error, pid, epoch = init_producer_id(broker, tid)
    assert error == NONE
    batches = 20
    frames = b"".join(
        wire.frame(produce_v12_request(tid, topic, 0, txn_batch(pid, epoch, 2 * i, [f"p{i}a".encode(), f"p{i}b".encode()]),
                                       correlation_id=100 + i))
        for i in range(batches))
    host, port = broker.bootstrap.split(":")
    with wire.connect((host, int(port))) as sock:
        sock.sendall(frames)
        answers = [wire.read_frame(sock) for _ in range(batches)]
    assert [struct.unpack_from(">i", a)[0] for a in answers] == [100 + i for i in range(batches)], "answered in order"
    assert [produce_v12_error(a) for a in answers] == [NONE] * batches
    assert end_txn_v5(broker, tid, pid, epoch, commit=True)[0] == NONE
    assert committed_values(broker, topic) == [f"p{i}{s}".encode() for i in range(batches) for s in "ab"]


def test_a_delayed_produce_of_the_previous_transaction_is_fenced(broker):
    topic, tid = unique_topic("v2-late-produce"), unique_topic("v2-tid")
    ck.create_topic(broker, topic, 2)
    _, pid, epoch = init_producer_id(broker, tid)
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch, 0, [b"t1-0"])) == NONE
    _, _, next_epoch = end_txn_v5(broker, tid, pid, epoch, commit=True)
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, next_epoch, 0, [b"t2-0"])) == NONE
    # The first transaction's next batch, held back in the network, arrives during the second: on a
    # partition the first one wrote (the marker raised its epoch there) and on one it never reached
    # (the coordinator refuses the old epoch). Kafka answers INVALID_PRODUCER_EPOCH on Produce.
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch, 1, [b"late-0"])) == INVALID_PRODUCER_EPOCH
    assert produce_v12(broker, tid, topic, 1, txn_batch(pid, epoch, 0, [b"late-1"])) == INVALID_PRODUCER_EPOCH
    assert end_txn_v5(broker, tid, pid, next_epoch, commit=True)[0] == NONE
    assert sorted(committed_values(broker, topic, (0, 1))) == [b"t1-0", b"t2-0"]


def test_a_delayed_end_txn_of_the_previous_transaction_is_fenced(broker):
    topic, tid = unique_topic("v2-late-end"), unique_topic("v2-tid")
    ck.create_topic(broker, topic, 1)
    _, pid, epoch = init_producer_id(broker, tid)
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch, 0, [b"t1"])) == NONE
    _, _, next_epoch = end_txn_v5(broker, tid, pid, epoch, commit=True)
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, next_epoch, 0, [b"t2"])) == NONE
    # The first commit, delivered again late, must not commit the second transaction (KAFKA-17754).
    error, late_pid, late_epoch = end_txn_v5(broker, tid, pid, epoch, commit=True)
    assert (error, late_pid, late_epoch) == (PRODUCER_FENCED, -1, -1)
    # The second transaction is still open (read_committed stops before it) and its producer decides it.
    assert committed_values(broker, topic) == [b"t1"]
    assert end_txn_v5(broker, tid, pid, next_epoch, commit=False)[0] == NONE
    assert committed_values(broker, topic) == [b"t1"]


def test_v2_state_survives_a_kill_9(broker):
    topic, tid = unique_topic("v2-restart"), unique_topic("v2-tid")
    ck.create_topic(broker, topic, 1)
    _, pid, epoch = init_producer_id(broker, tid)
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch, 0, [b"t1"])) == NONE
    assert end_txn_v5(broker, tid, pid, epoch, commit=True) == (NONE, pid, epoch + 1)
    broker.kill9()
    broker.restart()
    # The restarted coordinator still knows the transaction was V2: the retry of its EndTxn (one
    # epoch below) is answered as before, not fenced, and the same-epoch EndTxn of a transaction
    # never begun still is.
    assert end_txn_v5(broker, tid, pid, epoch, commit=True) == (NONE, pid, epoch + 1)
    assert end_txn_v5(broker, tid, pid, epoch + 1, commit=True)[0] == PRODUCER_FENCED
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch, 1, [b"late"])) == INVALID_PRODUCER_EPOCH
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch + 1, 0, [b"t2"])) == NONE
    assert end_txn_v5(broker, tid, pid, epoch + 1, commit=True) == (NONE, pid, epoch + 2)
    assert committed_values(broker, topic) == [b"t1", b"t2"]


def test_txn_offset_commit_v5_adds_the_offsets_partition_itself(broker):
    source, sink, group, tid = (unique_topic(p) for p in ("v2-in", "v2-out", "v2-group", "v2-tid"))
    ck.create_topic(broker, source, 1)
    ck.create_topic(broker, sink, 1)
    _, pid, epoch = init_producer_id(broker, tid)
    assert produce_v12(broker, tid, sink, 0, txn_batch(pid, epoch, 0, [b"out-1"])) == NONE
    # No AddOffsetsToTxn: under V2 the group's offsets join the transaction with the commit itself.
    assert txn_offset_commit_v5(broker, tid, group, pid, epoch, source, 5) == NONE
    _, _, epoch = end_txn_v5(broker, tid, pid, epoch, commit=True)
    assert txn_offset_commit_v5(broker, tid, group, pid, epoch, source, 9) == NONE
    assert end_txn_v5(broker, tid, pid, epoch, commit=False)[0] == NONE
    # A stale epoch is the partition's INVALID_PRODUCER_EPOCH, as Kafka's verification answers.
    assert txn_offset_commit_v5(broker, tid, group, pid, epoch, source, 11) == INVALID_PRODUCER_EPOCH
    consumer = ck.consumer(broker, **{"group.id": group, "isolation.level": "read_committed"})
    try:
        assert consumer.committed([TopicPartition(source, 0)], timeout=10)[0].offset == 5, (
            "the committed transaction's offset, not the aborted one's")
    finally:
        consumer.close()
    assert committed_values(broker, sink) == [b"out-1"]


def once_perf_produce(broker, topic: str, records: int, per_txn: int, tid: str, *extra: str) -> str:
    command = [str(broker_binary()), "perf", "produce", "--bootstrap-server", broker.bootstrap, "--topic", topic,
               "--num-records", str(records), "--record-size", "16", "--no-progress", "--transactional-id", tid,
               "--transaction-size", str(per_txn), *extra]
    result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return result.stdout.decode()


def onceclient_beside_librdkafka_exactly_once(broker, expected_version: str, librdkafka_batches: int) -> None:
    """OnceClient writes 2,000 records in 100-record transactions while librdkafka 2.16 (which speaks
    only V1: AddPartitionsToTxn, EndTxn v1) commits even and aborts odd 50-record batches on the same
    topic; a read_committed consumer then sees every OnceClient record once and only the committed
    librdkafka batches. `expected_version` is the protocol OnceClient must report having chosen."""
    topic = unique_topic("txn-mixed")
    ck.create_topic(broker, topic, 2)
    outcome: dict[str, object] = {}

    def librdkafka_side() -> None:
        try:
            p = txn_producer(broker, unique_topic("librdkafka-tid"))
            for batch in range(librdkafka_batches):
                p.begin_transaction()
                for i in range(batch * 50, batch * 50 + 50):
                    p.produce(topic, value=value_for(i))
                if batch % 2 == 0:
                    p.commit_transaction(30)
                else:
                    p.flush(30)
                    p.abort_transaction(30)
            outcome["librdkafka"] = "done"
        except Exception as error:  # reported by the assertion below
            outcome["librdkafka"] = error

    thread = threading.Thread(target=librdkafka_side)
    thread.start()
    out = once_perf_produce(broker, topic, 2000, 100, unique_topic("onceclient-tid"))
    thread.join(120)
    assert outcome.get("librdkafka") == "done", outcome
    assert f"20 transactions, transactions {expected_version}" in out, out
    values = [r.value for r in ck.read_to_end(broker, topic, (0, 1), **{"isolation.level": "read_committed"})]
    assert len([v for v in values if v.startswith(b"x")]) == 2000, "every OnceClient record once"
    from_librdkafka = sorted(index_of(v) for v in values if not v.startswith(b"x"))
    assert from_librdkafka == [i for batch in range(0, librdkafka_batches, 2) for i in range(batch * 50, batch * 50 + 50)]


def test_onceclient_uses_v2_beside_a_librdkafka_v1_producer_exactly_once(broker):
    onceclient_beside_librdkafka_exactly_once(broker, "V2", librdkafka_batches=20)


def test_onceclient_forced_to_v1_still_commits(broker):
    topic = unique_topic("v1-forced")
    ck.create_topic(broker, topic, 1)
    out = once_perf_produce(broker, topic, 300, 100, unique_topic("v1-tid"), "--transactions-v1")
    assert "3 transactions, transactions V1" in out, out
    assert len(committed_values(broker, topic)) == 300

