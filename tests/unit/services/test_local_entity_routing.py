"""``LocalEntityRouting``: which endpoint a send takes, and a history that is never half."""

from __future__ import annotations

from decimal import Decimal

import pytest

from treasury.domain.exchange import WithdrawRequest
from treasury.domain.fee_payer import FeePayer
from treasury.domain.wallet import Wallet
from treasury.ports.exchange import NotSent, Reason, Rejected
from treasury.services.local_entity import LocalEntityRouting
from treasury.testing import FakeExchange, ManualClock


def fake() -> FakeExchange:
    exchange = FakeExchange(clock=ManualClock(), balances={"USDT": "100"}, fee="1")
    exchange.add_network("USDT", "TRX")
    return exchange


def request(questionnaire: dict[str, object] | None = None) -> WithdrawRequest:
    return WithdrawRequest(
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        amount=Decimal("10"),
        withdraw_order_id="trs-x-1",
        wallet=Wallet.SPOT,
        fee_payer=FeePayer.RECIPIENT,
        questionnaire=questionnaire,
    )


async def test_an_account_without_a_local_entity_reads_only_the_capital_history() -> None:
    exchange = fake()
    routed = LocalEntityRouting(exchange)
    await routed.withdraw(request())
    assert len(await routed.withdraw_history()) == 1
    assert len(await routed.withdraw_history()) == 1
    assert exchange.calls_to("local_entity_history") == []
    assert len(exchange.calls_to("travel_rule_requirement")) == 1  # asked once, remembered


async def test_a_fresh_process_asks_for_the_entity_before_it_answers_any_history() -> None:
    """Restarted mid-flight, it reconciles before it sends: a withdrawal that only the
    local-entity history shows must not read as absent."""
    exchange = fake()
    exchange.local_entity = "PL"
    await LocalEntityRouting(exchange).withdraw(request({"isAddressOwner": 1}))
    exchange.show_only_in("trs-x-1", "localentity")
    assert [r.withdraw_order_id for r in await LocalEntityRouting(exchange).withdraw_history()] == [
        "trs-x-1"
    ]


async def test_no_history_answer_when_the_entity_cannot_be_asked() -> None:
    exchange = fake()
    exchange.script(
        "travel_rule_requirement",
        NotSent("down", endpoint="/q", reason=Reason.SERVER_ERROR),
    )
    with pytest.raises(NotSent):
        await LocalEntityRouting(exchange).withdraw_history()
    assert exchange.calls_to("withdraw_history") == []


async def test_a_failing_local_history_fails_the_whole_answer() -> None:
    exchange = fake()
    exchange.local_entity = "JP"
    exchange.script(
        "local_entity_history", NotSent("down", endpoint="/h", reason=Reason.SERVER_ERROR)
    )
    with pytest.raises(NotSent):
        await LocalEntityRouting(exchange).withdraw_history()


async def test_a_send_with_a_questionnaire_takes_the_local_entity_endpoint_and_keeps_tr_id() -> (
    None
):
    exchange = fake()
    exchange.local_entity = "JP"
    accepted = await LocalEntityRouting(exchange).withdraw(request({"isAddressOwner": 1}))
    assert exchange.calls_to("withdraw") == [] and accepted.tr_id is not None
    assert accepted.id is None  # Binance's answer carries the trId only


async def test_a_refusal_quoting_a_personal_answer_is_masked() -> None:
    exchange = fake()
    exchange.local_entity = "PL"
    exchange.questionnaire_check = lambda q: f"bnfLastName: {q['bnfLastName']} is not valid"
    answers = {"isAddressOwner": 2, "bnfLastName": "Kowalska", "declaration": True}
    with pytest.raises(Rejected) as caught:
        await LocalEntityRouting(exchange).withdraw(request(answers))
    assert "Kowalska" not in str(caught.value) and "Kowalska" not in caught.value.detail
    assert "bnfLastName: <redacted> is not valid" in str(caught.value)
