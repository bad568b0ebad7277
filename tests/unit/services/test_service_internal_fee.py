"""Who pays an internal transfer's fee: the account's setting, sent as
``transactionFeeFlag`` with every send, named in the commit's audit event, and covered by
the balance check (a sender-pays account must hold amount + the network fee, since any
destination may turn out to be a Binance account)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from services_world import World

from treasury.domain.exchange import ExchangeWithdrawStatus as X
from treasury.domain.fee_payer import FeePayer
from treasury.domain.status import Status as S
from treasury.domain.wallet import Wallet
from treasury.services.settle import SettleStats, poll_once
from treasury.testing import not_sent, rejected


@pytest.mark.parametrize(
    ("setting", "payer"), [("sender", FeePayer.SENDER), ("recipient", FeePayer.RECIPIENT)]
)
async def test_every_send_carries_the_accounts_fee_payer(
    world: World, setting: str, payer: FeePayer
) -> None:
    world.configure(internal_fee_payer=setting)
    intent = await world.enqueue("10")
    done = await world.process(intent.id)
    (request,) = world.exchange.withdraw_requests()
    assert done.status is S.SUBMITTED
    assert request.fee_payer is payer
    [commit] = [
        e for e in await world.ledger.intents.events(intent.id) if e.to_status == "submitting"
    ]
    assert f"an internal transfer's fee paid by the {setting}" in commit.reason, commit.reason
    assert "wallet spot" in commit.reason


async def test_the_sender_pays_so_the_balance_must_cover_amount_and_fee(world: World) -> None:
    """10.5 USDT, an intent of 10, a network fee of 1: on chain it would pass, but were the
    destination a Binance account the transfer would take 11. Held, never sent."""
    world.configure(internal_fee_payer="sender")
    world.exchange.balances["USDT"] = Decimal("10.5")
    intent = await world.enqueue("10")
    held = await world.process(intent.id)
    assert held.status is S.QUEUED and world.exchange.withdraw_requests() == []
    assert "does not cover 10 + fee 1" in (held.status_reason or ""), held.status_reason
    world.exchange.balances["USDT"] = Decimal("11")
    world.ctx.view.standing_changed()
    world.clock.advance(31)
    assert (await world.process(intent.id)).status is S.SUBMITTED


async def test_the_recipient_pays_so_the_amount_alone_must_be_covered(world: World) -> None:
    world.configure(internal_fee_payer="recipient")
    world.exchange.balances["USDT"] = Decimal("10")
    intent = await world.enqueue("10")
    done = await world.process(intent.id)
    assert done.status is S.SUBMITTED
    assert world.exchange.balances["USDT"] == Decimal("0")


async def test_a_sender_pays_send_reserves_amount_and_fee(world: World) -> None:
    """21 USDT: the first 10 reserves 11 (its worst case), so 10 left do not cover a
    second 10 + 1 until a fresh balance shows what the first really took."""
    world.configure(internal_fee_payer="sender")
    world.exchange.balances["USDT"] = Decimal("21")
    first = await world.enqueue("10")
    second = await world.enqueue("10")
    assert (await world.process(first.id)).status is S.SUBMITTED
    assert world.ctx.view.reserved(Wallet.SPOT, "USDT") == Decimal("11")
    assert (await world.process(second.id)).status is S.QUEUED
    assert len(world.exchange.withdraw_requests()) == 1


@pytest.mark.parametrize(
    "answer",
    [not_sent(), rejected(permanent=False, code=-4026)],
    ids=["not-sent", "refused-for-now"],
)
async def test_a_send_that_did_not_leave_frees_its_whole_reservation(
    world: World, answer: object
) -> None:
    world.exchange.script("withdraw", answer)
    intent = await world.enqueue("10")
    assert (await world.process(intent.id)).status is S.QUEUED
    assert world.ctx.view.reserved(Wallet.SPOT, "USDT") == Decimal("0")


@pytest.mark.parametrize(
    ("setting", "debited", "shown"),
    [("sender", "11", "10"), ("recipient", "10", "9")],
)
async def test_an_internal_transfer_completes_as_such_and_debits_per_the_payer(
    world: World, setting: str, debited: str, shown: str
) -> None:
    world.configure(internal_fee_payer=setting)
    world.exchange.internal_addresses.add("TXyz")
    intent = await world.enqueue("10")
    sent = await world.process(intent.id)
    assert world.exchange.balances["USDT"] == Decimal(1000) - Decimal(debited)
    world.exchange.set_status(sent.withdraw_order_id or "", X.COMPLETED)
    await poll_once(world.ctx, SettleStats())
    done = await world.get(intent.id)
    assert done.status is S.COMPLETED
    assert "internal transfer" in (done.status_reason or ""), done.status_reason
    assert (done.fee, done.exchange_amount) == (Decimal(1), Decimal(shown))
    assert done.tx_id is not None and done.tx_id.startswith("Off-chain transfer ")
