"""`--transaction-version`: the `transaction.version` a broker finalizes, as Kafka's operators choose
it with kafka-features. Below 2, clients that follow the feature (OnceClient, the Java client) keep
to transactions V1, and OnceClient's fallback is checked end to end against a read_committed
librdkafka consumer. A request of a V2 version is still served by its version, as Kafka serves it
(the coordinator and the partition leader read the request version, not the finalized level): raw
frames, since no client in the suite sends V2 versions to a broker that does not finalize V2."""

from __future__ import annotations

import struct

import pytest

import confluent_helpers as ck
import kafka_wire as wire
from once_broker import BrokerError
from support import unique_topic
from test_transaction_fencing import init_producer_id
from test_transactions_v2 import (
    INVALID_PRODUCER_EPOCH,
    NONE,
    _round_trip,
    committed_values,
    end_txn_v5,
    features,
    onceclient_beside_librdkafka_exactly_once,
    produce_v12,
    txn_batch,
    txn_offset_commit_v5,
)
from test_verify import TOPICS, read_committed, summary, verify

ADD_PARTITIONS_TO_TXN = 24
INVALID_TXN_STATE = 48
TRANSACTION_ABORTABLE = 120


def verify_partitions(broker, version: int, transactional_id: str, producer_id: int, epoch: int,
                      topic: str, partitions: list[int]) -> dict[int, int]:
    """AddPartitionsToTxn v4+ with verify_only set (what a partition leader asks its coordinator);
    returns each partition's error code."""
    body = (wire.uvarint(2) + wire.compact_string(transactional_id) + struct.pack(">qh?", producer_id, epoch, True)
            + wire.uvarint(2) + wire.compact_string(topic)
            + wire.uvarint(len(partitions) + 1) + b"".join(struct.pack(">i", p) for p in partitions) + b"\x00"
            + b"\x00" + b"\x00")
    payload = _round_trip(broker, wire.request_header(ADD_PARTITIONS_TO_TXN, version, 13, flexible=True) + body)
    pos = 4 + 1  # correlation id, response header tags
    _throttle, error = struct.unpack_from(">ih", payload, pos)
    assert error == NONE
    pos += 6
    _, pos = wire._read_uvarint(payload, pos)  # transactions
    id_length, pos = wire._read_uvarint(payload, pos)
    pos += id_length - 1
    _, pos = wire._read_uvarint(payload, pos)  # topics
    name_length, pos = wire._read_uvarint(payload, pos)
    pos += name_length - 1
    count, pos = wire._read_uvarint(payload, pos)
    codes: dict[int, int] = {}
    for _ in range(count - 1):
        index, code = struct.unpack_from(">ih", payload, pos)
        codes[index] = code
        pos = wire._skip_tags(payload, pos + 6)
    return codes


@pytest.mark.parametrize("level", [0, 1])
def test_api_versions_finalizes_the_configured_level(broker_factory, level):
    broker = broker_factory(extra_args=["--transaction-version", str(level)])
    supported, finalized, epoch = features(broker, 4)
    assert supported.get("transaction.version") == (0, 2), "what the broker can serve is unchanged"
    # Kafka lists no finalized feature at level 0.
    assert finalized.get("transaction.version") == (level or None) and epoch >= 0
    assert finalized.get("group.version") == 1, "the other features are untouched"


def test_an_unknown_level_is_refused_at_startup(broker_factory):
    broker = broker_factory(start=False, extra_args=["--transaction-version", "3"])
    with pytest.raises(BrokerError):
        broker.start()
    assert broker.process.returncode != 0
    assert "--transaction-version takes 0, 1 or 2" in broker.log_text(), broker.log_tail()


def test_onceclient_falls_back_to_v1_beside_librdkafka_exactly_once(broker_factory):
    broker = broker_factory(extra_args=["--transaction-version", "1"])
    onceclient_beside_librdkafka_exactly_once(broker, "V1", librdkafka_batches=10)


