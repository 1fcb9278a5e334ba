"""How the broker's cost grows with partitions: one `once broker` (release build) holding 10,000
partitions. Prints RSS, open descriptors, Metadata latency, produce throughput spread over every
partition against one partition, and restart time after kill -9 with the log filled.

usage: python3 bench/many_partitions.py [--partitions N] [--fill-gb G] [--records N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return -1


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Broker:
    def __init__(self, binary: Path, data: Path, extra: list[str]) -> None:
        self.binary, self.data, self.extra = binary, data, extra
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Starts the broker; seconds until it prints its ready line."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(self.binary), "broker", "--data-dir", str(self.data), "--listen", self.bootstrap,
             "--log-level", "warning", *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if "ready" in line:
                return time.monotonic() - t0
        raise RuntimeError("broker exited before ready")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


LINGER_MS = 5


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce(bootstrap: str, topic: str, count: int, size: int, partitions: int) -> float:
    """Records per second for `count` records of `size` bytes, round-robin over `partitions`."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": LINGER_MS, "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 1_048_576})
    value = b"x" * size
    p.produce(topic, value=value, partition=0)
    p.flush(60)
    t0 = time.monotonic()
    for i in range(count):
        while True:
            try:
                p.produce(topic, value=value, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(600)
    assert left == 0, f"{left} records unacknowledged"
    return count / (time.monotonic() - t0)


def du_gb(path: Path) -> float:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0]) / 1e9


def metadata_ms(admin: AdminClient, topic: str | None, rounds: int = 20) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.monotonic()
        md = admin.list_topics(topic=topic, timeout=60)
        samples.append((time.monotonic() - t0) * 1000)
        assert topic is None or len(md.topics[topic].partitions) > 0
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=10_000)
    ap.add_argument("--fill-gb", type=float, default=10.0)
    ap.add_argument("--records", type=int, default=500_000, help="records per throughput run")
    ap.add_argument("--binary", default=str(REPO / ".build/release/once"))
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--broker-arg", action="append", default=[], help="extra broker flag, e.g. --broker-arg=--max-open-files=20000")
    args = ap.parse_args()
    n = args.partitions
    global LINGER_MS
    LINGER_MS = args.linger_ms
    data = Path(tempfile.mkdtemp(prefix="once-many-", dir=os.environ.get("ONCE_BENCH_DIR", "/tmp")))
    broker = Broker(Path(args.binary), data, ["--num-partitions", "1", *args.broker_arg])
    try:
        print(f"start (empty): {broker.start():.2f} s")
        pid = broker.proc.pid
        print(f"empty broker: rss_mb={rss_mb(pid):.0f} fds={fds(pid)}")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        t0 = time.monotonic()
        for f in admin.create_topics([NewTopic("spread", n, 1), NewTopic("single", 1, 1)]).values():
            f.result()
        print(f"create {n} partitions: {time.monotonic() - t0:.2f} s; rss_mb={rss_mb(pid):.0f} fds={fds(pid)}")
        print(f"metadata one topic of {n} partitions: median {metadata_ms(admin, 'spread'):.1f} ms")
        print(f"metadata all topics: median {metadata_ms(admin, None):.1f} ms")

        # Broker CPU per record separates the broker's cost from the client's (librdkafka's per-
        # partition batching dominates when records are spread thin).
        c0 = cpu_seconds(pid)
        single = produce(broker.bootstrap, "single", args.records, 100, 1)
        c1 = cpu_seconds(pid)
        print(f"produce 100 B x {args.records}, one partition, linger.ms={LINGER_MS}: {single:,.0f} rec/s, "
              f"broker {(c1 - c0) / args.records * 1e6:.2f} us/rec; rss_mb={rss_mb(pid):.0f} fds={fds(pid)}")
        spread = produce(broker.bootstrap, "spread", args.records, 100, n)
        c2 = cpu_seconds(pid)
        print(f"produce 100 B x {args.records}, over {n} partitions, linger.ms={LINGER_MS}: {spread:,.0f} rec/s "
              f"({spread / single:.2f}x), broker {(c2 - c1) / args.records * 1e6:.2f} us/rec; rss_mb={rss_mb(pid):.0f} fds={fds(pid)}")

        size = 10_000
        fill = int(args.fill_gb * 1e9 / size)
        if fill == 0:
            broker.stop()
            return
        t0 = time.monotonic()
        rate = produce(broker.bootstrap, "spread", fill, size, n)
        print(f"fill {fill * size / 1e9:.1f} GB over {n} partitions: {time.monotonic() - t0:.1f} s ({rate * size / 1e6:.0f} MB/s); "
              f"rss_mb={rss_mb(pid):.0f} fds={fds(pid)}; on disk {du_gb(data):.1f} GB")

        broker.kill9()
        ready = broker.start()
        pid = broker.proc.pid
        print(f"restart after kill -9: ready in {ready:.2f} s; rss_mb={rss_mb(pid):.0f} fds={fds(pid)}")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        t0 = time.monotonic()
        metadata_ms(admin, "spread", rounds=1)
        print(f"first metadata after restart: {(time.monotonic() - t0) * 1000:.0f} ms")
        t0 = time.monotonic()
        produce(broker.bootstrap, "spread", n, 100, n)
        print(f"first produce to every partition after restart (recovers each): {time.monotonic() - t0:.1f} s; "
              f"rss_mb={rss_mb(pid):.0f} fds={fds(pid)}")
        broker.stop()
    finally:
        if broker.proc and broker.proc.poll() is None:
            broker.kill9()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
