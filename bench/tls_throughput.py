#!/usr/bin/env python3
"""Produce and fetch throughput and broker CPU per record over PLAINTEXT and SSL, on one broker
with both listeners, in one run (issue 12). Certificates are made with openssl in a temporary
directory (Tests/interop/tls_material.py). The broker's user+system time is read from
/proc/PID/stat before and after each step, so the CPU figure is the broker's alone.

Drivers: `once perf produce|consume` (OnceClient, the default), or with --eosbench BIN a build of
../shared/bench/eosbench.c that also applies EOSBENCH_X="k=v;k=v" as librdkafka properties (the
security settings); that driver is built outside this repository.

usage: bench/tls_throughput.py ONCE_BIN [--records N] [--size BYTES] [--eosbench BIN] [--ssl-first]
                               [--storage file|memory]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "interop"))
from once_broker import free_port  # noqa: E402
from tls_material import make_tls_material  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rate(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    assert match, text
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("once")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--eosbench")
    # The second protocol runs on a page cache the first one filled; alternate to see the order effect.
    parser.add_argument("--ssl-first", action="store_true")
    parser.add_argument("--storage", default="file", choices=["file", "memory"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tls-bench-"))
    tls = make_tls_material(work / "tls")
    plain_port, ssl_port = free_port(), free_port()
    broker = subprocess.Popen(
        [args.once, "broker", "--data-dir", str(work / "data"), "--log-level", "warning", "--storage", args.storage,
         "--listeners", f"PLAINTEXT://127.0.0.1:{plain_port},SSL://127.0.0.1:{ssl_port}",
         "--ssl-certificate-location", str(tls.server.certificate), "--ssl-key-location", str(tls.server.key)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert "ready" in broker.stdout.readline()
    ssl_x = {"security.protocol": "SSL", "ssl.ca.location": str(tls.ca.certificate)}
    try:
        runs = [("PLAINTEXT", plain_port, {}), ("SSL", ssl_port, ssl_x)]
        for name, port, props in (reversed(runs) if args.ssl_first else runs):
            topic = f"tls-bench-{name.lower()}"
            address = f"127.0.0.1:{port}"
            for step in ["produce", "fetch"]:
                before = cpu_seconds(broker.pid)
                if args.eosbench:
                    env = {**os.environ, "EOSBENCH_X": ";".join(f"{k}={v}" for k, v in props.items())}
                    command = ([args.eosbench, "P", address, topic, str(args.records), str(args.size), "plain"]
                               if step == "produce" else
                               [args.eosbench, "C", address, topic, str(args.records), "read_uncommitted"])
                    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600).stdout
                    per_second = rate(out, r"msgs_per_s=([0-9.]+)")
                else:
                    x = [a for k, v in props.items() for a in ("-X", f"{k}={v}")]
                    perf = (["produce", "--record-size", str(args.size), "--acks", "1", "--disable-idempotence"]
                            if step == "produce" else ["consume"])
                    out = subprocess.run(
                        [args.once, "perf", *perf, "--bootstrap-server", address, "--topic", topic,
                         "--num-records", str(args.records), "--no-progress", *x],
                        capture_output=True, text=True, timeout=600).stdout
                    per_second = rate(out, r"([0-9.]+) records/sec")
                cpu = cpu_seconds(broker.pid) - before
                print(f"{name:9} {step:7} {per_second:>12,.0f} rec/s  broker {cpu:6.2f} s CPU, "
                      f"{cpu / args.records * 1e6:.3f} µs/rec", flush=True)
    finally:
        broker.terminate()
        broker.wait(30)


if __name__ == "__main__":
    main()
