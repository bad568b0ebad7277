"""A real Binance account's details, daemon against the sandbox over HTTP: the wallet a
send debits, the tag rule of a network, the account's status."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.domain.wallet import Wallet
from treasury.sandbox.config import SandboxConfig

TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"


async def enqueue(stack: Any, amount: str, **fields: Any) -> Intent:
    spec = {"coin": "USDT", "network": "TRX", "address": TRX, **fields}
    intent, _ = await stack.rt.ledger.intents.enqueue(
        validate_new_intent(amount=amount, **spec), actor="test"
    )
    return intent


async def wait_reason(stack: Any, intent_id: int, words: str) -> Intent:
    with anyio.fail_after(15):
        while True:
            intent = await stack.rt.ledger.intents.get(intent_id)
            if words in (intent.status_reason or ""):
                return intent
            await anyio.sleep(0.1)


async def test_a_funding_intent_debits_the_funding_wallet_and_is_held_when_it_is_short(
    stack_factory: Any,
) -> None:
    async with stack_factory() as stack:
        await stack.admin("account", {"account": "default", "funding_balances": {"USDT": "100"}})
        spot_before = (await stack.sandbox_state())["balances"]["default"]["USDT"]
        async with stack.sender():
            paid = await enqueue(stack, "30", wallet="funding")
            [done] = await stack.wait_settled([paid.id])
            short = await enqueue(stack, "80", wallet="funding")  # 70 left in funding
            held = await wait_reason(stack, short.id, "funding wallet")
        state = await stack.sandbox_state()
    assert (done.status, done.wallet) == (Status.COMPLETED, Wallet.FUNDING)
    assert state["funding_balances"]["default"]["USDT"] == "70"
    assert state["balances"]["default"]["USDT"] == spot_before  # spot untouched
    [record] = [w for w in state["withdrawals"] if w["withdrawOrderId"] == done.withdraw_order_id]
    assert record["walletType"] == 1
    # the spot wallet holds millions; they do not count for a funding intent
    assert held.status is Status.QUEUED and held.withdraw_order_id is None
    assert [w["withdrawOrderId"] for w in state["withdrawals"]] == [done.withdraw_order_id]


async def test_an_intent_without_a_wallet_takes_the_configured_default(
    stack_factory: Any,
) -> None:
    async with stack_factory(wallet="funding") as stack:
        await stack.admin("account", {"account": "default", "funding_balances": {"USDT": "100"}})
        async with stack.sender():
            intent = await enqueue(stack, "25")
            [done] = await stack.wait_settled([intent.id])
        state = await stack.sandbox_state()
    assert (done.status, done.wallet) == (Status.COMPLETED, Wallet.FUNDING)
    assert state["funding_balances"]["default"]["USDT"] == "75"


async def test_a_tag_on_a_network_without_tags_is_refused_before_sending(
    stack_factory: Any,
) -> None:
    """withdrawTag false takes no tag, even where the exchange publishes a memo pattern
    (Binance would answer -4106)."""
    async with stack_factory() as stack:
        await stack.admin("network", {"coin": "USDT", "network": "TRX", "memoRegex": "^[0-9]+$"})
        stack.rt.ctx.view.rules_changed()
        async with stack.sender():
            intent = await enqueue(stack, "20", address_tag="12345")
            [done] = await stack.wait_settled([intent.id])
        state = await stack.sandbox_state()
    assert done.status is Status.REJECTED
    assert "withdrawTag is false" in (done.status_reason or ""), done.status_reason
    assert state["apply_requests"] == []


async def test_a_restricted_account_holds_every_send_with_the_exchanges_words(
    stack_factory: Any,
) -> None:
    text = "Withdrawals restricted: account under review"
    async with stack_factory() as stack:
        await stack.admin("account", {"account": "default", "account_status": text})
        async with stack.sender():
            intent = await enqueue(stack, "20")
            held = await wait_reason(stack, intent.id, "under review")
            await stack.admin("account", {"account": "default", "account_status": "Normal"})
            stack.rt.ctx.view.standing_changed()
            [done] = await stack.wait_settled([intent.id])
    assert held.status is Status.QUEUED and held.withdraw_order_id is None
    assert done.status is Status.COMPLETED
    assert Decimal(done.amount) == Decimal("20")


async def test_an_rsa_key_signs_every_request_and_a_withdrawal_goes_through(
    stack_factory: Any, tmp_path: Path
) -> None:
    """No HMAC secret anywhere: the sandbox knows the account's RSA public key only."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    key_file = tmp_path / "binance-rsa.pem"
    key_file.write_bytes(pem)
    key_file.chmod(0o600)

    def rsa_only(config: SandboxConfig) -> SandboxConfig:
        account = dataclasses.replace(
            config.accounts["default"],
            hmac_secret=None,
            ed25519_public_key=None,
            rsa_public_key=public.decode(),
        )
        return dataclasses.replace(config, accounts={**config.accounts, "default": account})

    async with stack_factory(
        sandbox=rsa_only, binance_api_secret=None, binance_private_key_file=key_file
    ) as stack:
        async with stack.sender():
            intent = await enqueue(stack, "20")
            [done] = await stack.wait_settled([intent.id])
        state = await stack.sandbox_state()
    assert done.status is Status.COMPLETED
    assert [w["withdrawOrderId"] for w in state["withdrawals"]] == [done.withdraw_order_id]
