"""Every Kafka record codec crossing between OnceClient and librdkafka: `once produce` and
OnceClient's producer write gzip, snappy, lz4 and zstd batches that confluent-kafka and kcat
read back, and `once consume` reads what confluent-kafka writes with each codec. Each test reads
the stored batch attributes, so a codec silently dropped to `none` fails it."""

from __future__ import annotations

import json
import struct

import pytest

import confluent_helpers as ck
from support import index_of, unique_topic
from test_cli import once
from test_cli_parity import librdkafka_messages
from test_kcat import kcat
from test_onceclient import once as once_perf
from test_onceclient import swift_consume, swift_produce

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def stored_codecs(broker, topic: str) -> list[int]:
    """The codec bits of every batch in the topic's segment files, in log order."""
    files = sorted(p for p in broker.data_dir.rglob("*.log") if topic in str(p))
    assert files, f"no segment files for {topic} under {broker.data_dir}"
    codecs = []
    for path in files:
        data = path.read_bytes()
        position = 0
        while position + 23 <= len(data):
            (length,) = struct.unpack_from(">i", data, position + 8)
            (attributes,) = struct.unpack_from(">h", data, position + 21)
            if not attributes & 0x20:  # control batches (markers) are never compressed
                codecs.append(attributes & 0x07)
            position += 12 + length
    return codecs


# Lines long and repetitive enough that every codec shrinks them, across several of its blocks.
LINES = [(f"line {i} " + "abcdefgh" * (1000 + i)).encode() for i in range(40)]


@pytest.mark.parametrize("codec", CODECS)
def test_once_produce_writes_each_codec_for_librdkafka_and_kcat(broker, codec):
    topic = unique_topic(f"codec-cli-{codec}")
    once(broker, "topic", "create", topic)
    once(broker, "produce", topic, "--compression", codec, stdin=b"\n".join(LINES) + b"\n")
    assert set(stored_codecs(broker, topic)) == {CODECS[codec]}
    assert [m.value() for m in librdkafka_messages(broker, topic, 1)] == LINES
    consumed = kcat(broker, "-C", "-t", topic, "-e", "-o", "beginning", "-J", "-q")
    assert [json.loads(line)["payload"].encode() for line in consumed.stdout.decode().splitlines()] == LINES


@pytest.mark.parametrize("codec", CODECS)
def test_onceclient_producer_and_librdkafka_batches_of_each_codec_cross(broker, codec):
    topic = unique_topic(f"codec-oc-{codec}")
    ck.create_topic(broker, topic, 1)
    swift_produce(broker, topic, 1000, "--compression", codec)
    ck.produce_indexed(broker, topic, range(1000, 2000), **{"compression.type": codec})
    stored = stored_codecs(broker, topic)
    assert set(stored) == {CODECS[codec]} and len(stored) >= 2, stored
    by_librdkafka = ck.read_to_end(broker, topic, [0])
    assert [index_of(r.value) for r in by_librdkafka] == list(range(2000))
    by_onceclient = swift_consume(broker, topic, "--count", "2000")
    assert [index_of(v.encode()) for _, _, v in by_onceclient] == list(range(2000))
    by_kcat = kcat(broker, "-C", "-t", topic, "-e", "-o", "beginning", "-q", "-f", "%s\\n")
    assert [index_of(line) for line in by_kcat.stdout.splitlines()] == list(range(2000))


@pytest.mark.parametrize("codec", CODECS)
def test_once_consume_reads_what_confluent_kafka_compresses(broker, codec):
    topic = unique_topic(f"codec-rd-{codec}")
    ck.create_topic(broker, topic, 1)
    producer = ck.producer(broker, **{"compression.type": codec, "linger.ms": 50})
    for line in LINES:
        producer.produce(topic, value=line)
    assert producer.flush(30) == 0
    assert set(stored_codecs(broker, topic)) == {CODECS[codec]}
    result = once(broker, "consume", topic, "--from-beginning", "--exit")
    assert result.stdout.encode().splitlines() == LINES


@pytest.mark.parametrize("codec", CODECS)
def test_perf_produces_and_consumes_each_codec(broker, codec):
    topic = unique_topic(f"codec-perf-{codec}")
    ck.create_topic(broker, topic, 2)
    out = once_perf(broker, "produce", "--topic", topic, "--num-records", "3000", "--record-size", "200",
                    "--compression", codec, "--no-progress")
    assert "3000 records sent" in out, out
    assert set(stored_codecs(broker, topic)) == {CODECS[codec]}
    out = once_perf(broker, "consume", "--topic", topic, "--num-records", "3000", "--no-progress")
    assert "3000 records consumed" in out, out
    assert len(ck.read_to_end(broker, topic, range(2))) == 3000


def test_an_unknown_codec_name_is_refused(broker):
    result = once(broker, "produce", "t", "--compression", "brotli", stdin=b"x\n", check=False)
    assert result.returncode != 0 and "brotli" in result.stderr
