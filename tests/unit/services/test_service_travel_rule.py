"""Sending from an account under a Binance local entity (the travel rule), on the fakes:
the questionnaire is checked before any call, read inside the commit, sent through
``localentity/withdraw/apply``; the withdrawal is followed through both histories, and an
unknown outcome is reconciled by ``withdrawOrderId`` exactly as on the capital path."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from services_world import World

from treasury.domain.exchange import ExchangeWithdrawStatus, TravelRuleStatus
from treasury.domain.status import Status as S
from treasury.domain.travel_rule import Entity, make_profile
from treasury.services import reconcile
from treasury.services.settle import SettleStats, poll_once
from treasury.testing import Timeout

EU_SELF: dict[str, Any] = {"isAddressOwner": 1, "sendTo": 1, "declaration": True}
EU_PERSON: dict[str, Any] = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "bnfFirstName": "Zofia",
    "bnfLastName": "Kowalska-Nowak",
    "country": "pl",
    "sendTo": 2,
    "vasp": "others",
    "vaspName": "Gielda Krakowska",
    "declaration": True,
}
PERSONAL = ("Zofia", "Kowalska-Nowak", "Gielda Krakowska")


async def under_poland(world: World, answers: dict[str, Any] | None = EU_PERSON) -> None:
    """The account under Binance Poland; the fixture's entry carries ``answers``."""
    world.exchange.local_entity = "PL"
    (entry,) = await world.ledger.whitelist.all()
    if answers is not None:
        profile = make_profile(Entity.EU, answers).to_json()
        await world.ledger.whitelist.set_profile(
            entry.id, profile, version=entry.version, actor="cli:ops", reason="beneficiary"
        )


def everything_written(world: World, intent_events: list[Any]) -> str:
    return " ".join([*(e.reason or "" for e in intent_events), *(m for _k, m, _i in world.alerts)])


async def test_a_missing_questionnaire_is_refused_locally_naming_it_and_costs_no_call(
    world: World,
) -> None:
    await under_poland(world, answers=None)
    intent = await world.enqueue("10")
    refused = await world.process(intent.id)
    assert refused.status is S.REJECTED and refused.withdraw_order_id is None
    assert "travel rule (EU questionnaire) questionnaire: missing" in (refused.status_reason or "")
    assert world.exchange.calls_to("withdraw") == []
    assert world.exchange.calls_to("withdraw_local_entity") == []


async def test_an_invalid_questionnaire_of_the_intent_is_refused_naming_the_field(
    world: World,
) -> None:
    await under_poland(world)
    bad = {**EU_SELF, "declaration": False}
    intent = await world.enqueue("10", questionnaire=json.dumps(bad))
    refused = await world.process(intent.id)
    assert refused.status is S.REJECTED
    assert "questionnaire.declaration" in (refused.status_reason or "")
    assert world.exchange.calls_to("withdraw_local_entity") == []


async def test_an_entity_whose_form_is_not_modelled_holds_the_intent(world: World) -> None:
    world.exchange.local_entity = "AE"
    intent = await world.enqueue("10")
    held = await world.process(intent.id)
    assert held.status is S.QUEUED and "local entity AE" in (held.status_reason or "")
    assert world.exchange.calls_to("withdraw_local_entity") == []


async def test_a_third_party_send_goes_through_the_local_entity_and_settles(
    world: World,
) -> None:
    await under_poland(world)
    intent = await world.enqueue("10")
    sent = await world.process(intent.id)
    assert world.exchange.calls_to("withdraw") == []  # never the capital endpoint
    (call,) = world.exchange.calls_to("withdraw_local_entity")
    assert call.args["questionnaire"] == EU_PERSON  # the entry's profile, as validated
    assert call.args["request"].withdraw_order_id == sent.withdraw_order_id
    (record,) = world.exchange.executed()
    assert sent.status is S.SUBMITTED
    assert sent.exchange_tr_id is not None and sent.exchange_withdraw_id is None
    commit = [
        e for e in await world.ledger.intents.events(intent.id) if e.to_status == "submitting"
    ]
    assert "travel-rule questionnaire EU sha256:" in (commit[0].reason or "")

    world.exchange.complete(record.id)
    await poll_once(world.ctx, SettleStats())
    done = await world.get(intent.id)
    assert done.status is S.COMPLETED
    assert (done.exchange_withdraw_id, done.exchange_tr_id) == (record.id, sent.exchange_tr_id)
    trail = everything_written(world, await world.ledger.intents.events(intent.id))
    assert not [p for p in PERSONAL if p in trail], trail


@pytest.mark.parametrize("history", ["capital", "localentity"])
async def test_a_withdrawal_in_only_one_history_settles_all_the_same(
    world: World, history: str
) -> None:
    await under_poland(world, EU_SELF)
    intent = await world.enqueue("10")
    sent = await world.process(intent.id)
    world.exchange.show_only_in(sent.withdraw_order_id or "", history)  # type: ignore[arg-type]
    world.exchange.complete(sent.withdraw_order_id or "")
    await poll_once(world.ctx, SettleStats())
    assert (await world.get(intent.id)).status is S.COMPLETED


