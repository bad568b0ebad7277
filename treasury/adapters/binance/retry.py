"""When a read-only call is sent again: a pure decision, wired into tenacity.

Only ``NotSent`` is retried, and only for GETs (withdraw/apply never goes through here).
A ``-1021`` gets exactly one immediate retry (the client has resynced its clock by then),
on top of the ordinary budget. An IP ban, or a ``Retry-After`` longer than
``max_wait_s``, is handed to the caller at once instead of holding it for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import structlog
from tenacity import AsyncRetrying, RetryCallState

from treasury.adapters.binance.codes import Reason
from treasury.adapters.binance.errors import IpBanned, NotSent

log = structlog.get_logger("treasury.binance")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_s: float = 0.5  # doubled on each retry
    max_backoff_s: float = 8.0
    max_wait_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_wait_s < 0:
            raise ValueError("retry settings must not be negative")


def next_delay(
    policy: RetryPolicy, error: BaseException, *, retries: int, skew_retried: bool
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` to give up.

    Args:
        retries: ordinary retries already made for this call.
        skew_retried: whether the one ``-1021`` retry was used.
    """
    if not isinstance(error, NotSent) or isinstance(error, IpBanned):
        return None
    if error.reason is Reason.CLOCK_SKEW:
        return None if skew_retried else 0.0
    if retries >= policy.max_retries:
        return None
    backoff = min(policy.max_backoff_s, policy.backoff_s * 2**retries)
    delay = max(backoff, error.retry_after_s or 0.0)
    return delay if delay <= policy.max_wait_s else None


class _Decision:
    """The per-call state tenacity's ``retry`` and ``wait`` hooks share."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.retries = 0
        self.skew_retried = False
        self.delay = 0.0

    def retry(self, state: RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        error = outcome.exception()
        if error is None:
            return False
        delay = next_delay(self.policy, error, retries=self.retries, skew_retried=self.skew_retried)
        if delay is None:
            return False
        if isinstance(error, NotSent) and error.reason is Reason.CLOCK_SKEW:
            self.skew_retried = True
        else:
            self.retries += 1
        self.delay = delay
        return True

    def wait(self, state: RetryCallState) -> float:
        return self.delay


def read_retrying(policy: RetryPolicy, *, endpoint: str) -> AsyncRetrying:
    """A fresh tenacity controller for one read call."""
    decision = _Decision(policy)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info(
            "binance.retry",
            endpoint=endpoint,
            attempt=state.attempt_number,
            reason=getattr(getattr(error, "reason", None), "value", None),
            wait_s=round(decision.delay, 3),
        )

    return AsyncRetrying(
        retry=decision.retry,
        wait=decision.wait,
        sleep=anyio.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
