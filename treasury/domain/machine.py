"""The intent state machine: one transition table and one function that applies it.

Every accepted change yields the audit event that records it; the caller persists
both in one transaction. Anything not in the table raises ``IllegalTransition``.
"""

from __future__ import annotations

from dataclasses import dataclass

from treasury.domain.errors import IllegalTransition
from treasury.domain.status import Status

S = Status

# from → the statuses it may move to. Terminal statuses have no way out.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.QUEUED: frozenset(
        {
            S.AWAITING_APPROVAL,  # policy asks for approvals
            S.SUBMITTING,  # the worker commits to send
            S.SUBMITTED,  # the exchange already has it (a restored ledger, late history): adopt
            S.COMPLETED,  # ... and it has already completed there
            S.REJECTED,  # validation or policy refuses it for good
            S.FAILED,  # held longer than the maximum hold
            S.CANCELLED,  # an operator cancels it
            S.NEEDS_ATTENTION,  # an inconsistency a person must look at
        }
    ),
    S.AWAITING_APPROVAL: frozenset(
        {
            S.QUEUED,
            S.REJECTED,
            S.CANCELLED,
            S.FAILED,
            S.SUBMITTED,
            S.COMPLETED,  # the exchange already has it (restored ledger): adopt
            S.NEEDS_ATTENTION,  # the exchange has a withdrawal under its id that does not match
        }
    ),
    S.SUBMITTING: frozenset(
        {
            S.SUBMITTED,  # the exchange accepted it (answer, or found by reconciliation)
            S.QUEUED,  # provably not sent: safe to try again later
            S.FAILED,  # the exchange refused it for good
            S.COMPLETED,  # reconciliation found it already completed
            S.CANCELLED,  # reconciliation found it cancelled by the exchange
            S.NEEDS_ATTENTION,  # the outcome cannot be established safely
        }
    ),
    S.SUBMITTED: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.NEEDS_ATTENTION}),
    S.NEEDS_ATTENTION: frozenset(
        {
            S.QUEUED,  # an operator re-queues it (resolve --requeue)
            S.SUBMITTED,  # an operator attaches the exchange id: poll it to the end
            S.COMPLETED,  # an operator marks it completed
            S.FAILED,  # an operator marks it failed
            S.CANCELLED,  # an operator confirms nothing was sent and drops it
        }
    ),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Operators may cancel only before anything could have left.
CANCELLABLE = frozenset({S.QUEUED, S.AWAITING_APPROVAL})


@dataclass(frozen=True, kw_only=True)
class Event:
    """One row of the audit trail: from, to, why, who."""

    intent_id: int
    from_status: Status | None
    to_status: Status
    reason: str
    actor: str
    kind: str = "status"


def can_transition(from_status: Status, to_status: Status) -> bool:
    return to_status in TRANSITIONS[from_status]


def transition(
    intent_id: int, from_status: Status, to_status: Status, *, reason: str, actor: str
) -> Event:
    """Check a status change against the table and return its audit event.

    Raises:
        IllegalTransition: the table does not allow ``from_status`` → ``to_status``.
        ValueError: ``reason`` or ``actor`` is empty (every change says why and who).
    """
    if not can_transition(from_status, to_status):
        raise IllegalTransition(intent_id, from_status.value, to_status.value)
    if not reason.strip():
        raise ValueError("a status change needs a reason")
    if not actor.strip():
        raise ValueError("a status change needs an actor")
    return Event(
        intent_id=intent_id,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        actor=actor,
    )


def note(intent_id: int, status: Status, *, reason: str, actor: str, kind: str) -> Event:
    """An event that records a fact without changing the status (approval, alarm...)."""
    return Event(
        intent_id=intent_id,
        from_status=status,
        to_status=status,
        reason=reason,
        actor=actor,
        kind=kind,
    )
