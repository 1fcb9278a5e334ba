"""The README's quick start, run as written: every command of its shell block, in order, against a
real broker. `once` is found on PATH (the install step puts it there) and finds the broker through
ONCE_BROKERS; kcat's fixed address is rewritten to this broker's port. A README edit that breaks a
command breaks this test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from confluent_helpers import read_to_end
from once_broker import broker_binary

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_ADDRESS = "127.0.0.1:9092"


def quick_start_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README's quick start has no ```sh block"
    commands = [line.strip() for line in block.group(1).splitlines()]
    return [c for c in commands if c and not c.startswith("#")]


def test_quick_start_runs_as_written(broker, tmp_path):
    assert shutil.which("kcat"), "kcat is not installed (scripts/install-deps.sh installs it)"
    commands = quick_start_commands()
    assert any(c.startswith("once ") for c in commands), commands
    assert any(c.startswith("kcat ") or "| kcat " in c for c in commands), commands

    env = dict(os.environ)
    env["PATH"] = f"{broker_binary().parent}{os.pathsep}{env['PATH']}"
    env["ONCE_BROKERS"] = broker.bootstrap
    outputs = []
    for command in commands:
        runnable = command.replace(DEFAULT_ADDRESS, broker.bootstrap)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", runnable], env=env, cwd=tmp_path,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert done.returncode == 0, (
            f"README command failed: {command}\nstdout:\n{done.stdout.decode()}\nstderr:\n{done.stderr.decode()}")
        outputs.append((command, done.stdout.decode()))

    by_command = dict(outputs)
    # What the README promises each reading command prints.
    kcat_read = next(out for c, out in outputs if c.startswith("kcat") and " -C " in c)
    assert sorted(kcat_read.splitlines()) == ["k1=hello @0", "k2=world @1"], kcat_read
    once_read = next(out for c, out in outputs if c.startswith("once consume"))
    assert once_read.splitlines() == ["order-1\tcharged"], once_read
    assert any("payments" in out for c, out in by_command.items() if c.startswith("once topic create"))

    # librdkafka sees what the quick start wrote, where the README's topic has three partitions.
    records = read_to_end(broker, "payments", range(3))
    assert [(r.key, r.value) for r in records] == [(b"order-1", b"charged")]
