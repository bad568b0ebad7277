"""The ledger's port: the stores services read and write, and the unit of work.

The SQL adapter (``treasury.adapters.db``) implements these over SQLite and PostgreSQL;
``treasury.testing`` implements them in memory. A service never sees a connection, an
engine or a driver exception: only these protocols, the values below and the errors.

Every store method is its own transaction, except inside an ``IntentUnit``: one
transaction around one locked intent, in which a decision (commit to send, approve) reads
what it needs and writes its outcome, or nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from treasury.domain.approval_proof import Approval
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.intent import EventRecord, Intent
from treasury.domain.status import Status
from treasury.domain.validation import NewIntent
from treasury.domain.webauthn import Credential, from_b64url

# ---- errors ------------------------------------------------------------------------------


class NotFound(LookupError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


class ConcurrentChange(RuntimeError):
    """The row changed between read and write; nothing was written."""


class IdempotencyConflict(ValueError):
    """The request_id exists already with different contents; nothing was written."""


def new_intent_row(new: NewIntent, *, actor: str, now: datetime) -> dict[str, Any]:
    """The columns of a new ``withdrawal_intents`` row, as every store inserts it."""
    return {
        "coin": new.coin,
        "network": new.network,
        "address": new.address,
        "address_tag": new.address_tag,
        "amount": new.amount,
        "account": new.account,
        "request_id": new.request_id,
        "requested_by": new.requested_by,
        "note": new.note,
        "wallet": None if new.wallet is None else new.wallet.value,
        "questionnaire": new.questionnaire,
        "status": Status.QUEUED.value,
        "status_reason": "waiting for the worker",
        "enqueued_via": actor,
        "created_at": now,
        "updated_at": now,
    }


def same_request(existing: Intent, new: NewIntent) -> Intent:
    """``existing`` when ``new`` asks for the same withdrawal under its request_id.

    A wallet left unnamed matches whichever wallet the intent has (a queued intent's is
    still open; a sent one's is the account default it took).

    Raises:
        IdempotencyConflict: naming each field that differs; nothing is written.
    """
    fields = ("coin", "network", "address", "address_tag", "amount", "account")
    differ = [f for f in fields if getattr(new, f) != getattr(existing, f)]
    if new.wallet is not None and new.wallet != existing.wallet:
        differ.append("wallet")
    if new.questionnaire != existing.questionnaire:
        differ.append("questionnaire")
    if differ:
        raise IdempotencyConflict(
            f"request_id {new.request_id!r} already names intent {existing.id} with a "
            f"different {', '.join(differ)}"
        )
    return existing


class DuplicateEntry(ValueError):
    """The address book has that destination already (or the registry that operator)."""


@dataclass(frozen=True)
class Operator:
    """A person who may approve, with the Ed25519 public key their approvals verify by."""

    name: str
    public_key: str  # base64 of the 32 raw bytes
    added_by: str
    added_at: datetime
    removed_by: str | None = None
    removed_at: datetime | None = None
    removed_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Passkey:
    """An operator's WebAuthn credential (``operator_passkeys``)."""

    id: int
    operator: str
    credential_id: str  # base64url
    public_key: str = field(repr=False)  # base64 of the SubjectPublicKeyInfo DER
    alg: int
    sign_count: int
    rp_id: str
    origin: str
    created_at: datetime
    removed_by: str | None = None
    removed_at: datetime | None = None
    removed_reason: str | None = None

    def credential(self) -> Credential:
        return Credential(
            credential_id=from_b64url(self.credential_id, "credential_id"),
            public_key=base64.b64decode(self.public_key),
            alg=self.alg,
            sign_count=self.sign_count,
            rp_id=self.rp_id,
            origin=self.origin,
        )


@dataclass(frozen=True, kw_only=True)
class Invite:
    """A single-use, expiring invitation to register a passkey (``operator_invites``);
    the token is kept as its sha256 only."""

    id: int
    operator: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class InviteUnusable(ValueError):
    """No such invite, or it was used already, or it expired; nothing was written."""


def passkeys_by_operator(
    passkeys: Sequence[Passkey], operators: Sequence[Operator]
) -> dict[str, tuple[Credential, ...]]:
    """Each current operator's current passkeys, as ``approval_proof.count`` takes them."""
    current = {o.name for o in operators if o.removed_at is None}
    out: dict[str, tuple[Credential, ...]] = {}
    for p in passkeys:
        if p.removed_at is None and p.operator in current:
            out[p.operator] = (*out.get(p.operator, ()), p.credential())
    return out


class StoreUnavailable(ConnectionError):
    """The database did not answer (connection lost, restarting): nothing is known to have
    been written; the same write may be tried again.

    Raised by ``IntentStore.transition``, the one write a service retries on its own (the
    answer to a send). Elsewhere a failing database surfaces as the driver's error, which
    the daemon's loops log and survive, and the CLI reports as "database unavailable".
    """


# ---- values ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WhitelistEntry:
    id: int
    coin: str
    network: str
    address: str
    address_tag: str | None
    label: str
    source: str
    enabled: bool
    usable_from: datetime | None
    created_at: datetime  # the database's clock: the cooling period runs from it
    updated_at: datetime
    account: str
    version: int
    changed_by: str | None  # actor and reason of the latest change (NULL: raw SQL)
    change_reason: str | None
    # canonical JSON of the travel-rule profile (``treasury.domain.travel_rule.Profile``);
    # personal data: log ``travel_rule.redacted`` of it, never the text
    travel_rule_profile: str | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.coin, self.network, self.address, self.address_tag or "")


