"""Approvals: N distinct people, never the requester, each recorded as an event.

When the quorum the policy asks for is reached, the intent goes back to ``queued``;
the worker then decides again (caps may still hold it) inside the commit transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from treasury.adapters.db.repository import NotFound, utcnow
from treasury.adapters.db.tables import intent_approvals
from treasury.domain import policy as p
from treasury.domain.status import Status
from treasury.services.admin import Ledger, Refused

A = intent_approvals


@dataclass(frozen=True)
class ApprovalResult:
    intent_id: int
    approvers: tuple[str, ...]
    required: int
    released: bool  # the quorum is reached and the intent went back to queued


async def approve(
    ledger: Ledger, intent_id: int, *, approver: str, policy: p.Policy
) -> ApprovalResult:
    """Record one approval. Raises Refused (nothing written) when it may not count."""
    repo = ledger.intents
    async with ledger.engine.begin() as conn:
        try:
            intent = await repo.lock(conn, intent_id)
        except NotFound:
            raise Refused(f"intent {intent_id} not found") from None
        if intent.status is not Status.AWAITING_APPROVAL:
            raise Refused(
                f"intent {intent_id} is {intent.status.value}: only intents awaiting approval "
                "can be approved"
            )
        existing = tuple(
            (await conn.execute(select(A.c.approver).where(A.c.intent_id == intent_id)))
            .scalars()
        )
        refusal = p.check_approver(
            approver=approver, requested_by=intent.requested_by, existing=existing
        )
        if refusal:
            raise Refused(refusal)
        try:
            async with conn.begin_nested():
                await conn.execute(
                    insert(A).values(intent_id=intent_id, approver=approver, created_at=utcnow())
                )
        except IntegrityError:
            raise Refused(f"{approver} has already approved intent {intent_id}") from None
        approvers = (*existing, approver)
        required = p.approvals_needed(intent.amount, policy.for_coin(intent.coin))
        await repo.record_note(
            intent_id, actor=f"cli:{approver}", kind="approval",
            reason=f"approved by {approver} ({len(approvers)} of {required})", conn=conn,
        )
        released = len(approvers) >= required
        if released:
            await repo.transition(
                intent_id, Status.QUEUED, actor=f"cli:{approver}", conn=conn,
                expect=(Status.AWAITING_APPROVAL,),
                reason=f"approved by {', '.join(approvers)}",
                fields={"not_before": None, "held_since": None},
            )
    return ApprovalResult(intent_id, approvers, required, released)
