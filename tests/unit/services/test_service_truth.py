"""truth: the sweep judges the exchange's history of this ledger's order ids against the
ledger — adopt what a restored ledger forgot, stop the account on what it cannot own."""

from __future__ import annotations

from decimal import Decimal

from services_world import World

from treasury.domain.exchange import ExchangeWithdrawStatus as X
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.status import Status as S
from treasury.services import truth


def record(
    oid: str | None, wid: str, *, amount: str = "9", status: int = X.COMPLETED
) -> WithdrawalRecord:
    """A history row: amount shown net of the 1 USDT fee (9 stands for 10 requested)."""
    return WithdrawalRecord(
        id=wid,
        withdraw_order_id=oid,
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        amount=Decimal(amount),
        fee=Decimal(1),
        status=status,
        tx_id="0xabc" if status == X.COMPLETED else None,
        apply_time=None,
        complete_time=None,
    )


async def test_the_sweep_adopts_a_queued_intent_the_exchange_already_has(world: World) -> None:
    """A ledger restored from a backup: intent 1 is queued again, but it was sent since."""
    intent = await world.enqueue("10")
    world.exchange.add_record(record(world.oid(intent.id), "w-1"))
    world.clock.advance(60)
    result = await truth.sweep(world.ctx)
    assert [f.kind for f in result.findings] == ["adopt"]
    after = await world.get(intent.id)
    assert (after.status, after.withdraw_order_id, after.exchange_withdraw_id) == (
        S.COMPLETED,
        world.oid(intent.id),
        "w-1",
    )
    assert after.submitted_at is not None  # it counts against the 24 h caps
    assert world.exchange.calls_to("withdraw") == [] and world.alerts == []
    assert await world.ledger.state.watermark("default") == world.exchange.now_ms()


async def test_an_order_id_no_intent_owns_is_filed_and_stops_the_account(world: World) -> None:
    waiting = await world.enqueue("10")
    world.exchange.add_record(record(world.oid(42), "w-42", amount="99"))
    result = await truth.sweep(world.ctx)
    assert [(f.kind, f.intent_id) for f in result.findings] == [("unknown", 42)]
    (filed,) = await world.ledger.unmatched.list("default")
    assert (filed.exchange_withdraw_id, filed.intent_id, filed.withdraw_order_id) == (
        "w-42",
        42,
        world.oid(42),
    )
    pause = await world.ledger.state.pause_state("default")
    assert pause.paused and "treasury resume --account default" in pause.reason
    assert not (await world.ledger.state.pause_state()).paused  # the account, not all
    assert world.alert_kinds() == ["ledger_behind_exchange", "paused"]
    assert [e.subject for e in await world.ledger.events.recent("paused")] == ["default"]
    # nothing of the account is sent while it is paused
    assert (await world.process(waiting.id)).status is S.QUEUED
    assert world.exchange.calls_to("withdraw") == []


async def test_records_already_on_file_are_not_judged_again(world: World) -> None:
    world.exchange.add_record(record(world.oid(42), "w-42"))
    await truth.sweep(world.ctx)
    assert await world.ledger.state.resume("default")  # a person looked and resumed
    world.clock.advance(600)
    again = await truth.sweep(world.ctx, since_ms=0)
    assert again.records == 1 and again.findings == []
    assert not (await world.ledger.state.pause_state("default")).paused
    assert world.alert_kinds() == ["ledger_behind_exchange", "paused"]  # from the first only
    assert len(await world.ledger.unmatched.list()) == 1


async def test_records_of_other_ledgers_are_left_to_the_unexpected_withdrawal_watch(
    world: World,
) -> None:
    world.exchange.add_record(record("trs-elsewhere-1", "w-x"))
    world.exchange.add_record(record(None, "w-y"))
    result = await truth.sweep(world.ctx)
    assert result.records == 2 and result.findings == []
    assert world.alerts == [] and await world.ledger.unmatched.list() == []


async def test_a_dry_run_judges_but_changes_nothing(world: World) -> None:
    intent = await world.enqueue("10")
    world.exchange.add_record(record(world.oid(intent.id), "w-1"))
    result = await truth.sweep(world.ctx, apply=False)
    assert [f.kind for f in result.findings] == ["adopt"]
    assert (await world.get(intent.id)).status is S.QUEUED
    assert await world.ledger.state.watermark("default") is None