async def test_a_pending_travel_rule_check_holds_the_completion_back(world: World) -> None:
    await under_poland(world, EU_SELF)
    intent = await world.enqueue("10")
    sent = await world.process(intent.id)
    oid = sent.withdraw_order_id or ""
    world.exchange.set_travel_rule_status(oid, TravelRuleStatus.PENDING)
    world.exchange.complete(oid)  # a contradiction: completed while the check is pending
    await poll_once(world.ctx, SettleStats())
    assert (await world.get(intent.id)).status is S.SUBMITTED
    world.exchange.set_travel_rule_status(oid, TravelRuleStatus.COMPLETED)
    await poll_once(world.ctx, SettleStats())
    assert (await world.get(intent.id)).status is S.COMPLETED


async def test_a_failed_travel_rule_check_ends_the_intent_cancelled_with_the_reason(
    world: World,
) -> None:
    await under_poland(world, EU_SELF)
    intent = await world.enqueue("10")
    sent = await world.process(intent.id)
    world.exchange.set_travel_rule_status(
        sent.withdraw_order_id or "", TravelRuleStatus.FAILED, fail=True
    )
    await poll_once(world.ctx, SettleStats())
    ended = await world.get(intent.id)
    assert ended.status is S.CANCELLED
    assert "travel-rule check failed" in (ended.status_reason or "")


@pytest.mark.parametrize("executed", [False, True], ids=["lost-before", "lost-after"])
async def test_an_unknown_outcome_is_reconciled_through_both_histories_never_resent_blind(
    world: World, executed: bool
) -> None:
    """The answer of localentity/withdraw/apply is lost. Executed, the withdrawal shows only
    in the local-entity history (Binance's warning): reconciliation adopts it from there
    and nothing is sent again. Not executed: absence is proven in both, then one re-send
    with the same order id."""
    await under_poland(world, EU_SELF)
    world.exchange.script("withdraw_local_entity", Timeout(executed=executed))
    intent = await world.enqueue("10")
    first = await world.process(intent.id)
    assert first.status is S.SUBMITTING
    if executed:
        world.exchange.show_only_in(first.withdraw_order_id or "", "localentity")
    world.clock.advance(80)
    await reconcile.reconcile_all(world.ctx)
    world.clock.advance(10)
    await reconcile.reconcile_all(world.ctx)
    after = await world.get(intent.id)
    if executed:
        (record,) = world.exchange.executed()
        assert after.status is S.SUBMITTED and after.exchange_withdraw_id == record.id
        (row,) = await world.exchange.local_entity_history()
        assert after.exchange_tr_id == row.tr_id and row.id == record.id
        assert len(world.exchange.calls_to("withdraw_local_entity")) == 1
        return
    assert (after.status, after.send_count) == (S.QUEUED, 1)
    again = await world.process(intent.id)
    calls = world.exchange.calls_to("withdraw_local_entity")
    assert len(calls) == 2 and again.status is S.SUBMITTED
    assert {c.args["request"].withdraw_order_id for c in calls} == {first.withdraw_order_id}
    assert len(world.exchange.executed()) == 1


async def test_a_questionnaire_the_exchange_refuses_fails_with_its_text_masked(
    world: World,
) -> None:
    await under_poland(world)
    world.exchange.questionnaire_check = lambda q: (
        f"Questionnaire format not valid. bnfLastName: {q['bnfLastName']} unknown"
    )
    intent = await world.enqueue("10")
    failed = await world.process(intent.id)
    assert failed.status is S.FAILED
    reason = failed.status_reason or ""
    assert "Questionnaire format not valid. bnfLastName" in reason and "<redacted>" in reason
    trail = everything_written(world, await world.ledger.intents.events(intent.id))
    assert "Kowalska" not in trail and world.alert_kinds() == ["failed"]
    assert world.exchange.executed() == []


async def test_a_4104_refusal_is_not_the_intents_fault_it_waits_and_the_path_is_asked_again(
    world: World,
) -> None:
    """The account moved under a local entity after the view last asked: the capital apply
    answers -4104. The intent waits (not failed) and the next round sends it properly."""
    (entry,) = await world.ledger.whitelist.all()
    profile = make_profile(Entity.EU, EU_SELF).to_json()
    await world.ledger.whitelist.set_profile(
        entry.id, profile, version=entry.version, actor="cli:ops", reason="beneficiary"
    )
    await world.ctx.view.travel_rule()  # cached: no local entity
    world.exchange.local_entity = "PL"
    intent = await world.enqueue("10")
    held = await world.process(intent.id)
    assert held.status is S.QUEUED and "for now" in (held.status_reason or "")
    world.clock.advance(31)
    sent = await world.process(intent.id)
    assert sent.status is S.SUBMITTED and sent.exchange_tr_id is not None
    assert len(world.exchange.executed()) == 1
    assert world.exchange.executed()[0].status != ExchangeWithdrawStatus.CANCELLED
    assert sent.amount == Decimal(10)
