"""An internal transfer, daemon against the sandbox over HTTP: the destination is another
Binance account's deposit address (the sandbox's account ``treasury-sub``). The fee payer
setting decides who pays the fee, the flag travels with the send, the ledger records an
internal transfer, and exactly one withdrawal exists."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import anyio
import pytest

from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.sandbox.config import SandboxConfig, WhitelistEntry, default_config

SUB_TRX = next(
    d.address
    for d in default_config().accounts["treasury-sub"].deposit_addresses
    if d.network == "TRX"
)
FEE = Decimal("1")  # USDT on TRX, also the internal transfer's fee (the sandbox's default)


def sub_deposit_whitelisted(config: SandboxConfig) -> SandboxConfig:
    """Account default's address book holds treasury-sub's TRX deposit address."""
    entry = WhitelistEntry(
        coin="USDT", network="TRX", address=SUB_TRX, address_tag=None, name="sub-deposit"
    )
    account = config.accounts["default"]
    account = dataclasses.replace(account, whitelist=(*account.whitelist, entry))
    return dataclasses.replace(config, accounts={**config.accounts, "default": account})


async def enqueue(stack: Any, amount: str) -> Intent:
    new = validate_new_intent(coin="USDT", network="TRX", address=SUB_TRX, amount=amount)
    intent, _ = await stack.rt.ledger.intents.enqueue(new, actor="test")
    return intent


async def wait_reason(stack: Any, intent_id: int, words: str) -> Intent:
    with anyio.fail_after(15):
        while True:
            intent: Intent = await stack.rt.ledger.intents.get(intent_id)
            if words in (intent.status_reason or ""):
                return intent
            await anyio.sleep(0.1)


def usdt(state: Any, account: str) -> Decimal:
    return Decimal(state["balances"][account]["USDT"])


@pytest.mark.parametrize(
    ("payer", "flag", "debited", "received"),
    [("sender", "false", "26", "25"), ("recipient", "true", "25", "24")],
)
async def test_an_internal_transfer_completes_and_moves_what_the_fee_payer_says(
    stack_factory: Any, payer: str, flag: str, debited: str, received: str
) -> None:
    async with stack_factory(sandbox=sub_deposit_whitelisted, internal_fee_payer=payer) as stack:
        before = await stack.sandbox_state()
        async with stack.sender():
            intent = await enqueue(stack, "25")
            [done] = await stack.wait_settled([intent.id])
        state = await stack.sandbox_state()
        events = await stack.rt.ledger.intents.events(intent.id)
    assert done.status is Status.COMPLETED, done.status_reason
    assert "internal transfer" in (done.status_reason or ""), done.status_reason
    assert (done.tx_id or "").startswith("Off-chain transfer ")
    assert done.fee == FEE
    assert done.exchange_amount == Decimal(received)  # net: what treasury-sub got
    # the sender's and the recipient's balances moved by what the fee payer says
    assert usdt(before, "default") - usdt(state, "default") == Decimal(debited)
    assert usdt(state, "treasury-sub") - usdt(before, "treasury-sub") == Decimal(received)
    # exactly one withdrawal, from exactly one apply, which carried the flag
    [withdrawal] = state["withdrawals"]
    assert withdrawal["withdrawOrderId"] == done.withdraw_order_id
    assert (withdrawal["transferType"], withdrawal["recipient"]) == (1, "treasury-sub")
    [apply] = state["apply_requests"]
    assert apply["params"]["transactionFeeFlag"] == flag
    assert apply["id"] == withdrawal["id"] == done.exchange_withdraw_id
    # the commit to send is on the record with who pays
    [commit] = [e for e in events if e.to_status == "submitting"]
    assert f"an internal transfer's fee paid by the {payer}" in commit.reason


async def test_a_sender_paying_account_holds_a_send_its_balance_covers_only_without_the_fee(
    stack_factory: Any,
) -> None:
    """25.5 USDT and an intent of 25: on chain it would do, but were the destination a
    Binance account (it is) the sender would pay 26. Held, never sent; once the fee is
    covered it goes."""
    async with stack_factory(sandbox=sub_deposit_whitelisted, internal_fee_payer="sender") as stack:
        await stack.admin("account", {"account": "default", "balances": {"USDT": "25.5"}})
        async with stack.sender():
            intent = await enqueue(stack, "25")
            held = await wait_reason(stack, intent.id, "+ fee 1")
            assert (await stack.sandbox_state())["apply_requests"] == []
            await stack.admin("account", {"account": "default", "balances": {"USDT": "26"}})
            stack.rt.ctx.view.standing_changed()
            [done] = await stack.wait_settled([intent.id])
        state = await stack.sandbox_state()
    assert held.status is Status.QUEUED and held.withdraw_order_id is None
    assert done.status is Status.COMPLETED
    assert usdt(state, "default") == 0
    assert len(state["withdrawals"]) == 1
