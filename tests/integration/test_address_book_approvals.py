"""Second-person approval of address-book entries, on SQLite and PostgreSQL.

The worker holds a send to an entry added by hand until enough operators other than its
adder approved its current version, and sends once they have. What a leaked database
credential can do is refused by the database or ignored by the daemon inside the commit
transaction: a raw INSERT of an approval (unsigned, signed over another address, by a
stranger or by the adder), an approval of an earlier version, any UPDATE or DELETE.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import DBAPIError, IntegrityError
from test_address_book_audit import ATTACKER, on_the_exchange_too, refused, sql

from treasury.domain.approval_proof import entry_statement
from treasury.domain.fee_payer import FeePayer
from treasury.domain.policy import Policy
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.domain.wallet import Wallet
from treasury.ports.store import WhitelistEntry
from treasury.services import operators, submit
from treasury.services.address_book import ExchangeSeen, Trust
from treasury.services.admin import Refused
from treasury.services.policy import PolicySnapshot
from treasury.services.whitelist_approvals import approve

KEYS = {name: Ed25519PrivateKey.generate() for name in ("alice", "bob", "carol", "mallory")}
INSERT = (
    "INSERT INTO whitelist_approvals (entry_id, entry_version, approver, signature) "
    "VALUES (:e, :v, :a, :s)"
)


def public(name: str) -> str:
    raw = (
        KEYS[name]
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


def sign(name: str, entry: WhitelistEntry) -> str:
    return base64.b64encode(KEYS[name].sign(entry_statement(entry))).decode()


async def add_by_alice(ledger: Any, address: str = ATTACKER) -> WhitelistEntry:
    entry: WhitelistEntry = await ledger.whitelist.add(
        account="default",
        coin="USDT",
        network="TRX",
        address=address,
        address_tag=None,
        actor="cli:alice",
        reason="ticket 812: new cold wallet",
    )
    return entry


async def register(ledger: Any, *names: str) -> None:
    for name in names:
        await operators.add(ledger, name, public(name), actor="cli:admin")


async def smuggle(ledger: Any, entry: WhitelistEntry, who: str, signature: str | None) -> None:
    """A raw INSERT, as a leaked database credential would write it."""
    await sql(ledger.engine, INSERT, e=entry.id, v=entry.version, a=who, s=signature)


async def test_the_worker_holds_a_send_until_a_second_person_approves_the_entry(
    stack_factory: Any, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("address_book_approvals_required = 1\n")
    async with stack_factory(policy_file=policy, manual_whitelist_cooling_s=0) as stack:
        ledger = stack.rt.ledger
        await register(ledger, "alice", "bob", "carol")
        await on_the_exchange_too(stack)  # only the daemon's own rule stands in the way
        entry = await add_by_alice(ledger)
        new = validate_new_intent(coin="USDT", network="TRX", address=ATTACKER, amount="20")
        intent, _ = await ledger.intents.enqueue(new, actor="test")
        wanted = f"address book: entry {entry.id} needs 1 more approval (0 of 1)"
        async with stack.daemon():
            with anyio.fail_after(20):
                while wanted not in ((await ledger.intents.get(intent.id)).status_reason or ""):
                    await anyio.sleep(0.05)
            # what a database credential can slip in: unsigned, signed over another
            # address, by someone nobody registered, by the adder herself
            elsewhere = dataclasses.replace(entry, address="TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ")
            await smuggle(ledger, entry, "bob", None)
            await smuggle(ledger, entry, "carol", sign("carol", elsewhere))
            await smuggle(ledger, entry, "mallory", sign("mallory", entry))
            await smuggle(ledger, entry, "alice", sign("alice", entry))
            await anyio.sleep(1.5)  # several worker rounds over the smuggled approvals
            held = await ledger.intents.get(intent.id)
            assert held.status is Status.QUEUED and held.withdraw_order_id is None
            assert wanted in (held.status_reason or "")
            # the real thing: bob signs the entry as it stands
            standing = await approve(
                ledger,
                entry.id,
                approver="bob",
                signature=sign("bob", entry),
                reason="called the owner",
                required=1,
                cooling_s=0,
            )
            assert standing.approved == ("bob",)
            [done] = await stack.wait_settled([intent.id])
    assert done.status is Status.COMPLETED, done.status_reason
    asked = [a for a in stack.alerts if a[0] == "whitelist_approval_needed"]
    assert len(asked) == 1 and f"entry {entry.id} needs 1 more approval" in asked[0][1]


@pytest.fixture
def commit(ledger: Any) -> Callable[..., Any]:
    """``commit_to_send`` of a fresh intent to ``address``, as the worker calls it, with
    the policy asking for ``required`` approvals and the sync having seen ``seen``."""

    async def attempt(address: str, *, required: int = 1, seen: ExchangeSeen | None = None) -> Any:
        new = validate_new_intent(coin="USDT", network="TRX", address=address, amount="10")
        intent, _ = await ledger.intents.enqueue(new, actor="test")
        assert await ledger.state.acquire_lease("default", "w", 60)
        return await submit.commit_to_send(
            ledger,
            intent,
            worker="w",
            order_id=f"trs-x-{intent.id}",
            timestamp_ms=1,
            recv_window_ms=5000,
            policy=PolicySnapshot(1, Policy(address_book_approvals_required=required)),
            wallet=Wallet.SPOT,
            fee_payer=FeePayer.RECIPIENT,
            trust=Trust(seen or ExchangeSeen(), cooling_s=0),
        )

    return attempt


async def test_an_approval_is_of_one_version_of_the_entry(
    ledger: Any, commit: Callable[..., Any]
) -> None:
    await register(ledger, "bob", "carol")
    v1 = await add_by_alice(ledger)
    await approve(
        ledger, v1.id, approver="bob", signature=sign("bob", v1), reason=None, required=1,
        cooling_s=0,
    )  # fmt: skip
    assert (await commit(ATTACKER)).status is Status.SUBMITTING
    await ledger.whitelist.set_enabled(v1.id, False, actor="cli:dave", reason="check it")
    v3 = await ledger.whitelist.set_enabled(v1.id, True, actor="cli:dave", reason="checked")
    assert v3.version == 3
    with pytest.raises(submit.SendRefused, match=f"entry {v1.id} needs 1 more approval"):
        await commit(ATTACKER)
    # bob's signature over version 1, filed under version 3 by hand: does not count
    await smuggle(ledger, v3, "bob", sign("bob", v1))
    with pytest.raises(submit.SendRefused, match="needs 1 more approval"):
        await commit(ATTACKER)
    # the smuggled row does not hold bob's place: his real approval of version 3 counts
    await approve(
        ledger, v3.id, approver="bob", signature=sign("bob", v3), reason=None, required=1,
        cooling_s=0,
    )  # fmt: skip
    assert (await commit(ATTACKER)).status is Status.SUBMITTING
    # ... once: a second approval of the same version by him is refused
    with pytest.raises(Refused, match="already approved version 3"):
        await approve(
            ledger, v3.id, approver="bob", signature=sign("bob", v3), reason=None, required=1,
            cooling_s=0,
        )  # fmt: skip


async def test_the_service_refuses_what_would_not_count_and_writes_nothing(ledger: Any) -> None:
    await register(ledger, "alice", "bob")
    entry = await add_by_alice(ledger)
    kw: dict[str, Any] = {"reason": None, "required": 1, "cooling_s": 0}
    for approver, signature, words in (
        ("alice", sign("alice", entry), "added or changed this entry"),
        ("bob", None, "not signed"),
        ("bob", sign("alice", entry), "not over this entry"),
        ("mallory", sign("mallory", entry), "not a registered operator"),
        (
            "bob",
            sign("bob", dataclasses.replace(entry, address="TOther")),
            "not over this entry",
        ),
    ):
        with pytest.raises(Refused, match=words):
            await approve(ledger, entry.id, approver=approver, signature=signature, **kw)
    with pytest.raises(Refused, match="not found"):
        await approve(ledger, entry.id + 100, approver="bob", signature=None, **kw)
    off = await ledger.whitelist.set_enabled(entry.id, False, actor="cli:carol", reason="x")
    with pytest.raises(Refused, match="disabled"):
        await approve(ledger, entry.id, approver="bob", signature=sign("bob", off), **kw)
    assert await ledger.whitelist.approvals() == []


async def test_break_glass_approvals_by_name_count_until_the_first_operator(
    ledger: Any, commit: Callable[..., Any]
) -> None:
    entry = await add_by_alice(ledger)
    with pytest.raises(Refused, match="added or changed"):
        await approve(
            ledger, entry.id, approver="Alice", signature=None, reason=None, required=1,
            cooling_s=0,
        )  # fmt: skip
    await approve(
        ledger, entry.id, approver="bob", signature=None, reason="no keys yet", required=1,
        cooling_s=0,
    )  # fmt: skip
    assert (await commit(ATTACKER)).status is Status.SUBMITTING
    await register(ledger, "carol")  # from now on, only signed approvals count
    with pytest.raises(submit.SendRefused, match="needs 1 more approval"):
        await commit(ATTACKER)


async def test_entries_the_sync_saw_on_the_exchange_need_no_approval(
    ledger: Any, commit: Callable[..., Any]
) -> None:
    synced = await ledger.whitelist.add(
        account="default",
        coin="USDT",
        network="TRX",
        address="TSynced",
        address_tag=None,
        actor="sync:default",
        reason="on the exchange's address book",
        source="exchange",
    )
    seen = ExchangeSeen()
    with pytest.raises(submit.SendRefused, match="needs 2 more approvals"):  # not seen
        await commit("TSynced", required=2, seen=seen)
    seen.record("default", [synced.key])
    assert (await commit("TSynced", required=2, seen=seen)).status is Status.SUBMITTING
    await add_by_alice(ledger)
    assert (await commit(ATTACKER, required=0)).status is Status.SUBMITTING  # policy: off


async def test_the_database_keeps_approvals_as_written(ledger: Any) -> None:
    engine = ledger.engine
    entry = await add_by_alice(ledger)
    await smuggle(ledger, entry, "bob", "c2lnbmVk")
    for attack in (
        "UPDATE whitelist_approvals SET entry_version = 2",
        "UPDATE whitelist_approvals SET signature = NULL",
        "DELETE FROM whitelist_approvals",
    ):
        await refused(engine, attack, "append-only")
    with pytest.raises((IntegrityError, DBAPIError)):  # no such entry
        await sql(engine, INSERT, e=entry.id + 100, v=1, a="carol", s=None)
    with pytest.raises((IntegrityError, DBAPIError)):  # nobody
        await sql(engine, INSERT, e=entry.id, v=1, a=" ", s=None)
    [kept] = await ledger.whitelist.approvals(entry_id=entry.id)
    assert (kept.approver, kept.entry_version, kept.signature) == ("bob", 1, "c2lnbmVk")
    assert kept.created_at is not None
