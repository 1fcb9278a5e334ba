"""End-to-end exactly-once: the seed's read-process-write loop copies 10,000+ records while the
processor is SIGKILLed and restarted at seeded random moments; the output, read with
read_committed, holds every input record exactly once. Also send_offsets_to_transaction on its own:
committed with the output, and not when the transaction aborts."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import confluent_helpers as ck
from support import Deadline, index_of, key_for, unique_topic, value_for

HERE = Path(__file__).resolve().parent
RECORDS = 10_000


def start_processor(client: str, broker, source: str, sink: str, group: str, tid: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "eos_processor.py"), client, broker.bootstrap, source, sink, group, tid],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    line = process.stdout.readline()
    assert line.strip() == "ready", f"processor did not start: {line}{process.stdout.read() if process.poll() is not None else ''}"
    return process


def read_committed_output(broker, topic: str) -> list[bytes]:
    return [r.value for r in ck.read_to_end(broker, topic, [0, 1], **{"isolation.level": "read_committed"})]


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
@pytest.mark.timeout_seconds(420)
def test_read_process_write_survives_processor_sigkills(broker, client):
    source, sink = unique_topic("eos-in"), unique_topic("eos-out")
    ck.create_topic(broker, source, 2)
    ck.create_topic(broker, sink, 2)
    ck.produce_indexed(broker, source, range(RECORDS))
    group, tid = unique_topic("processor-group"), unique_topic("my-processor")
    rng = random.Random(7)

    kills = 0
    process = start_processor(client, broker, source, sink, group, tid)
    try:
        for _ in range(3):
            time.sleep(rng.uniform(1.0, 4.0))
            process.kill()  # SIGKILL: no abort, no leave-group, an open transaction left behind
            process.wait(10)
            kills += 1
            process = start_processor(client, broker, source, sink, group, tid)
        deadline = Deadline(300, f"{RECORDS} outputs")
        while True:
            deadline.check()
            produced = sum(ck.watermarks(broker, sink, p)[1] for p in (0, 1))
            if produced >= RECORDS:
                values = read_committed_output(broker, sink)
                if len(values) >= RECORDS:
                    break
            time.sleep(1)
    finally:
        process.kill()
        process.wait(10)
    assert kills == 3
    indices = [index_of(v.removeprefix(b"processed:")) for v in values]
    duplicates = len(indices) - len(set(indices))
    assert duplicates == 0, f"{duplicates} inputs were output more than once"
    assert sorted(indices) == list(range(RECORDS)), "every input is output exactly once"
    uncommitted = [r.value for r in ck.read_to_end(broker, sink, [0, 1], **{"isolation.level": "read_uncommitted"})]
    assert len(uncommitted) >= len(values), "read_uncommitted also sees what the kills aborted"


def test_send_offsets_committed_with_output_not_when_aborted(broker):
    source, sink = unique_topic("so-in"), unique_topic("so-out")
    ck.create_topic(broker, source, 1)
    ck.create_topic(broker, sink, 1)
    group = unique_topic("so-group")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.assign([TopicPartition(source, 0, 0)])
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique_topic("so-tid")})
    producer.init_transactions(30)

    def committed() -> int:
        return consumer.committed([TopicPartition(source, 0)], timeout=10)[0].offset

    producer.begin_transaction()
    producer.produce(sink, value=b"out-1")
    producer.send_offsets_to_transaction([TopicPartition(source, 0, 5)], consumer.consumer_group_metadata(), 30)
    # A read_uncommitted consumer does not ask for stable offsets: it sees the last committed one.
    peek = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "isolation.level": "read_uncommitted"})
    assert peek.committed([TopicPartition(source, 0)], timeout=10)[0].offset < 0, "not visible before the commit"
    peek.close()
    producer.commit_transaction(30)
    assert committed() == 5

    producer.begin_transaction()
    producer.produce(sink, value=b"out-2")
    producer.flush(30)
    producer.send_offsets_to_transaction([TopicPartition(source, 0, 9)], consumer.consumer_group_metadata(), 30)
    producer.abort_transaction(30)
    assert committed() == 5, "an aborted transaction's offsets are dropped"
    consumer.close()

    # A broker restart replays __consumer_offsets with the markers and reaches the same answer.
    broker.kill9()
    broker.restart()
    again = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    assert again.committed([TopicPartition(source, 0)], timeout=10)[0].offset == 5
    again.close()
    assert [r.value for r in ck.read_to_end(broker, sink, [0], **{"isolation.level": "read_committed"})] == [b"out-1"]
