"""Estimated exchange time, from ``GET /api/v3/time`` measured around its round trip.

Binance accepts a signed request only if ``timestamp < serverTime + 1000`` and
``serverTime - timestamp <= recvWindow``; a local clock a second off is enough to fail.
The offset assumes the server read its clock half-way through the round trip, so its
error is at most half the RTT. The clock does no I/O itself: the client measures and
calls ``record``; ``needs_sync`` says when to measure again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_REFRESH_S = 300.0


class ServerClock:
    def __init__(
        self,
        *,
        wall_clock: Callable[[], float] = time.time,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        if refresh_s <= 0:
            raise ValueError("refresh_s must be positive")
        self._wall_clock = wall_clock
        self._refresh_s = refresh_s
        self._offset_ms = 0.0
        self._rtt_ms: float | None = None
        self._synced_at: float | None = None
        self.measured = False  # has the server's time ever been measured?

    @property
    def offset_ms(self) -> float:
        """Server time minus local wall-clock time, in ms (0 until the first sync)."""
        return self._offset_ms

    @property
    def rtt_ms(self) -> float | None:
        """Round trip of the last measurement, in ms."""
        return self._rtt_ms

    def record(self, *, server_time_ms: int, sent_at: float, received_at: float) -> None:
        """Take one measurement: ``sent_at``/``received_at`` are wall-clock seconds."""
        midpoint_ms = (sent_at + received_at) / 2 * 1000
        self._offset_ms = server_time_ms - midpoint_ms
        self._rtt_ms = max(0.0, (received_at - sent_at) * 1000)
        self._synced_at = received_at
        self.measured = True

    def now_ms(self) -> int:
        """Estimated exchange time in epoch milliseconds (no I/O)."""
        return int(self._wall_clock() * 1000 + self._offset_ms)

    def needs_sync(self) -> bool:
        if self._synced_at is None:
            return True
        # abs(): a wall clock stepped backwards must not postpone the refresh for hours
        return abs(self._wall_clock() - self._synced_at) >= self._refresh_s

    def invalidate(self) -> None:
        """Forget when we last synced (after a -1021), keeping the old offset meanwhile."""
        self._synced_at = None
