"""Decision values shared by the worker's pure checks (rules, account, whitelist, policy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pass:
    """Nothing against sending."""


@dataclass(frozen=True)
class Hold:
    """Cannot be sent now, may pass later: stay queued with the reason and retry."""

    reason: str
    until_s: float | None = None  # epoch seconds when it may pass, when known


@dataclass(frozen=True)
class Reject:
    """Can never be sent as it stands: refused locally, nothing is sent."""

    reason: str


@dataclass(frozen=True)
class Approve:
    """Policy needs approvals before it may be sent."""

    required: int
    have: int
    reason: str


Verdict = Pass | Hold | Reject | Approve
