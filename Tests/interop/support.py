"""Small helpers shared by the interop tests: sizes, deadlines, naming."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from typing import Callable, TypeVar

T = TypeVar("T")


def record_count(default: int = 100_000) -> int:
    """How many records the big tests move; `ONCE_INTEROP_RECORDS=5000` makes a quick local run."""
    value = int(os.environ.get("ONCE_INTEROP_RECORDS", default))
    if value < 10:
        raise ValueError("ONCE_INTEROP_RECORDS must be at least 10")
    return value


def scaled_timeout(base: float, per_record: float = 0.0015) -> float:
    """A hang guard that grows with the record count; it only stops a stuck test, never judges speed."""
    return base + record_count() * per_record


_counter = itertools.count()


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:8]}"


class Deadline:
    """A monotonic budget for loops that wait on a client; running out means a hang, not slowness."""

    def __init__(self, seconds: float, what: str) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.what = what

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def check(self, detail: str = "") -> None:
        if self.expired():
            raise AssertionError(f"gave up after {self.seconds:.0f}s waiting for {self.what} {detail}".rstrip())


def wait_until(predicate: Callable[[], T], seconds: float, what: str, interval: float = 0.1) -> T:
    """Polls `predicate` until it returns something truthy; fails the test if it never does."""
    deadline = Deadline(seconds, what)
    last: T = predicate()
    while not last:
        deadline.check()
        time.sleep(interval)
        last = predicate()
    return last


def key_for(index: int, distinct_keys: int = 257) -> bytes:
    return f"key-{index % distinct_keys}".encode()


def value_for(index: int) -> bytes:
    return f"value-{index:09d}".encode()


def index_of(value: bytes) -> int:
    text = value.decode()
    if not text.startswith("value-"):
        raise AssertionError(f"unexpected record value {value!r}")
    return int(text[len("value-"):])
