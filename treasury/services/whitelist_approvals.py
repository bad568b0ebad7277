"""A second person approves an address-book entry: ``treasury whitelist approve``.

An approval is of one version of one entry, by an operator other than whoever added the
entry or made that version, signed over ``approval_proof.entry_statement`` once
operators are registered (by name only before: the break-glass path, as for intents).
It is checked here so a mistake is told at once, and again by the worker inside the
transaction that commits a send (``address_book.entry_verdict``): what counts there is
what decides.

``standings`` says, per entry, what the worker would wait for as the CLI can tell it: the
cooling and the approvals. (Whether the daemon's sync saw an exchange-sourced entry on
the exchange is in the daemon's memory only; here such an entry is taken as seen.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from treasury.domain import approval_proof as proof
from treasury.domain import rules
from treasury.domain import webauthn as wa
from treasury.ports.clock import utcnow
from treasury.ports.store import (
    ConcurrentChange,
    Ledger,
    NotFound,
    WhitelistApproval,
    WhitelistEntry,
    WhitelistEvent,
    passkeys_by_operator,
)
from treasury.services.admin import Refused
from treasury.services.approvals import PasskeyAssertion
from treasury.services.operators import current_keys

EVERY_EVENT = 10**9  # the adders of the entries listed are in the history, however long


@dataclass(frozen=True)
class Standing:
    """Where an entry stands as the worker would judge it (see the module docstring)."""

    entry: WhitelistEntry
    usable_from: datetime | None  # when its cooling ends (None: no cooling)
    required: int  # approvals its current version needs (0: none)
    approved: tuple[str, ...]  # who validly approved its current version

    @property
    def approvals(self) -> str:
        """``1/2``, or ``-`` when the entry needs none."""
        return f"{len(self.approved)}/{self.required}" if self.required else "-"

    def waiting_for(self, now: datetime) -> str:
        """What must still happen before a send may use the entry ("" if nothing)."""
        if not self.entry.enabled:
            return "disabled"
        waits = []
        if self.usable_from is not None and self.usable_from > now:
            waits.append(f"cooling until {self.usable_from:%Y-%m-%d %H:%M:%S} UTC")
        more = self.required - len(self.approved)
        if more > 0:
            waits.append(f"{more} more approval{'s' if more > 1 else ''}")
        return "; ".join(waits)


def _added_by(history: Iterable[WhitelistEvent], entry_id: int) -> str | None:
    return next((e.actor for e in history if e.entry_id == entry_id and e.kind == "add"), None)


def _makers(entry: WhitelistEntry, added_by: str | None) -> list[str]:
    """Who may not approve this version: whoever added the entry, and made this version."""
    return [m for m in (added_by, entry.changed_by) if m]


def _of_version(
    entry: WhitelistEntry, recorded: Iterable[WhitelistApproval]
) -> list[proof.Approval]:
    return [
        proof.Approval(a.approver, a.signature, a.created_at)
        for a in recorded
        if (a.entry_id, a.entry_version) == (entry.id, entry.version)
    ]


async def standings(
    ledger: Ledger,
    entries: Sequence[WhitelistEntry],
    *,
    required: int,
    cooling_s: float,
    account: str | None = None,
) -> list[Standing]:
    """The standing of each of ``entries`` (all of ``account``'s, or of every account)."""
    history = await ledger.whitelist.history(account=account, limit=EVERY_EVENT)
    recorded = await ledger.whitelist.approvals(account=account)
    registered = await ledger.operators.all()
    keys = current_keys(registered)
    passkeys = passkeys_by_operator(await ledger.passkeys.all(), registered)
    result = []
    for entry in entries:
        trusted = entry.source == "exchange"  # as the daemon sees it once its sync found it
        needed = rules.whitelist_approvals_needed(
            source=entry.source, seen_on_exchange=trusted, required=required
        )
        counted = proof.count_entry(
            entry,
            _of_version(entry, recorded),
            keys,
            makers=_makers(entry, _added_by(history, entry.id)),
            passkeys=passkeys,
        )
        usable_from = rules.whitelist_usable_from(
            source=entry.source,
            created_at=entry.created_at,
            usable_from=entry.usable_from,
            seen_on_exchange=trusted,
            cooling_s=cooling_s,
        )
        result.append(Standing(entry, usable_from, needed, counted.valid))
    return result


async def approve(
    ledger: Ledger,
    entry_id: int,
    *,
    approver: str,
    signature: str | None,
    reason: str | None,
    required: int,
    cooling_s: float,
) -> Standing:
    """Record ``approver``'s approval of the entry's current version.

    Raises:
        Refused: no such entry, a disabled one, the approver added it or made this
            version, approved it already, or (operators being registered) the approval
            is not signed by them over this entry as it stands. Nothing is written.
    """
    try:
        entry = await ledger.whitelist.get(entry_id)
    except NotFound:
        raise Refused(f"whitelist entry {entry_id} not found") from None
    if not entry.enabled:
        raise Refused(
            f"whitelist entry {entry_id} is disabled: enable it first (treasury whitelist "
            "enable), then approve the new version"
        )
    makers = _makers(entry, _added_by(await ledger.whitelist.history(entry_id=entry_id), entry.id))
    keys = current_keys(await ledger.operators.all())
    mine = proof.count_entry(entry, [proof.Approval(approver, signature)], keys, makers=makers)
    if not mine.valid:
        why = mine.ignored[0].split(": ", 1)[1]
        hint = (
            " (operators are registered, so approvals are signed: treasury whitelist approve "
            f"{entry_id} --key FILE)"
            if keys is not None
            and not any(proof.person(m) == proof.person(approver) for m in makers)
            else ""
        )
        raise Refused(f"approval of whitelist entry {entry_id} by {approver} refused: {why}{hint}")
    # only an approval that counts holds the approver's place: a forged row in their
    # name (raw SQL) does not keep them from filing their real one
    done = _of_version(entry, await ledger.whitelist.approvals(entry_id=entry_id))
    already = proof.count_entry(entry, done, keys, makers=makers).valid
    if any(proof.person(a) == proof.person(approver) for a in already):
        raise Refused(
            f"{approver} has already approved version {entry.version} of whitelist entry {entry_id}"
        )
    try:
        await ledger.whitelist.add_approval(
            entry_id, version=entry.version, approver=approver, signature=signature, reason=reason
        )
    except ConcurrentChange as exc:
        raise Refused(f"{exc}; nothing was written: look at the entry again") from None
    [standing] = await standings(
        ledger, [entry], required=required, cooling_s=cooling_s, account=entry.account
    )
    return standing


# ---- passkeys ----------------------------------------------------------------------------


async def passkey_challenge(
    ledger: Ledger, entry_id: int, *, now: datetime | None = None
) -> tuple[bytes, datetime]:
    """The challenge a passkey signs to approve the entry's current version, and the time
    it is issued (post ``issued_at`` back with the assertion).

    Raises:
        Refused: no such entry.
    """
    issued_at = now or utcnow()
    try:
        entry = await ledger.whitelist.get(entry_id)
    except NotFound:
        raise Refused(f"whitelist entry {entry_id} not found") from None
    return wa.approval_challenge(proof.entry_statement(entry), issued_at), issued_at


async def record_passkey_approval(
    ledger: Ledger,
    entry_id: int,
    assertion: PasskeyAssertion,
    *,
    approver: str | None = None,
    reason: str | None = None,
    required: int,
    cooling_s: float,
    max_age: timedelta = wa.MAX_AGE,
    via: str = "console",
) -> Standing:
    """Record an approval of the entry's current version made with a passkey, as
    ``approvals.record_passkey_approval`` does for an intent. Raises Refused (nothing
    written) unless: the passkey is a current passkey of a current operator
    (``approver``, if named, must be its owner), who neither added the entry nor made
    this version nor approved it already; the entry is enabled; the challenge is the one
    for ``approval_proof.entry_statement`` of the entry as it stands now, issued at most
    ``max_age`` before now; the assertion verifies; and its sign count exceeds the one
    seen last, which it becomes in the transaction that stores the approval.

    The proof (``webauthn.PasskeyProof``, JSON) is stored as the approval's signature, so
    ``approval_proof.count_entry`` (with passkeys) counts it again, in the worker's
    commit transaction (``address_book.entry_verdict``). Audited as
    ``whitelist_approved`` with actor ``{via}:{owner}``."""
    try:
        entry = await ledger.whitelist.get(entry_id)
    except NotFound:
        raise Refused(f"whitelist entry {entry_id} not found") from None
    if not entry.enabled:
        raise Refused(
            f"whitelist entry {entry_id} is disabled: enable it first, then approve the new version"
        )
    registered = await ledger.operators.all()
    keys = current_keys(registered)
    if keys is None:
        raise Refused("no operator is registered: passkeys belong to registered operators")
    passkeys = passkeys_by_operator(await ledger.passkeys.all(), registered)
    owners = {c.credential_id: who for who, creds in passkeys.items() for c in creds}
    owner = owners.get(assertion.credential_id)
    if owner is None:
        raise Refused(
            "passkey approval refused: that passkey is not registered to a current operator "
            "(or was removed)"
        )
    if approver is not None and proof.person(approver) != proof.person(owner):
        raise Refused(f"passkey approval refused: that passkey is not {approver}'s")
    makers = _makers(entry, _added_by(await ledger.whitelist.history(entry_id=entry_id), entry.id))
    if any(proof.person(m) == proof.person(owner) for m in makers):
        raise Refused(
            f"approval of whitelist entry {entry_id} by {owner} refused: added or changed "
            "this entry; a second person approves it"
        )
    (credential,) = [c for c in passkeys[owner] if c.credential_id == assertion.credential_id]
    now = utcnow()
    stale = wa.freshness_problem(assertion.issued_at, now, max_age)
    if stale:
        raise Refused(f"passkey approval by {owner} refused: {stale}")
    try:
        sign_count = wa.verify_assertion(
            credential,
            client_data_json=assertion.client_data_json,
            authenticator_data=assertion.authenticator_data,
            signature=assertion.signature,
            expected_challenge=wa.approval_challenge(
                proof.entry_statement(entry), assertion.issued_at
            ),
            origin=credential.origin,
            rp_id=credential.rp_id,
        )
    except wa.WebAuthnError as exc:
        problem = exc.problem
        if "challenge" in problem:
            problem = "stale challenge: it was not issued for this entry as it stands now"
        raise Refused(f"passkey approval by {owner} refused: {problem}") from None
    document = wa.PasskeyProof(
        credential_id=assertion.credential_id,
        authenticator_data=assertion.authenticator_data,
        client_data_json=assertion.client_data_json,
        signature=assertion.signature,
        issued_at=assertion.issued_at,
    ).to_json()
    mine = proof.count_entry(
        entry, [proof.Approval(owner, document, now)], keys, makers=makers, passkeys=passkeys
    )
    if not mine.valid:  # what the worker will count: refuse what it would not
        why = mine.ignored[0].split(": ", 1)[1]
        raise Refused(f"passkey approval by {owner} refused: {why}")
    done = _of_version(entry, await ledger.whitelist.approvals(entry_id=entry_id))
    already = proof.count_entry(entry, done, keys, makers=makers, passkeys=passkeys).valid
    if any(proof.person(a) == proof.person(owner) for a in already):
        raise Refused(
            f"{owner} has already approved version {entry.version} of whitelist entry {entry_id}"
        )
    try:
        advanced = await ledger.whitelist.add_approval(
            entry_id,
            version=entry.version,
            approver=owner,
            signature=document,
            reason=reason,
            at=now,
            sign_count=(assertion.credential_id, sign_count),
        )
    except ConcurrentChange as exc:
        raise Refused(f"{exc}; nothing was written: look at the entry again") from None
    if not advanced:
        raise Refused(
            f"passkey approval by {owner} refused: sign count {sign_count} does not exceed "
            "the one seen last (a replay, or a cloned authenticator)"
        )
    await ledger.events.record(
        "whitelist_approved",
        f"version {entry.version} of whitelist entry {entry_id} approved with a passkey",
        actor=f"{via}:{owner}",
        subject=entry.account,
    )
    [standing] = await standings(
        ledger, [entry], required=required, cooling_s=cooling_s, account=entry.account
    )
    return standing
