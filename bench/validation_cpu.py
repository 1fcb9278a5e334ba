#!/usr/bin/env python3
"""Broker CPU per produced record with each compression codec, for two broker binaries in one
run: the cost of validating every record on append (issue 11). Both brokers run side by side;
for each codec, confluent-kafka produces the same records to each in turn while the broker's
user+system time is read from /proc/PID/stat before and after.

usage: bench/validation_cpu.py BEFORE_BIN AFTER_BIN [RECORDS] [SIZE]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def start(binary: str, port: int) -> tuple[subprocess.Popen, str]:
    data = tempfile.mkdtemp(prefix="validation-cpu-")
    proc = subprocess.Popen(
        [binary, "broker", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert "ready" in line, f"{binary} did not start: {line!r}"
    return proc, data


def produce(port: int, topic: str, codec: str, records: int, size: int) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})  # its futures die with it
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "acks": 1, "linger.ms": 20,
                  "batch.num.messages": 10_000, "compression.type": codec, "queue.buffering.max.messages": 500_000})
    # Log-like values: compressible, as real payloads mostly are, and different per record.
    pad = "x" * max(0, size - 40)
    for i in range(records):
        value = f"order={i:010d} amount={i * 7 % 100_000:06d} {pad}".encode()[:size]
        while True:
            try:
                p.produce(topic, key=str(i % 1000).encode(), value=value)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(300) == 0


def main() -> None:
    before, after = sys.argv[1], sys.argv[2]
    records = int(sys.argv[3]) if len(sys.argv) > 3 else 300_000
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    brokers = {"before": (before, 19301), "after": (after, 19302)}
    running = {name: start(binary, port) for name, (binary, port) in brokers.items()}
    results: dict[tuple[str, str], float] = {}
    try:
        for codec in CODECS:
            # Alternate which binary goes first, so drift on a shared machine favours neither.
            order = ["before", "after"] if CODECS.index(codec) % 2 == 0 else ["after", "before"]
            for name in order:
                proc, _ = running[name]
                port = brokers[name][1]
                c0 = cpu_seconds(proc.pid)
                produce(port, f"v-{codec}", codec, records, size)
                time.sleep(0.2)  # let the last acknowledgement's bookkeeping land in the counters
                results[(name, codec)] = (cpu_seconds(proc.pid) - c0) / records * 1e6
    finally:
        for proc, data in running.values():
            proc.terminate()
            proc.wait(30)
            shutil.rmtree(data, ignore_errors=True)
    print(f"broker CPU per record (µs), {records} records of {size} bytes, acks=1, confluent-kafka")
    print("| codec | before | after | after - before |")
    print("|---|---|---|---|")
    for codec in CODECS:
        b, a = results[("before", codec)], results[("after", codec)]
        print(f"| {codec} | {b:.3f} | {a:.3f} | {a - b:+.3f} |")


if __name__ == "__main__":
    main()