@dataclass(frozen=True, kw_only=True)
class WhitelistEvent:
    """One change of an address-book entry (``whitelist_events``, append-only)."""

    id: int
    entry_id: int
    account: str
    coin: str
    network: str
    address: str
    address_tag: str | None
    kind: str  # add | disable | enable | edit
    actor: str
    reason: str
    version: int
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class WhitelistApproval:
    """A second person's approval of one version of an entry (``whitelist_approvals``,
    append-only). It counts for that version only, and only if it proves who approved."""

    id: int
    entry_id: int
    entry_version: int
    approver: str
    signature: str | None  # base64 Ed25519 over ``approval_proof.entry_statement``
    reason: str | None
    created_at: datetime


def audit_fields(actor: str, reason: str) -> tuple[str, str]:
    """The actor and reason of an address-book change, stripped; both must say something.

    Raises:
        ValueError: naming the empty one; nothing is written.
    """
    actor, reason = actor.strip(), reason.strip()
    if not actor:
        raise ValueError("an address-book change needs an actor")
    if not reason:
        raise ValueError("an address-book change needs a reason")
    return actor, reason


@dataclass(frozen=True, kw_only=True)
class Unmatched:
    account: str
    exchange_withdraw_id: str
    withdraw_order_id: str
    intent_id: int | None
    coin: str
    network: str | None
    address: str
    address_tag: str | None
    amount: Decimal
    fee: Decimal | None
    exchange_status: int
    apply_time: datetime | None
    reason: str
    found_by: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ServiceEvent:
    id: int
    kind: str
    subject: str
    detail: str
    actor: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class PolicyVersion:
    """One version of the withdrawal policy (``policy_versions``, append-only).

    ``status`` is derived when read: ``active`` (the one in force: the newest activated),
    ``pending`` (the newest version, waiting for a second person), ``superseded`` (was in
    force, replaced since), ``lapsed`` (was pending when a newer version was applied: it
    can no longer be approved)."""

    version: int
    document: str  # the canonical TOML text (treasury.domain.policy_text.canonical)
    sha256: str
    applied_by: str
    reason: str
    created_at: datetime
    changes_need_approval: bool  # what this version says of the next change
    approved_by: str | None  # the second person who activated it, if one had to
    activated_at: datetime | None
    status: str
    approval_signature: str | None = None  # the approver's, over ``approval_proof``'s


POLICY_STATUSES = ("active", "pending", "superseded", "lapsed")


def policy_status(version: int, activated: bool, *, current: int | None, latest: int) -> str:
    """A version's ``status`` from the ledger's current (newest activated) and latest."""
    if activated:
        return "active" if version == current else "superseded"
    return "pending" if version == latest else "lapsed"


@dataclass(frozen=True, kw_only=True)
class PauseState:
    paused: bool
    reason: str
    by: str
    at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Change:
    """One status change for ``IntentStore.transition_many``."""

    intent_id: int
    to: Status
    reason: str
    actor: str
    expect: tuple[Status, ...] | None = None
    expect_version: int | None = None
    fields: Mapping[str, Any] | None = None


