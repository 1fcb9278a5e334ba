#!/usr/bin/env python3
"""Produce and consume throughput and broker CPU per record with the authorizer off and on, the
second with 505 ACLs in place (400 literal and 100 prefixed topic ACLs for other users, a DENY on
a prefix of the topic for another user, and the grants the client needs), so each request's
decisions walk a realistic index. Alternates the two (and which goes first) for ROUNDS rounds on one machine, loopback
only, with `once perf produce|consume` as the client; broker CPU is user+system time from
/proc/PID/stat around each run.

usage: bench/acl_overhead.py ONCE_BIN [RECORDS] [ROUNDS]
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

TICK = os.sysconf("SC_CLK_TCK")
TOPIC = "perf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary: str, data: str, port: int, args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [binary, "broker", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--log-level", "warning", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while "ready" not in (proc.stdout.readline() or "ready"):
        pass
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(30)


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def acls() -> list[AclBinding]:
    def binding(kind, name, pattern, principal, operation, permission=AclPermissionType.ALLOW):
        return AclBinding(kind, name, pattern, principal, "*", operation, permission)
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    out = [binding(ResourceType.TOPIC, f"other-{i}", literal, f"User:u{i}", AclOperation.READ) for i in range(400)]
    out += [binding(ResourceType.TOPIC, f"pre-{i}-", prefixed, f"User:u{i}", AclOperation.WRITE) for i in range(100)]
    out += [binding(ResourceType.TOPIC, "pe", prefixed, "User:mallory", AclOperation.ALL, AclPermissionType.DENY)]
    out += [binding(ResourceType.TOPIC, TOPIC, literal, "User:ANONYMOUS", op) for op in (AclOperation.WRITE, AclOperation.READ)]
    out += [binding(ResourceType.GROUP, "*", literal, "User:ANONYMOUS", AclOperation.READ)]
    out += [binding(ResourceType.BROKER, "kafka-cluster", literal, "User:ANONYMOUS", AclOperation.IDEMPOTENT_WRITE)]
    return out


def broker(binary: str, data: str, authorizer: bool) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    if not authorizer:
        proc = start(binary, data, port, [])
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        for future in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
            future.result(30)
        return proc, port
    # ANONYMOUS stores the ACLs as a super user, then is restarted as an ordinary principal.
    proc = start(binary, data, port, ["--authorizer", "on", "--super-users", "User:ANONYMOUS"])
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    for future in admin.create_acls(acls()).values():
        future.result(30)
    for future in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        future.result(30)
    del admin
    stop(proc)
    return start(binary, data, port, ["--authorizer", "on", "--super-users", "User:admin"]), port


def perf(binary: str, port: int, kind: str, records: int) -> str:
    args = ["--topic", TOPIC, "--num-records", str(records), "--no-progress"]
    if kind == "produce":
        args += ["--record-size", "100"]
    out = subprocess.run([binary, "perf", kind, "--bootstrap-server", f"127.0.0.1:{port}", *args],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[0]


def main() -> None:
    binary = sys.argv[1]
    records = int(sys.argv[2]) if len(sys.argv) > 2 else 300_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    for round_number in range(rounds):
        # Alternating which goes first, so drift on a shared machine does not favour one.
        for authorizer in ((False, True) if round_number % 2 == 0 else (True, False)):
            data = tempfile.mkdtemp(prefix="acl-overhead-")
            try:
                proc, port = broker(binary, data, authorizer)
                before = cpu_seconds(proc.pid)
                produced = perf(binary, port, "produce", records)
                middle = cpu_seconds(proc.pid)
                consumed = perf(binary, port, "consume", records)
                after = cpu_seconds(proc.pid)
                stop(proc)
            finally:
                shutil.rmtree(data, ignore_errors=True)
            print(f"round {round_number} authorizer {'on ' if authorizer else 'off'}: "
                  f"produce {produced}; broker {1e6 * (middle - before) / records:.2f} us CPU/record | "
                  f"consume {consumed}; broker {1e6 * (after - middle) / records:.2f} us CPU/record", flush=True)


if __name__ == "__main__":
    main()
