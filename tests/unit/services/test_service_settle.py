"""settle: one history poll takes every submitted withdrawal of the account to its end."""

from __future__ import annotations

from decimal import Decimal

import pytest
from services_world import World

from treasury.domain.exchange import ExchangeWithdrawStatus as X
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.intent import Intent
from treasury.domain.status import Status as S
from treasury.ports.exchange import Reason
from treasury.services.settle import SettleStats, poll_once
from treasury.testing import not_sent


async def submitted(world: World, amount: str = "10") -> Intent:
    intent = await world.enqueue(amount)
    sent = await world.process(intent.id)
    assert sent.status is S.SUBMITTED
    return sent


@pytest.mark.parametrize(
    ("code", "status", "alerts"),
    [
        (X.COMPLETED, S.COMPLETED, []),
        (X.FAILURE, S.FAILED, ["failed"]),
        (X.REJECTED, S.FAILED, ["failed"]),
        (X.CANCELLED, S.CANCELLED, ["cancelled"]),
    ],
    ids=["completed", "failure", "rejected", "cancelled"],
)
async def test_the_exchange_status_maps_onto_the_intent(
    world: World, code: int, status: S, alerts: list[str]
) -> None:
    intent = await submitted(world)
    world.exchange.set_status(
        intent.exchange_withdraw_id or "", code, info="exchange says so", tx_id="0xbeef"
    )
    stats = SettleStats()
    await poll_once(world.ctx, stats)
    after = await world.get(intent.id)
    assert after.status is status and after.settled_at == world.clock()
    assert (after.fee, after.exchange_amount) == (Decimal(1), Decimal(9))  # net in history
    assert after.tx_id == ("0xbeef" if status is S.COMPLETED else None)
    assert world.alert_kinds() == alerts
    assert stats.settled == 1 and stats.history_calls == 1


async def test_the_amount_history_shows_is_recorded_gross_as_well(world: World) -> None:
    world.exchange.history_amount = "gross"
    intent = await submitted(world, "25")
    world.exchange.complete(intent.exchange_withdraw_id or "")
    await poll_once(world.ctx, SettleStats())
    after = await world.get(intent.id)
    assert (after.status, after.exchange_amount, after.amount) == (
        S.COMPLETED,
        Decimal(25),
        Decimal(25),
    )


async def test_a_pending_or_unknown_status_leaves_it_submitted(world: World) -> None:
    pending = await submitted(world)
    odd = await submitted(world, "11")
    world.exchange.set_status(odd.exchange_withdraw_id or "", 42)  # a code Binance never had
    await poll_once(world.ctx, SettleStats())
    assert [(await world.get(i.id)).status for i in (pending, odd)] == [S.SUBMITTED] * 2
    assert world.alerts == []


async def test_one_poll_settles_many_in_one_history_call(world: World) -> None:
    intents = [await submitted(world, str(n)) for n in (10, 20, 30)]
    for intent in intents:
        world.exchange.complete(intent.exchange_withdraw_id or "")
    stats = SettleStats()
    await poll_once(world.ctx, stats)
    assert {(await world.get(i.id)).status for i in intents} == {S.COMPLETED}
    assert (stats.settled, stats.history_calls) == (3, 1)


async def test_history_unreadable_past_the_age_limit_goes_to_a_person(world: World) -> None:
    world.configure(max_settle_age_s=3600)
    intent = await submitted(world)
    down = not_sent(
        "read timeout", endpoint="/sapi/v1/capital/withdraw/history", reason=Reason.TIMEOUT
    )
    world.exchange.script("withdraw_history", down, down)
    world.clock.advance(3599)
    await poll_once(world.ctx, SettleStats())
    assert (await world.get(intent.id)).status is S.SUBMITTED and world.alerts == []
    world.clock.advance(2)
    await poll_once(world.ctx, SettleStats())
    after = await world.get(intent.id)
    assert after.status is S.NEEDS_ATTENTION
    assert "could not be asked" in (after.status_reason or "")
    assert world.alert_kinds() == ["needs_attention"]


async def test_missing_from_history_past_the_age_limit_goes_to_a_person(world: World) -> None:
    world.configure(max_settle_age_s=3600)
    intent = await submitted(world)
    world.clock.advance(3601)
    world.exchange.script("withdraw_history", [])  # history answers, without it
    await poll_once(world.ctx, SettleStats())
    after = await world.get(intent.id)
    assert after.status is S.NEEDS_ATTENTION
    assert "not found in history" in (after.status_reason or "")
    assert world.alert_kinds() == ["needs_attention"]


async def test_a_withdrawal_no_intent_owns_alarms_once(world: World) -> None:
    world.exchange.add_record(
        WithdrawalRecord(
            id="leak-1",
            withdraw_order_id=None,
            coin="USDT",
            network="TRX",
            address="TThief",
            address_tag=None,
            amount=Decimal(500),
            fee=Decimal(1),
            status=X.PROCESSING,
            tx_id=None,
            apply_time=None,
            complete_time=None,
        )
    )
    await poll_once(world.ctx, SettleStats())
    await poll_once(world.ctx, SettleStats())  # a restarted process: alarmed before
    assert world.alert_kinds() == ["unexpected_withdrawal"]
    (event,) = await world.ledger.events.recent("unexpected_withdrawal")
    assert event.subject == "leak-1"


# ---- how often the poller may read history ---------------------------------------------------


@pytest.mark.parametrize("rate", [0.2, 1.0, 3.0, 10.0, 50.0])
def test_the_poll_gap_does_not_depend_on_the_sending_rate(rate: float) -> None:
    """History counts in its own per-second limit, not in apply's minute pool: sending at
    3 a second used to leave history one poll every 75 s, and at 3.4 one every 5 minutes."""
    from treasury.services.context import WorkerConfig
    from treasury.services.settle import min_poll_gap_s, poll_interval_s

    cfg = WorkerConfig(withdraw_rate=rate, poll_interval_s=2.0)
    assert min_poll_gap_s(cfg) == pytest.approx(0.5)  # a fifth of 10 requests a second
    assert poll_interval_s(cfg, youngest_age_s=1.0) == pytest.approx(2.0)
    slow = WorkerConfig(withdraw_rate=rate, poll_interval_s=0.1, history_per_second=1)
    assert poll_interval_s(slow, youngest_age_s=1.0) == pytest.approx(5.0)  # the floor
