"""Approvals: N distinct people, never the requester, each recorded as an event.

When the quorum the policy asks for is reached, the intent goes back to ``queued``;
the worker then decides again (caps may still hold it) inside the commit transaction.

The policy is the ledger's version in force, the one the daemons read, never a file in
the approver's environment; the approval's event names that version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from treasury.domain import approval_proof as proof
from treasury.domain import policy as p
from treasury.domain import webauthn as wa
from treasury.domain.status import Status
from treasury.ports.clock import utcnow
from treasury.ports.store import IntentUnit, Ledger, NotFound
from treasury.services.admin import Refused
from treasury.services.policy import PolicySnapshot, in_force


@dataclass(frozen=True)
class ApprovalResult:
    intent_id: int
    approvers: tuple[str, ...]
    required: int
    released: bool  # the quorum is reached and the intent went back to queued
    policy_version: int


async def _policy(ledger: Ledger, intent_id: int) -> tuple[PolicySnapshot, p.Policy]:
    snapshot = await in_force(ledger)
    if snapshot is None or snapshot.policy is None:
        why = "there is none" if snapshot is None else snapshot.problem
        raise Refused(
            f"intent {intent_id} cannot be approved: the ledger has no readable policy "
            f"({why}); apply one with treasury policy apply FILE"
        )
    return snapshot, snapshot.policy


async def _may_approve(unit: IntentUnit, policy: p.Policy, approver: str) -> None:
    intent = unit.intent
    if intent.status is not Status.AWAITING_APPROVAL:
        raise Refused(
            f"intent {intent.id} is {intent.status.value}: only intents awaiting "
            "approval can be approved"
        )
    clock = p.ApprovalClock.of(intent.created_at, policy.approval_expiry_hours)
    if clock.state(utcnow()) == "expired":
        raise Refused(
            f"intent {intent.id} has waited for approval past the policy's "
            f"{policy.approval_expiry_hours} h (until {clock.expires_at:%Y-%m-%d %H:%M} "
            "UTC): it can no longer be approved; enqueue it again if it is still wanted"
        )
    refusal = p.check_approver(
        approver=approver, requested_by=intent.requested_by, existing=await unit.approvers()
    )
    if refusal:
        raise Refused(refusal)


async def _counted(
    unit: IntentUnit,
    snapshot: PolicySnapshot,
    policy: p.Policy,
    *,
    approver: str,
    how: str,
    keys: dict[str, bytes] | None,
    via: str = "cli",
) -> ApprovalResult:
    """After the approval is appended: count, note it, release the intent at quorum."""
    intent = unit.intent
    passkeys = await unit.passkeys() if keys is not None else None
    counted = proof.count(intent, await unit.approvals(), keys, passkeys)
    approvers = counted.valid
    required = p.approvals_needed(intent.amount, policy.for_coin(intent.coin))
    counted_as = (
        f"approval {len(approvers)} of {required}, {snapshot.label}"
        if required
        else f"{snapshot.label} needs no approval for this amount"
    )
    await unit.note(
        actor=f"{via}:{approver}",
        kind="approval",
        reason=f"approved by {approver}{how} ({counted_as})",
    )
    released = len(approvers) >= required
    if released:
        await unit.transition(
            Status.QUEUED,
            actor=f"{via}:{approver}",
            reason=f"approved by {', '.join(approvers)}",
            fields={"not_before": None, "held_since": None},
        )
    return ApprovalResult(intent.id, approvers, required, released, snapshot.version)


async def approve(
    ledger: Ledger,
    intent_id: int,
    *,
    approver: str,
    signature: str | None = None,
) -> ApprovalResult:
    """Record one approval. Raises Refused (nothing written) when it may not count.

    Once operators are registered, an approval must carry ``signature``: the approver's
    Ed25519 signature (base64) over ``approval_proof.statement`` of the intent; it is
    checked here, so a mistake is told at once, and again by the worker inside the
    transaction that commits the send."""
    if wa.is_passkey_proof(signature):
        # its sign count must be checked and raised: record_passkey_approval does
        raise Refused("a passkey approval is recorded through the console, not as a signature")
    snapshot, policy = await _policy(ledger, intent_id)
    try:
        async with ledger.units.open(intent_id) as unit:
            await _may_approve(unit, policy, approver)
            keys = await unit.operator_keys()
            if keys is not None:
                mine = proof.count(unit.intent, [proof.Approval(approver, signature)], keys)
                if not mine.valid:
                    why = mine.ignored[0].split(": ", 1)[1]
                    raise Refused(
                        f"approval by {approver} refused: {why} (operators are registered, "
                        "so approvals are signed: treasury approve ID --key FILE)"
                    )
            if not await unit.add_approval(approver, signature):
                raise Refused(f"{approver} has already approved intent {intent_id}")
            return await _counted(
                unit,
                snapshot,
                policy,
                approver=approver,
                how=" (signed)" if signature else "",
                keys=keys,
            )
    except NotFound:
        raise Refused(f"intent {intent_id} not found") from None


@dataclass(frozen=True)
class PasskeyAssertion:
    """What the browser's ``navigator.credentials.get`` returned for an approval, and the
    time its challenge was issued (``passkey_challenge``)."""

    credential_id: bytes
    client_data_json: bytes
    authenticator_data: bytes
    signature: bytes = field(repr=False)
    issued_at: datetime


async def passkey_challenge(
    ledger: Ledger, intent_id: int, *, now: datetime | None = None
) -> tuple[bytes, datetime]:
    """The challenge a passkey signs to approve ``intent_id`` as it stands now, and the
    time it is issued (send both to the browser; post ``issued_at`` back with the
    assertion). ``NotFound`` if there is no such intent."""
    issued_at = now or utcnow()
    intent = await ledger.intents.get(intent_id)
    return wa.approval_challenge(proof.statement(intent), issued_at), issued_at


async def record_passkey_approval(
    ledger: Ledger,
    intent_id: int,
    assertion: PasskeyAssertion,
    *,
    approver: str | None = None,
    max_age: timedelta = wa.MAX_AGE,
    via: str = "cli",
) -> ApprovalResult:
    """Record an approval made with a passkey. Raises Refused (nothing written) unless:
    the passkey is a current passkey of a current operator (``approver``, if named, must
    be its owner), not the requester nor someone who approved already; its challenge is
    the one for the intent as it stands now, issued at most ``max_age`` before now; the
    assertion verifies (type, origin, relying party, user presence and verification,
    signature); and its sign count exceeds the one seen last, which it then becomes.

    The approval is stored with its proof (``webauthn.PasskeyProof``, JSON) and counted
    again by the worker inside the transaction that commits the send. ``via`` prefixes the
    approver in the events' actor (``cli:NAME``, ``console:NAME``)."""
    snapshot, policy = await _policy(ledger, intent_id)
    try:
        async with ledger.units.open(intent_id) as unit:
            keys = await unit.operator_keys()
            if keys is None:
                raise Refused("no operator is registered: passkeys belong to registered operators")
            owners = {
                c.credential_id: who
                for who, creds in (await unit.passkeys()).items()
                for c in creds
            }
            owner = owners.get(assertion.credential_id)
            if owner is None:
                raise Refused(
                    "passkey approval refused: that passkey is not registered to a current "
                    "operator (or was removed)"
                )
            if approver is not None and proof.person(approver) != proof.person(owner):
                raise Refused(f"passkey approval refused: that passkey is not {approver}'s")
            await _may_approve(unit, policy, owner)
            (credential,) = [
                c
                for c in (await unit.passkeys())[owner]
                if c.credential_id == assertion.credential_id
            ]
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
                        proof.statement(unit.intent), assertion.issued_at
                    ),
                    origin=credential.origin,
                    rp_id=credential.rp_id,
                )
            except wa.WebAuthnError as exc:
                problem = exc.problem
                if "challenge" in problem:
                    problem = "stale challenge: it was not issued for this intent as it stands now"
                raise Refused(f"passkey approval by {owner} refused: {problem}") from None
            if not await unit.advance_sign_count(assertion.credential_id, sign_count):
                raise Refused(
                    f"passkey approval by {owner} refused: sign count {sign_count} does not "
                    "exceed the one seen last (a replay, or a cloned authenticator)"
                )
            document = wa.PasskeyProof(
                credential_id=assertion.credential_id,
                authenticator_data=assertion.authenticator_data,
                client_data_json=assertion.client_data_json,
                signature=assertion.signature,
                issued_at=assertion.issued_at,
            ).to_json()
            if not await unit.add_approval(owner, document, at=now):
                raise Refused(f"{owner} has already approved intent {intent_id}")
            return await _counted(
                unit, snapshot, policy, approver=owner, how=" (passkey)", keys=keys, via=via
            )
    except NotFound:
        raise Refused(f"intent {intent_id} not found") from None
