"""Second-person approval of an address-book entry: the statement an approver signs, which
approvals count, and when an entry needs them (pure rules, and the worker's ``Trust``)."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_domain_approval_proof import INTENT

from treasury.domain.approval_proof import (
    Approval,
    count,
    count_entry,
    entry_statement,
    statement,
)
from treasury.domain.decisions import Hold, Pass
from treasury.domain.rules import check_whitelist_approvals, whitelist_approvals_needed
from treasury.ports.store import WhitelistEntry
from treasury.services.address_book import ExchangeSeen, Trust

T0 = datetime(2026, 12, 1, tzinfo=UTC)
ENTRY = WhitelistEntry(
    id=12,
    account="default",
    coin="USDT",
    network="TRX",
    address="TXyzAbc123",
    address_tag=None,
    label="cold",
    source="manual",
    enabled=True,
    usable_from=None,
    created_at=T0,
    updated_at=T0,
    version=1,
    changed_by="cli:alice",
    change_reason="our cold wallet",
)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("alice", "bob", "carol", "dave")}
OPERATORS = {
    name: KEYS[name]
    .public_key()
    .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for name in ("alice", "bob", "carol")  # dave is not registered
}
ADDED_BY_ALICE = ["cli:alice"]


def signed(name: str, message: bytes | None = None, *, by: str | None = None) -> Approval:
    signature = KEYS[by or name].sign(entry_statement(ENTRY) if message is None else message)
    return Approval(name, base64.b64encode(signature).decode())


def test_the_statement_names_the_destination_and_the_entry_version() -> None:
    lines = entry_statement(ENTRY).decode().splitlines()
    assert lines[0] == "treasury address-book approval v1"
    assert lines[1:] == [
        "entry=12",
        "version=1",
        "account=default",
        "coin=USDT",
        "network=TRX",
        "address=TXyzAbc123",
        "address_tag=",
    ]
    for change in (
        {"address": "TOther"},
        {"address_tag": "7"},
        {"network": "ETH"},
        {"coin": "USDC"},
        {"account": "sub1"},
        {"id": 13},
        {"version": 2},
    ):
        assert entry_statement(dataclasses.replace(ENTRY, **change)) != entry_statement(ENTRY)
    # what decides nothing about where money goes is not in it
    same = dataclasses.replace(ENTRY, label="x", source="exchange", changed_by="cli:bob")
    assert entry_statement(same) == entry_statement(ENTRY)


def test_signed_approvals_by_operators_other_than_the_adder_count() -> None:
    result = count_entry(ENTRY, [signed("bob"), signed("carol")], OPERATORS, makers=ADDED_BY_ALICE)
    assert result.valid == ("bob", "carol") and result.ignored == ()


@pytest.mark.parametrize(
    ("approval", "why"),
    [
        (signed("alice"), "added or changed this entry"),  # the adder, with her own key
        (
            signed("bob", entry_statement(dataclasses.replace(ENTRY, address="TAttacker"))),
            "not over this entry",
        ),
        (signed("bob", entry_statement(dataclasses.replace(ENTRY, id=13))), "not over this"),
        (signed("bob", by="carol"), "not over this entry"),  # carol's key in bob's name
        (signed("dave"), "not a registered operator"),
        (Approval("bob", None), "not signed"),
        (Approval("bob", "not base64!"), "not over this entry"),
        # a signature over an intent never passes as one over an entry (another prefix)
        (signed("bob", statement(INTENT)), "not over this entry"),
    ],
)
def test_an_approval_that_proves_nothing_does_not_count(approval: Approval, why: str) -> None:
    result = count_entry(ENTRY, [approval], OPERATORS, makers=ADDED_BY_ALICE)
    assert result.valid == ()
    [reason] = result.ignored
    assert why in reason


def test_an_approval_is_of_one_version() -> None:
    """A disable and enable (or a new label) makes version 3: version 1's approval does
    not count for it, and whoever made version 3 cannot approve it either."""
    v3 = dataclasses.replace(ENTRY, version=3, changed_by="cli:carol")
    old = signed("bob")  # over version 1
    result = count_entry(
        v3,
        [old, signed("carol", entry_statement(v3))],
        OPERATORS,
        makers=[
            "cli:alice",
            "cli:carol",
        ],
    )
    assert result.valid == ()
    assert [r.split(":")[0] for r in result.ignored] == ["bob", "carol"]
    assert count_entry(
        v3, [signed("bob", entry_statement(v3))], OPERATORS, makers=["cli:alice", "cli:carol"]
    ).valid == ("bob",)


def test_one_person_counts_once_and_a_removed_operator_not_at_all() -> None:
    twice = count_entry(
        ENTRY, [signed("bob"), Approval("BOB", None)], OPERATORS, makers=ADDED_BY_ALICE
    )
    assert twice.valid == ("bob",)
    removed = {"carol": OPERATORS["carol"]}  # bob was removed since he approved
    assert count_entry(ENTRY, [signed("bob")], removed, makers=ADDED_BY_ALICE).valid == ()


def test_break_glass_without_operators_names_count_but_never_the_adder() -> None:
    result = count_entry(
        ENTRY,
        [Approval("bob", None), Approval("Alice", None), Approval("carol", None)],
        None,
        makers=ADDED_BY_ALICE,
    )
    assert result.valid == ("bob", "carol")


def test_the_requester_rule_of_intents_is_unchanged() -> None:
    keys = {"alice": OPERATORS["alice"]}
    alice = Approval("alice", base64.b64encode(KEYS["alice"].sign(statement(INTENT))).decode())
    [why] = count(INTENT, [alice], keys).ignored
    assert why == "alice: requested this withdrawal"


def test_only_entries_the_sync_saw_on_the_exchange_go_without_approval() -> None:
    assert whitelist_approvals_needed(source="manual", seen_on_exchange=False, required=2) == 2
    assert whitelist_approvals_needed(source="manual", seen_on_exchange=True, required=2) == 2
    assert whitelist_approvals_needed(source="exchange", seen_on_exchange=False, required=1) == 1
    assert whitelist_approvals_needed(source="exchange", seen_on_exchange=True, required=2) == 0
    assert whitelist_approvals_needed(source="manual", seen_on_exchange=False, required=0) == 0


def test_the_verdict_says_how_many_more_and_how() -> None:
    assert check_whitelist_approvals(12, 2, ("bob", "carol")) == Pass()
    assert check_whitelist_approvals(12, 0, ()) == Pass()
    assert check_whitelist_approvals(12, 2, ("bob",)) == Hold(
        "entry 12 needs 1 more approval (1 of 2): treasury whitelist approve 12"
    )
    held = check_whitelist_approvals(12, 2, ())
    assert isinstance(held, Hold) and "needs 2 more approvals (0 of 2)" in held.reason


async def test_trust_asks_what_the_policy_requires_and_alerts_once_per_version() -> None:
    alerts: list[tuple[str, str, int | None]] = []

    async def alert(kind: str, message: str, intent_id: int | None) -> None:
        alerts.append((kind, message, intent_id))

    seen = ExchangeSeen()
    trust = Trust(seen, 0, alert)
    synced = dataclasses.replace(ENTRY, source="exchange")
    assert trust.approvals_needed(ENTRY, 1) == 1 and trust.approvals_needed(synced, 1) == 1
    seen.record("default", [synced.key])
    assert trust.approvals_needed(synced, 1) == 0 and trust.approvals_needed(ENTRY, 1) == 1
    assert trust.approvals_needed(ENTRY, 0) == 0
    for intent_id in (1, 2):
        await trust.awaiting_approval(ENTRY, "entry 12 needs 1 more", intent_id=intent_id)
    await trust.awaiting_approval(dataclasses.replace(ENTRY, version=2), "again", intent_id=3)
    assert [(k, i) for k, _m, i in alerts] == [
        ("whitelist_approval_needed", 1),
        ("whitelist_approval_needed", 3),
    ]
