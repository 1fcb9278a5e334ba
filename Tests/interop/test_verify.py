"""`once verify` against a real broker: a clean run, a run whose broker is SIGKILLed and
restarted underneath it, and the checker failing end to end on a recorded history with an
aborted read. librdkafka re-reads the topics a clean run wrote, so a checker that saw nothing
cannot pass these tests."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from once_broker import broker_binary
from support import unique_topic

SUMMARY = re.compile(
    r"^verify: (\d+) records, (\d+) transactions \((\d+) aborted, (\d+) unknown\)(?:, (\d+) faults)?, anomalies: (\d+)$",
    re.MULTILINE)
TOPICS = re.compile(r"^verify: topics (\S+) and (\S+)$", re.MULTILINE)


def verify(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(broker_binary()), "verify", *args], capture_output=True, text=True, timeout=timeout)


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    match = SUMMARY.search(result.stdout)
    assert match, f"no summary line\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    records, transactions, aborted, unknown, faults, anomalies = match.groups()
    return {"records": int(records), "transactions": int(transactions), "aborted": int(aborted),
            "unknown": int(unknown), "faults": int(faults or 0), "anomalies": int(anomalies)}


def read_committed(bootstrap: str, topic: str, partitions: int) -> list[tuple[bytes, bytes]]:
    """Every (key, value) a read_committed librdkafka consumer returns, up to the end of each partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    at_end: set[int] = set()
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 60
    while len(at_end) < partitions:
        assert time.monotonic() < deadline, f"librdkafka did not reach the end of {topic}"
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            if message.error().code() == -191:  # _PARTITION_EOF
                at_end.add(message.partition())
                continue
            raise AssertionError(f"consumer error: {message.error()}")
        at_end.discard(message.partition())
        out.append((message.key(), message.value()))
    consumer.close()
    return out


@pytest.mark.timeout_seconds(240)
def test_a_clean_run_finds_no_anomalies_and_librdkafka_agrees(broker):
    result = verify("--bootstrap-server", broker.bootstrap, "--seconds", "5", "--partitions", "3",
                    "--fence-every", "10")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    numbers = summary(result)
    assert numbers["anomalies"] == 0
    assert numbers["records"] > 0 and numbers["transactions"] > 0 and numbers["aborted"] > 0, numbers
    for line in ["aborted read: 0", "lost write: 0", "duplicate: 0", "torn transaction: 0",
                 "offsets not atomic with output: 0", "fenced producer appended: 0"]:
        assert line in result.stdout.splitlines()

    # What the run left behind, read by librdkafka: every committed input record is in the
    # output exactly once (an output's key names its input), and nothing else is.
    input_topic, output_topic = TOPICS.search(result.stdout).groups()
    inputs = [value for _, value in read_committed(broker.bootstrap, input_topic, 3)]
    outputs = [key for key, _ in read_committed(broker.bootstrap, output_topic, 3)]
    assert inputs, "the run wrote nothing that librdkafka can read"
    assert len(set(inputs)) == len(inputs), "an input record is in the log twice"
    assert sorted(outputs) == sorted(inputs)


def test_a_newer_onceclient_instance_takes_over_an_open_transaction(broker):
    """The zombie hand-over verify relies on: while librdkafka holds an open transaction, an
    OnceClient producer with the same transactional id starts. Its InitProducerId is answered
    CONCURRENT_TRANSACTIONS until the old transaction is aborted, and must retry through that."""
    topic, transactional_id = unique_topic("verify-takeover"), unique_topic("verify-takeover-txn")
    old = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id})
    old.init_transactions(30)
    old.begin_transaction()
    for i in range(5):
        old.produce(topic, value=f"old-{i}".encode(), partition=0)
    assert old.flush(30) == 0
    newer = subprocess.run(
        [str(broker_binary()), "perf", "scenario", "produce", "--topic", topic, "--count", "3",
         "--transactional-id", transactional_id, "--bootstrap-server", broker.bootstrap],
        capture_output=True, text=True, timeout=120)
    assert newer.returncode == 0, f"stdout:\n{newer.stdout}\nstderr:\n{newer.stderr[-3000:]}"
    with pytest.raises(KafkaException):
        old.commit_transaction(30)
    values = sorted(value for _, value in read_committed(broker.bootstrap, topic, 1))
    assert values and not any(value.startswith(b"old-") for value in values), values


