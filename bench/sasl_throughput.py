#!/usr/bin/env python3
"""Produce and fetch throughput and broker CPU per record over PLAINTEXT, SASL_PLAINTEXT (SCRAM-SHA-512)
and SASL_SSL (SCRAM-SHA-512 in TLS), on one broker with the three listeners, in one run (issue 12):
SASL costs one exchange per connection, so per record it should cost nothing. The driver is
`once perf produce|consume` (OnceClient); the broker's user+system time comes from /proc/PID/stat
before and after each step, so the CPU figure is the broker's alone.

usage: bench/sasl_throughput.py ONCE_BIN [--records N] [--size BYTES] [--reverse]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "interop"))
from once_broker import free_port  # noqa: E402
from tls_material import make_tls_material  # noqa: E402
from tls_throughput import cpu_seconds, rate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("once")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    # Later runs find a page cache the earlier ones filled; reverse the order to see the effect.
    parser.add_argument("--reverse", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sasl-bench-"))
    tls = make_tls_material(work / "tls")
    ports = {name: free_port() for name in ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")}
    broker = subprocess.Popen(
        [args.once, "broker", "--data-dir", str(work / "data"), "--log-level", "warning",
         "--listeners", ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items()),
         "--ssl-certificate-location", str(tls.server.certificate), "--ssl-key-location", str(tls.server.key)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={"ONCE_ADD_SCRAM": "SCRAM-SHA-512=[name=bench,password=bench-password]", "PATH": "/usr/bin:/bin"})
    assert "ready" in broker.stdout.readline()
    sasl = {"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench", "sasl.password": "bench-password"}
    runs = [
        ("PLAINTEXT", {}),
        ("SASL_PLAINTEXT", {"security.protocol": "SASL_PLAINTEXT", **sasl}),
        ("SASL_SSL", {"security.protocol": "SASL_SSL", "ssl.ca.location": str(tls.ca.certificate), **sasl}),
    ]
    try:
        for name, props in (reversed(runs) if args.reverse else runs):
            topic = f"sasl-bench-{name.lower()}"
            x = [a for k, v in props.items() for a in ("-X", f"{k}={v}")]
            for step in ["produce", "fetch"]:
                before = cpu_seconds(broker.pid)
                perf = (["produce", "--record-size", str(args.size), "--acks", "1", "--disable-idempotence"]
                        if step == "produce" else ["consume"])
                out = subprocess.run(
                    [args.once, "perf", *perf, "--bootstrap-server", f"127.0.0.1:{ports[name]}", "--topic", topic,
                     "--num-records", str(args.records), "--no-progress", *x],
                    capture_output=True, text=True, timeout=600).stdout
                per_second = rate(out, r"([0-9.]+) records/sec")
                cpu = cpu_seconds(broker.pid) - before
                print(f"{name:14} {step:7} {per_second:>12,.0f} rec/s  broker {cpu:6.2f} s CPU, "
                      f"{cpu / args.records * 1e6:.3f} µs/rec", flush=True)
    finally:
        broker.terminate()
        broker.wait(30)


if __name__ == "__main__":
    main()
