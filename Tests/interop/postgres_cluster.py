"""A private PostgreSQL cluster on a loopback port for the postgres-engine tests: they restart and
crash it, which the shared cluster of scripts/start-services.sh (used by other tests) must not
suffer. Debian's server binaries; fsync=off, as a throwaway cluster, so a commit survives a
PostgreSQL process crash (the page cache keeps it) but not a power cut."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid

from once_broker import free_port


def _server_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class PostgresCluster:
    @staticmethod
    def available() -> bool:
        return _server_bin() is not None and shutil.which("psql") is not None

    def __init__(self) -> None:
        self.bin = _server_bin()
        if self.bin is None:
            raise AssertionError("PostgreSQL server binaries not found (scripts/install-deps.sh installs postgresql)")
        self.dir = tempfile.mkdtemp(prefix="once-pg-")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.log = os.path.join(self.dir, "server.log")
        subprocess.run(
            _as_postgres([f"{self.bin}/initdb", "-D", self.dir + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True, capture_output=True)

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres([f"{self.bin}/pg_ctl", "-D", self.dir + "/data", "-l", self.log, "-w", "-o", options, *args]),
            check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """An immediate stop (PostgreSQL's crash: no checkpoint, recovery from WAL at start) and a start."""
        self._ctl("restart", "-m", "immediate")

    def stop(self) -> None:
        self._ctl("stop", "-m", "immediate")

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-qtAX", "-c", sql],
            check=True, capture_output=True, text=True, timeout=60)
        return out.stdout.strip()

    def new_database(self) -> str:
        """A fresh database's libpq URL."""
        name = "once_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def cleanup(self) -> None:
        try:
            self.stop()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
