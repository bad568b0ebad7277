"""An account under a Binance local entity, daemon against the sandbox over HTTP: the
preflight names the entity, an intent without a questionnaire is refused before any call,
and one with a profile goes through localentity/withdraw/apply and settles."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio

from treasury.domain.status import Status
from treasury.domain.travel_rule import Entity, make_profile
from treasury.domain.validation import validate_new_intent
from treasury.sandbox.config import SandboxConfig, default_config
from treasury.services.preflight import run_checks

TRX = default_config().accounts["default"].whitelisted("USDT", "TRX")[0].address


def under_japan(config: SandboxConfig) -> SandboxConfig:
    account = dataclasses.replace(config.accounts["default"], local_entity="JP")
    return dataclasses.replace(config, accounts={**config.accounts, "default": account})


async def test_an_account_under_a_local_entity_is_named_and_sends_through_it(
    stack_factory: Any,
) -> None:
    """Over HTTP to the sandbox: the preflight names the entity; an intent whose entry has
    no profile is refused before any call; with a profile it goes through
    localentity/withdraw/apply (never the capital apply) and settles from the histories."""
    async with stack_factory(sandbox=under_japan, poll_interval_s=0.2) as stack:
        checks = await run_checks(stack.rt.exchange, schema=None, allow_unrestricted_ip=False)
        [line] = [c for c in checks if c.name == "travel rule"]
        assert (
            line.ok and not line.warning and "local entity JP (the JP questionnaire)" in line.detail
        )
        ledger = stack.rt.ledger
        new = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="15")
        bare, _ = await ledger.intents.enqueue(new, actor="test")
        async with stack.sender():
            refused = await wait_for(ledger, bare.id, Status.REJECTED)
            assert "travel rule (JP questionnaire) questionnaire: missing" in (
                refused.status_reason or ""
            )
            state = await stack.sandbox_state()
            assert state["withdrawals"] == [] and state["apply_requests"] == []
            (entry,) = [e for e in await ledger.whitelist.all() if e.address == TRX]
            profile = make_profile(Entity.JP, JP_SELF).to_json()
            await ledger.whitelist.set_profile(
                entry.id, profile, version=entry.version, actor="cli:ops", reason="ours"
            )
            again = validate_new_intent(
                coin="USDT", network="TRX", address=TRX, amount="15", request_id="second"
            )
            intent, _ = await ledger.intents.enqueue(again, actor="test")
            done = await wait_for(ledger, intent.id, Status.COMPLETED, timeout=30)
        assert done.exchange_tr_id is not None and done.exchange_withdraw_id is not None
        state = await stack.sandbox_state()
        [withdrawal] = state["withdrawals"]
        assert withdrawal["withdrawOrderId"] == done.withdraw_order_id
        assert [r["endpoint"] for r in state["apply_requests"]] == ["localentity"]


JP_SELF: dict[str, Any] = {
    "isAddressOwner": 1,
    "country": "jp",
    "city": "Sapporo",
    "sendTo": 2,
    "txnPurpose": 4,
    "isAttested": True,
}


async def wait_for(ledger: Any, intent_id: int, status: Status, timeout: float = 15) -> Any:
    with anyio.fail_after(timeout):
        while (intent := await ledger.intents.get(intent_id)).status is not status:
            if intent.status.terminal:
                raise AssertionError(f"intent {intent_id} ended {intent.status}: {intent}")
            await anyio.sleep(0.1)
    return intent
