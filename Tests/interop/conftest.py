"""Fixtures for the real-client interop suite: a `once broker` per test, hang guards, and the
broker's log attached to every failure report."""

from __future__ import annotations

import faulthandler
import signal
import sys
from pathlib import Path

import pytest

from once_broker import Broker

DEFAULT_TIMEOUT_SECONDS = 120.0
# The watchdog ends the whole run if a test is stuck inside C code where SIGALRM cannot reach it.
WATCHDOG_GRACE_SECONDS = 120.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "timeout_seconds(n): fail the test if its call phase is still running after n seconds "
        f"(default {DEFAULT_TIMEOUT_SECONDS:.0f})",
    )


class TestTimedOut(AssertionError):
    """Raised inside a test that ran past its hang guard."""

    __test__ = False


def _timeout_for(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout_seconds")
    return float(marker.args[0]) if marker else DEFAULT_TIMEOUT_SECONDS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    faulthandler.dump_traceback_later(_timeout_for(item) + WATCHDOG_GRACE_SECONDS, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    seconds = _timeout_for(item)

    def on_alarm(signum, frame):
        raise TestTimedOut(f"{item.nodeid} still running after {seconds:.0f}s (hang guard)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    # librdkafka can log the same protocol error thousands of times a second; keep CI logs readable.
    report.sections = [(title, _clip(text)) for title, text in report.sections]
    if report.failed:
        for broker in getattr(item, "_once_brokers", []):
            report.sections.append(
                (f"once broker log, {report.when} ({broker.log_path})", broker.log_tail(300) or "<empty>")
            )


def _clip(text: str, head: int = 40, tail: int = 160) -> str:
    lines = text.splitlines()
    if len(lines) <= head + tail:
        return text
    dropped = len(lines) - head - tail
    return "\n".join([*lines[:head], f"... {dropped} lines left out ...", *lines[-tail:]])


@pytest.fixture
def broker_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """Builds and starts brokers for one test; each is stopped with SIGTERM afterwards and must exit 0."""
    brokers: list[Broker] = []
    request.node._once_brokers = brokers

    def make(
        *,
        start: bool = True,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        listeners: list[str] | None = None,
    ) -> Broker:
        """`listeners` names security protocols (["PLAINTEXT", "SSL"]), one loopback port each;
        without it the broker has one PLAINTEXT listener."""
        n = len(brokers)
        broker = Broker(
            tmp_path / f"data-{n}", tmp_path / f"broker-{n}.log", extra_args=extra_args, env=env, listeners=listeners
        )
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make

    errors = []
    for broker in brokers:
        try:
            if broker.is_alive():
                broker.stop()
        except AssertionError as error:
            errors.append(error)
        finally:
            broker.cleanup()
    if errors:
        raise errors[0]


@pytest.fixture
def broker(broker_factory) -> Broker:
    """A running broker with default settings (auto-create on, one partition per new topic)."""
    return broker_factory()


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory):
    """CA, server, client, expired and untrusted certificates made by openssl for this session
    (tls_material.py); `tls_material.broker_args()` gives a broker's TLS flags."""
    from tls_material import make_tls_material

    return make_tls_material(tmp_path_factory.mktemp("tls"))
