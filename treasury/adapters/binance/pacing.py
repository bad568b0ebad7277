"""The withdraw/apply pace: never two sends closer than ``1 / rate`` seconds.

The operator's rate (default 1/s) is a promise about money leaving, not only about the
exchange's weight budget, so it is enforced here, inside the client, for every caller.
The pace must also hold across a restart: the caller seeds it from the database with
``note_sent_at(last_send)`` (or ``defer_until(instant)``) before the first withdrawal.

Waiters queue on one lock and the one holding it sleeps, so turns are FIFO. The turn is
held while the request is signed and ends just before it is handed to httpx; the gap is
measured from there, and nothing that can wait runs between the turn and the send.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

MARGIN = 0.02


class ApplyLimiter:
    def __init__(
        self,
        rate_per_s: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError("withdraw rate must be a positive number of calls per second")
        # 2% over 1/rate: the gap the exchange sees can shrink by a few milliseconds in
        # transit (scheduling, network); the promise is about what the exchange sees.
        self.interval_s = (1.0 / rate_per_s) * (1 + MARGIN)
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._next_at = -math.inf  # monotonic instant of the next allowed send
        self._lock: anyio.Lock | None = None
        self._waited_s = 0.0

    @property
    def waited_s(self) -> float:
        """Total time withdraw calls spent waiting for their turn."""
        return self._waited_s

    def defer_until(self, epoch_s: float) -> None:
        """No withdraw/apply leaves before wall-clock instant ``epoch_s``."""
        at = self._monotonic() + (epoch_s - self._wall_clock())
        self._next_at = max(self._next_at, at)

    def note_sent_at(self, epoch_s: float) -> None:
        """A withdraw/apply left at wall-clock ``epoch_s`` (e.g. the last one on record)."""
        self.defer_until(epoch_s + self.interval_s)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for the next turn and hold it while the request is signed.

        The next turn starts ``interval_s`` after this block ends, so the caller hands
        its request to httpx right after the block: signing time (an RSA signature takes
        milliseconds) is then not taken out of the gap the exchange sees.
        """
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            started = self._monotonic()
            # loop: an event loop may wake a sleeper a hair early
            while (now := self._monotonic()) < self._next_at:
                await self._sleep(self._next_at - now)
            self._waited_s += now - started
            try:
                yield
            finally:
                self._next_at = max(self._next_at, self._monotonic() + self.interval_s)

    def wait_s(self) -> float:
        """Seconds until the next turn could start (0 when it is free now)."""
        return max(0.0, self._next_at - self._monotonic())

    async def wait_turn(self) -> None:
        """Take the next turn at once (for a caller with nothing to prepare)."""
        async with self.slot():
            pass
