"""The `once topic|produce|consume` commands against a real broker, cross-checked with
confluent-kafka (librdkafka): what `once produce` writes, librdkafka reads, and the other way
round; keyed records land where the Java client's partitioner would put them."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from once_broker import broker_binary, free_port
from support import Deadline, unique_topic

CLI_TIMEOUT = 60


def once(broker, *args: str, stdin: bytes | None = None, check: bool = True,
         bootstrap: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(broker_binary()), *args, "--bootstrap-server", bootstrap or broker.bootstrap]
    result = subprocess.run(command, input=stdin, capture_output=True, timeout=CLI_TIMEOUT)
    done = subprocess.CompletedProcess(
        command, result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace"))
    if check:
        assert done.returncode == 0, (
            f"{' '.join(command)} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, f"expected failure, got exit 0\nstdout:\n{result.stdout}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def java_murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2, as a signed 32-bit value; the reference the Swift partitioner follows."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) // 4
    for i in range(whole):
        k = int.from_bytes(data[i * 4:i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = data[whole * 4:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def consume_with_librdkafka(broker, topic: str, partitions: int, expected: int,
                            isolation: str = "read_uncommitted") -> list:
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": f"cli-test-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
    })
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        messages = []
        deadline = Deadline(60, f"{expected} records from {topic}")
        while len(messages) < expected:
            message = consumer.poll(0.5)
            if message is None:
                deadline.check(f"(have {len(messages)})")
                continue
            if message.error():
                raise KafkaException(message.error())
            messages.append(message)
        return messages
    finally:
        consumer.close()


def produce_with_librdkafka(broker, topic: str, records: list[tuple[bytes | None, bytes]], **config) -> None:
    errors = []
    producer = Producer({
        "bootstrap.servers": broker.bootstrap,
        "partitioner": "murmur2_random",
        "compression.type": "none",
        "linger.ms": 5,
        **config,
    })
    for key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(60) == 0, "librdkafka could not deliver everything within 60s"
    assert not errors, errors[:3]


# Topics


def test_topic_create_list_describe_delete(broker):
    topic = unique_topic("cli-admin")
    created = once(broker, "topic", "create", topic, "--partitions", "3", "--config", "retention.ms=123456")
    assert topic in created.stdout

    assert topic in once(broker, "topic", "list").stdout.splitlines()

    described = once(broker, "topic", "describe", topic).stdout
    assert f"Topic: {topic}" in described and "Partitions: 3" in described, described
    for partition in range(3):
        assert f"Partition: {partition}\tLeader: 1" in described, described
    assert described.count("StartOffset: 0\tEndOffset: 0") == 3, described
    assert "retention.ms=123456" in described, described

    once(broker, "topic", "delete", topic)
    assert topic not in once(broker, "topic", "list").stdout.splitlines()
    assert_one_line_failure(once(broker, "topic", "delete", topic, check=False), topic, "does not exist")


def test_describe_shows_offsets_after_producing(broker):
    topic = unique_topic("cli-describe")
    once(broker, "topic", "create", topic, "--partitions", "2")
    once(broker, "produce", topic, "--partition", "1", stdin=b"".join(b"r%d\n" % i for i in range(7)))
    described = once(broker, "topic", "describe", topic).stdout
    assert "Partition: 0\tLeader: 1" in described
    lines = {line.split("\t")[1]: line for line in described.splitlines() if line.startswith("\tPartition")}
    assert "EndOffset: 0" in lines["Partition: 0"], described
    assert "EndOffset: 7" in lines["Partition: 1"], described


def test_creating_an_existing_topic_fails_with_the_kafka_error(broker):
    topic = unique_topic("cli-dup")
    once(broker, "topic", "create", topic)
    result = once(broker, "topic", "create", topic, check=False)
    assert_one_line_failure(result, "TOPIC_ALREADY_EXISTS", topic)


def test_describing_an_unknown_topic_fails(broker):
    result = once(broker, "topic", "describe", "no-such-topic", check=False)
    assert_one_line_failure(result, "no-such-topic", "does not exist")


# Produce with once, consume with librdkafka and with once


def test_once_produce_then_librdkafka_and_once_consume(broker):
    topic = unique_topic("cli-produce")
    once(broker, "topic", "create", topic)
    lines = [f"line {i} " + "x" * (i % 50) for i in range(2500)]  # more than two batches of 1000
    once(broker, "produce", topic, stdin=("\n".join(lines) + "\n").encode())

    messages = consume_with_librdkafka(broker, topic, 1, len(lines))
    assert [m.value().decode() for m in messages] == lines
    assert [m.offset() for m in messages] == list(range(len(lines)))
    assert all(m.key() is None for m in messages)

    consumed = once(broker, "consume", topic, "--from-beginning", "--exit")
    assert consumed.stdout.splitlines() == lines
    assert consumed.stderr == ""


def test_keyed_records_land_where_the_java_partitioner_puts_them(broker):
    topic = unique_topic("cli-keyed")
    partitions = 6
    once(broker, "topic", "create", topic, "--partitions", str(partitions))
    keys = [f"key-{i}" for i in range(60)] + ["21", "foobar", "a-little-bit-long-string"]
    payload = "".join(f"{k}:value of {k}\n" for k in keys).encode()
    once(broker, "produce", topic, "--key-separator", ":", stdin=payload)

    messages = consume_with_librdkafka(broker, topic, partitions, len(keys))
    placed = {m.key().decode(): m.partition() for m in messages}
    assert {m.value().decode() for m in messages} == {f"value of {k}" for k in keys}
    for key in keys:
        assert placed[key] == (java_murmur2(key.encode()) & 0x7FFFFFFF) % partitions, key
    assert len(set(placed.values())) > 1, "60 keys over 6 partitions should not all hash alike"

    # librdkafka's murmur2 partitioner must agree key by key.
    mirror = unique_topic("cli-keyed-rdkafka")
    once(broker, "topic", "create", mirror, "--partitions", str(partitions))
    produce_with_librdkafka(broker, mirror, [(k.encode(), b"v") for k in keys])
    theirs = {m.key().decode(): m.partition() for m in consume_with_librdkafka(broker, mirror, partitions, len(keys))}
    assert theirs == placed


def test_produce_to_one_partition_and_consume_it_alone(broker):
    topic = unique_topic("cli-partition")
    once(broker, "topic", "create", topic, "--partitions", "3")
    once(broker, "produce", topic, "--partition", "2", stdin=b"a\nb\nc\n")
    assert once(broker, "consume", topic, "--partition", "2", "--from-beginning", "--exit").stdout == "a\nb\nc\n"
    assert once(broker, "consume", topic, "--partition", "0", "--from-beginning", "--exit").stdout == ""


def test_consume_options_offset_max_messages_and_print_key(broker):
    topic = unique_topic("cli-options")
    once(broker, "topic", "create", topic)
    once(broker, "produce", topic, "--key-separator", "=", stdin=b"".join(b"k%d=v%d\n" % (i, i) for i in range(20)))

    assert once(broker, "consume", topic, "--offset", "15", "--exit").stdout.split() == [f"v{i}" for i in range(15, 20)]
    assert once(broker, "consume", topic, "--from-beginning", "--max-messages", "3").stdout.split() == ["v0", "v1", "v2"]
    keyed = once(broker, "consume", topic, "--from-beginning", "--exit", "--print-key").stdout.splitlines()
    assert keyed == [f"k{i}\tv{i}" for i in range(20)]


def test_consume_with_exit_on_an_empty_topic_returns_at_once(broker):
    topic = unique_topic("cli-empty")
    once(broker, "topic", "create", topic, "--partitions", "2")
    result = once(broker, "consume", topic, "--from-beginning", "--exit")
    assert result.stdout == ""


def test_produce_with_acks_zero_and_one(broker):
    topic = unique_topic("cli-acks")
    once(broker, "topic", "create", topic)
    once(broker, "produce", topic, "--acks", "1", stdin=b"one\n")
    once(broker, "produce", topic, "--acks", "0", stdin=b"zero\n")
    messages = consume_with_librdkafka(broker, topic, 1, 2)
    assert [m.value() for m in messages] == [b"one", b"zero"]


# Produce with librdkafka, consume with once


def test_librdkafka_records_are_printed_by_once_consume(broker):
    topic = unique_topic("cli-from-rdkafka")
    partitions = 3
    once(broker, "topic", "create", topic, "--partitions", str(partitions))
    records = [(f"k{i % 11}".encode(), f"value {i}".encode()) for i in range(1500)]
    produce_with_librdkafka(broker, topic, records)

    printed = once(broker, "consume", topic, "--from-beginning", "--exit", "--print-key").stdout.splitlines()
    assert sorted(printed) == sorted(f"{k.decode()}\t{v.decode()}" for k, v in records)
    # Within a key (one partition) the order is the produce order.
    for key in {k for k, _ in records}:
        ours = [line.split("\t")[1] for line in printed if line.split("\t")[0] == key.decode()]
        assert ours == [v.decode() for k, v in records if k == key]


def test_read_committed_hides_aborted_transactions(broker):
    topic = unique_topic("cli-txn")
    once(broker, "topic", "create", topic)
    producer = Producer({
        "bootstrap.servers": broker.bootstrap,
        "transactional.id": f"cli-txn-{uuid.uuid4().hex[:8]}",
        "compression.type": "none",
    })
    try:
        producer.init_transactions(20)
    except KafkaException as error:
        pytest.skip(f"broker does not support transactions yet: {error}")
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, value=f"committed {i}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"aborted {i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed last")
    producer.commit_transaction(30)

    committed = once(broker, "consume", topic, "--from-beginning", "--exit", "--isolation", "read_committed")
    assert committed.stdout.splitlines() == [f"committed {i}" for i in range(5)] + ["committed last"]
    everything = once(broker, "consume", topic, "--from-beginning", "--exit", "--isolation", "read_uncommitted")
    assert everything.stdout.splitlines() == (
        [f"committed {i}" for i in range(5)] + [f"aborted {i}" for i in range(3)] + ["committed last"])


# Failures


def test_broker_down_is_one_clear_line(broker):
    port = free_port()
    for args in (["topic", "list"], ["consume", "t", "--exit"], ["produce", "t"]):
        result = once(broker, *args, stdin=b"x\n", check=False, bootstrap=f"127.0.0.1:{port}")
        assert_one_line_failure(result, f"cannot connect to 127.0.0.1:{port}: connection refused")


def test_consuming_an_unknown_topic_fails(broker):
    result = once(broker, "consume", "no-such-topic", "--exit", check=False)
    assert_one_line_failure(result, "no-such-topic", "does not exist")


@pytest.mark.parametrize("args", [
    ["consume", "t", "--offset=yesterday"],
    ["consume", "t", "--offset=s@-1"],
    ["consume", "t", "--from-beginning", "--offset", "3"],
    ["consume", "t", "--isolation", "serializable"],
    ["produce", "t", "--acks", "2"],
    ["topic", "create", "t", "--partitions", "0"],
    ["topic", "create", "t", "--config", "novalue"],
])
def test_bad_flags_fail_without_touching_the_broker(broker, args):
    result = once(broker, *args, check=False)
    assert result.returncode != 0
    assert "Error:" in result.stderr, result.stderr


def test_bad_bootstrap_server_is_rejected(broker):
    result = once(broker, "topic", "list", check=False, bootstrap="no-port-here")
    assert result.returncode != 0
    assert "--bootstrap-server" in result.stderr
