"""Request-weight limits counted the way Binance counts them (reference §4).

Fixed windows aligned on the clock (a minute starts at :00, as Binance's counters reset),
one counter per pool key:

* ``/api`` — one IP pool of 6,000/min; past the limit → 429, and after
  ``ban_after_429s`` such answers in a window the IP is banned → 418 for ``ban_s``;
* ``/sapi`` IP-limited endpoints — one pool *per endpoint* and IP, 12,000/min, 429 only;
* ``/sapi`` UID-limited endpoints — 180,000/min per account and endpoint (one pool for
  both apply and history when ``uid_pool`` is ``"account"``), 429 only;
* ``withdraw/history`` — the per-second UID limit (180,000/s, header
  ``X-SAPI-USED-UID-WEIGHT-1S``) and 10 requests per second, and not the per-minute pool
  unless ``history_pool`` is ``"minute"`` (the stricter reading, kept to test a client
  against it).

A rejected request is not charged, so the used-weight headers never exceed the limit.
Everything is in-memory and keyed by the sandbox clock: windows restart with the process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from treasury.sandbox.config import RateLimits
from treasury.sandbox.errors import ApiError

API_HEADER = "X-MBX-USED-WEIGHT-1M"
SAPI_IP_HEADER = "X-SAPI-USED-IP-WEIGHT-1M"
SAPI_UID_HEADER = "X-SAPI-USED-UID-WEIGHT-1M"
SAPI_UID_SECOND_HEADER = "X-SAPI-USED-UID-WEIGHT-1S"

MINUTE_MS = 60_000


@dataclass
class _Counter:
    window: int = -1
    used: int = 0
    rejected: int = 0


@dataclass
class Pool:
    """One family of fixed-window counters with a common limit."""

    header: str | None
    window_ms: int
    limit: int
    ban_after_429s: int | None = None  # None: never escalates to 418
    ban_ms: int = 0
    counters: dict[str, _Counter] = field(default_factory=dict)
    banned_until: dict[str, int] = field(default_factory=dict)

    def charge(self, key: str, weight: int, now_ms: int, who: str) -> int:
        """Add ``weight`` to ``key``'s window and return the window's total.

        Raises:
            ApiError: 429 (or 418 during a ban) with ``Retry-After`` in seconds.
        """
        until = self.banned_until.get(key, 0)
        if now_ms < until:
            raise self._banned(until, now_ms)
        counter = self.counters.setdefault(key, _Counter())
        window = now_ms // self.window_ms
        if counter.window != window:
            counter.window, counter.used, counter.rejected = window, 0, 0
        if counter.used + weight <= self.limit:
            counter.used += weight
            return counter.used
        counter.rejected += 1
        if self.ban_after_429s is not None and counter.rejected > self.ban_after_429s:
            until = now_ms + self.ban_ms
            self.banned_until[key] = until
            raise self._banned(until, now_ms)
        retry = math.ceil(((window + 1) * self.window_ms - now_ms) / 1000)
        raise ApiError(
            -1003,
            self._message(who),
            http_status=429,
            headers={"Retry-After": str(max(1, retry))} | self._used_header(counter.used),
        )

    def used(self, key: str, now_ms: int) -> int:
        counter = self.counters.get(key)
        if counter is None or counter.window != now_ms // self.window_ms:
            return 0
        return counter.used

    def _used_header(self, used: int) -> dict[str, str]:
        return {self.header: str(used)} if self.header else {}

    def _banned(self, until: int, now_ms: int) -> ApiError:
        return ApiError(
            -1003,
            f"Way too much request weight used; IP banned until {until}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            http_status=418,
            headers={"Retry-After": str(max(1, math.ceil((until - now_ms) / 1000)))},
        )

    def _message(self, who: str) -> str:
        if self.header == API_HEADER:
            return (
                f"Too much request weight used; current limit is {self.limit} request weight "
                "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling "
                "the API."
            )
        per = "second" if self.window_ms == 1000 else "minute"
        return (
            f"Too many requests; current limit of {who} is {self.limit} requests per {per}. "
            "Please use the websocket for live updates to avoid polling the API."
        )


class RateLimiter:
    """All pools of one sandbox; ``charge_*`` return the response headers to add."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits

        def scaled(limit: int) -> int:
            return limits.scaled(limit) if limits.enabled else 2**62

        self.api_ip = Pool(
            API_HEADER,
            MINUTE_MS,
            scaled(limits.api_ip_weight_per_min),
            ban_after_429s=limits.ban_after_429s if limits.enabled else None,
            ban_ms=limits.ban_s * 1000,
        )
        self.sapi_ip = Pool(SAPI_IP_HEADER, MINUTE_MS, scaled(limits.sapi_ip_weight_per_min))
        self.uid = Pool(SAPI_UID_HEADER, MINUTE_MS, scaled(limits.uid_weight_per_min))
        self.uid_per_s = Pool(SAPI_UID_SECOND_HEADER, 1000, scaled(limits.uid_weight_per_s))
        self.history_per_s = Pool(None, 1000, scaled(limits.history_per_s))

    def weight(self, endpoint: str) -> int:
        return self.limits.weights[endpoint]

    def charge_api(self, ip: str, endpoint: str, now_ms: int) -> dict[str, str]:
        used = self.api_ip.charge(ip, self.weight(endpoint), now_ms, f"IP({ip})")
        return {API_HEADER: str(used)}

    def charge_sapi_ip(self, ip: str, endpoint: str, now_ms: int) -> dict[str, str]:
        used = self.sapi_ip.charge(f"{endpoint}|{ip}", self.weight(endpoint), now_ms, f"IP({ip})")
        return {SAPI_IP_HEADER: str(used)}

    def charge_uid(self, uid: int, endpoint: str, now_ms: int) -> dict[str, str]:
        who = f"UID({uid})"
        weight = self.weight(endpoint)
        headers: dict[str, str] = {}
        if endpoint == "withdraw_history":
            self.history_per_s.charge(str(uid), 1, now_ms, who)
            used = self.uid_per_s.charge(str(uid), weight, now_ms, who)
            headers[SAPI_UID_SECOND_HEADER] = str(used)
            if self.limits.history_pool == "second":
                return headers
        key = str(uid) if self.limits.uid_pool == "account" else f"{uid}|{endpoint}"
        used = self.uid.charge(key, weight, now_ms, who)
        return headers | {SAPI_UID_HEADER: str(used)}
