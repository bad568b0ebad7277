"""The wallet a send debits: named by the intent, or its account's default, written into
the row when the intent commits to send, sent as ``walletType`` every time, and checked
against that wallet's balance only (Binance refuses -4026 when that wallet is short)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from services_world import World

from treasury.domain.exchange import ExchangeWithdrawStatus as X
from treasury.domain.status import Status as S
from treasury.domain.wallet import Wallet
from treasury.ports.store import IdempotencyConflict
from treasury.services.settle import SettleStats, poll_once


async def test_an_intent_without_a_wallet_takes_the_accounts_default_at_the_commit(
    world: World,
) -> None:
    intent = await world.enqueue("10")
    assert intent.wallet is None  # open while queued
    done = await world.process(intent.id)
    (request,) = world.exchange.withdraw_requests()
    assert request.wallet is Wallet.SPOT and done.wallet is Wallet.SPOT
    assert world.exchange.balances["USDT"] == Decimal("990")


async def test_a_funding_default_debits_the_funding_wallet(world: World) -> None:
    world.ctx.config = dataclasses.replace(world.ctx.config, wallet="funding")
    world.exchange.funding["USDT"] = Decimal("50")
    intent = await world.enqueue("10")
    done = await world.process(intent.id)
    (request,) = world.exchange.withdraw_requests()
    assert (request.wallet, done.wallet, done.status) == (
        Wallet.FUNDING,
        Wallet.FUNDING,
        S.SUBMITTED,
    )
    assert world.exchange.funding["USDT"] == Decimal("40")
    assert world.exchange.balances["USDT"] == Decimal("1000")  # spot untouched


async def test_the_other_wallets_funds_do_not_count(world: World) -> None:
    """1000 USDT in spot, nothing in funding: a funding intent is held, never sent."""
    intent = await world.enqueue("10", wallet="funding")
    held = await world.process(intent.id)
    assert held.status is S.QUEUED and world.exchange.withdraw_requests() == []
    assert "funding wallet" in (held.status_reason or ""), held.status_reason
    assert held.wallet is Wallet.FUNDING


async def test_the_named_wallet_wins_over_the_default(world: World) -> None:
    world.ctx.config = dataclasses.replace(world.ctx.config, wallet="funding")
    intent = await world.enqueue("10", wallet="spot")
    done = await world.process(intent.id)
    (request,) = world.exchange.withdraw_requests()
    assert request.wallet is Wallet.SPOT and done.wallet is Wallet.SPOT


async def test_committed_amounts_count_against_their_own_wallet(world: World) -> None:
    world.exchange.funding["USDT"] = Decimal("15")
    first = await world.enqueue("10", wallet="funding")
    second = await world.enqueue("10", wallet="funding")
    spot = await world.enqueue("10", wallet="spot")
    assert (await world.process(first.id)).status is S.SUBMITTED
    # the cached funding balance (15) less the 10 just committed does not cover 10 more
    assert (await world.process(second.id)).status is S.QUEUED
    assert (await world.process(spot.id)).status is S.SUBMITTED
    assert [r.wallet for r in world.exchange.withdraw_requests()] == [Wallet.FUNDING, Wallet.SPOT]


async def test_a_request_id_retried_with_another_wallet_is_refused(world: World) -> None:
    await world.enqueue("10", wallet="spot", request_id="bot-1")
    with pytest.raises(IdempotencyConflict, match="different wallet"):
        await world.enqueue("10", wallet="funding", request_id="bot-1")
    same = await world.enqueue("10", request_id="bot-1")  # no wallet named: the same request
    assert same.wallet is Wallet.SPOT


async def test_a_review_of_hours_keeps_waiting_then_a_cancel_refunds_its_own_wallet(
    world: World,
) -> None:
    """Status 2 (the exchange's review) for six hours is a withdrawal in flight, not a
    stuck one; cancelled by the user (status 1), the funds go back to the wallet they left."""
    world.exchange.funding["USDT"] = Decimal("100")
    intent = await world.enqueue("30", wallet="funding")
    sent = await world.process(intent.id)
    ref = sent.exchange_withdraw_id or ""
    world.exchange.set_status(ref, X.AWAITING_APPROVAL)
    for _ in range(6):
        world.clock.advance(3600)
        await poll_once(world.ctx, SettleStats())
        assert (await world.get(intent.id)).status is S.SUBMITTED
    assert world.alerts == [] and world.exchange.funding["USDT"] == Decimal("70")
    world.exchange.set_status(ref, X.CANCELLED, info="cancelled by the user")
    await poll_once(world.ctx, SettleStats())
    done = await world.get(intent.id)
    assert done.status is S.CANCELLED and "cancelled by the user" in (done.status_reason or "")
    assert world.exchange.funding["USDT"] == Decimal("100")
    assert world.exchange.balances["USDT"] == Decimal("1000")
