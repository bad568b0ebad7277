"""Which approvals count: signed by a current operator, over this intent as it stands."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from treasury.domain.approval_proof import (
    Approval,
    count,
    parse_public_key,
    policy_approval_problem,
    policy_statement,
    statement,
)
from treasury.domain.errors import InvalidField
from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.domain.wallet import Wallet

T0 = datetime(2026, 11, 30, tzinfo=UTC)
INTENT = Intent(
    id=7,
    coin="USDT",
    network="TRX",
    address="TXyzAbc123",
    address_tag=None,
    amount=Decimal("500.10"),
    account="default",
    request_id="r-7",
    requested_by="alice",
    note=None,
    status=Status.AWAITING_APPROVAL,
    status_reason=None,
    withdraw_order_id=None,
    exchange_withdraw_id=None,
    tx_id=None,
    fee=None,
    created_at=T0,
    updated_at=T0,
)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("bob", "carol", "dave")}


def raw(name: str) -> bytes:
    return (
        KEYS[name]
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def signed(name: str, intent: Intent = INTENT, *, by: str | None = None) -> Approval:
    """``name``'s approval, signed with ``by``'s key (their own by default)."""
    signature = KEYS[by or name].sign(statement(intent))
    return Approval(name, base64.b64encode(signature).decode())


OPERATORS = {name: raw(name) for name in ("bob", "carol")}  # dave is not registered


def test_the_statement_names_everything_that_decides_where_money_goes() -> None:
    text = statement(INTENT).decode()
    assert text.splitlines()[0] == "treasury approval v1"
    for field in ("intent=7", "request_id=r-7", "amount=500.1", "address=TXyzAbc123"):
        assert field in text.splitlines()
    for change in (
        {"amount": Decimal("500.11")},
        {"address": "TOther"},
        {"address_tag": "1"},
        {"network": "ETH"},
        {"coin": "USDC"},
        {"account": "desk"},
        {"id": 8},
        {"request_id": "r-8"},
        {"wallet": Wallet.FUNDING},
    ):
        assert statement(dataclasses.replace(INTENT, **change)) != statement(INTENT), change
    # what does not decide anything does not change it
    assert statement(dataclasses.replace(INTENT, status=Status.QUEUED, note="x")) == statement(
        INTENT
    )


def test_signed_approvals_by_current_operators_count() -> None:
    result = count(INTENT, [signed("bob"), signed("carol")], OPERATORS)
    assert result.valid == ("bob", "carol") and result.ignored == ()


@pytest.mark.parametrize(
    ("approval", "why"),
    [
        (signed("bob", dataclasses.replace(INTENT, amount=Decimal("5"))), "not over this intent"),
        (signed("bob", dataclasses.replace(INTENT, id=8)), "not over this intent"),  # replayed
        (signed("bob", by="carol"), "not over this intent"),  # carol's key in bob's name
        (signed("dave"), "not a registered operator"),
        (Approval("bob", None), "not signed"),
        (Approval("bob", "not base64!"), "not over this intent"),
    ],
)
def test_an_approval_that_proves_nothing_does_not_count(approval: Approval, why: str) -> None:
    result = count(INTENT, [approval], OPERATORS)
    assert result.valid == ()
    [reason] = result.ignored
    assert why in reason


def test_the_requester_and_a_second_approval_by_one_person_do_not_count() -> None:
    keys = {**OPERATORS, "alice": raw("bob")}
    result = count(INTENT, [signed("bob"), Approval("alice", None), signed("bob")], keys)
    assert result.valid == ("bob",)
    assert [r.split(":")[0] for r in result.ignored] == ["alice", "bob"]


def test_a_removed_operators_approval_stops_counting() -> None:
    result = count(INTENT, [signed("bob"), signed("carol")], {"carol": raw("carol")})
    assert result.valid == ("carol",)


def test_without_any_operator_approvals_by_name_count() -> None:
    result = count(INTENT, [Approval("bob", None), Approval("carol", None)], None)
    assert result.valid == ("bob", "carol")


def test_a_public_key_is_base64_of_32_bytes() -> None:
    good = base64.b64encode(raw("bob")).decode()
    assert parse_public_key(good) == raw("bob")
    for bad in ("", "not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(InvalidField, match="public key"):
            parse_public_key(bad)


@dataclasses.dataclass(frozen=True)
class Op:
    name: str
    public_key: str
    removed_at: datetime | None = None


def op(name: str, removed_at: datetime | None = None) -> Op:
    return Op(name, base64.b64encode(raw(name)).decode(), removed_at)


def policy_problem(
    approved_by: str | None, signature: str | None, operators: list[Op], version: int = 3
) -> str | None:
    return policy_approval_problem(
        version=version,
        sha256="ab" * 32,
        applied_by="cli:alice",
        approved_by=approved_by,
        signature=signature,
        activated_at=T0,
        operators=operators,
    )


def test_a_policy_approval_counts_when_it_proves_who_approved() -> None:
    signed = base64.b64encode(KEYS["bob"].sign(policy_statement(3, "ab" * 32))).decode()
    team = [op("bob"), op("carol")]
    assert policy_problem("cli:bob", signed, team) is None
    assert policy_problem(None, None, team) is None  # activated without needing anyone
    assert policy_problem("cli:bob", None, []) is None  # break glass: no operator yet
    assert policy_problem("cli:alice", None, []) == "approved by its applier cli:alice"
    assert policy_problem("cli:bob", None, team) == (
        "approved by bob by name only, while approvals are signed"
    )
    assert policy_problem("cli:carol", signed, team) == (
        "carol's signature does not match version 3"
    )
    assert policy_problem("cli:bob", signed, team, version=4) == (
        "bob's signature does not match version 4"
    )
    assert policy_problem("cli:mallory", signed, team) == (
        "approved by cli:mallory, who is not a registered operator"
    )
    gone = [op("bob", removed_at=T0), op("carol")]
    assert policy_problem("cli:bob", signed, gone) == "approved by bob, removed before the approval"
    later = [op("bob", removed_at=datetime(2026, 12, 1, tzinfo=UTC))]
    assert policy_problem("cli:bob", signed, later) is None  # removed after: it stands
