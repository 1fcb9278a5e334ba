"""One consumer-group member, run as its own process so a test can SIGKILL it; `Member` starts
one and collects what it reports (test_groups.py, test_kip848_groups.py, test_kip848_migration.py).

    python3 group_member.py confluent|confluent-consumer|kafka-python BOOTSTRAP TOPIC GROUP [INSTANCE_ID]

confluent-consumer speaks KIP-848 (group.protocol=consumer): the broker decides session and
heartbeat timing there, and partitions arrive and leave incrementally. INSTANCE_ID makes it static.

Prints one JSON object per line on stdout: {"assigned": [partitions]} after every rebalance, and
{"p": partition, "o": offset, "v": value} for each record, printed only after its offset was
committed synchronously, so every printed record is both processed and committed; a record whose
commit is refused is printed as an error and read again (see claim()).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def claim(consumer, msg) -> None:
    """Commits a record's successor and only then prints the record. A refused commit leaves the
    record unclaimed, so the consumer goes back to it: Kafka 4.0 refuses a commit that races the
    heartbeat bumping the member's epoch (STALE_MEMBER_EPOCH; ILLEGAL_GENERATION for a classic
    member), and moving on would let the next record's commit pass over this one. A partition
    that moved meanwhile cannot be rewound; its new owner starts from the committed offset,
    which is this record's."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        consumer.commit(message=msg, asynchronous=False)
    except KafkaException as error:
        emit({"error": f"commit of partition {msg.partition()} offset {msg.offset()}: {error}"})
        try:
            consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
        except KafkaException as refused:
            emit({"error": f"rewind of partition {msg.partition()} to {msg.offset()} after {error}: {refused}"})
        return
    emit({"p": msg.partition(), "o": msg.offset(), "v": msg.value().decode()})


def run_confluent(bootstrap: str, topic: str, group: str) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "topic.metadata.refresh.interval.ms": 2000,
        }
    )

    def on_assign(c, partitions):
        emit({"assigned": sorted(tp.partition for tp in partitions)})

    # Reported for a failure's history only; the eager protocol revokes everything before a rejoin.
    def on_revoke(c, partitions):
        emit({"revoked": sorted(tp.partition for tp in partitions)})

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            emit({"error": str(msg.error())})
            continue
        claim(consumer, msg)
    consumer.close()


def run_confluent_consumer_protocol(bootstrap: str, topic: str, group: str, instance_id: str | None = None) -> None:
    from confluent_kafka import Consumer

    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    if instance_id:
        config["group.instance.id"] = instance_id
    consumer = Consumer(config)

    # The callbacks carry increments (cooperative), applied after they return, so the member
    # keeps the whole assignment itself.
    owned: set[int] = set()

    def assigned(c, partitions):
        owned.update(tp.partition for tp in partitions)
        emit({"assigned": sorted(owned)})

    def revoked(c, partitions):
        owned.difference_update(tp.partition for tp in partitions)
        emit({"revoked": sorted(tp.partition for tp in partitions)})
        emit({"assigned": sorted(owned)})

    consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            emit({"error": str(msg.error())})
            continue
        claim(consumer, msg)
    consumer.close()


def run_kafka_python(bootstrap: str, topic: str, group: str) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            emit({"assigned": sorted(tp.partition for tp in assigned)})

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        metadata_max_age_ms=2000,
    )
    consumer.subscribe([topic], listener=Listener())
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop:
        batches = consumer.poll(timeout_ms=200)
        for tp, records in batches.items():
            for record in records:
                # Only this record's successor: commit() alone would cover the whole polled batch.
                try:
                    consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
                except KafkaError as error:
                    # As claim(): back to the unclaimed record, the rest of the batch dropped.
                    emit({"error": f"commit of partition {tp.partition} offset {record.offset}: {error!r}"})
                    try:
                        consumer.seek(tp, record.offset)
                    except (KafkaError, ValueError) as refused:
                        emit({"error": f"rewind of partition {tp.partition} to {record.offset} after {error!r}: {refused!r}"})
                    break
                emit({"p": tp.partition, "o": record.offset, "v": record.value.decode()})
    consumer.close()


