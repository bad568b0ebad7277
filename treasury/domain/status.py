"""The status vocabulary of a withdrawal intent (part of the public contract)."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    QUEUED = "queued"  # waiting for the worker, or held back by a temporary condition
    AWAITING_APPROVAL = "awaiting_approval"  # policy needs approvals before it may be sent
    SUBMITTING = "submitting"  # committed to send; the outcome is being established
    SUBMITTED = "submitted"  # the exchange accepted it; polling until it settles
    COMPLETED = "completed"  # terminal: the exchange reports it completed
    FAILED = "failed"  # terminal: the exchange failed or refused it for good
    REJECTED = "rejected"  # terminal: refused locally by validation or policy; nothing sent
    CANCELLED = "cancelled"  # terminal: cancelled by an operator before sending, or by the exchange
    NEEDS_ATTENTION = "needs_attention"  # the service cannot decide safely; a person must

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.REJECTED, Status.CANCELLED})
ALL_STATUSES = tuple(s.value for s in Status)
