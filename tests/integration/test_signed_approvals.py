"""Approvals that prove who approved, with the real worker against the sandbox, on SQLite
and PostgreSQL: forged, replayed and unregistered approvals slipped in by raw SQL are
ignored by the daemon inside the commit transaction; real signed ones release the send;
the database keeps operators and approvals as written."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from treasury.domain.approval_proof import statement
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.sandbox.ledger import read_ledger
from treasury.services import operators
from treasury.services.admin import Refused
from treasury.services.approvals import approve

TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"
POLICY = '[coins.USDT]\napproval_threshold = "100"\napprovals_required = 2\n'
KEYS = {name: Ed25519PrivateKey.generate() for name in ("bob", "carol", "mallory")}


def public(name: str) -> str:
    raw = (
        KEYS[name]
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


def sign(name: str, message: bytes) -> str:
    return base64.b64encode(KEYS[name].sign(message)).decode()


async def enqueue(stack: Any, amount: str) -> int:
    new = validate_new_intent(
        coin="USDT", network="TRX", address=TRX, amount=amount, requested_by="alice"
    )
    intent, _ = await stack.rt.ledger.intents.enqueue(new, actor="cli:alice")
    return int(intent.id)


async def sql(stack: Any, statement_: str, **params: object) -> None:
    async with stack.rt.ledger.engine.begin() as conn:
        await conn.execute(text(statement_), params)


async def smuggle(stack: Any, intent_id: int, approvals: dict[str, str]) -> None:
    """What a leaked database credential could do: insert approvals and put the intent
    back in the queue, with a version bump, by hand."""
    for who, signature in approvals.items():
        await sql(
            stack,
            "INSERT INTO intent_approvals (intent_id, approver, signature) VALUES (:i, :a, :s)",
            i=intent_id,
            a=who,
            s=signature,
        )
    # the database wants the status change's event first (migration 0010): the smuggler
    # writes one, claiming to be someone
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


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


async def test_only_approvals_that_prove_who_approved_release_a_send(
    stack_factory: Any, policy_path: Path
) -> None:
    async with stack_factory(policy_file=policy_path) as stack:
        ledger = stack.rt.ledger
        for name in ("bob", "carol"):
            await operators.add(ledger, name, public(name), actor="cli:admin")
        forged, replayed, stranger, real = [
            await enqueue(stack, a) for a in ("500", "501", "502", "503")
        ]
        async with stack.daemon():
            for i in (forged, replayed, stranger, real):
                await stack.wait_status(i, Status.AWAITING_APPROVAL)
            other = await ledger.intents.get(real)
            honest = {
                "bob": sign("bob", statement(other)),
                "carol": sign("carol", statement(other)),
            }
            # signed over a different amount, replayed from another intent, by a key
            # nobody registered: each put back in the queue by hand
            fake = await ledger.intents.get(forged)
            small = statement(fake).replace(b"amount=500", b"amount=5")
            await smuggle(stack, forged, {n: sign(n, small) for n in ("bob", "carol")})
            await smuggle(stack, replayed, honest)
            await smuggle(stack, stranger, {"mallory": sign("mallory", statement(fake))})
            for i in (forged, replayed, stranger):  # the worker sends none: back to waiting
                await stack.wait_status(i, Status.AWAITING_APPROVAL)

            # unsigned, or signed by the wrong key: refused at once, nothing written
            with pytest.raises(Refused, match="not signed"):
                await approve(ledger, real, approver="bob")
            with pytest.raises(Refused, match="not over this intent"):
                await approve(ledger, real, approver="bob", signature=honest["carol"])
            first = await approve(ledger, real, approver="bob", signature=honest["bob"])
            assert not first.released
            second = await approve(ledger, real, approver="carol", signature=honest["carol"])
            assert second.released
            [done] = await stack.wait_settled([real])
            await anyio.sleep(1)  # a few more worker rounds over the smuggled ones
            left = [await ledger.intents.get(i) for i in (forged, replayed, stranger)]
    assert done.status is Status.COMPLETED
    assert [i.status for i in left] == [Status.AWAITING_APPROVAL] * 3
    assert [i.withdraw_order_id for i in left] == [None] * 3
    assert [w.amount for w in read_ledger(stack.journal).withdrawals] == [done.amount]


async def test_the_database_keeps_operators_and_approvals_as_written(
    stack_factory: Any,
) -> None:
    async with stack_factory() as stack:
        ledger = stack.rt.ledger
        await operators.add(ledger, "bob", public("bob"), actor="cli:admin")
        with pytest.raises(Refused, match="registered already"):
            await operators.add(ledger, "bob2", public("bob"), actor="cli:admin")
        intent_id = await enqueue(stack, "500")
        await sql(
            stack,
            "INSERT INTO intent_approvals (intent_id, approver, signature) VALUES (:i, 'bob', 'x')",
            i=intent_id,
        )
        for attack in (
            "DELETE FROM operators WHERE name = 'bob'",
            f"UPDATE operators SET public_key = '{public('mallory')}' WHERE name = 'bob'",
            "UPDATE intent_approvals SET signature = 'y'",
            "DELETE FROM intent_approvals",
        ):
            with pytest.raises((IntegrityError, DBAPIError)):
                await sql(stack, attack)
        gone = await operators.remove(ledger, "bob", actor="cli:admin", reason="left")
        assert gone.removed_at is not None
        with pytest.raises((IntegrityError, DBAPIError)):  # a removal is for good
            await sql(stack, "UPDATE operators SET removed_at = NULL WHERE name = 'bob'")
        with pytest.raises(Refused, match="removed already"):
            await operators.remove(ledger, "bob", actor="cli:admin", reason="again")
        events = [(e.kind, e.subject) for e in await ledger.events.recent()]
    assert ("operator_added", "bob") in events and ("operator_removed", "bob") in events
