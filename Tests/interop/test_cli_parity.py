"""`once produce|consume` features kcat and rpk users expect, against a real broker: headers,
partitions, timestamps, compression and JSON lines in; kcat format strings, JSON, relative and
time offsets, group membership and isolation out. confluent-kafka (librdkafka) or kcat checks
every result from the other side."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import confluent_helpers as ck
from once_broker import broker_binary
from support import unique_topic
from test_cli import assert_one_line_failure, once
from test_kcat import kcat


def librdkafka_messages(broker, topic: str, partitions: int) -> list:
    """Every message of `topic`, with headers and timestamps, read by librdkafka to the end."""
    consumer = ck.consumer(broker)
    messages = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        pending = set(range(partitions))
        while pending:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    pending.discard(msg.partition())
                    continue
                messages.append(msg)
    finally:
        consumer.close()
    return sorted(messages, key=lambda m: (m.partition(), m.offset()))


def produce_records(broker, topic: str, records: list[dict], **config) -> None:
    producer = ck.producer(broker, **config)
    for r in records:
        producer.produce(topic, **r)
    assert producer.flush(60) == 0


# ONCE_BROKERS


def test_once_brokers_names_the_broker_when_no_flag_does(broker):
    topic = unique_topic("cli-env")
    env = {**os.environ, "ONCE_BROKERS": broker.bootstrap}
    created = subprocess.run([str(broker_binary()), "topic", "create", topic], env=env, capture_output=True,
                             text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert ck.partition_count(broker, topic) == 1

    env["ONCE_BROKERS"] = "not-an-address"
    refused = subprocess.run([str(broker_binary()), "topic", "list"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode != 0 and "ONCE_BROKERS" in refused.stderr, refused.stderr

    # The flag still wins over the variable.
    assert topic in once(broker, "topic", "list").stdout.splitlines()


# produce


def test_produce_sets_headers_partition_and_timestamp(broker):
    topic = unique_topic("cli-headers")
    once(broker, "topic", "create", topic, "--partitions", "3")
    once(broker, "produce", topic, "--key-separator", ":", "--partition", "2", "--timestamp", "1700000000123",
         "-H", "trace=abc", "--header", "origin=cli", stdin=b"k1:v1\nk2:v2\n")
    messages = librdkafka_messages(broker, topic, 3)
    assert [(m.partition(), m.key(), m.value()) for m in messages] == [(2, b"k1", b"v1"), (2, b"k2", b"v2")]
    for m in messages:
        assert m.timestamp()[1] == 1700000000123
        assert m.headers() == [("trace", b"abc"), ("origin", b"cli")]

    refused = once(broker, "produce", topic, "-H", "no-equals", stdin=b"x\n", check=False)
    assert refused.returncode != 0 and "KEY=VALUE" in refused.stderr


def segment_bytes(broker, topic: str) -> int:
    files = [p for p in broker.data_dir.rglob("*.log") if topic in str(p)]
    assert files, f"no segment files for {topic} under {broker.data_dir}"
    return sum(p.stat().st_size for p in files)


@pytest.mark.parametrize("codec", ["gzip", "none"])
def test_produce_compresses_with_the_codec_asked_for(broker, codec):
    topic = unique_topic(f"cli-{codec}")
    once(broker, "topic", "create", topic)
    lines = [("a" * 20_000 + str(i)).encode() for i in range(5)]
    once(broker, "produce", topic, "--compression", codec, stdin=b"\n".join(lines) + b"\n")
    assert [m.value() for m in librdkafka_messages(broker, topic, 1)] == lines
    # 100 kB of one letter compresses to a few kB; stored uncompressed it is over 100 kB.
    stored = segment_bytes(broker, topic)
    assert (stored < 20_000) if codec == "gzip" else (stored > 100_000), stored


def test_produce_reads_json_lines(broker):
    topic = unique_topic("cli-json-in")
    once(broker, "topic", "create", topic, "--partitions", "2")
    lines = [
        {"key": "a", "value": "one", "headers": {"h": "1"}, "partition": 1, "timestamp": 1600000000000},
        {"value": "two"},
        {"key": "t", "value": None, "partition": 0},
    ]
    once(broker, "produce", topic, "--json", "--partition", "0",
         stdin="\n".join(json.dumps(line) for line in lines).encode() + b"\n")
    got = {(m.partition(), m.key(), m.value()): m for m in librdkafka_messages(broker, topic, 2)}
    assert set(got) == {(1, b"a", b"one"), (0, None, b"two"), (0, b"t", None)}, list(got)
    assert got[(1, b"a", b"one")].headers() == [("h", b"1")]
    assert got[(1, b"a", b"one")].timestamp()[1] == 1600000000000

    refused = once(broker, "produce", topic, "--json", stdin=b'{"key": "no value"}\n', check=False)
    assert_one_line_failure(refused, "line 1", "value")


def test_produce_parses_lines_with_a_format(broker):
    topic = unique_topic("cli-format-in")
    once(broker, "topic", "create", topic, "--partitions", "2")
    once(broker, "produce", topic, "--format", "%p|%T|%k=%v",
         stdin=b"1|1700000000500|user-1=a=b\n0|1700000000600|user-2=plain\n")
    got = [(m.partition(), m.key(), m.value(), m.timestamp()[1]) for m in librdkafka_messages(broker, topic, 2)]
    # The value reaches to the end of the line, so a separator inside it stays.
    assert got == [(0, b"user-2", b"plain", 1700000000600), (1, b"user-1", b"a=b", 1700000000500)]

    once(broker, "produce", topic, "--format", "%k %v", "--partition", "0", stdin=b"k spaced value\n")
    assert (b"k", b"spaced value") in [(m.key(), m.value()) for m in librdkafka_messages(broker, topic, 2)]

    refused = once(broker, "produce", topic, "--format", "%p|%v", stdin=b"x|value\n", check=False)
    assert_one_line_failure(refused, "line 1", "partition 'x'")
    refused = once(broker, "produce", topic, "--format", "%k%v", stdin=b"kv\n", check=False)
    assert refused.returncode != 0 and "separated" in refused.stderr


# consume


FORMAT = r"%t|%p|%o|%k|%s|%h|%T|%K|%S\n"


def test_consume_format_matches_kcat(broker):
    topic = unique_topic("cli-format")
    once(broker, "topic", "create", topic, "--partitions", "2")
    produce_records(broker, topic, [
        {"key": b"k1", "value": b"v1", "partition": 0, "timestamp": 1700000000001, "headers": [("a", b"1")]},
        {"key": b"k2", "value": b"value-2", "partition": 1, "timestamp": 1700000000002,
         "headers": [("a", b"1"), ("b", b"2")]},
        {"value": b"unkeyed", "partition": 0, "timestamp": 1700000000003},
    ])
    ours = once(broker, "consume", topic, "--from-beginning", "--exit", "-f", FORMAT).stdout
    theirs = kcat(broker, "-C", "-t", topic, "-e", "-q", "-o", "beginning", "-f", FORMAT).stdout.decode()
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines()), (ours, theirs)
    assert f"{topic}|1|0|k2|value-2|a=1,b=2|1700000000002|2|7" in ours.splitlines()

    refused = once(broker, "consume", topic, "--exit", "-f", "%q", check=False)
    assert refused.returncode != 0 and "%q" in refused.stderr


def test_consume_json_lines_round_trip_through_produce_json(broker):
    source, copy = unique_topic("cli-json-src"), unique_topic("cli-json-copy")
    once(broker, "topic", "create", source)
    once(broker, "topic", "create", copy)
    produce_records(broker, source, [
        {"key": b"k", "value": b"v", "timestamp": 1700000000009, "headers": [("h", b"x")]},
        {"key": b"tomb", "value": None, "timestamp": 1700000000010},
    ])
    dumped = once(broker, "consume", source, "--from-beginning", "--exit", "--json").stdout
    rows = [json.loads(line) for line in dumped.splitlines()]
    assert rows == [
        {"topic": source, "partition": 0, "offset": 0, "timestamp": 1700000000009, "key": "k", "value": "v",
         "headers": [{"key": "h", "value": "x"}]},
        {"topic": source, "partition": 0, "offset": 1, "timestamp": 1700000000010, "key": "tomb", "value": None,
         "headers": []},
    ]
    once(broker, "produce", copy, "--json", stdin=dumped.encode())
    copied = librdkafka_messages(broker, copy, 1)
    assert [(m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in copied] == [
        (b"k", b"v", [("h", b"x")], 1700000000009), (b"tomb", None, None, 1700000000010)]


def test_consume_relative_and_time_offsets(broker):
    topic = unique_topic("cli-offsets")
    once(broker, "topic", "create", topic)
    produce_records(broker, topic, [{"value": f"r{i}".encode(), "timestamp": 1_000_000 + 1000 * i}
                                    for i in range(10)])
    last3 = once(broker, "consume", topic, "-o", "-3", "--exit").stdout.splitlines()
    assert last3 == ["r7", "r8", "r9"]
    more_than_there = once(broker, "consume", topic, "-o", "-50", "--exit").stdout.splitlines()
    assert more_than_there == [f"r{i}" for i in range(10)]
    from_time = once(broker, "consume", topic, "-o", "s@1004500", "--exit").stdout.splitlines()
    assert from_time == ["r5", "r6", "r7", "r8", "r9"]
    absolute = once(broker, "consume", topic, "--offset", "8", "--exit").stdout.splitlines()
    assert absolute == ["r8", "r9"]
    # The same positions kcat picks for the same -o.
    assert kcat(broker, "-C", "-t", topic, "-e", "-q", "-o", "-3").stdout.decode().splitlines() == last3


def committed_sum(broker, group: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return sum(max(0, tp.offset) for tp in committed)
    finally:
        consumer.close()


def test_consume_as_a_group_member_commits_what_it_printed(broker):
    topic = unique_topic("cli-group")
    group = f"cli-group-{uuid.uuid4().hex[:8]}"
    once(broker, "topic", "create", topic, "--partitions", "2")
    ck.produce_indexed(broker, topic, range(6), partition=0)
    ck.produce_indexed(broker, topic, range(6, 10), partition=1)

    first = once(broker, "consume", topic, "--group", group, "--from-beginning", "--max-messages", "4").stdout
    assert len(first.splitlines()) == 4
    assert committed_sum(broker, group, topic, 2) == 4
    # The committed offsets win; --from-beginning only places the partition that has none.
    rest = once(broker, "consume", topic, "--group", group, "--from-beginning", "--exit").stdout
    assert len(rest.splitlines()) == 6
    assert sorted(first.splitlines() + rest.splitlines()) == sorted(
        r.value.decode() for r in ck.read_to_end(broker, topic, range(2)))
    assert committed_sum(broker, group, topic, 2) == 10


def test_consume_isolation_level_read_committed_hides_aborted_records(broker):
    topic = unique_topic("cli-isolation")
    once(broker, "topic", "create", topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"cli-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted")
    assert producer.flush(30) == 0, "librdkafka drops unsent records on abort; they must be in the log first"
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed")
    producer.commit_transaction(30)

    committed = once(broker, "consume", topic, "--from-beginning", "--exit", "--isolation-level", "read_committed")
    assert committed.stdout.splitlines() == ["committed"]
    everything = once(broker, "consume", topic, "--from-beginning", "--exit", "--isolation-level", "read_uncommitted")
    assert everything.stdout.splitlines() == ["aborted", "committed"]


# perf


def test_perf_prints_progress_lines_off_a_terminal_and_the_group_join_apart(broker):
    topic = unique_topic("cli-perf")
    once(broker, "topic", "create", topic)
    produced = once(broker, "perf", "produce", "--topic", topic, "--num-records", "3000", "--record-size", "16",
                    "--progress-interval-ms", "0")
    progress = [line for line in produced.stderr.splitlines() if line.startswith("progress: ")]
    assert progress and "/3000 records" in progress[-1], produced.stderr
    assert "\r" not in produced.stderr
    group = f"cli-perf-{uuid.uuid4().hex[:8]}"
    consumed = once(broker, "perf", "consume", "--topic", topic, "--num-records", "3000", "--group", group,
                    "--progress-interval-ms", "0")
    assert "3000 records consumed" in consumed.stdout
    assert "(group join and first fetch); then " in consumed.stdout, consumed.stdout
    assert any(line.startswith("progress: ") for line in consumed.stderr.splitlines()), consumed.stderr
