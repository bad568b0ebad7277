"""How long the view keeps the account read (spot balances, ``canWithdraw``) when many
accounts share one IP's ``/api`` budget, and the fresh read before a balance hold."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from services_world import World

from treasury.domain.status import Status as S
from treasury.domain.wallet import Wallet
from treasury.services import exchange_view
from treasury.services.exchange_view import ACCOUNT_TTL_S, ExchangeView
from treasury.testing import FakeExchange


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mono(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    m = Monotonic()
    monkeypatch.setattr(exchange_view, "time", SimpleNamespace(monotonic=m))
    return m


def account_reads(ex: FakeExchange) -> int:
    return len(ex.calls_to("account"))


async def test_a_computed_lifetime_is_asked_at_each_read(mono: Monotonic) -> None:
    ex = FakeExchange(balances={"USDT": "100"})
    life = {"s": 40.0}
    view = ExchangeView(ex, rules_ttl_s=3600, account_ttl_s=lambda: life["s"])
    await view.free(Wallet.SPOT, "USDT")
    mono.now += 39
    await view.free(Wallet.SPOT, "USDT")
    assert account_reads(ex) == 1  # 39 s < 40 s: the cached read
    mono.now += 2
    await view.free(Wallet.SPOT, "USDT")
    assert account_reads(ex) == 2
    life["s"] = 5.0  # fewer senders now: shorter
    mono.now += 6
    await view.free(Wallet.SPOT, "USDT")
    assert account_reads(ex) == 3


async def test_free_now_reads_again_only_past_the_shortest_life(mono: Monotonic) -> None:
    ex = FakeExchange(balances={"USDT": "100"})
    view = ExchangeView(ex, rules_ttl_s=3600, account_ttl_s=600)
    assert await view.free(Wallet.SPOT, "USDT") == Decimal(100)
    ex.balances["USDT"] = Decimal(500)  # a deposit
    mono.now += ACCOUNT_TTL_S - 1
    assert await view.free_now(Wallet.SPOT, "USDT") == Decimal(100)  # too recent to ask
    assert account_reads(ex) == 1
    mono.now += 2
    assert await view.free_now(Wallet.SPOT, "USDT") == Decimal(500)
    assert account_reads(ex) == 2


async def test_a_new_read_forgets_what_was_committed_before_it(mono: Monotonic) -> None:
    ex = FakeExchange(balances={"USDT": "100"})
    view = ExchangeView(ex, rules_ttl_s=3600, account_ttl_s=600)
    await view.free(Wallet.SPOT, "USDT")
    view.committed(Wallet.SPOT, "USDT", Decimal(30))
    ex.balances["USDT"] = Decimal(70)  # the exchange has debited it
    mono.now += ACCOUNT_TTL_S + 1
    assert await view.free_now(Wallet.SPOT, "USDT") == Decimal(70)
    assert view.reserved(Wallet.SPOT, "USDT") == Decimal(0)  # not counted twice


async def test_an_old_balance_that_does_not_cover_is_read_again_before_a_hold(
    world: World, mono: Monotonic
) -> None:
    world.ctx.view = ExchangeView(world.ctx.exchange, rules_ttl_s=3600, account_ttl_s=600)
    world.exchange.balances["USDT"] = Decimal(5)
    first = await world.enqueue("10")
    held = await world.process(first.id)
    assert held.status is S.QUEUED and "does not cover" in (held.status_reason or "")
    reads = account_reads(world.exchange)
    world.exchange.balances["USDT"] = Decimal(1000)  # a deposit lands
    world.clock.advance(60)  # the hold's back-off (the ledger's clock)
    mono.now += 2  # too recent to ask again: still held, no read
    again = await world.process(first.id)
    assert again.status is S.QUEUED and account_reads(world.exchange) == reads
    world.clock.advance(60)
    mono.now += ACCOUNT_TTL_S  # older than that, long before the 600 s life ends
    sent = await world.process(first.id)
    assert sent.status is S.SUBMITTED, sent.status_reason
    assert account_reads(world.exchange) == reads + 1
    assert len(world.exchange.withdraw_requests()) == 1


async def test_a_covered_intent_costs_no_extra_read(world: World, mono: Monotonic) -> None:
    world.ctx.view = ExchangeView(world.ctx.exchange, rules_ttl_s=3600, account_ttl_s=600)
    for _ in range(3):
        intent = await world.enqueue("10")
        assert (await world.process(intent.id)).status is S.SUBMITTED
        mono.now += 60
    assert account_reads(world.exchange) == 1  # one read for all three (600 s life)
    assert world.ctx.view.reserved(Wallet.SPOT, "USDT") == Decimal(30)