# ---- stores ------------------------------------------------------------------------------


class IntentStore(Protocol):
    async def namespace(self) -> str: ...
    async def get(self, intent_id: int) -> Intent: ...
    async def get_by_request_id(self, request_id: str) -> Intent: ...
    async def get_by_order_ids(self, order_ids: Sequence[str]) -> dict[str, Intent]: ...
    async def get_many(self, intent_ids: Sequence[int]) -> dict[int, Intent]: ...
    async def earliest_created_ms(self, account: str) -> int | None: ...
    async def search(
        self,
        *,
        statuses: Sequence[Status] = (),
        coin: str | None = None,
        account: str | None = None,
        limit: int = 50,
        requested_by: str | None = None,
        accounts: Sequence[str] | None = None,
        before_id: int | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[Intent]:
        """Newest first (by id). ``accounts``: any of them (None: any account);
        ``before_id``: only ids below it (a page's cursor); ``created_after``/``before``:
        ``created_at`` at or after / strictly before."""
        ...

    async def count_by_status(self) -> dict[str, int]: ...
    async def events(self, intent_id: int) -> list[EventRecord]: ...
    async def enqueue(self, new: NewIntent, *, actor: str) -> tuple[Intent, bool]: ...
    async def transition(
        self,
        intent_id: int,
        to: Status,
        *,
        reason: str,
        actor: str,
        expect: Sequence[Status] | None = None,
        expect_version: int | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> Intent: ...
    async def transition_many(
        self, changes: Sequence[Change]
    ) -> list[Intent | ConcurrentChange]: ...
    async def record_note(self, intent_id: int, *, reason: str, actor: str, kind: str) -> None: ...
    async def update_fields(
        self,
        intent_id: int,
        *,
        expect_status: Status,
        fields: Mapping[str, Any],
        expect_version: int | None = None,
    ) -> Intent: ...
    async def hold(
        self, intent: Intent, *, reason: str, retry_at: datetime, start_clock: bool = True
    ) -> Intent:
        """Keep a queued intent back until ``retry_at``; with ``start_clock=False`` the hold
        does not start the maximum-hold clock (the intent is not the cause)."""
        ...

    async def release(self, intent: Intent) -> None: ...
    async def claim_queued(
        self, *, account: str, worker: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[Intent]: ...
    async def next_due(self, *, account: str, worker: str, now: datetime) -> datetime | None:
        """When a queued intent of ``account`` that ``claim_queued`` would not take at
        ``now`` becomes due (its ``not_before``, or the end of another worker's claim);
        None: none is waiting for a time."""
        ...

    async def release_claims(self, *, account: str, keep: str) -> int: ...
    async def in_status(
        self, status: Status, *, account: str | None = None, limit: int = 1000
    ) -> list[Intent]: ...
    async def last_send_ms(self, account: str) -> int | None: ...
    async def unserved(
        self, *, older_than_s: float, skip_reason_prefix: str | None = None, limit: int = 500
    ) -> list[tuple[int, str]]: ...
    async def set_reason(self, intent_id: int, reason: str, *, kind: str = "hold") -> bool: ...


class AccountState(Protocol):
    async def pause_state(self, account: str | None = None) -> PauseState: ...
    async def account_pauses(self) -> dict[str, PauseState]: ...
    async def pause(self, *, reason: str, by: str, account: str | None = None) -> bool: ...
    async def resume(self, account: str | None = None) -> bool: ...
    async def watermark(self, account: str) -> int | None: ...
    async def set_watermark(self, account: str, ms: int, *, by: str) -> None: ...
    async def publish(self, key: str, value: str, *, by: str) -> None:
        """Write (or replace) a published value under ``key`` (the daemon's exchange view
        for other processes, ``domain.view_snapshot``)."""
        ...

    async def published(self, key: str) -> str | None: ...
    async def acquire_lease(self, account: str, holder: str, ttl_s: float) -> bool: ...
    async def release_lease(self, account: str, holder: str) -> None: ...


class AddressBook(Protocol):
    """Per-account destinations. Every change names its actor and reason and appends a
    ``WhitelistEvent`` (on SQL the database's triggers write it); nothing is deleted."""

    async def add(
        self,
        *,
        account: str,
        coin: str,
        network: str,
        address: str,
        address_tag: str | None,
        actor: str,
        reason: str,
        label: str = "",
        source: str = "manual",
        usable_from: datetime | None = None,
        travel_rule_profile: str | None = None,
    ) -> WhitelistEntry: ...
    async def get(self, entry_id: int) -> WhitelistEntry: ...
    async def all(self, account: str | None = None) -> list[WhitelistEntry]: ...
    async def find(
        self, coin: str, network: str, address: str, address_tag: str | None, *, account: str
    ) -> WhitelistEntry | None: ...
    async def set_enabled(
        self, entry_id: int, enabled: bool, *, actor: str, reason: str, label: str | None = None
    ) -> WhitelistEntry:
        """The entry after the change; unchanged (and no event) when it already is so.
        ``NotFound`` if there is no such entry."""
        ...

    async def set_profile(
        self, entry_id: int, profile: str | None, *, version: int, actor: str, reason: str
    ) -> WhitelistEntry:
        """Set (or, with None, clear) the entry's travel-rule profile: a new version and an
        ``edit`` event, whose reason must not quote the profile (personal data). ``NotFound``
        if there is no such entry, ``ConcurrentChange`` if it is no longer at ``version``."""
        ...

    async def history(
        self, *, account: str | None = None, entry_id: int | None = None, limit: int = 1000
    ) -> list[WhitelistEvent]: ...
    async def add_approval(
        self,
        entry_id: int,
        *,
        version: int,
        approver: str,
        signature: str | None,
        reason: str | None,
        at: datetime | None = None,
        sign_count: tuple[bytes, int] | None = None,
    ) -> bool:
        """Record ``approver``'s approval of ``version`` of the entry (whether it counts
        is the reader's judgement), recorded ``at`` (default now). ``NotFound`` if there
        is no such entry, ``ConcurrentChange`` if it is no longer at ``version``.

        ``sign_count`` (a passkey approval: its credential id and the assertion's sign
        count) is recorded in the same transaction, as ``IntentUnit.advance_sign_count``
        does; ``False`` (nothing written) if it does not exceed the one seen last."""
        ...

    async def approvals(
        self, *, account: str | None = None, entry_id: int | None = None
    ) -> list[WhitelistApproval]:
        """Every approval recorded (of any version), oldest first."""
        ...


class OperatorRegistry(Protocol):
    async def add(self, name: str, public_key: str, *, actor: str) -> Operator:
        """Register ``name``; ``DuplicateEntry`` if the name or the key is taken (even by
        a removed operator: names and keys are never reused)."""
        ...

    async def remove(self, name: str, *, actor: str, reason: str) -> Operator:
        """Remove ``name`` for good; ``NotFound`` if unknown or already removed."""
        ...

    async def all(self) -> list[Operator]: ...


class PasskeyRegistry(Protocol):
    async def invite(
        self, operator: str, token_sha256: str, *, created_by: str, expires_at: datetime
    ) -> Invite:
        """``NotFound`` if ``operator`` is not a current operator."""
        ...

    async def register(
        self, token_sha256: str, credential: Credential, *, now: datetime
    ) -> Passkey:
        """Use the invite and add the passkey it was for, in one transaction.
        ``InviteUnusable`` (no such invite, used, expired, or its operator removed);
        ``DuplicateEntry`` if the credential is registered already."""
        ...

    async def invite_for(self, token_sha256: str) -> Invite | None: ...
    async def all(self, operator: str | None = None) -> list[Passkey]: ...
    async def remove(self, passkey_id: int, *, actor: str, reason: str) -> Passkey:
        """``NotFound`` if there is no such passkey or it was removed already."""
        ...


class PolicyStore(Protocol):
    """The policy's versions. The current one is the newest activated version: one
    indexed query, the same for every process that reads it."""

    async def current_version(self) -> int | None:
        """The version in force (``None``: no policy yet); the cheap poll."""
        ...

    async def current(self) -> PolicyVersion | None: ...
    async def get(self, version: int) -> PolicyVersion:
        """``NotFound`` if there is no such version."""
        ...

    async def history(self, limit: int = 100) -> list[PolicyVersion]:
        """Newest first."""
        ...

    async def add(
        self,
        document: str,
        *,
        sha256: str,
        changes_need_approval: bool,
        applied_by: str,
        reason: str,
        activate: bool,
        after: int | None,
        audit: str,
    ) -> PolicyVersion:
        """Append the next version, active at once or pending, with the service event
        ``audit`` in the same transaction. ``after`` is the latest version the caller
        saw (``None``: none); ``ConcurrentChange`` if another was added meanwhile."""
        ...

    async def activate(
        self, version: int, *, approved_by: str, audit: str, signature: str | None = None
    ) -> PolicyVersion:
        """Put the pending ``version`` in force, approved by ``approved_by``, with the
        service event ``audit``. ``ConcurrentChange`` unless it is still pending."""
        ...


class EventLog(Protocol):
    async def record(self, kind: str, detail: str, *, actor: str, subject: str = "") -> None: ...
    async def record_once(self, kind: str, subject: str, detail: str, *, actor: str) -> bool: ...
    async def recent(self, kind: str | None = None, limit: int = 100) -> list[ServiceEvent]: ...


class UnmatchedStore(Protocol):
    async def record(
        self,
        *,
        account: str,
        record: WithdrawalRecord,
        intent_id: int | None,
        reason: str,
        found_by: str,
    ) -> bool: ...
    async def on_file(self, account: str, exchange_ids: Sequence[str]) -> set[str]: ...
    async def list(self, account: str | None = None, limit: int = 1000) -> list[Unmatched]: ...


# ---- the unit of work around one intent --------------------------------------------------


class IntentUnit(Protocol):
    """One transaction around one locked intent; leaving it commits (or, on an exception,
    rolls back everything done in it)."""

    @property
    def intent(self) -> Intent: ...
    async def send_refusal(self, worker: str) -> str | None: ...
    async def address_book_entry(self) -> WhitelistEntry | None: ...
    async def usage_24h(self, now: datetime) -> tuple[Decimal, Decimal]: ...
    async def approvers(self) -> tuple[str, ...]: ...
    async def approvals(self) -> tuple[Approval, ...]: ...
    async def operator_keys(self) -> dict[str, bytes] | None:
        """Each registered, not removed, operator's raw public key; ``None`` when no
        operator was ever registered (approvals by name count)."""
        ...

    async def passkeys(self) -> dict[str, tuple[Credential, ...]]:
        """Each registered, not removed, operator's not removed passkeys."""
        ...

    async def advance_sign_count(self, credential_id: bytes, sign_count: int) -> bool:
        """Record ``sign_count`` as the passkey's last seen; ``False`` (nothing written)
        unless it exceeds the stored one (both zero: an authenticator without a counter,
        ``True``)."""
        ...

    async def add_approval(
        self, approver: str, signature: str | None = None, *, at: datetime | None = None
    ) -> bool:
        """Append an approval recorded ``at`` (default now); ``False`` if ``approver`` has
        one already."""
        ...

    async def entry_approvals(self, entry: WhitelistEntry) -> tuple[Approval, ...]:
        """The approvals recorded for ``entry``'s id at its current version."""
        ...

    async def entry_added_by(self, entry_id: int) -> str | None:
        """The actor of the entry's ``add`` event (who added it)."""
        ...

    async def burned_order_ids(self) -> set[str]: ...
    async def note(self, *, reason: str, actor: str, kind: str) -> None: ...
    async def transition(
        self, to: Status, *, reason: str, actor: str, fields: Mapping[str, Any] | None = None
    ) -> Intent: ...


class Units(Protocol):
    def open(
        self, intent_id: int, *, serialize_account: str | None = None
    ) -> AbstractAsyncContextManager[IntentUnit]:
        """Lock ``intent_id`` in a new transaction (``NotFound`` if there is none). With
        ``serialize_account``, that account's commits are serialised across processes
        first (policy caps are summed inside the unit)."""
        ...


@dataclass
class Ledger:
    """Everything a service may ask of the database."""

    intents: IntentStore
    state: AccountState
    whitelist: AddressBook
    events: EventLog
    unmatched: UnmatchedStore
    units: Units
    operators: OperatorRegistry
    policies: PolicyStore
    passkeys: PasskeyRegistry
