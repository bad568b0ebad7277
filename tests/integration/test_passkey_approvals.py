"""Passkey approvals with the real worker against the sandbox, on SQLite and PostgreSQL:
two operators approve with software passkeys through the service and only then is the
intent committed to send; one alone (put back in the queue by hand) is held back by the
worker; replays, another intent's assertion and the requester are refused; the database
keeps passkeys and invites as written."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.sandbox.ledger import read_ledger
from treasury.services import operators
from treasury.services.admin import Refused
from treasury.services.approvals import (
    PasskeyAssertion,
    passkey_challenge,
    record_passkey_approval,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from webauthn_authenticator import ORIGIN, RP_ID, Authenticator

TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"
POLICY = '[coins.USDT]\napproval_threshold = "100"\napprovals_required = 2\n'


def public_key() -> str:
    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


async def enqueue(stack: Any, amount: str) -> int:
    new = validate_new_intent(
        coin="USDT", network="TRX", address=TRX, amount=amount, requested_by="alice"
    )
    intent, _ = await stack.rt.ledger.intents.enqueue(new, actor="cli:alice")
    return int(intent.id)


async def sql(stack: Any, statement_: str, **params: object) -> None:
    async with stack.rt.ledger.engine.begin() as conn:
        await conn.execute(text(statement_), params)


async def requeue_by_hand(stack: Any, intent_id: int) -> None:
    """What a leaked database credential could do: put the intent back in the queue."""
    await sql(
        stack,
        "INSERT INTO intent_events (intent_id, from_status, to_status, reason, actor,"
        " intent_version) SELECT id, status, 'queued', 'approved', 'bob', version + 1"
        " FROM withdrawal_intents WHERE id = :i",
        i=intent_id,
    )
    await sql(
        stack,
        "UPDATE withdrawal_intents SET status = 'queued', version = version + 1 WHERE id = :i",
        i=intent_id,
    )


async def enrol(ledger: Any, name: str) -> Authenticator:
    """Register ``name`` as an operator and their software passkey through an invite."""
    await operators.add(ledger, name, public_key(), actor="cli:admin")
    made = await operators.invite(ledger, name, actor="cli:admin")
    auth = Authenticator()
    cdj, att = auth.register(operators.registration_challenge(made.token))
    passkey = await operators.register_passkey(
        ledger,
        made.token,
        client_data_json=cdj,
        attestation_object=att,
        origin=ORIGIN,
        rp_id=RP_ID,
    )
    assert passkey.operator == name
    return auth


async def assertion(ledger: Any, auth: Authenticator, intent_id: int) -> PasskeyAssertion:
    challenge, issued_at = await passkey_challenge(ledger, intent_id)
    cdj, data, sig = auth.get_assertion(challenge)
    return PasskeyAssertion(auth.credential_id, cdj, data, sig, issued_at)


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


async def test_two_passkey_approvals_release_a_send_and_one_does_not(
    stack_factory: Any, policy_path: Path
) -> None:
    async with stack_factory(policy_file=policy_path) as stack:
        ledger = stack.rt.ledger
        bob, carol, alice = [await enrol(ledger, n) for n in ("bob", "carol", "alice")]
        lonely, real = [await enqueue(stack, a) for a in ("500", "501")]
        async with stack.daemon():
            for i in (lonely, real):
                await stack.wait_status(i, Status.AWAITING_APPROVAL)

            # one approval on `lonely`, then put back in the queue by hand: held back
            one = await record_passkey_approval(
                ledger, lonely, await assertion(ledger, bob, lonely)
            )
            assert (one.approvers, one.released) == (("bob",), False)
            await requeue_by_hand(stack, lonely)
            await stack.wait_status(lonely, Status.AWAITING_APPROVAL)

            with pytest.raises(Refused, match="requested this withdrawal"):
                await record_passkey_approval(ledger, real, await assertion(ledger, alice, real))
            made_for_lonely = await assertion(ledger, bob, lonely)
            with pytest.raises(Refused, match="stale challenge"):
                await record_passkey_approval(ledger, real, made_for_lonely)
            with pytest.raises(Refused, match="not carol's"):
                await record_passkey_approval(
                    ledger, real, await assertion(ledger, bob, real), approver="carol"
                )
            first_assertion = await assertion(ledger, bob, real)
            first = await record_passkey_approval(ledger, real, first_assertion)
            assert not first.released
            with pytest.raises(Refused, match=r"already approved|sign count"):
                await record_passkey_approval(ledger, real, first_assertion)  # a replay
            second = await record_passkey_approval(
                ledger, real, await assertion(ledger, carol, real)
            )
            assert second.released and second.approvers == ("bob", "carol")
            [done] = await stack.wait_settled([real])
            await anyio.sleep(1)  # a few more worker rounds over the lonely one
            left = await ledger.intents.get(lonely)
        keys = {p.operator: p for p in await ledger.passkeys.all()}
    assert keys["bob"].sign_count == bob.sign_count  # raised by his last recorded approval
    assert done.status is Status.COMPLETED
    assert left.status is Status.AWAITING_APPROVAL and left.withdraw_order_id is None
    assert [w.amount for w in read_ledger(stack.journal).withdrawals] == [done.amount]


async def test_invites_are_single_use_and_the_database_keeps_passkeys(
    stack_factory: Any,
) -> None:
    async with stack_factory() as stack:
        ledger = stack.rt.ledger
        await operators.add(ledger, "bob", public_key(), actor="cli:admin")
        made = await operators.invite(ledger, "bob", actor="cli:admin")
        auth = Authenticator()
        cdj, att = auth.register(operators.registration_challenge(made.token))
        kw: dict[str, Any] = {
            "client_data_json": cdj,
            "attestation_object": att,
            "origin": ORIGIN,
            "rp_id": RP_ID,
        }
        with pytest.raises(Refused, match="no such invite"):
            await operators.register_passkey(ledger, "not-the-token", **kw)
        with pytest.raises(Refused, match="challenge"):
            await operators.register_passkey(
                ledger, made.token, **kw, expected_challenge=b"another"
            )
        passkey = await operators.register_passkey(ledger, made.token, **kw)
        with pytest.raises(Refused, match="used already"):
            await operators.register_passkey(ledger, made.token, **kw)
        other = await operators.invite(ledger, "bob", actor="cli:admin")
        cdj2, att2 = auth.register(operators.registration_challenge(other.token))
        with pytest.raises(Refused, match="registered already"):
            await operators.register_passkey(
                ledger,
                other.token,
                client_data_json=cdj2,
                attestation_object=att2,
                origin=ORIGIN,
                rp_id=RP_ID,
            )
        for attack in (
            "DELETE FROM operator_passkeys",
            "UPDATE operator_passkeys SET public_key = 'x'",
            "UPDATE operator_passkeys SET sign_count = 0",
            "UPDATE operator_passkeys SET operator = 'carol'",
            "DELETE FROM operator_invites",
            "UPDATE operator_invites SET used_at = NULL",
            "UPDATE operator_invites SET token_sha256 = "
            "'0000000000000000000000000000000000000000000000000000000000000000'",
            # a passkey slipped in under a used invite
            "INSERT INTO operator_passkeys (operator, credential_id, public_key, alg, rp_id,"
            f" origin, invite_id) VALUES ('bob', 'abc', 'x', -7, 'r', 'o', {made.invite.id})",
        ):
            with pytest.raises((IntegrityError, DBAPIError)):
                await sql(stack, attack)
        gone = await operators.remove_passkey(ledger, passkey.id, actor="cli:admin", reason="lost")
        assert gone.removed_at is not None
        with pytest.raises((IntegrityError, DBAPIError)):  # a removal is for good
            await sql(stack, "UPDATE operator_passkeys SET removed_at = NULL")
        with pytest.raises(Refused, match="removed already"):
            await operators.remove_passkey(ledger, passkey.id, actor="cli:admin", reason="again")
        events = [(e.kind, e.subject) for e in await ledger.events.recent()]
        recent = "\n".join(e.detail for e in await ledger.events.recent())
    assert ("operator_invited", "bob") in events and ("passkey_registered", "bob") in events
    assert ("passkey_removed", "bob") in events
    assert made.token not in recent and other.token not in recent