def verify_with_kill_and_restart(broker, directory: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], int]:
    """Runs `once verify` with a fault command that asks this test, which owns the broker, to
    SIGKILL and restart it: the command creates a request file and waits for the answer file.
    The restart happens on this thread because the broker dies with the thread that started it."""
    request, done = directory / "fault-request", directory / "fault-done"
    command = f"touch {request} && while [ ! -e {done} ]; do sleep 0.05; done && rm -f {done}"
    out, err = directory / "verify.out", directory / "verify.err"
    faults = 0
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [str(broker_binary()), "verify", "--bootstrap-server", broker.bootstrap, "--fault-command", command, *args],
            stdout=stdout, stderr=stderr, text=True)
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None:
                assert time.monotonic() < deadline, f"once verify still running after {timeout:.0f}s"
                if request.exists():
                    request.unlink()
                    broker.kill9()
                    broker.restart()
                    faults += 1
                    done.touch()
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out.read_text(), err.read_text()), faults


@pytest.mark.timeout_seconds(300)
def test_a_run_with_the_broker_killed_and_restarted_finds_no_anomalies(broker, tmp_path):
    result, faults = verify_with_kill_and_restart(
        broker, tmp_path, "--seconds", "10", "--partitions", "3", "--fault-interval-seconds", "3",
        "--drain-timeout-seconds", "90", timeout=270)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    numbers = summary(result)
    assert faults >= 1 and broker.starts == 1 + faults
    assert numbers["faults"] == faults
    assert numbers["anomalies"] == 0 and numbers["records"] > 0 and numbers["aborted"] > 0, numbers


def history(*, with_aborted_read: bool) -> list[dict]:
    """A committed transaction (offsets 0, 1) and an aborted one (offset 3), read fully."""
    events = [
        {"producerInitialized": {"transactionalId": "t", "instance": "a", "producerId": 1, "epoch": 0}},
        {"transactionBegan": {"transaction": "T1", "transactionalId": "t", "instance": "a", "producerId": 1, "epoch": 0}},
        {"recordSent": {"record": "r1", "transaction": "T1", "topic": "in", "partition": 0}},
        {"recordAcknowledged": {"record": "r1", "offset": 0}},
        {"recordSent": {"record": "r2", "transaction": "T1", "topic": "in", "partition": 0}},
        {"recordAcknowledged": {"record": "r2", "offset": 1}},
        {"transactionEnded": {"transaction": "T1", "outcome": "committed"}},
        {"transactionBegan": {"transaction": "T2", "transactionalId": "t", "instance": "a", "producerId": 1, "epoch": 0}},
        {"recordSent": {"record": "r3", "transaction": "T2", "topic": "in", "partition": 0}},
        {"recordAcknowledged": {"record": "r3", "offset": 3}},
        {"transactionEnded": {"transaction": "T2", "outcome": "aborted"}},
        {"readerStarted": {"reader": "reader", "topic": "in", "partition": 0, "position": 0}},
        {"recordRead": {"reader": "reader", "topic": "in", "partition": 0, "offset": 0, "record": "r1"}},
        {"recordRead": {"reader": "reader", "topic": "in", "partition": 0, "offset": 1, "record": "r2"}},
    ]
    if with_aborted_read:
        events.append({"recordRead": {"reader": "reader", "topic": "in", "partition": 0, "offset": 3, "record": "r3"}})
    events.append({"readerReachedEnd": {"reader": "reader", "topic": "in", "partition": 0, "position": 5}})
    return events


def write_history(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return path


def test_check_history_fails_on_an_aborted_read_and_passes_without_it(tmp_path):
    bad = verify("--check-history", str(write_history(tmp_path / "bad.jsonl", history(with_aborted_read=True))))
    assert bad.returncode == 1, f"stdout:\n{bad.stdout}\nstderr:\n{bad.stderr}"
    assert "aborted read: 1" in bad.stdout.splitlines()
    assert "record r3 of aborted transaction T2" in bad.stdout
    assert summary(bad)["anomalies"] == 1

    good = verify("--check-history", str(write_history(tmp_path / "good.jsonl", history(with_aborted_read=False))))
    assert good.returncode == 0, f"stdout:\n{good.stdout}\nstderr:\n{good.stderr}"
    assert summary(good)["anomalies"] == 0


def test_check_history_names_the_line_it_cannot_read(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(history(with_aborted_read=False)[0]) + "\n{\"recordRead\": 7}\n")
    result = verify("--check-history", str(path))
    assert result.returncode == 1
    assert "history line 2" in result.stderr
