"""Approvals: N distinct people, never the requester, each recorded as an event.

When the quorum the policy asks for is reached, the intent goes back to ``queued``;
the worker then decides again (caps may still hold it) inside the commit transaction.

The policy is the ledger's version in force, the one the daemons read, never a file in
the approver's environment; the approval's event names that version.
"""

from __future__ import annotations

from dataclasses import dataclass

from treasury.domain import approval_proof as proof
from treasury.domain import policy as p
from treasury.domain.status import Status
from treasury.ports.clock import utcnow
from treasury.ports.store import Ledger, NotFound
from treasury.services.admin import Refused
from treasury.services.policy import in_force


@dataclass(frozen=True)
class ApprovalResult:
    intent_id: int
    approvers: tuple[str, ...]
    required: int
    released: bool  # the quorum is reached and the intent went back to queued
    policy_version: int


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
    snapshot = await in_force(ledger)
    if snapshot is None or snapshot.policy is None:
        why = "there is none" if snapshot is None else snapshot.problem
        raise Refused(
            f"intent {intent_id} cannot be approved: the ledger has no readable policy "
            f"({why}); apply one with treasury policy apply FILE"
        )
    policy = snapshot.policy
    try:
        unit_cm = ledger.units.open(intent_id)
        async with unit_cm as unit:
            intent = unit.intent
            if intent.status is not Status.AWAITING_APPROVAL:
                raise Refused(
                    f"intent {intent_id} is {intent.status.value}: only intents awaiting "
                    "approval can be approved"
                )
            clock = p.ApprovalClock.of(intent.created_at, policy.approval_expiry_hours)
            if clock.state(utcnow()) == "expired":
                raise Refused(
                    f"intent {intent_id} has waited for approval past the policy's "
                    f"{policy.approval_expiry_hours} h (until {clock.expires_at:%Y-%m-%d %H:%M} "
                    "UTC): it can no longer be approved; enqueue it again if it is still wanted"
                )
            existing = await unit.approvers()
            refusal = p.check_approver(
                approver=approver, requested_by=intent.requested_by, existing=existing
            )
            if refusal:
                raise Refused(refusal)
            keys = await unit.operator_keys()
            if keys is not None:
                mine = proof.count(intent, [proof.Approval(approver, signature)], keys)
                if not mine.valid:
                    why = mine.ignored[0].split(": ", 1)[1]
                    raise Refused(
                        f"approval by {approver} refused: {why} (operators are registered, "
                        "so approvals are signed: treasury approve ID --key FILE)"
                    )
            if not await unit.add_approval(approver, signature):
                raise Refused(f"{approver} has already approved intent {intent_id}")
            counted = proof.count(intent, await unit.approvals(), keys)
            approvers = counted.valid
            required = p.approvals_needed(intent.amount, policy.for_coin(intent.coin))
            signed = " (signed)" if signature else ""
            counted_as = (
                f"approval {len(approvers)} of {required}, {snapshot.label}"
                if required
                else f"{snapshot.label} needs no approval for this amount"
            )
            await unit.note(
                actor=f"cli:{approver}",
                kind="approval",
                reason=f"approved by {approver}{signed} ({counted_as})",
            )
            released = len(approvers) >= required
            if released:
                await unit.transition(
                    Status.QUEUED,
                    actor=f"cli:{approver}",
                    reason=f"approved by {', '.join(approvers)}",
                    fields={"not_before": None, "held_since": None},
                )
    except NotFound:
        raise Refused(f"intent {intent_id} not found") from None
    return ApprovalResult(intent_id, approvers, required, released, snapshot.version)
