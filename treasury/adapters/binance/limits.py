"""Request-weight budgets per limit pool, 429 back-off and the 418 IP ban.

Callers wait instead of exceeding a budget: going over gets a 429, and on ``/api`` going
on after a 429 gets the IP banned (418) for minutes to days. Each pool is a sliding
window of (time, weight) entries, which is never more permissive than Binance's fixed
minute windows. The server reports its own figure in the ``X-*-USED-*-WEIGHT-1M`` and
``-1S`` headers (other processes may share the IP or the account); when it is higher than
ours we book the difference as used now, so it ages out no later than the server's.

``withdraw/history`` is planned on the per-second UID limit its page documents (10 calls
a second), not on a per-minute pool. Binance's pages disagree on that, so the client
follows the server: once a history answer reports a per-minute UID figure, history also
draws on a per-minute pool of its own from then on (10 calls a minute), and a 429 still
pauses it for the ``Retry-After`` it names.

The waiting caller holds the pool's lock while it sleeps, which makes the queue FIFO.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio

from treasury.adapters.binance.endpoints import ACCOUNT, WITHDRAW_HISTORY, Endpoint, Pool

HISTORY_PER_SECOND_KEY = "sapi-uid:withdraw-history-count-1s"


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    """Budgets per window; raise them against a sandbox, keep the defaults on Binance."""

    api_ip_weight: int = 6_000  # /api/*, per IP (CAAS, LIMFAQ)
    sapi_ip_weight: int = 12_000  # each IP-limited /sapi endpoint (CAAS)
    sapi_uid_weight: int = 180_000  # each UID-limited /sapi endpoint, per minute (CAAS)
    sapi_uid_weight_per_second: int = 180_000  # the per-second UID limit (WDOC, history)
    history_per_second: int = 10  # withdraw/history request count per second (WDOC)
    window_s: float = 60.0
    # processes sending from one IP address, whose IP budgets above are each a share of
    # the IP's: the server's used-weight figure for an IP pool (everyone's) is divided by
    # it before it is compared with ours, so that once the IP's total is spent every
    # process sees its own share spent
    ip_shared_by: int = 1

    def __post_init__(self) -> None:
        for name in (
            "api_ip_weight",
            "sapi_ip_weight",
            "sapi_uid_weight",
            "sapi_uid_weight_per_second",
            "history_per_second",
            "ip_shared_by",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.window_s <= 0:
            raise ValueError("window_s must be positive")


class _Window:
    def __init__(self, limit: int, span_s: float) -> None:
        self.limit = limit
        self.span_s = span_s
        self._entries: deque[tuple[float, int]] = deque()
        self.blocked_until = 0.0  # monotonic; set by a 429
        self.lock: anyio.Lock | None = None  # created inside the event loop

    def used(self, now: float) -> int:
        while self._entries and self._entries[0][0] + self.span_s <= now:
            self._entries.popleft()
        return sum(weight for _, weight in self._entries)

    def delay(self, weight: int, now: float) -> float:
        """Seconds until ``weight`` fits; a weight above the limit fits an empty window."""
        used = self.used(now)
        if used + weight <= self.limit or not self._entries:
            return 0.0
        remaining = used
        for at, entry_weight in self._entries:  # oldest first: they expire in this order
            remaining -= entry_weight
            if remaining + weight <= self.limit or remaining <= 0:
                return at + self.span_s - now
        return 0.0  # not reached: the last entry empties the window

    def add(self, weight: int, now: float) -> None:
        self._entries.append((now, weight))

    def raise_to(self, server_used: int, now: float) -> None:
        missing = server_used - self.used(now)
        if missing > 0:
            self._entries.append((now, missing))


_HEADER_POOLS = (
    ("x-mbx-used-weight-1m", Pool.API_IP),
    ("x-sapi-used-ip-weight-1m", Pool.SAPI_IP),
    ("x-sapi-used-uid-weight-1m", Pool.SAPI_UID),
    ("x-sapi-used-uid-weight-1s", Pool.SAPI_UID_SECOND),
    # an older English capture of history's page names its per-second header so
    ("x-sapi-used-ip-weight-1s", Pool.SAPI_UID_SECOND),
)


# Of the IP's /api weight, the share that the account reads of a process's sending
# accounts plan on together; the rest is left for bursts and other /api calls.
ACCOUNT_READ_SHARE = 0.5


class AccountReadPlan:
    """How long each sending account of a process keeps its ``/api/v3/account`` read
    (spot balances, ``canWithdraw``; weight 20, per IP whichever key signs).

    Every ``floor_s`` while the reads of all senders fit in half the IP's ``/api``
    budget; beyond that, as long as it takes for them to fit: at Binance's 6,000 a
    minute that is 5 s up to 12 sending accounts and 40 s for 100 (each send is still
    debited from the cached balance at once, and a balance that does not cover an
    intent is read again before the intent is held). ``senders`` is set by whoever
    knows how many accounts this process sends for now."""

    def __init__(self, limits: RateLimits, *, floor_s: float) -> None:
        self.limits = limits
        self.floor_s = floor_s
        self.senders: Callable[[], int] = lambda: 1

    def interval_s(self) -> float:
        reads_per_window = self.limits.api_ip_weight * ACCOUNT_READ_SHARE / ACCOUNT.weight
        return max(self.floor_s, self.senders() * self.limits.window_s / reads_per_window)


class IpBudgets:
    """What one IP address spends, shared by every account's client in a process: the
    ``/api`` pool, the IP-limited ``/sapi`` pools, and the 418 ban (Binance counts and
    bans by IP whichever key signs). Without it, N accounts on one host would each
    budget the IP's 6,000 a minute for themselves: N times the limit, then a ban."""

    def __init__(self) -> None:
        self.windows: dict[str, _Window] = {}
        self.banned_until = 0.0


