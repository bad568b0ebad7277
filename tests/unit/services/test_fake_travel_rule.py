"""The fake exchange's travel-rule side behaves as the sandbox does (and can be scripted)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from treasury.domain.exchange import TravelRuleStatus, WithdrawRequest
from treasury.domain.fee_payer import FeePayer
from treasury.domain.wallet import Wallet
from treasury.ports.exchange import OutcomeUnknown, Reason, Rejected
from treasury.testing import FakeExchange, ManualClock, Timeout

QUESTIONNAIRE = {"isAddressOwner": 1, "sendTo": 1, "declaration": True}


def request(oid: str) -> WithdrawRequest:
    return WithdrawRequest(
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        amount=Decimal(10),
        withdraw_order_id=oid,
        wallet=Wallet.SPOT,
        fee_payer=FeePayer.SENDER,
    )


@pytest.fixture
def exchange(clock: ManualClock) -> FakeExchange:
    fake = FakeExchange(clock=clock, balances={"USDT": "100"}, fee="1")
    fake.local_entity = "PL"
    return fake


async def test_requirement_and_capital_refusal(exchange: FakeExchange) -> None:
    assert await exchange.travel_rule_requirement() == "PL"
    with pytest.raises(Rejected) as caught:
        await exchange.withdraw(request("capital"))
    assert caught.value.code == -4104 and caught.value.reason is Reason.TRAVEL_RULE
    exchange.local_entity = None
    assert await exchange.travel_rule_requirement() is None


async def test_a_local_withdrawal_shows_in_both_histories(exchange: FakeExchange) -> None:
    accepted = await exchange.withdraw_local_entity(request("w1"), QUESTIONNAIRE)
    [local] = await exchange.local_entity_history(tr_ids=[accepted.tr_id])
    [capital] = await exchange.withdraw_history(withdraw_order_id="w1")
    assert local.id == capital.id and local.amount == Decimal(9)
    assert local.travel_rule_status == TravelRuleStatus.COMPLETED
    assert exchange.balances["USDT"] == Decimal(90)
    exchange.show_only_in("w1", "capital")
    assert await exchange.local_entity_history() == []
    assert len(await exchange.withdraw_history()) == 1


async def test_a_refused_questionnaire_is_permanent_and_books_nothing(
    exchange: FakeExchange,
) -> None:
    exchange.questionnaire_check = lambda q: None if q.get("declaration") else "declaration"
    with pytest.raises(Rejected) as caught:
        await exchange.withdraw_local_entity(request("bad"), {"declaration": False})
    assert caught.value.permanent and caught.value.reason is Reason.TRAVEL_RULE
    assert await exchange.withdraw_history() == [] and exchange.balances["USDT"] == 100


async def test_a_failed_check_cancels_and_refunds(exchange: FakeExchange) -> None:
    accepted = await exchange.withdraw_local_entity(request("tr"), QUESTIONNAIRE)
    exchange.set_travel_rule_status(str(accepted.tr_id), TravelRuleStatus.FAILED, fail=True)
    [row] = await exchange.local_entity_history(travel_rule_status=2)
    assert row.withdrawal_status == 1 and exchange.balances["USDT"] == 100


async def test_a_lost_answer_after_executing_is_unknown_and_booked(exchange: FakeExchange) -> None:
    exchange.script("withdraw_local_entity", Timeout(executed=True))
    with pytest.raises(OutcomeUnknown):
        await exchange.withdraw_local_entity(request("lost"), QUESTIONNAIRE)
    assert len(await exchange.local_entity_history(withdraw_order_id="lost")) == 1
