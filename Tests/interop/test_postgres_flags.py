"""The postgres engine's named timings: each flag and its environment variable is validated when
the broker starts, refused with one line naming the flag, and accepted values start a broker."""

from __future__ import annotations

import os
import subprocess

import pytest

import confluent_helpers as ck
from once_broker import broker_binary
from support import unique_topic
from test_postgres_cluster import pg  # noqa: F401 (pg is a fixture)

URL = ["--storage", "postgres", "--postgres-url", "postgres://nobody@127.0.0.1:1/none"]


def refusal(args: list[str], env: dict[str, str] | None = None) -> str:
    """The one error line of a broker that refuses to start (exit 64, ArgumentParser's usage error)."""
    done = subprocess.run(
        [str(broker_binary()), "broker", *URL, *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})})
    assert done.returncode == 64, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize("flag, value, message", [
    ("--postgres-commit-linger-ms", "-1", "--postgres-commit-linger-ms must not be negative"),
    ("--postgres-reconnect-backoff-ms", "0", "--postgres-reconnect-backoff-ms must be positive"),
    ("--postgres-reconnect-backoff-max-ms", "10",
     "--postgres-reconnect-backoff-max-ms (10) must be at least --postgres-reconnect-backoff-ms (50)"),
])
def test_a_bad_postgres_timing_is_refused_with_one_line(flag, value, message):
    assert message in refusal([f"{flag}={value}"])
    env = "ONCE_" + flag[2:].upper().replace("-", "_")
    assert message in refusal([], {env: value})
    assert f"{env}='soon' is not a valid value" in refusal([], {env: "soon"})


def test_the_backoff_bounds_are_checked_together():
    assert "must be at least --postgres-reconnect-backoff-ms (5000)" in refusal(
        ["--postgres-reconnect-backoff-ms=5000"])


def test_valid_timings_start_a_broker_that_serves(pg, broker_factory):
    broker = broker_factory(extra_args=[
        "--storage", "postgres", "--postgres-url", pg.new_database(), "--postgres-commit-linger-ms", "0",
        "--postgres-reconnect-backoff-ms", "10", "--postgres-reconnect-backoff-max-ms", "500"])
    topic = unique_topic("pg-flags")
    ck.create_topic(broker, topic, 1)
    producer = ck.producer(broker)
    producer.produce(topic, value=b"timed", partition=0)
    assert producer.flush(30) == 0
    assert [r.value for r in ck.read_to_end(broker, topic, [0])] == [b"timed"]
