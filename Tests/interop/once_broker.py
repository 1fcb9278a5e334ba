"""Runs a real `once broker` process for the interop tests.

Every test talks to a separate broker process over loopback, so a crash, a hang or a
leaked file descriptor in the broker shows up as a failing test rather than being hidden
by an in-process harness.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_PR_SET_PDEATHSIG = 1


def broker_binary() -> Path:
    """`$ONCE_BIN`, else the release build, else the debug build of this checkout."""
    explicit = os.environ.get("ONCE_BIN")
    if explicit:
        return Path(explicit)
    release = REPO_ROOT / ".build" / "release" / "once"
    if release.exists():
        return release
    debug = REPO_ROOT / ".build" / "debug" / "once"
    if debug.exists():
        return debug
    return release


def free_port() -> int:
    """A loopback port that was free a moment ago; the kernel picks it, so parallel runs rarely collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # If pytest itself is killed (CI timeout, watchdog), the broker must not outlive it.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class BrokerError(AssertionError):
    """The broker did not start, did not stop cleanly, or died when it should not have."""


class Broker:
    """One `once broker` process with its own data directory, ports and log file.

    The data directory and ports survive `kill9()`/`restart()`, so a restarted broker
    recovers the same log and clients can reconnect to the same address.
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 60.0,
        binary: Path | None = None,
        listeners: list[str] | None = None,
    ) -> None:
        self.binary = Path(binary) if binary else broker_binary()
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self._listeners = list(listeners or [])
        self._pick_ports()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._served = False
        self._readers: list[threading.Thread] = []
        self._log_lock = threading.Lock()
        self._ready = threading.Event()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def address(self, listener: str) -> str:
        """`host:port` of the listener named `listener` (its security protocol's name)."""
        return f"127.0.0.1:{self.listener_ports[listener.upper()]}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        if self.listener_ports:
            listen = ["--listeners", ",".join(f"{name}://{self.address(name)}" for name in self.listener_ports)]
        else:
            listen = ["--listen", self.bootstrap, "--advertised-listener", self.bootstrap]
        return [
            str(self.binary),
            "broker",
            "--data-dir", str(self.data_dir),
            *listen,
            "--node-id", "1",
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            *self.extra_args,
        ]

    # Lifecycle

    def _pick_ports(self) -> None:
        # One port per listener, by listener name; the first is what `bootstrap` names.
        self.listener_ports = {name.upper(): free_port() for name in self._listeners}
        self.port = next(iter(self.listener_ports.values()), None) or free_port()
        self.metrics_port = free_port()

    def start(self) -> "Broker":
        """Starts the broker. A port `free_port` chose can be taken (as another connection's
        ephemeral port) before the broker binds it; until the broker has once served, its ports are
        nobody's yet, so they are picked again and the start retried."""
        for attempt in range(3):
            try:
                self._start_once()
                self._served = True
                return self
            except BrokerError as error:
                if self._served or attempt == 2 or "Address already in use" not in str(error):
                    raise
                self._note(f"=== a port was taken before the broker bound it; new ports: {error}".splitlines()[0])
                self._pick_ports()
        return self

    def _start_once(self) -> None:
        if not self.binary.exists():
            raise BrokerError(f"broker binary not found at {self.binary}; build it or set ONCE_BIN")
        if self.is_alive():
            raise BrokerError("broker already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self._note(f"=== start #{self.starts}: {' '.join(self.command())}")
        self._ready = threading.Event()
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, "out", True), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, "err", False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if self.process.poll() is not None:
                self._join_readers()
                raise BrokerError(
                    f"broker exited with code {self.process.returncode} before printing 'ready'\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self._hard_kill()
                raise BrokerError(f"broker printed no 'ready' line within {self.ready_timeout}s\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, and insist on exit code 0: a graceful shutdown that fails is a bug."""
        proc = self._require_process()
        if proc.poll() is not None:
            self._join_readers()
            raise BrokerError(f"broker had already exited with code {proc.returncode}\n{self.log_tail()}")
        self._note("=== SIGTERM")
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._hard_kill()
            raise BrokerError(f"broker ignored SIGTERM for {timeout}s\n{self.log_tail()}") from None
        self._join_readers()
        self._note(f"=== exited with code {code}")
        if code != 0:
            raise BrokerError(f"broker exited with code {code} after SIGTERM\n{self.log_tail()}")
        return code

    def kill9(self) -> None:
        """SIGKILL with no warning: whatever was acknowledged must survive this."""
        self._require_process()
        self._note("=== SIGKILL")
        self._hard_kill()

    def restart(self) -> "Broker":
        """Start again on the same data directory and ports (after `kill9()` or `stop()`)."""
        if self.is_alive():
            raise BrokerError("restart() needs a stopped broker; call stop() or kill9() first")
        return self.start()

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def assert_alive(self) -> None:
        if not self.is_alive():
            code = self.process.returncode if self.process else None
            raise BrokerError(f"broker process is gone (exit code {code})\n{self.log_tail()}")

    def cleanup(self) -> None:
        """Teardown for fixtures: never leaves a process behind, even if the test broke mid-way."""
        if self.is_alive():
            self._hard_kill()

    # Logs

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 200) -> str:
        text = self.log_text().splitlines()
        return "\n".join(text[-lines:])

    # Internals

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise BrokerError("broker was never started")
        return self.process

    def _hard_kill(self) -> None:
        proc = self._require_process()
        if proc.poll() is None:
            try:
                # The whole session, so a wrapper script and its child die together.
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(30)
        self._join_readers()

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(10)

    def _note(self, line: str) -> None:
        with self._log_lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def _pump(self, stream, tag: str, watch_ready: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._note(f"[{tag}] {line}")
            if watch_ready and "ready" in line:
                self._ready.set()
        stream.close()
