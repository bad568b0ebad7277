"""Operator and bot use cases on the ledger: enqueue, cancel, resolve, pause, resume.

Refusals are ``Refused`` with a sentence an operator can act on; nothing is written
when a use case refuses.
"""

from __future__ import annotations

from treasury.domain.errors import InvalidField
from treasury.domain.intent import Intent
from treasury.domain.machine import CANCELLABLE
from treasury.domain.status import Status
from treasury.domain.validation import NewIntent, validate_reason
from treasury.ports.store import ConcurrentChange, Ledger

__all__ = ["Ledger", "Refused", "cancel", "enqueue", "pause", "resend", "resolve", "resume"]


class Refused(Exception):
    """The operation is not allowed in the intent's current state; nothing was written."""


async def enqueue(ledger: Ledger, new: NewIntent, *, actor: str) -> tuple[Intent, bool]:
    return await ledger.intents.enqueue(new, actor=actor)


async def cancel(ledger: Ledger, intent_id: int, *, actor: str, reason: str) -> Intent:
    intent = await ledger.intents.get(intent_id)
    if intent.status not in CANCELLABLE:
        raise Refused(_why_not_cancellable(intent))
    try:
        return await ledger.intents.transition(
            intent_id,
            Status.CANCELLED,
            reason=validate_reason(reason, default="cancelled by operator"),
            actor=actor,
            expect=tuple(CANCELLABLE),
        )
    except ConcurrentChange:
        fresh = await ledger.intents.get(intent_id)
        raise Refused(_why_not_cancellable(fresh)) from None


def _why_not_cancellable(intent: Intent) -> str:
    if intent.status.terminal:
        return f"intent {intent.id} is already {intent.status.value}"
    return (
        f"intent {intent.id} is {intent.status.value}: it may already have been sent to the "
        "exchange, so it can no longer be cancelled here"
    )


RESOLUTIONS = {
    "completed": Status.COMPLETED,
    "failed": Status.FAILED,
    "requeue": Status.QUEUED,
    "submitted": Status.SUBMITTED,
    "cancelled": Status.CANCELLED,
}


async def resolve(
    ledger: Ledger,
    intent_id: int,
    *,
    outcome: str,
    actor: str,
    reason: str,
    exchange_id: str | None = None,
    tx_id: str | None = None,
) -> Intent:
    """Settle an intent that needs attention, by a person's decision (recorded as such)."""
    if outcome not in RESOLUTIONS:
        raise InvalidField("--outcome", f"one of {', '.join(RESOLUTIONS)}, not {outcome!r}")
    reason = validate_reason(reason)
    target = RESOLUTIONS[outcome]
    if target in (Status.SUBMITTED, Status.COMPLETED) and not exchange_id:
        raise Refused(f"marking an intent {outcome} needs the exchange's withdrawal id")
    intent = await ledger.intents.get(intent_id)
    if intent.status is not Status.NEEDS_ATTENTION:
        raise Refused(
            f"intent {intent_id} is {intent.status.value}; only needs_attention can be resolved"
        )
    fields: dict[str, object] = {}
    if exchange_id:
        fields["exchange_withdraw_id"] = exchange_id
    if tx_id:
        fields["tx_id"] = tx_id
    if target is Status.QUEUED:
        fields.update(not_before=None, held_since=None, absent_checks=0)
    try:
        return await ledger.intents.transition(
            intent_id,
            target,
            reason=f"resolved by operator: {reason}",
            actor=actor,
            expect=(Status.NEEDS_ATTENTION,),
            fields=fields,
        )
    except ConcurrentChange as exc:
        raise Refused(str(exc)) from None


async def pause(ledger: Ledger, *, actor: str, reason: str, account: str | None = None) -> bool:
    reason = validate_reason(reason, default="paused by operator")
    changed = await ledger.state.pause(reason=reason, by=actor, account=account)
    if changed:
        await ledger.events.record("paused", reason, actor=actor, subject=account or "")
    return changed


async def resume(ledger: Ledger, *, actor: str = "cli", account: str | None = None) -> bool:
    changed = await ledger.state.resume(account)
    if changed:
        what = f"sends of account {account!r} allowed again" if account else "sends allowed again"
        await ledger.events.record("resumed", what, actor=actor, subject=account or "")
    return changed


async def resend(ledger: Ledger, intent_id: int, *, actor: str, reason: str) -> Intent:
    """Queue again an intent whose absence on the exchange was proven (``needs_attention``
    under ``TREASURY_RESEND=manual``), by a person's decision, recorded as such."""
    reason = validate_reason(reason)
    intent = await ledger.intents.get(intent_id)
    if intent.status is not Status.NEEDS_ATTENTION:
        raise Refused(
            f"intent {intent_id} is {intent.status.value}; only an intent in "
            "needs_attention can be sent again"
        )
    if intent.exchange_withdraw_id is not None:
        raise Refused(
            f"intent {intent_id} has exchange withdrawal {intent.exchange_withdraw_id}:"
            " it was sent; resolve it instead of sending it again"
        )
    if intent.withdraw_order_id is None or intent.send_count == 0:
        raise Refused(
            f"intent {intent_id} was never sent; use `treasury resolve --outcome requeue` for it"
        )
    try:
        return await ledger.intents.transition(
            intent_id,
            Status.QUEUED,
            actor=actor,
            expect=(Status.NEEDS_ATTENTION,),
            expect_version=intent.version,
            reason=f"re-send decided by a person: {reason}; looked up once more before it leaves",
            fields={"not_before": None, "held_since": None, "absent_checks": 0},
        )
    except ConcurrentChange as exc:
        raise Refused(str(exc)) from None