def test_v2_request_versions_are_served_by_their_version_on_a_tv1_broker(broker_factory):
    broker = broker_factory(extra_args=["--transaction-version", "1"])
    topic, tid = unique_topic("tv1-raw"), unique_topic("tv1-raw-tid")
    ck.create_topic(broker, topic, 2)
    error, pid, epoch = init_producer_id(broker, tid)
    assert error == NONE
    # Produce v12 adds its partition itself, and EndTxn v5 bumps the epoch and answers it.
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch, 0, [b"t1"])) == NONE
    assert end_txn_v5(broker, tid, pid, epoch, commit=True) == (NONE, pid, epoch + 1)
    assert committed_values(broker, topic, (0, 1)) == [b"t1"]
    # So the delayed request of the previous transaction is fenced here too (KAFKA-17754).
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch + 1, 0, [b"t2"])) == NONE
    assert produce_v12(broker, tid, topic, 1, txn_batch(pid, epoch, 0, [b"late"])) == INVALID_PRODUCER_EPOCH
    # TxnOffsetCommit v5 adds the group's offsets partition without AddOffsetsToTxn.
    group = unique_topic("tv1-group")
    assert txn_offset_commit_v5(broker, tid, group, pid, epoch + 1, topic, 3) == NONE
    assert end_txn_v5(broker, tid, pid, epoch + 1, commit=True) == (NONE, pid, epoch + 2)
    assert sorted(committed_values(broker, topic, (0, 1))) == [b"t1", b"t2"]


def test_add_partitions_to_txn_v5_verify_only_answers_transaction_abortable(broker_factory):
    broker = broker_factory(extra_args=["--transaction-version", "1"])
    topic, tid = unique_topic("tv1-verify"), unique_topic("tv1-verify-tid")
    ck.create_topic(broker, topic, 2)
    _, pid, epoch = init_producer_id(broker, tid)
    assert produce_v12(broker, tid, topic, 0, txn_batch(pid, epoch, 0, [b"in"])) == NONE
    # v5 may answer TRANSACTION_ABORTABLE for the partition the transaction never reached, as
    # Kafka's coordinator does; a v4 asker (a broker before KIP-890) gets INVALID_TXN_STATE.
    assert verify_partitions(broker, 5, tid, pid, epoch, topic, [0, 1]) == {0: NONE, 1: TRANSACTION_ABORTABLE}
    assert verify_partitions(broker, 4, tid, pid, epoch, topic, [0, 1]) == {0: NONE, 1: INVALID_TXN_STATE}
    # Verifying adds nothing: the transaction still holds partition 0 only.
    assert end_txn_v5(broker, tid, pid, epoch, commit=True)[0] == NONE
    assert committed_values(broker, topic, (0, 1)) == [b"in"]


@pytest.mark.timeout_seconds(240)
def test_once_verify_read_process_write_on_a_tv1_broker_finds_no_anomalies(broker_factory):
    # OnceClient on V1 sends AddOffsetsToTxn (now v4) before each TxnOffsetCommit v4.
    broker = broker_factory(extra_args=["--transaction-version", "1"])
    result = verify("--bootstrap-server", broker.bootstrap, "--seconds", "4", "--partitions", "2",
                    "--fence-every", "10")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    numbers = summary(result)
    assert numbers["anomalies"] == 0
    assert numbers["records"] > 0 and numbers["transactions"] > 0 and numbers["aborted"] > 0, numbers
    assert "offsets not atomic with output: 0" in result.stdout.splitlines()
    # librdkafka, read_committed, finds every committed input exactly once in the output.
    input_topic, output_topic = TOPICS.search(result.stdout).groups()
    inputs = [value for _, value in read_committed(broker.bootstrap, input_topic, 2)]
    outputs = [key for key, _ in read_committed(broker.bootstrap, output_topic, 2)]
    assert inputs and len(set(inputs)) == len(inputs)
    assert sorted(outputs) == sorted(inputs)
