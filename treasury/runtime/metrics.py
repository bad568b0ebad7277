"""Prometheus metrics, on a registry of their own (tests build as many as they like).

Three ways in, so the daemon and the services need not know about Prometheus:

* the Binance client's ``on_call(endpoint, outcome, seconds)`` hook feeds call counts and
  latencies, the send outcomes (withdraw/apply) and the last successful history poll;
* figures the client already keeps (clock offset, used weight, limiter waits, IP ban)
  are read at scrape time from the object given to ``track_exchange``;
* ``Sampler`` refreshes what lives in the database (intents by status, the pause flag)
  every few seconds, and raises the edge-triggered alerts (paused, IP banned,
  canWithdraw false) the daemon has no single place for.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, MutableMapping
from typing import Any, Protocol

import anyio
import structlog
from anyio.abc import TaskStatus
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from treasury.adapters.binance.endpoints import WITHDRAW_APPLY, WITHDRAW_HISTORY
from treasury.domain.exchange import AccountInfo
from treasury.domain.status import ALL_STATUSES
from treasury.ports.store import PauseState
from treasury.services.context import Alert, no_alert

log = structlog.get_logger("treasury.metrics")

# on_call outcome of withdraw/apply -> treasury_sends_total{outcome}. An unparseable
# reply to a send is an unknown outcome (reconciliation decides), never "not sent".
SEND_OUTCOMES = {
    "ok": "accepted",
    "not_sent": "not_sent",
    "rejected": "rejected",
    "unknown": "unknown",
    "invalid_response": "unknown",
}
# Outcomes that prove the exchange is there and talking to us.
ANSWERED = frozenset({"ok"})
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0)


class _Limiter(Protocol):
    @property
    def waited_s(self) -> float: ...
    def used_weight(self) -> dict[str, int]: ...
    def banned_for_s(self) -> float: ...


class _Pacer(Protocol):
    @property
    def waited_s(self) -> float: ...


class ExchangeFigures(Protocol):
    """What ``BinanceClient`` exposes for metrics."""

    @property
    def clock_offset_ms(self) -> float: ...
    @property
    def rate_limiter(self) -> _Limiter: ...
    @property
    def apply_limiter(self) -> _Pacer: ...


class Metrics:
    """The daemon's metrics. Every method is cheap, synchronous and never raises."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._wall = wall_clock
        self._monotonic = monotonic
        self._last_answer: float | None = None
        self._exchange: ExchangeFigures | None = None
        self._senders: Callable[[], Mapping[str, bool]] = dict
        r = self.registry
        self.intents = Gauge(
            "treasury_intents", "Intents by status (from the database)", ["status"], registry=r
        )
        self.sends = Counter(
            "treasury_sends",
            "withdraw/apply calls by outcome (accepted, not_sent, rejected, unknown)",
            ["outcome"],
            registry=r,
        )
        self.reconciliations = Counter(
            "treasury_reconciliations", "Reconciliation decisions by kind", ["decision"], registry=r
        )
        self.exchange_calls = Counter(
            "treasury_exchange_calls", "Exchange HTTP calls", ["endpoint", "outcome"], registry=r
        )
        self.exchange_call_seconds = Histogram(
            "treasury_exchange_call_seconds",
            "Exchange HTTP call duration",
            ["endpoint"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.last_poll = Gauge(
            "treasury_last_successful_poll_timestamp_seconds",
            "When withdraw/history last answered (epoch seconds)",
            registry=r,
        )
        self.whitelist_drift = Counter(
            "treasury_whitelist_drift",
            "Whitelist entries added, disabled or re-enabled by a sync with the exchange",
            registry=r,
        )
        self.paused = Gauge("treasury_paused", "1 while the kill switch is engaged", registry=r)
        self.account_paused = Gauge(
            "treasury_account_paused",
            "1 while the account is paused on its own (e.g. the ledger is behind the exchange)",
            ["account"],
            registry=r,
        )
        self.sender = Gauge(
            "treasury_sender", "1 while this process is the account's sender", registry=r
        )
        self.alerts = Counter(
            "treasury_alerts",
            "Alert deliveries by result (delivered, retry: an attempt failed, failed: given "
            "up; dropped: no longer counted)",
            ["result"],
            registry=r,
        )
        # every label value a documented alert rule watches exists from the start at 0:
        # `increase(...{outcome="unknown"}[15m])` then sees the first one after a restart
        for outcome in sorted(set(SEND_OUTCOMES.values())):
            self.sends.labels(outcome=outcome)
        for result in ("delivered", "retry", "failed", "dropped"):
            self.alerts.labels(result=result)
        r.register(_ExchangeCollector(self))

    # ---- hooks ---------------------------------------------------------------------

    def on_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        """The Binance client's ``on_call`` hook."""
        self.exchange_calls.labels(endpoint=endpoint, outcome=outcome).inc()
        self.exchange_call_seconds.labels(endpoint=endpoint).observe(max(0.0, seconds))
        if outcome in ANSWERED:
            self._last_answer = self._monotonic()
        if endpoint == WITHDRAW_APPLY.path:
            self.sent(SEND_OUTCOMES.get(outcome, "unknown"))
        elif endpoint == WITHDRAW_HISTORY.path and outcome == "ok":
            self.poll_succeeded()

    def sent(self, outcome: str) -> None:
        self.sends.labels(outcome=outcome).inc()

    def reconciled(self, decision: str) -> None:
        self.reconciliations.labels(decision=decision).inc()

    def poll_succeeded(self, at: float | None = None) -> None:
        self.last_poll.set(self._wall() if at is None else at)

    def drift(self, changed: int) -> None:
        """A whitelist sync changed ``changed`` entries (``len(added+disabled+reenabled)``)."""
        if changed > 0:
            self.whitelist_drift.inc(changed)

    def set_intents(self, counts: Mapping[str, int]) -> None:
        """Every known status gets a value (0 when absent), so a drained queue reads 0."""
        for status in (*ALL_STATUSES, *(s for s in counts if s not in ALL_STATUSES)):
            self.intents.labels(status=status).set(counts.get(status, 0))

    def set_paused(self, paused: bool) -> None:
        self.paused.set(1 if paused else 0)

    def set_account_pauses(self, accounts: Collection[str], paused: Collection[str]) -> None:
        for account in accounts:
            self.account_paused.labels(account=account).set(1 if account in paused else 0)

    def set_sender(self, is_sender: bool) -> None:
        self.sender.set(1 if is_sender else 0)

    def track_sender(self, is_sender: Callable[[], bool]) -> None:
        """Read ``treasury_sender`` from ``is_sender`` at scrape time (e.g. the daemon's flag)."""
        self.sender.set_function(lambda: 1.0 if is_sender() else 0.0)

    def alert_result(self, result: str) -> None:
        """The webhook runner's ``on_alert_result``: the alert channel's attempts (``dropped``
        is no longer counted: alerts wait in the outbox instead of a bounded queue)."""
        self.alerts.labels(result=result).inc()

    def track_accounts(self, senders: Callable[[], Mapping[str, bool]]) -> None:
        """Read ``treasury_account_sender{account}`` at scrape time: every account this
        process serves now (hot-added ones included), 1 while it holds its lease."""
        self._senders = senders

    def track_exchange(self, exchange: ExchangeFigures) -> None:
        """Read offset, used weight, limiter waits and IP ban from ``exchange`` at scrape."""
        self._exchange = exchange

    def log_bridge(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor counting ``reconcile.decision`` events (no service edit).

        Only sees events at or above the configured log level (the decision is INFO).
        """
        if event.get("event") == "reconcile.decision":
            self.reconciled(str(event.get("decision", "unknown")))
        return event

    # ---- reading -------------------------------------------------------------------

    def exchange_age_s(self) -> float:
        """Seconds since the exchange last answered a call (inf: never). For /readyz."""
        if self._last_answer is None:
            return float("inf")
        return max(0.0, self._monotonic() - self._last_answer)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST


class _ExchangeCollector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # names are fixed; nothing to read at registration

    def collect(self) -> Iterable[Metric]:
        sender = GaugeMetricFamily(
            "treasury_account_sender",
            "1 while this process holds the account's sender lease, 0 while it stands by",
            labels=["account"],
        )
        for account, held in sorted(self._metrics._senders().items()):
            sender.add_metric([account], 1.0 if held else 0.0)
        exchange = self._metrics._exchange
        if exchange is None:
            return [sender]
        limiter = exchange.rate_limiter
        offset = GaugeMetricFamily(
            "treasury_server_time_offset_ms",
            "Exchange clock minus local clock, in ms",
            value=exchange.clock_offset_ms,
        )
        weight = GaugeMetricFamily(
            "treasury_used_weight", "Request weight used in the current window", labels=["pool"]
        )
        for pool, used in sorted(limiter.used_weight().items()):
            weight.add_metric([pool], used)
        waits = CounterMetricFamily(
            "treasury_rate_limiter_wait_seconds",
            "Time spent waiting for a weight budget or the send pace",
            labels=["limiter"],
        )
        waits.add_metric(["weight"], limiter.waited_s)
        waits.add_metric(["withdraw_pace"], exchange.apply_limiter.waited_s)
        ban = GaugeMetricFamily(
            "treasury_ip_ban_remaining_seconds",
            "Seconds until the exchange's IP ban ends (0: none)",
            value=limiter.banned_for_s(),
        )
        # Prometheus' base unit; the _ms gauge stays for the dashboards that read it
        offset_s = GaugeMetricFamily(
            "treasury_server_time_offset_seconds",
            "Exchange clock minus local clock, in seconds",
            value=exchange.clock_offset_ms / 1000,
        )
        return [sender, offset, offset_s, weight, waits, ban]


class Sampler:
    """Refresh database-backed gauges and raise edge-triggered alerts, every ``interval_s``.

    Args:
        metrics: where the figures go.
        count_by_status: ``IntentRepository.count_by_status``.
        pause_state: ``ServiceState.pause_state``.
        is_sender: whether this process holds the sender lease (``lambda: daemon.is_sender``);
            ``treasury_sender`` reads it at each scrape.
        account: ``ExchangeView.account`` (cached); also keeps the exchange check of
            /readyz fresh on an idle or standby daemon. None: not probed.
        banned_for_s: ``exchange.rate_limiter.banned_for_s``.
        alert: the alert sink; each condition alerts once when it starts.
        account_pauses: the accounts paused on their own (``ServiceState.account_pauses``)
            for ``treasury_account_paused`` (whoever pauses an account alerts).
        accounts: the accounts served (or a callable reading them at each round: the
            accounts file's hot-added ones get their gauge), each with a gauge even when
            not paused.
        exchange_age_s: ``Metrics.exchange_age_s``; with ``unreachable_after_s``, an
            ``exchange_unreachable`` alert when no call has succeeded for that long
            (counted from the sampler's start when none ever has).
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        count_by_status: Callable[[], Awaitable[Mapping[str, int]]],
        pause_state: Callable[[], Awaitable[PauseState]],
        is_sender: Callable[[], bool] = lambda: False,
        account: Callable[[], Awaitable[AccountInfo]] | None = None,
        banned_for_s: Callable[[], float] | None = None,
        alert: Alert = no_alert,
        interval_s: float = 10.0,
        exchange_age_s: Callable[[], float] | None = None,
        unreachable_after_s: float = 300.0,
        account_pauses: Callable[[], Awaitable[Mapping[str, object]]] | None = None,
        accounts: Collection[str] | Callable[[], Collection[str]] = (),
    ) -> None:
        self.metrics = metrics
        metrics.track_sender(is_sender)
        self._count = count_by_status
        self._pause_state = pause_state
        self._account = account
        self._banned_for_s = banned_for_s
        self._alert = alert
        self.interval_s = interval_s
        self._paused = False
        self._banned = False
        self._cannot_withdraw = False
        self._exchange_age_s = exchange_age_s
        self._account_pauses = account_pauses
        self._accounts = accounts if callable(accounts) else (lambda: tuple(accounts))
        self._gauged: set[str] = set()
        self._unreachable_after_s = unreachable_after_s
        self._unreachable = False
        self._started = time.monotonic()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.sample()
        task_status.started()
        while True:
            await anyio.sleep(self.interval_s)
            await self.sample()

    async def sample(self) -> None:
        """One round; each part fails alone (logged), the others still run."""
        try:
            self.metrics.set_intents(await self._count())
        except Exception as exc:  # the database may be away; /readyz reports that
            log.warning("metrics.count_failed", error=type(exc).__name__)
        try:
            await self._check_pause(await self._pause_state())
        except Exception as exc:
            log.warning("metrics.pause_state_failed", error=type(exc).__name__)
        if self._account_pauses is not None:
            try:
                paused = await self._account_pauses()
                served = {*self._accounts(), *paused}
                for gone in self._gauged - served:  # an account no longer served here
                    self.metrics.account_paused.remove(gone)
                self._gauged = served
                self.metrics.set_account_pauses(served, set(paused))
            except Exception as exc:
                log.warning("metrics.account_pauses_failed", error=type(exc).__name__)
        if self._banned_for_s is not None:
            await self._check_ban(self._banned_for_s())
        if self._account is not None:
            try:
                await self._check_account(await self._account())
            except Exception as exc:  # an exchange error is counted by on_call already
                log.warning("metrics.account_probe_failed", error=type(exc).__name__)
        if self._exchange_age_s is not None:
            age = min(self._exchange_age_s(), time.monotonic() - self._started)
            await self._check_reachable(age)

    async def _check_reachable(self, age_s: float) -> None:
        unreachable = age_s > self._unreachable_after_s
        if unreachable and not self._unreachable:
            log.error("alarm.exchange_unreachable", seconds=int(age_s))
            await self._alert(
                "exchange_unreachable",
                f"no call to the exchange has succeeded "
                f"for {age_s:.0f} s: nothing can be sent, settled or "
                "reconciled until it answers again",
                None,
            )
        elif self._unreachable and not unreachable:
            log.info("exchange.reachable_again")
            await self._alert("exchange_reachable", "the exchange answers again", None)
        self._unreachable = unreachable

    async def _check_pause(self, state: PauseState) -> None:
        self.metrics.set_paused(state.paused)
        if state.paused and not self._paused:
            await self._alert(
                "paused",
                f"withdrawals are paused by {state.by or 'someone'}: "
                f"{state.reason or 'no reason given'}",
                None,
            )
        elif self._paused and not state.paused:
            log.info("metrics.resumed")
        self._paused = state.paused

    async def _check_ban(self, seconds: float) -> None:
        banned = seconds > 0
        if banned and not self._banned:
            await self._alert(
                "ip_banned", f"the exchange banned this IP; calls resume in {seconds:.0f} s", None
            )
        self._banned = banned

    async def _check_account(self, account: AccountInfo) -> None:
        cannot = not account.can_withdraw
        if cannot and not self._cannot_withdraw:
            await self._alert(
                "can_withdraw_false",
                "the account's canWithdraw is false: "
                "sends are held until the exchange allows withdrawals again",
                None,
            )
        self._cannot_withdraw = cannot
