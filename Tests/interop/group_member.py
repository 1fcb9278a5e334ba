"""One consumer-group member, run as its own process so a test can SIGKILL it; `Member` starts
one and collects what it reports (test_groups.py, test_kip848_groups.py, test_kip848_migration.py).

    python3 group_member.py confluent|confluent-consumer|kafka-python BOOTSTRAP TOPIC GROUP [INSTANCE_ID]

confluent-consumer speaks KIP-848 (group.protocol=consumer): the broker decides session and
heartbeat timing there, and partitions arrive and leave incrementally. INSTANCE_ID makes it static.

Prints one JSON object per line on stdout: {"assigned": [partitions]} after every rebalance, and
{"p": partition, "o": offset, "v": value} for each record, printed only after its offset was
committed synchronously, so every printed record is both processed and committed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


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

    consumer.subscribe([topic], on_assign=on_assign)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            emit({"error": str(msg.error())})
            continue
        consumer.commit(message=msg, asynchronous=False)
        emit({"p": msg.partition(), "o": msg.offset(), "v": msg.value().decode()})
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
        try:
            consumer.commit(message=msg, asynchronous=False)
        except Exception as error:  # a commit from a stale epoch is refused; the record is not claimed
            emit({"error": str(error)})
            continue
        emit({"p": msg.partition(), "o": msg.offset(), "v": msg.value().decode()})
    consumer.close()


def run_kafka_python(bootstrap: str, topic: str, group: str) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer
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
                consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
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
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in iter(self.process.stdout.readline, b""):
            event = json.loads(raw)
            with self._lock:
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


def wait_for_values(group: list[Member], expected: set[str], seconds: float = 60) -> None:
    # Imported here: this file also runs as the member process, which needs none of the suite.
    from support import Deadline

    deadline = Deadline(seconds, "every produced record to be consumed")
    while not expected <= set(seen_values(group)):
        missing = expected - set(seen_values(group))
        deadline.check(f"({len(missing)} missing, e.g. {sorted(missing)[:3]})")
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
