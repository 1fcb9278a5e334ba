"""kcat, built on Debian's librdkafka 2.0.x, is strict about ApiVersions and metadata: if it
can list, produce and consume, the broker's handshake and basic APIs are right."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from support import unique_topic

KCAT_TIMEOUT = 90


def kcat(broker, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("kcat")
    assert binary, "kcat is not installed (scripts/install-deps.sh installs it)"
    command = [binary, "-b", broker.bootstrap, "-X", "api.version.request=true", *args]
    # CI runs with no standard input at all, so kcat gets either our bytes or /dev/null.
    feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    result = subprocess.run(command, capture_output=True, timeout=KCAT_TIMEOUT, **feed)
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}\nstdout:\n{result.stdout.decode(errors='replace')}"
        f"\nstderr:\n{result.stderr.decode(errors='replace')}"
    )
    return result


def consume_json(broker, topic: str) -> list[dict]:
    result = kcat(broker, "-C", "-t", topic, "-e", "-o", "beginning", "-J", "-q")
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


def test_metadata_lists_the_broker(broker):
    result = kcat(broker, "-L", "-m", "30")
    out = result.stdout.decode()
    assert "1 brokers:" in out, out
    assert f"broker 1 at {broker.bootstrap}" in out, out


def test_metadata_as_json_names_the_advertised_listener(broker):
    result = kcat(broker, "-L", "-J", "-m", "30")
    meta = json.loads(result.stdout)
    assert [(b["id"], b["name"]) for b in meta["brokers"]] == [(1, broker.bootstrap)], meta


def test_produce_keyed_lines_and_consume_them_back(broker):
    topic = unique_topic("kcat-keyed")
    records = [(f"k{i % 7}", f"line {i} with some text") for i in range(500)]
    payload = "".join(f"{k}:{v}\n" for k, v in records).encode()
    produced = kcat(broker, "-P", "-t", topic, "-K:", stdin=payload)
    assert b"ERROR" not in produced.stderr, produced.stderr

    messages = consume_json(broker, topic)
    assert [(m["key"], m["payload"]) for m in messages] == records
    assert [m["offset"] for m in messages] == list(range(len(records)))
    assert {m["partition"] for m in messages} == {0}


def test_produce_unkeyed_lines_and_consume_them_back(broker):
    topic = unique_topic("kcat-plain")
    lines = [f"plain line {i}" for i in range(100)]
    kcat(broker, "-P", "-t", topic, stdin=("\n".join(lines) + "\n").encode())

    messages = consume_json(broker, topic)
    assert [m["payload"] for m in messages] == lines
    assert all(m["key"] is None for m in messages), messages[:3]


def test_metadata_for_a_topic_shows_its_partition(broker):
    topic = unique_topic("kcat-meta")
    kcat(broker, "-P", "-t", topic, stdin=b"one\n")
    result = kcat(broker, "-L", "-t", topic, "-J", "-m", "30")
    meta = json.loads(result.stdout)
    topics = {t["topic"]: t for t in meta["topics"]}
    assert topic in topics, meta
    entry = topics[topic]
    assert entry.get("error") in (None, ""), entry
    assert [(p["partition"], p["leader"]) for p in entry["partitions"]] == [(0, 1)], entry


@pytest.mark.parametrize("offset, expected_first", [("2", 2), ("-3", 7)])
def test_consume_from_an_offset(broker, offset, expected_first):
    topic = unique_topic("kcat-offset")
    kcat(broker, "-P", "-t", topic, stdin=b"".join(f"m{i}\n".encode() for i in range(10)))
    result = kcat(broker, "-C", "-t", topic, "-e", "-o", offset, "-J", "-q")
    messages = [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]
    assert [m["offset"] for m in messages] == list(range(expected_first, 10))
    assert [m["payload"] for m in messages] == [f"m{i}" for i in range(expected_first, 10)]
