"""An account under a Binance local entity, daemon against the sandbox over HTTP: the
preflight names the entity, and an intent waits with the reason instead of meeting
capital/withdraw/apply's -4104 refusal: no apply call reaches the exchange."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio

from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.sandbox.config import SandboxConfig, default_config
from treasury.services.preflight import run_checks

TRX = default_config().accounts["default"].whitelisted("USDT", "TRX")[0].address


def under_japan(config: SandboxConfig) -> SandboxConfig:
    account = dataclasses.replace(config.accounts["default"], local_entity="JP")
    return dataclasses.replace(config, accounts={**config.accounts, "default": account})


async def test_an_account_under_a_local_entity_is_named_and_its_intents_wait(
    stack_factory: Any,
) -> None:
    async with stack_factory(sandbox=under_japan) as stack:
        checks = await run_checks(stack.rt.exchange, schema=None, allow_unrestricted_ip=False)
        [line] = [c for c in checks if c.name == "travel rule"]
        assert line.ok and line.warning and "local entity JP" in line.detail
        new = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="5")
        intent, _ = await stack.rt.ledger.intents.enqueue(new, actor="test")
        async with stack.sender():
            with anyio.fail_after(15):
                while "local entity JP" not in (
                    (held := await stack.rt.ledger.intents.get(intent.id)).status_reason or ""
                ):
                    await anyio.sleep(0.1)
        assert held.status is Status.QUEUED and held.withdraw_order_id is None
        state = await stack.sandbox_state()
        assert state["withdrawals"] == [] and state["apply_requests"] == []
