"""Metrics: names on a private registry, the on_call hook, scrape-time exchange figures,
and the sampler's gauges and edge-triggered alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import pytest

from treasury.domain.exchange import AccountInfo
from treasury.ports.store import PauseState
from treasury.runtime.metrics import Metrics, Sampler

APPLY = "/sapi/v1/capital/withdraw/apply"
HISTORY = "/sapi/v1/capital/withdraw/history"
NAMES = (
    "treasury_intents",
    "treasury_sends_total",
    "treasury_reconciliations_total",
    "treasury_exchange_calls_total",
    "treasury_exchange_call_seconds",
    "treasury_rate_limiter_wait_seconds_total",
    "treasury_server_time_offset_ms",
    "treasury_server_time_offset_seconds",
    "treasury_used_weight",
    "treasury_last_successful_poll_timestamp_seconds",
    "treasury_whitelist_drift_total",
    "treasury_paused",
    "treasury_sender",
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeLimiter:
    waited_s: float = 0.0
    weights: dict[str, int] = field(default_factory=dict)
    banned: float = 0.0

    def used_weight(self) -> dict[str, int]:
        return dict(self.weights)

    def banned_for_s(self) -> float:
        return self.banned


@dataclass
class FakePacer:
    waited_s: float = 0.0


@dataclass
class FakeExchange:
    clock_offset_ms: float = 0.0
    rate_limiter: FakeLimiter = field(default_factory=FakeLimiter)
    apply_limiter: FakePacer = field(default_factory=FakePacer)


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_every_metric_is_exposed_on_its_own_registry() -> None:
    first, second = Metrics(), Metrics()  # no "duplicated timeseries" between instances
    first.track_exchange(FakeExchange())
    first.set_intents({})
    first.sent("accepted")
    first.reconciled("Adopt")
    first.on_call(HISTORY, "ok", 0.1)
    first.drift(1)
    text = first.render().decode()
    for name in NAMES:
        assert f"# HELP {name} " in text, name
    assert value(second, "treasury_sends_total", outcome="accepted") == 0


@pytest.mark.parametrize(
    ("outcome", "send"),
    [
        ("ok", "accepted"),
        ("not_sent", "not_sent"),
        ("rejected", "rejected"),
        ("unknown", "unknown"),
        ("invalid_response", "unknown"),
    ],
)
def test_on_call_counts_calls_and_send_outcomes(outcome: str, send: str) -> None:
    m = Metrics()
    m.on_call(APPLY, outcome, 0.3)
    assert value(m, "treasury_exchange_calls_total", endpoint=APPLY, outcome=outcome) == 1
    assert value(m, "treasury_exchange_call_seconds_count", endpoint=APPLY) == 1
    assert value(m, "treasury_exchange_call_seconds_sum", endpoint=APPLY) == pytest.approx(0.3)
    assert value(m, "treasury_sends_total", outcome=send) == 1


def test_a_read_is_not_a_send() -> None:
    m = Metrics()
    m.on_call("/api/v3/account", "ok", 0.1)
    assert value(m, "treasury_sends_total", outcome="accepted") == 0


def test_successful_history_poll_sets_the_timestamp_and_exchange_freshness() -> None:
    wall, mono = FakeClock(1_700_000_000.0), FakeClock(50.0)
    m = Metrics(wall_clock=wall, monotonic=mono)
    assert m.exchange_age_s() == float("inf")
    m.on_call(HISTORY, "not_sent", 1.0)
    assert value(m, "treasury_last_successful_poll_timestamp_seconds") == 0
    assert m.exchange_age_s() == float("inf")  # a failure proves nothing
    m.on_call(HISTORY, "ok", 1.0)
    assert value(m, "treasury_last_successful_poll_timestamp_seconds") == 1_700_000_000.0
    mono.now += 7
    assert m.exchange_age_s() == pytest.approx(7)


def test_intents_gauge_reads_zero_for_statuses_not_counted() -> None:
    m = Metrics()
    m.set_intents({"queued": 3, "submitted": 2})
    assert value(m, "treasury_intents", status="queued") == 3
    assert value(m, "treasury_intents", status="needs_attention") == 0
    m.set_intents({})
    assert value(m, "treasury_intents", status="queued") == 0


def test_flags_and_counters_change_when_called() -> None:
    m = Metrics()
    m.set_paused(True)
    m.set_sender(True)
    m.drift(3)
    m.drift(0)
    m.reconciled("ProvenAbsent")
    m.alert_result("dropped")
    assert value(m, "treasury_paused") == 1
    assert value(m, "treasury_sender") == 1
    assert value(m, "treasury_whitelist_drift_total") == 3
    assert value(m, "treasury_reconciliations_total", decision="ProvenAbsent") == 1
    assert value(m, "treasury_alerts_total", result="dropped") == 1
    m.set_paused(False)
    assert value(m, "treasury_paused") == 0


def test_exchange_figures_are_read_at_scrape_time() -> None:
    m = Metrics()
    ex = FakeExchange(clock_offset_ms=-12.5)
    m.track_exchange(ex)
    ex.rate_limiter.weights = {"ip": 40, "sapi_uid": 900}
    ex.rate_limiter.waited_s = 1.5
    ex.apply_limiter.waited_s = 4.0
    ex.rate_limiter.banned = 30.0
    assert value(m, "treasury_server_time_offset_ms") == -12.5
    assert value(m, "treasury_server_time_offset_seconds") == pytest.approx(-0.0125)
    assert value(m, "treasury_used_weight", pool="sapi_uid") == 900
    assert value(m, "treasury_rate_limiter_wait_seconds_total", limiter="weight") == 1.5
    assert value(m, "treasury_rate_limiter_wait_seconds_total", limiter="withdraw_pace") == 4.0
    assert value(m, "treasury_ip_ban_remaining_seconds") == 30.0
    ex.clock_offset_ms = 3.0
    assert value(m, "treasury_server_time_offset_ms") == 3.0


def test_log_bridge_counts_reconcile_decisions_and_passes_events_through() -> None:
    m = Metrics()
    event = {"event": "reconcile.decision", "decision": "Wait", "intent_id": 1}
    assert m.log_bridge(None, "info", event) is event
    m.log_bridge(None, "info", {"event": "send.accepted"})
    assert value(m, "treasury_reconciliations_total", decision="Wait") == 1


# ---- sampler ------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[tuple[str, str, int | None]] = []

    async def __call__(self, kind: str, message: str, intent_id: int | None) -> None:
        self.alerts.append((kind, message, intent_id))

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.alerts]


class World:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {"queued": 1}
        self.paused = PauseState(paused=False, reason="", by="", at=None)
        self.can_withdraw = True
        self.banned = 0.0
        self.sender = False
        self.db_down = False

    async def count(self) -> dict[str, int]:
        if self.db_down:
            raise ConnectionError("database away")
        return self.counts

    async def pause_state(self) -> PauseState:
        return self.paused

    async def account(self) -> AccountInfo:
        return AccountInfo(can_withdraw=self.can_withdraw, can_trade=True, can_deposit=True)


def sampler(world: World, alerts: Recorder) -> tuple[Metrics, Sampler]:
    m = Metrics()
    s = Sampler(
        m,
        count_by_status=world.count,
        pause_state=world.pause_state,
        is_sender=lambda: world.sender,
        account=world.account,
        banned_for_s=lambda: world.banned,
        alert=alerts,
    )
    return m, s


async def test_sampler_refreshes_gauges() -> None:
    world, alerts = World(), Recorder()
    m, s = sampler(world, alerts)
    await s.sample()
    assert value(m, "treasury_intents", status="queued") == 1
    assert value(m, "treasury_sender") == 0
    world.sender, world.counts = True, {"queued": 0, "submitted": 4}
    await s.sample()
    assert value(m, "treasury_sender") == 1
    assert value(m, "treasury_intents", status="submitted") == 4
    assert alerts.alerts == []


async def test_sampler_alerts_once_per_episode() -> None:
    world, alerts = World(), Recorder()
    m, s = sampler(world, alerts)
    world.paused = PauseState(paused=True, reason="incident 7", by="cli:ann", at=datetime.now(UTC))
    world.can_withdraw = False
    world.banned = 120.0
    await s.sample()
    await s.sample()
    assert sorted(alerts.kinds()) == ["can_withdraw_false", "ip_banned", "paused"]
    assert value(m, "treasury_paused") == 1
    paused_msg = next(msg for k, msg, _ in alerts.alerts if k == "paused")
    assert "cli:ann" in paused_msg and "incident 7" in paused_msg
    # the conditions clear, then come back: a new episode, a new alert
    world.paused = PauseState(paused=False, reason="", by="", at=None)
    world.can_withdraw, world.banned = True, 0.0
    await s.sample()
    assert value(m, "treasury_paused") == 0
    world.banned = 5.0
    await s.sample()
    assert alerts.kinds().count("ip_banned") == 2
    assert alerts.kinds().count("paused") == 1


async def test_sampler_survives_a_failing_database() -> None:
    world, alerts = World(), Recorder()
    m, s = sampler(world, alerts)
    world.db_down = True
    world.banned = 1.0
    await s.sample()  # does not raise; the other checks still ran
    assert alerts.kinds() == ["ip_banned"]
    assert value(m, "treasury_sender") == 0


async def test_sampler_alerts_when_the_exchange_is_unreachable_and_when_it_is_back() -> None:
    world, alerts = World(), Recorder()
    age = [0.0]
    m = Metrics()
    s = Sampler(
        m,
        count_by_status=world.count,
        pause_state=world.pause_state,
        alert=alerts,
        exchange_age_s=lambda: age[0],
        unreachable_after_s=0.05,
    )
    await s.sample()
    assert alerts.kinds() == []
    age[0] = float("inf")  # never answered: counted from the sampler's start
    await s.sample()  # too soon after start to call it an outage
    assert alerts.kinds() == []
    await anyio.sleep(0.1)
    await s.sample()
    await s.sample()
    assert alerts.kinds() == ["exchange_unreachable"]
    assert "nothing can be sent" in alerts.alerts[0][1]
    age[0] = 0.0
    await s.sample()
    assert alerts.kinds() == ["exchange_unreachable", "exchange_reachable"]


async def test_sampler_exposes_each_accounts_own_pause() -> None:
    world, alerts = World(), Recorder()
    paused: dict[str, object] = {"desk2": "ledger behind"}

    async def pauses() -> dict[str, object]:
        return paused

    m = Metrics()
    s = Sampler(
        m,
        count_by_status=world.count,
        pause_state=world.pause_state,
        alert=alerts,
        account_pauses=pauses,
        accounts=["default", "desk2"],
    )
    await s.sample()
    assert value(m, "treasury_account_paused", account="desk2") == 1
    assert value(m, "treasury_account_paused", account="default") == 0
    paused.clear()
    await s.sample()
    assert value(m, "treasury_account_paused", account="desk2") == 0
    assert alerts.kinds() == []  # whoever paused the account alerted; no second page


def test_the_series_alert_rules_watch_exist_at_zero_from_the_start() -> None:
    """A rule on increase(treasury_sends_total{outcome="unknown"}[15m]) must see the first
    unknown send after a restart: the series has to exist before it."""
    m = Metrics()
    for outcome in ("accepted", "not_sent", "rejected", "unknown"):
        assert value(m, "treasury_sends_total", outcome=outcome) == 0, outcome
    for result in ("delivered", "retry", "failed", "dropped"):
        assert value(m, "treasury_alerts_total", result=result) == 0, result


def test_every_metric_the_alert_rules_use_is_exposed() -> None:
    """deploy/prometheus/treasury-alerts.yml is read as text (no promtool here): each
    rule has an alert name and an expression, and every treasury_* name in it is a
    series this daemon exposes."""
    import re
    from pathlib import Path

    rules = Path(__file__).parents[2] / "deploy" / "prometheus" / "treasury-alerts.yml"
    text = rules.read_text()
    alerts = re.findall(r"^\s+- alert: (\w+)$", text, flags=re.M)
    exprs = re.findall(r"^\s+expr: (.+)$", text, flags=re.M)
    assert len(alerts) == len(exprs) >= 8 and len(set(alerts)) == len(alerts)
    m = Metrics()
    m.track_exchange(FakeExchange())
    exposed = m.render().decode()
    used = {name for e in exprs for name in re.findall(r"\btreasury_\w+", e)}
    assert used, exprs
    for name in sorted(used):
        assert re.search(rf"^# TYPE {name}(_total)? ", exposed, flags=re.M) or re.search(
            rf"^{name}[{{ ]", exposed, flags=re.M
        ), f"{name} is used by an alert rule but not exposed"
