"""The sandbox's clock, in epoch milliseconds.

Withdrawal statuses, history windows, quotas and rate-limit windows are all computed
from this one clock, lazily, so a test can swap in :class:`ManualClock` and step through
a withdrawal's life without sleeping. The system clock can be moved *forward* at run time
(admin ``POST /_sandbox/clock``) to fast-forward a demo; it never moves back, so a
completed withdrawal never turns back into a processing one. Clock *skew* (a fault) is
separate: it only shifts what the exchange reports as server time and checks timestamps
against (see :mod:`treasury.sandbox.faults`).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def advance(self, ms: int) -> None: ...


class SystemClock:
    """Wall-clock time plus a forward-only offset."""

    def __init__(self) -> None:
        self._offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset_ms += ms


class ManualClock:
    """A clock that only moves when told to; thread-safe for :class:`SandboxThread` tests."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._now += ms

    def advance_s(self, seconds: float) -> None:
        self.advance(round(seconds * 1000))
