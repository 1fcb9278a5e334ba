"""OnceStreams end to end: the Swift exactly-once processor and the idempotent consumer run as
child processes (`once demo processor|dedup`, `once-postgres-dedup`) that the tests SIGKILL at
seeded random moments. The processor's read_committed output must hold every input once and its
changelog's counts must equal a recount of the input; each dedup store must hold every event
once despite deliberate duplicates in the input. PostgreSQL and Redis come from
scripts/start-services.sh; without them these tests skip, unless ONCE_REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import collections
import os
import random
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

import confluent_helpers as ck
from once_broker import REPO_ROOT, broker_binary
from support import Deadline, unique_topic

REQUIRED = os.environ.get("ONCE_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("ONCE_TEST_POSTGRES_URL")
REDIS = os.environ.get("ONCE_TEST_REDIS")


def service_or_skip(value: str | None, name: str) -> str:
    if value:
        return value
    if REQUIRED:
        pytest.fail(f"ONCE_REQUIRE_SERVICES=1 but {name} is unset: run scripts/start-services.sh")
    pytest.skip(f"{name} unset (scripts/start-services.sh starts the server)")


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    """Starts a child with its output appended to `log` and waits for its 'ready' line."""
    start = log.stat().st_size if log.exists() else 0
    out = open(log, "a")
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    deadline = Deadline(60, f"'ready' from {args[:3]}")
    while "ready\n" not in log.read_text()[start:]:
        deadline.check(log.read_text()[-2000:])
        if process.poll() is not None:
            raise AssertionError(f"{args[:3]} exited {process.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return process


def crash_loop(args: list[str], log: Path, kills: int, seed: int, done) -> int:
    """Runs the child, SIGKILLs and restarts it `kills` times at seeded moments, then lets it finish."""
    rng = random.Random(seed)
    process = spawn(args, log)
    killed = 0
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.7, 2.5))
            process.kill()
            process.wait(10)
            killed += 1
            process = spawn(args, log)
        deadline = Deadline(240, "the child to catch up")
        while not done():
            deadline.check(log.read_text()[-1500:])
            time.sleep(0.5)
        time.sleep(1.5)  # anything still arriving now would be a duplicate
    finally:
        process.kill()
        process.wait(10)
    return killed


def produce_events(broker, topic: str, count: int, duplicate_every: int) -> int:
    """`count` distinct events with an `event-id` header; every `duplicate_every`-th is sent twice."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    sent = 0
    for i in range(count):
        copies = 2 if i % duplicate_every == 0 else 1
        for _ in range(copies):
            producer.produce(topic, key=f"k{i}".encode(), value=f"{i}".encode(), headers=[("event-id", f"evt-{i}".encode())])
            sent += 1
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return sent


def run_processor(broker, tmp_path, records: int, kills: int, changelog_configs: dict[str, str] | None = None) -> str:
    """Feeds `records` inputs through `once demo processor`, SIGKILLed `kills` times, and checks its
    output and changelog. Returns the changelog's name."""
    source, sink, changelog = unique_topic("sp-in"), unique_topic("sp-out"), unique_topic("sp-counts")
    ck.create_topic(broker, source, 2)
    ck.create_topic(broker, sink, 2)
    if changelog_configs is not None:
        client = ck.admin(broker)
        client.create_topics([NewTopic(changelog, 2, 1, config=changelog_configs)])[changelog].result(timeout=30)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    keys = []
    for i in range(records):
        key = f"key-{(i * 7) % 37}"
        keys.append(key)
        producer.produce(source, key=key.encode(), value=str(i).encode())
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0

    args = [
        str(broker_binary()), "demo", "processor", "--bootstrap-server", broker.bootstrap, "--input", source,
        "--output", sink, "--group", unique_topic("sp-group"), "--transactional-id", unique_topic("sp-tid"),
        "--changelog", changelog, "--commit-records", "200", "--commit-ms", "50",
    ]

    def done() -> bool:
        return sum(ck.watermarks(broker, sink, p)[1] for p in (0, 1)) >= records and len(read_output()) >= records

    def read_output():
        return ck.read_to_end(broker, sink, [0, 1], **{"isolation.level": "read_committed"})

    assert crash_loop(args, tmp_path / "processor.log", kills=kills, seed=11, done=done) == kills
    values = [int(r.value.removeprefix(b"processed:")) for r in read_output()]
    duplicates = len(values) - len(set(values))
    assert duplicates == 0, f"{duplicates} inputs were output more than once"
    assert sorted(values) == list(range(records)), "every input is output exactly once"

    state: dict[tuple[int, bytes], int] = {}
    for r in ck.read_to_end(broker, changelog, [0, 1], **{"isolation.level": "read_committed"}):
        state[(r.partition, r.key)] = int(r.value)
    counts = collections.Counter()
    for (_, key), count in state.items():
        counts[key.decode()] += count
    assert counts == collections.Counter(keys), "the changelog's counts equal a recount of the input"
    return changelog


@pytest.mark.timeout_seconds(420)
def test_processor_copies_exactly_once_and_state_matches_input_through_sigkills(broker, tmp_path):
    changelog = run_processor(broker, tmp_path, records=20_000, kills=4)
    client = ck.admin(broker)
    resource = ConfigResource(ResourceType.TOPIC, changelog)
    configs = client.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact", "the processor creates its changelog compacted"


