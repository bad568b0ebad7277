"""``ExchangeView.snapshot()``: what the daemon publishes for ``treasury api``'s preview is
what the view has cached, read without a single exchange call."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from treasury.domain.fee_payer import FeePayer
from treasury.domain.view_snapshot import from_json, to_json
from treasury.domain.wallet import Wallet
from treasury.ports.clock import utcnow
from treasury.services.exchange_view import ExchangeView
from treasury.testing import FakeExchange


def _exchange() -> FakeExchange:
    ex = FakeExchange(balances={"USDT": "100", "BTC": "0.5"}, funding={"USDT": "7"}, fee="1")
    ex.add_network("USDT", "TRX", withdraw_min="10", withdraw_max="10000")
    ex.add_network("BTC", "BTC", withdraw_min="0.001", fee="0.0002")
    ex.local_entity = "JP"
    return ex


def _view(ex: FakeExchange) -> ExchangeView:
    return ExchangeView(ex, rules_ttl_s=3600, account_ttl_s=3600)


async def _fill(view: ExchangeView) -> None:
    """What the worker's loops read, so that everything is cached."""
    await view.rules()
    await view.account()
    await view.free(Wallet.FUNDING, "USDT")
    await view.quota()
    await view.system_status()
    await view.restrictions()
    await view.account_status()
    await view.travel_rule()


def test_nothing_cached_is_no_snapshot_and_no_call() -> None:
    ex = _exchange()
    view = _view(ex)
    assert view.snapshot("default", wallet=Wallet.SPOT, fee_payer=FeePayer.SENDER) is None
    assert ex.calls == []


async def test_the_snapshot_is_the_cache_and_calls_nothing() -> None:
    ex = _exchange()
    view = _view(ex)
    before = utcnow()
    await _fill(view)
    calls = len(ex.calls)
    view.committed(Wallet.SPOT, "USDT", Decimal("30"))  # a send under way
    snap = view.snapshot("main", wallet=Wallet.FUNDING, fee_payer=FeePayer.RECIPIENT)
    assert len(ex.calls) == calls, ex.calls[calls:]  # no exchange call
    assert snap is not None
    assert snap.account == "main" and snap.wallet is Wallet.FUNDING
    assert snap.fee_payer is FeePayer.RECIPIENT
    assert before <= snap.fetched_at <= utcnow()
    assert set(snap.coins) == {"USDT", "BTC"}
    (trx,) = snap.coins["USDT"].networks
    assert trx.withdraw_min == Decimal("10") and trx.withdraw_fee == Decimal("1")
    assert snap.coins["BTC"].networks[0].withdraw_fee == Decimal("0.0002")
    # net of what was committed since the fetch
    assert snap.free(Wallet.SPOT, "USDT") == Decimal("70")
    assert snap.free(Wallet.SPOT, "BTC") == Decimal("0.5")
    assert snap.free(Wallet.FUNDING, "USDT") == Decimal("7")
    assert snap.quota == ex.quota
    assert snap.standing is not None and snap.standing.can_withdraw
    assert snap.standing.system_normal and snap.standing.enable_withdrawals
    assert snap.standing.account_status == "Normal"
    assert snap.travel_rule == "JP" and snap.travel_rule_known
    # and it survives the trip through service_state's text
    assert from_json(to_json(snap)) == snap


async def test_only_rules_cached_gives_what_is_known() -> None:
    ex = _exchange()
    view = _view(ex)
    await view.rules()
    calls = len(ex.calls)
    snap = view.snapshot("default", wallet=Wallet.SPOT, fee_payer=FeePayer.SENDER)
    assert len(ex.calls) == calls
    assert snap is not None and set(snap.coins) == {"USDT", "BTC"}
    assert snap.balances == {} and snap.free(Wallet.SPOT, "USDT") is None
    assert snap.quota is None and snap.standing is None
    assert snap.travel_rule is None and not snap.travel_rule_known


async def test_fetched_at_is_the_oldest_fact() -> None:
    ex = _exchange()
    view = _view(ex)
    await view.rules()
    old = utcnow() - timedelta(minutes=5)
    view._rules.fetched_at = old  # rules fetched five minutes ago, the rest just now
    await _fill(view)
    snap = view.snapshot("default", wallet=Wallet.SPOT, fee_payer=FeePayer.SENDER)
    assert snap is not None and snap.fetched_at == old
    assert snap.age_s(utcnow()) >= 300


async def test_no_local_entity_is_known_and_none() -> None:
    ex = _exchange()
    ex.local_entity = None
    view = _view(ex)
    await _fill(view)
    snap = view.snapshot("default", wallet=Wallet.SPOT, fee_payer=FeePayer.SENDER)
    assert snap is not None and snap.travel_rule is None and snap.travel_rule_known


async def test_warm_fills_what_a_preview_reads_and_costs_nothing_while_it_is_fresh() -> None:
    """An idle sender's published view: ``warm`` fetches each expired part once, and
    nothing while the caches are fresh."""
    ex = _exchange()
    view = _view(ex)
    assert view.snapshot("default", wallet=Wallet.SPOT, fee_payer=FeePayer.RECIPIENT) is None
    await view.warm(Wallet.SPOT)
    snap = view.snapshot("default", wallet=Wallet.SPOT, fee_payer=FeePayer.RECIPIENT)
    assert snap is not None and snap.coins and snap.quota is not None and snap.standing
    fetched = len(ex.calls)
    assert {c.method for c in ex.calls} >= {"account", "coin_configs", "withdraw_quota"}
    await view.warm(Wallet.SPOT)
    assert len(ex.calls) == fetched
