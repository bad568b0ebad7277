"""Intents must not wait silently.

An intent inserted for an account that no running daemon serves (a typo in the
``account`` column, a daemon not started) would sit in ``queued`` forever. Any sender
notices it, gives it a reason a person can act on, records the fact as an event and
alerts — once per intent.

A new approver is a new key to the vault: any sender alerts ``operator_added`` once for
each operator it finds registered (however the row got there: ``treasury operator add``
or SQL), so the people who watch the alerts can remove one nobody of theirs added.

An intent awaiting approval waits at most the policy's ``approval_expiry_hours`` from
its creation: the sender alerts once when a quarter of the window (at most a day) is
left, then fails it with the reason. ``approve`` refuses an expired intent too.
"""

from __future__ import annotations

import structlog

from treasury.domain.policy import ApprovalClock
from treasury.domain.status import Status
from treasury.ports.clock import utcnow
from treasury.ports.store import ConcurrentChange
from treasury.services.context import WorkerContext
from treasury.services.operators import fingerprint

log = structlog.get_logger("treasury.watch")
UNSERVED_AFTER_S = 60.0
PREFIX = "no running daemon serves account"


async def flag_unserved(ctx: WorkerContext, *, after_s: float = UNSERVED_AFTER_S) -> int:
    repo = ctx.ledger.intents
    flagged = 0
    for intent_id, account in await repo.unserved(older_than_s=after_s, skip_reason_prefix=PREFIX):
        reason = (
            f"{PREFIX} {account!r}: start one with TREASURY_ACCOUNT={account}, or cancel the intent"
        )
        if not await repo.set_reason(intent_id, reason):
            continue  # no longer queued
        flagged += 1
        log.error("intent.unserved", intent_id=intent_id, account=account)
        await ctx.alert("needs_attention", f"intent {intent_id}: {PREFIX} {account!r}", intent_id)
    return flagged


async def expire_approvals(ctx: WorkerContext) -> int:
    """Alert on intents of this account close to the end of their approval window, and
    fail those past it. Returns how many were failed."""
    snapshot = await ctx.policy()
    hours = None if snapshot is None else snapshot.approval_expiry_hours
    if hours is None:
        return 0
    now = utcnow()
    expired = 0
    waiting = await ctx.ledger.intents.in_status(
        Status.AWAITING_APPROVAL, account=ctx.config.account
    )
    for intent in waiting:
        clock = ApprovalClock.of(intent.created_at, hours)
        state = clock.state(now)
        if state == "expiring":
            left = clock.expires_at - now
            if await ctx.ledger.events.record_once(
                "approval_expiring",
                str(intent.id),
                f"expires at {clock.expires_at:%Y-%m-%d %H:%M} UTC",
                actor="worker",
            ):
                log.warning(
                    "intent.approval_expiring",
                    intent_id=intent.id,
                    left_s=int(left.total_seconds()),
                )
                await ctx.alert(
                    "approval_expiring",
                    f"intent {intent.id} ({intent.amount} {intent.coin}) needs its approvals "
                    f"before {clock.expires_at:%Y-%m-%d %H:%M} UTC, or it fails: treasury "
                    f"approve {intent.id}",
                    intent.id,
                )
        elif state == "expired":
            reason = (
                f"not approved within the {hours} h (approval_expiry_hours) of "
                f"{snapshot.label if snapshot else 'the policy'} since its "
                "creation; enqueue it again if it is still wanted"
            )
            try:
                await ctx.ledger.intents.transition(
                    intent.id,
                    Status.FAILED,
                    reason=reason,
                    actor="worker",
                    expect=(Status.AWAITING_APPROVAL,),
                )
            except ConcurrentChange:
                continue  # approved or cancelled meanwhile: it is no longer ours to fail
            expired += 1
            log.warning("intent.approval_expired", intent_id=intent.id, hours=hours)
            await ctx.alert("approval_expired", f"intent {intent.id}: {reason}", intent.id)
    return expired


async def announce_operators(ctx: WorkerContext) -> int:
    """Alert once (ever, across processes: a ``service_events`` row) for each registered
    operator not announced yet. One read per round once all are known here."""
    fresh = [
        o
        for o in await ctx.ledger.operators.all()
        if o.removed_at is None and o.name not in ctx.operators_known
    ]
    announced = 0
    for operator in fresh:
        ctx.operators_known.add(operator.name)
        detail = (
            f"operator {operator.name} (key {fingerprint(operator.public_key)}) is registered, "
            f"added by {operator.added_by} at {operator.added_at:%Y-%m-%d %H:%M} UTC: "
            "approvals signed with this key now count"
        )
        if not await ctx.ledger.events.record_once(
            "operator_announced", operator.name, detail, actor="worker"
        ):
            continue
        announced += 1
        log.warning("operator.announced", operator=operator.name, added_by=operator.added_by)
        await ctx.alert(
            "operator_added",
            f"{detail}; if nobody of yours added it: treasury operator remove {operator.name}",
            None,
        )
    return announced
