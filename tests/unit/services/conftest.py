"""The services on the fakes: a memory ledger, a scripted exchange, a clock that only moves
when a test moves it. No database, no network, no real sleep."""

from __future__ import annotations

import pytest
from services_world import ACCOUNT, NAMESPACE, WORKER, World

# imported before the clock is installed, so that the utcnow each one bound is replaced too
from treasury.services import approvals, reconcile, settle, submit, truth, watch  # noqa: F401
from treasury.services.context import WorkerConfig, WorkerContext
from treasury.services.exchange_view import ExchangeView
from treasury.services.local_entity import LocalEntityRouting
from treasury.testing import FakeExchange, ManualClock, MemoryLedger


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    c = ManualClock()
    c.install(monkeypatch)
    return c


@pytest.fixture
async def world(clock: ManualClock) -> World:
    ledger = MemoryLedger(namespace=NAMESPACE, clock=clock)
    exchange = FakeExchange(clock=clock, balances={"USDT": "1000"}, fee="1")
    exchange.add_network("USDT", "TRX")
    alerts: list[tuple[str, str, int | None]] = []
    wakeups: list[bool] = []

    async def alert(kind: str, message: str, intent_id: int | None) -> None:
        alerts.append((kind, message, intent_id))

    routed = LocalEntityRouting(exchange)  # as bootstrap wires every account's client
    ctx = WorkerContext(
        ledger=ledger,
        exchange=routed,
        view=ExchangeView(routed, rules_ttl_s=3600),
        config=WorkerConfig(
            account=ACCOUNT,
            worker_id=WORKER,
            history_lag_allowance_s=60,
            reconcile_interval_s=10,
            hold_backoff_s=30,
            manual_whitelist_cooling_s=0,  # the fixture's entry is usable at once
        ),
        alert=alert,
        on_submitted=lambda: wakeups.append(True),
    )
    await ledger.whitelist.add(
        account=ACCOUNT,
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        actor="test",
        reason="the fixture's destination",
    )
    assert await ledger.state.acquire_lease(ACCOUNT, WORKER, ttl_s=30 * 24 * 3600)
    return World(clock, ledger, exchange, ctx, alerts, wakeups)
