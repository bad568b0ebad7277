"""reconcile: what a send left in ``submitting`` becomes, judged from the exchange's history.

The world's knobs: history lag allowance 60 s, reconcile interval 10 s (so two absence
checks must be 5 s apart), recvWindow 5 s; absence counts only once the exchange's clock
is past signed timestamp + 5 s + 10 s + 60 s = 75 s.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from services_world import World

from treasury.domain.exchange import ExchangeWithdrawStatus, WithdrawalRecord
from treasury.domain.intent import Intent
from treasury.domain.status import Status as S
from treasury.ports.exchange import Reason
from treasury.services import reconcile
from treasury.testing import Timeout, not_sent


async def unknown_outcome(world: World, *, executed: bool, amount: str = "10") -> Intent:
    world.exchange.script("withdraw", Timeout(executed=executed))
    intent = await world.enqueue(amount)
    sent = await world.process(intent.id)
    assert sent.status is S.SUBMITTING
    return sent


async def test_a_withdrawal_found_by_its_order_id_is_adopted(world: World) -> None:
    intent = await unknown_outcome(world, executed=True)
    assert await reconcile.reconcile_all(world.ctx) == 1
    after = await world.get(intent.id)
    (record,) = world.exchange.executed()
    assert (after.status, after.exchange_withdraw_id) == (S.SUBMITTED, record.id)
    assert (after.exchange_amount, after.fee) == (Decimal(9), Decimal(1))
    assert "adopted" in (after.status_reason or "") and world.alerts == []
    assert world.submitted_wakeups == [True]
    assert len(world.exchange.withdraw_requests()) == 1


async def test_one_already_completed_on_the_exchange_is_adopted_as_completed(world: World) -> None:
    intent = await unknown_outcome(world, executed=True)
    world.exchange.complete(world.oid(intent.id), tx_id="0xfeed")
    await reconcile.reconcile_all(world.ctx)
    after = await world.get(intent.id)
    assert (after.status, after.tx_id) == (S.COMPLETED, "0xfeed")
    assert world.alerts == []  # completed is not news


async def test_a_record_that_does_not_match_the_intent_needs_a_person(world: World) -> None:
    intent = await unknown_outcome(world, executed=False)
    world.exchange.add_record(
        WithdrawalRecord(
            id="other-1",
            withdraw_order_id=world.oid(intent.id),
            coin="USDT",
            network="TRX",
            address="TXyz",
            address_tag=None,
            amount=Decimal(4),
            fee=Decimal(1),
            status=ExchangeWithdrawStatus.PROCESSING,
            tx_id=None,
            apply_time=None,
            complete_time=None,
        )
    )
    await reconcile.reconcile_all(world.ctx)
    after = await world.get(intent.id)
    assert after.status is S.NEEDS_ATTENTION
    assert "does not match" in (after.status_reason or "")
    # filed and the account paused, as when the sweep or the settlement poll finds it
    assert world.alert_kinds() == ["needs_attention", "paused"]
    assert after.exchange_withdraw_id is None
    assert [u.exchange_withdraw_id for u in await world.ctx.ledger.unmatched.list()] == ["other-1"]
    assert (await world.ctx.ledger.state.pause_state("default")).paused


async def test_absence_counts_only_after_the_lag_allowance_and_two_looks_apart(
    world: World,
) -> None:
    intent = await unknown_outcome(world, executed=False)

    async def look(after_s: float) -> Intent:
        world.clock.advance(after_s)
        await reconcile.reconcile_all(world.ctx)
        return await world.get(intent.id)

    early = await look(0)
    assert (early.status, early.absent_checks) == (S.SUBMITTING, 0)
    still = await look(74)  # t=74 s: a copy of the request might still be accepted or unseen
    assert (still.status, still.absent_checks) == (S.SUBMITTING, 0)
    first = await look(2)  # t=76 s: the first absence that counts
    assert (first.status, first.absent_checks) == (S.SUBMITTING, 1)
    assert ("reconcile", "submitting") in await world.events(intent.id)
    too_soon = await look(2)  # 2 s later: under the 5 s gap, not a second look
    assert (too_soon.status, too_soon.absent_checks) == (S.SUBMITTING, 1)
    proven = await look(4)
    assert (proven.status, proven.absent_checks, proven.withdraw_order_id) == (
        S.QUEUED,
        0,
        world.oid(intent.id),
    )
    assert proven.not_before is None and "will be sent again with the same id" in (
        proven.status_reason or ""
    )
    assert len(world.exchange.withdraw_requests()) == 1 and world.alerts == []


async def test_a_send_being_answered_right_now_is_not_judged(world: World) -> None:
    intent = await unknown_outcome(world, executed=False)
    world.ctx.in_flight.add(intent.id)
    world.clock.advance(1000)
    assert await reconcile.reconcile_all(world.ctx) == 0
    assert (await world.get(intent.id)).absent_checks == 0


async def test_with_manual_resend_a_proven_absence_goes_to_a_person(world: World) -> None:
    world.configure(resend="manual")
    intent = await unknown_outcome(world, executed=False)
    world.clock.advance(80)
    await reconcile.reconcile_all(world.ctx)
    world.clock.advance(10)
    await reconcile.reconcile_all(world.ctx)
    after = await world.get(intent.id)
    assert after.status is S.NEEDS_ATTENTION
    assert f"treasury resend {intent.id}" in (after.status_reason or "")
    assert world.alert_kinds() == ["needs_attention"]
    assert len(world.exchange.withdraw_requests()) == 1


@pytest.mark.parametrize("broken", ["sync_clock", "withdraw_history"])
async def test_an_exchange_unreachable_past_the_give_up_time_goes_to_a_person(
    world: World, broken: str
) -> None:
    world.configure(reconcile_give_up_s=600)
    intent = await unknown_outcome(world, executed=False)
    down = not_sent("connection refused", endpoint="/api/v3/time", reason=Reason.CONNECT_FAILED)
    world.exchange.script(broken, down, down)
    world.clock.advance(599)
    await reconcile.reconcile_all(world.ctx)
    assert (await world.get(intent.id)).status is S.SUBMITTING and world.alerts == []
    world.clock.advance(2)
    await reconcile.reconcile_all(world.ctx)
    after = await world.get(intent.id)
    assert after.status is S.NEEDS_ATTENTION
    assert "could not be asked" in (after.status_reason or "")
    assert world.alert_kinds() == ["needs_attention"]
    assert world.exchange.scripted(broken) == 0