class Member:
    """A group_member.py process and what it reported: its assignments (the latest first to
    hand), revocations, committed records and errors."""

    def __init__(self, client: str, broker, topic: str, group: str, instance_id: str | None = None) -> None:
        self.client = client
        args = [sys.executable, os.path.abspath(__file__), client, broker.bootstrap, topic, group]
        if instance_id:
            args.append(instance_id)
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.assignment: list[int] | None = None
        self.assignments: list[list[int]] = []
        self.revocations: list[list[int]] = []
        self.records: list[tuple[int, int, str]] = []
        self.errors: list[str] = []
        # Every report but records, with when it arrived: a failure explains itself from it.
        self.timeline: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in iter(self.process.stdout.readline, b""):
            event = json.loads(raw)
            with self._lock:
                if "v" not in event:
                    self.timeline.append((time.monotonic(), event))
                if "assigned" in event:
                    self.assignment = event["assigned"]
                    self.assignments.append(event["assigned"])
                elif "revoked" in event:
                    self.revocations.append(event["revoked"])
                elif "error" in event:
                    self.errors.append(event["error"])
                else:
                    self.records.append((event["p"], event["o"], event["v"]))

    def snapshot(self) -> tuple[list[int] | None, list[tuple[int, int, str]]]:
        with self._lock:
            return self.assignment, list(self.records)

    def history(self, since: float) -> str:
        """What the member went through, for a failure message: its assignments, revocations and
        errors in order (seconds since `since`), the last offset it claimed per partition, and
        how its process ended if it did."""
        with self._lock:
            events = [f"{t - since:7.2f}s {json.dumps(e)}" for t, e in self.timeline]
            last: dict[int, int] = {}
            for p, o, _ in self.records:
                last[p] = max(o, last.get(p, -1))
        code = self.process.poll()
        head = f"{self.client} pid {self.process.pid} " + ("running" if code is None else f"exited {code}")
        return "\n".join([f"{head}; last claimed offset per partition {dict(sorted(last.items()))}", *events])

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(10)

    def stop(self) -> None:
        """SIGTERM: the member closes its consumer, which leaves the group (epoch -1, or -2 if static)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._reader.join(10)


def seen_values(group: list[Member]) -> list[str]:
    """Every value the group's members printed as processed and committed, duplicates kept."""
    return [v for m in group for (_, _, v) in m.snapshot()[1]]


STARTED = time.monotonic()


def wait_for_values(
    group: list[Member], expected: set[str], seconds: float = 60, explain: Callable[[set[str]], str] | None = None
) -> None:
    """Until every value in `expected` was claimed. On timeout the failure carries every member's
    history and what `explain` says about the missing values (say, the group's committed offsets)."""
    # Imported here: this file also runs as the member process, which needs none of the suite.
    from support import Deadline

    deadline = Deadline(seconds, "every produced record to be consumed")
    while not expected <= set(seen_values(group)):
        missing = expected - set(seen_values(group))
        if deadline.expired():
            report = [f"{len(missing)} missing, e.g. {sorted(missing)[:3]}"]
            if explain is not None:
                report.append(explain(missing))
            report += [f"member {n}: {m.history(STARTED)}" for n, m in enumerate(group)]
            deadline.check("\n".join(report))
        threading.Event().wait(0.1)


def main() -> None:
    client, bootstrap, topic, group = sys.argv[1:5]
    if client == "confluent":
        run_confluent(bootstrap, topic, group)
    elif client == "confluent-consumer":
        run_confluent_consumer_protocol(bootstrap, topic, group, sys.argv[5] if len(sys.argv) > 5 else None)
    elif client == "kafka-python":
        run_kafka_python(bootstrap, topic, group)
    else:
        raise SystemExit(f"unknown client {client}")


if __name__ == "__main__":
    main()