def _is_ip_key(key: str) -> bool:
    return key == Pool.API_IP.value or key.startswith(f"{Pool.SAPI_IP.value}:")


class RateLimiter:
    """Weight budgets for every pool, plus the global pause after an IP ban.

    The UID pools are the account's own; the IP pools and the ban are ``ip``'s, which the
    clients of one process share (one is made when none is given)."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        ip: IpBudgets | None = None,
    ) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._sleep = sleep
        self._windows: dict[str, _Window] = {}
        self._ip = ip or IpBudgets()
        self._waited_s = 0.0

    @property
    def ip_budgets(self) -> IpBudgets:
        """The IP's pools and ban this limiter draws on (shared with the process's other
        accounts when the composition root gave them one)."""
        return self._ip

    @property
    def _banned_until(self) -> float:
        return self._ip.banned_until

    @_banned_until.setter
    def _banned_until(self, value: float) -> None:
        self._ip.banned_until = value

    # -- read-only figures for metrics ---------------------------------------------------

    @property
    def waited_s(self) -> float:
        """Total time callers spent waiting for a budget, a 429 back-off or a ban."""
        return self._waited_s

    def used_weight(self) -> dict[str, int]:
        """Weight used in the current window, per pool key."""
        now = self._monotonic()
        windows = {**self._ip.windows, **self._windows}
        return {key: window.used(now) for key, window in windows.items()}

    def banned_for_s(self) -> float:
        return max(0.0, self._banned_until - self._monotonic())

    # -- waiting ---------------------------------------------------------------------------

    async def acquire(self, endpoint: Endpoint) -> None:
        """Wait until ``endpoint`` may be called, then book its weight."""
        for window, weight in self._budgets(endpoint):
            if window.lock is None:
                window.lock = anyio.Lock()
            async with window.lock:
                while True:
                    now = self._monotonic()
                    delay = max(
                        self._banned_until - now,
                        window.blocked_until - now,
                        window.delay(weight, now),
                    )
                    if delay <= 0:
                        window.add(weight, now)
                        break
                    await self._sleep(delay)
                    self._waited_s += self._monotonic() - now

    # -- what the responses told us ------------------------------------------------------

    def observe(self, endpoint: Endpoint, headers: Mapping[str, str]) -> None:
        """Reconcile with the server's used-weight headers (keys are case-insensitive)."""
        now = self._monotonic()
        for header, pool in _HEADER_POOLS:
            raw = headers.get(header)
            if raw is None:
                continue
            try:
                server_used = int(raw)
            except ValueError:
                continue
            if pool is Pool.SAPI_IP:
                if endpoint.pool is not Pool.SAPI_IP:
                    continue  # an IP /sapi figure belongs to that endpoint's own pool
                key = endpoint.pool_key
            elif pool is Pool.SAPI_UID:
                # the endpoint's own minute pool; for history, one it did not draw on
                # until the server showed that it counts there too
                key = _minute_key(endpoint)
            else:
                key = pool.value
            if _is_ip_key(key):  # the IP's total: ours is our share of it
                server_used = -(-server_used // self.limits.ip_shared_by)
            self._window(key).raise_to(server_used, now)

    def block(self, endpoint: Endpoint, seconds: float) -> None:
        """After a 429: every later call on ``endpoint``'s pools waits ``seconds``."""
        until = self._monotonic() + seconds
        for window, _ in self._budgets(endpoint):
            window.blocked_until = max(window.blocked_until, until)

    def ban(self, seconds: float) -> None:
        """After a 418: every call on every pool waits ``seconds``."""
        self._banned_until = max(self._banned_until, self._monotonic() + seconds)

    # -- internals ---------------------------------------------------------------------------

    def _budgets(self, endpoint: Endpoint) -> list[tuple[_Window, int]]:
        budgets = [(self._window(endpoint.pool_key), endpoint.weight)]
        if endpoint == WITHDRAW_HISTORY:
            budgets.append((self._window(HISTORY_PER_SECOND_KEY), 1))
            minute = self._windows.get(_minute_key(endpoint))
            if minute is not None:  # the server reported a per-minute figure for it
                budgets.append((minute, endpoint.weight))
        return budgets

    def _window(self, key: str) -> _Window:
        windows = self._ip.windows if _is_ip_key(key) else self._windows
        window = windows.get(key)
        if window is None:
            window = _Window(self._limit_for(key), self._span_for(key))
            windows[key] = window
        return window

    def _limit_for(self, key: str) -> int:
        if key == HISTORY_PER_SECOND_KEY:
            return self.limits.history_per_second
        if key == Pool.API_IP.value:
            return self.limits.api_ip_weight
        if key == Pool.SAPI_UID_SECOND.value:
            return self.limits.sapi_uid_weight_per_second
        if key.startswith(f"{Pool.SAPI_UID.value}:"):
            return self.limits.sapi_uid_weight
        return self.limits.sapi_ip_weight

    def _span_for(self, key: str) -> float:
        if key in (HISTORY_PER_SECOND_KEY, Pool.SAPI_UID_SECOND.value):
            return 1.0
        return self.limits.window_s


def _minute_key(endpoint: Endpoint) -> str:
    """The per-minute UID pool of a UID-limited endpoint (history's exists only once seen)."""
    return f"{Pool.SAPI_UID.value}:{endpoint.path}"