@pytest.mark.timeout_seconds(420)
def test_processor_restores_its_state_from_a_compacted_changelog(broker_factory, tmp_path):
    # A cleaner that runs within a second, on a changelog whose segments roll every half second:
    # every restart after the first clean restores from a compacted log.
    broker = broker_factory(extra_args=["--log-cleaner-backoff-ms", "200"])
    changelog = run_processor(broker, tmp_path, records=8_000, kills=3, changelog_configs={
        "cleanup.policy": "compact", "segment.ms": "500", "min.cleanable.dirty.ratio": "0.01",
    })
    text = urllib.request.urlopen(broker.metrics_url, timeout=10).read().decode()
    replaced = [line for line in text.splitlines() if line.startswith("once_log_cleaner_segments_replaced_total ")]
    assert replaced and float(replaced[0].split()[-1]) > 0, "the changelog was never compacted, so the test proved nothing"
    assert any(line.startswith("once_partition_dirty_ratio") and changelog in line for line in text.splitlines())


def dedup_test(broker, tmp_path, args_for, count_rows, group: str, topic: str):
    events, duplicate_every = 6_000, 7
    sent = produce_events(broker, topic, events, duplicate_every)
    assert sent > events

    def done() -> bool:
        return count_rows()[0] >= events

    kills = crash_loop(args_for(group), tmp_path / "dedup.log", kills=3, seed=5, done=done)
    assert kills == 3
    total, distinct, ids = count_rows()
    assert total == distinct, f"{total - distinct} events were applied more than once"
    assert ids == {f"evt-{i}" for i in range(events)}, "every event is applied, none missing"


@pytest.mark.timeout_seconds(360)
def test_idempotent_consumer_sqlite_through_sigkills(broker, tmp_path):
    topic, group, db = unique_topic("dd-sqlite"), unique_topic("dd-g"), tmp_path / "dedup.sqlite"
    ck.create_topic(broker, topic, 2)

    def args_for(group: str) -> list[str]:
        return [str(broker_binary()), "demo", "dedup", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--group", group, "--store", "sqlite", "--sqlite-path", str(db)]

    def count_rows():
        if not db.exists():
            return 0, 0, set()
        with sqlite3.connect(db, timeout=10) as conn:
            try:
                ids = [row[0] for row in conn.execute("SELECT event_id FROM demo_events")]
            except sqlite3.OperationalError:
                return 0, 0, set()
        return len(ids), len(set(ids)), set(ids)

    dedup_test(broker, tmp_path, args_for, count_rows, group, topic)


@pytest.mark.timeout_seconds(360)
def test_idempotent_consumer_redis_through_sigkills(broker, tmp_path):
    redis = service_or_skip(REDIS, "ONCE_TEST_REDIS")
    host, port = redis.split(":")
    topic, group = unique_topic("dd-redis"), unique_topic("dd-g")
    ck.create_topic(broker, topic, 2)
    key = f"once-demo:{group}:events"

    def args_for(group: str) -> list[str]:
        return [str(broker_binary()), "demo", "dedup", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--group", group, "--store", "redis", "--redis", redis]

    def count_rows():
        out = subprocess.run(["redis-cli", "-h", host, "-p", port, "LRANGE", key, "0", "-1"],
                             capture_output=True, text=True, check=True).stdout.split()
        return len(out), len(set(out)), set(out)

    dedup_test(broker, tmp_path, args_for, count_rows, group, topic)


def postgres_dedup_binary() -> Path:
    explicit = os.environ.get("ONCE_POSTGRES_DEDUP_BIN")
    if explicit:
        return Path(explicit)
    # Its own package (Packages/OnceStreamsPostgres), so postgres-nio stays out of the root's.
    package = REPO_ROOT / "Packages" / "OnceStreamsPostgres"
    for config in ("debug", "release"):
        candidate = package / ".build" / config / "once-postgres-dedup"
        if candidate.exists():
            return candidate
    subprocess.run(["swift", "build", "--product", "once-postgres-dedup"], cwd=package, check=True)
    return package / ".build" / "debug" / "once-postgres-dedup"


@pytest.mark.timeout_seconds(600)
def test_idempotent_consumer_postgres_through_sigkills(broker, tmp_path):
    url = service_or_skip(POSTGRES_URL, "ONCE_TEST_POSTGRES_URL")
    binary = postgres_dedup_binary()
    topic, group = unique_topic("dd-pg"), unique_topic("dd-g")
    ck.create_topic(broker, topic, 2)
    subprocess.run(["psql", url, "-qc", "DROP TABLE IF EXISTS demo_events"], check=True)

    def args_for(group: str) -> list[str]:
        return [str(binary), broker.bootstrap, topic, group, url]

    def count_rows():
        result = subprocess.run(["psql", url, "-tAc", "SELECT event_id FROM demo_events"], capture_output=True, text=True)
        if result.returncode != 0:
            return 0, 0, set()
        ids = result.stdout.split()
        return len(ids), len(set(ids)), set(ids)

    dedup_test(broker, tmp_path, args_for, count_rows, group, topic)


@pytest.mark.timeout_seconds(300)
def test_demo_pipeline_reports_no_duplicates_and_nothing_missing():
    result = subprocess.run([str(broker_binary()), "demo", "pipeline", "--records", "20000", "--kills", "3"],
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "inputs: 20000  outputs: 20000  duplicates: 0  missing: 0" in result.stdout, result.stdout
