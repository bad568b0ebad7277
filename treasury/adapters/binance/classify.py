"""What a failed exchange means for the caller: the mapping from HTTP to the error tree.

One principle covers the read endpoints: a GET changes nothing, so whatever would be an
"unknown outcome" for withdraw/apply is simply "not sent, try again" for a read.

For withdraw/apply, only these are ``NotSent``: no connection was ever made
(``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``), HTTP 429/418, and the codes the
table marks NOT_SENT (-1003, -1021, -4005). Everything after the bytes may have left
(read timeout, a dropped connection, 5xx, a non-2xx answer without a Binance code such as
a WAF 403 or a proxy's 404, an unknown code, a 2xx body without an ``id``) is
``OutcomeUnknown``. [INFERENCE] for the non-2xx-without-code case: a WAF block most
likely stopped the request, but no source says so, and reconciling costs only time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from treasury.adapters.binance.codes import Outcome, Reason, rule_for
from treasury.adapters.binance.endpoints import Endpoint
from treasury.adapters.binance.errors import (
    ExchangeError,
    IpBanned,
    NotSent,
    OutcomeUnknown,
    Rejected,
    ResponseInvalid,
)
from treasury.adapters.binance.parse import load_json

DEFAULT_RATE_LIMIT_WAIT_S = 60.0  # 429 without Retry-After: sit out a whole window
DEFAULT_BAN_S = 120.0  # 418 without Retry-After: the shortest ban Binance documents
MAX_MSG_CHARS = 200

_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
_NOTHING_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@dataclass(frozen=True, kw_only=True)
class ApplyContext:
    """What was signed into a withdraw/apply, for an ``OutcomeUnknown``."""

    timestamp_ms: int
    recv_window_ms: int
    withdraw_order_id: str


def make_error(
    outcome: Outcome,
    *,
    endpoint: Endpoint,
    apply: ApplyContext | None,
    detail: str,
    reason: Reason,
    code: int | None = None,
    http_status: int | None = None,
    permanent: bool = False,
    retry_after_s: float | None = None,
) -> ExchangeError:
    if outcome is Outcome.UNKNOWN and endpoint.read_only:
        outcome = Outcome.NOT_SENT
    if outcome is Outcome.NOT_SENT:
        return NotSent(
            detail,
            endpoint=endpoint.path,
            reason=reason,
            code=code,
            http_status=http_status,
            retry_after_s=retry_after_s,
        )
    if outcome is Outcome.REJECTED:
        return Rejected(
            detail,
            endpoint=endpoint.path,
            reason=reason,
            permanent=permanent,
            code=code,
            http_status=http_status,
        )
    if apply is None:
        raise RuntimeError(f"{endpoint.path}: a state-changing call needs its ApplyContext")
    return OutcomeUnknown(
        detail,
        endpoint=endpoint.path,
        reason=reason,
        code=code,
        http_status=http_status,
        timestamp_ms=apply.timestamp_ms,
        recv_window_ms=apply.recv_window_ms,
        withdraw_order_id=apply.withdraw_order_id,
    )


def from_transport(
    exc: httpx.RequestError, *, endpoint: Endpoint, apply: ApplyContext | None
) -> ExchangeError:
    name = type(exc).__name__  # str(exc) is not used: keep anything URL-shaped out
    if isinstance(exc, _NOTHING_SENT):
        return NotSent(
            f"no connection could be made ({name})",
            endpoint=endpoint.path,
            reason=Reason.CONNECT_FAILED,
        )
    reason = Reason.TIMEOUT if isinstance(exc, httpx.TimeoutException) else Reason.DISCONNECTED
    return make_error(
        Outcome.UNKNOWN,
        endpoint=endpoint,
        apply=apply,
        reason=reason,
        detail=f"{name} after the request may have been sent",
    )


def no_answer(*, endpoint: Endpoint, apply: ApplyContext | None, seconds: float) -> ExchangeError:
    return make_error(
        Outcome.UNKNOWN,
        endpoint=endpoint,
        apply=apply,
        reason=Reason.TIMEOUT,
        detail=f"no answer within {seconds:g} s",
    )


def unexpected(exc: Exception, *, endpoint: Endpoint, apply: ApplyContext) -> ExchangeError:
    return make_error(
        Outcome.UNKNOWN,
        endpoint=endpoint,
        apply=apply,
        reason=Reason.DISCONNECTED,
        detail=f"unexpected {type(exc).__name__} while sending",
    )


def from_bad_success(
    invalid: ResponseInvalid, *, endpoint: Endpoint, apply: ApplyContext | None, status: int
) -> ExchangeError:
    if endpoint.read_only:
        return invalid
    return make_error(
        Outcome.UNKNOWN,
        endpoint=endpoint,
        apply=apply,
        http_status=status,
        reason=Reason.INVALID_RESPONSE,
        detail=f"HTTP {status} but {invalid.detail}",
    )


MAX_BAN_S = 3 * 24 * 3600.0  # Binance bans last 2 min to 3 days


def from_response(
    *,
    endpoint: Endpoint,
    status: int,
    content: bytes,
    headers: Mapping[str, str],
    apply: ApplyContext | None,
    wall_now: float,
    scrub: Callable[[str], str],
) -> ExchangeError:
    """The error for a non-2xx answer."""
    code, msg = _error_body(content)
    said = f"; Binance says {scrub(msg)[:MAX_MSG_CHARS]!r}" if msg else ""
    retry_after = retry_after_s(headers)
    if status >= 500:
        # First: Binance says a 5xx means "execution status unknown", whatever the body
        # claims (even a -1003 ban message) — for withdraw/apply that means reconcile.
        return make_error(
            Outcome.UNKNOWN,
            endpoint=endpoint,
            apply=apply,
            code=code,
            http_status=status,
            reason=Reason.SERVER_ERROR,
            detail=f"server error, execution status unknown{said}",
        )
    banned_until_ms = _banned_until_ms(msg) if code == -1003 else None
    if status == 418 or banned_until_ms is not None:
        seconds = retry_after
        if seconds is None and banned_until_ms is not None:
            seconds = max(0.0, banned_until_ms / 1000 - wall_now)
        if seconds is None:
            seconds = DEFAULT_BAN_S
        seconds = min(seconds, MAX_BAN_S)  # a nonsense Retry-After must not overflow
        return IpBanned(
            f"IP banned for {seconds:.0f} s{said}",
            endpoint=endpoint.path,
            code=code,
            http_status=status,
            retry_after_s=seconds,
            until=datetime.fromtimestamp(wall_now + seconds, UTC),
        )
    if status == 429:
        return NotSent(
            f"rate limited{said}",
            endpoint=endpoint.path,
            code=code,
            http_status=status,
            reason=Reason.RATE_LIMITED,
            retry_after_s=_or_default(retry_after, DEFAULT_RATE_LIMIT_WAIT_S),
        )
    if code is None:
        return make_error(
            Outcome.UNKNOWN,
            endpoint=endpoint,
            apply=apply,
            http_status=status,
            reason=Reason.BLOCKED,
            detail=f"HTTP {status} without a Binance error code{said}",
        )
    rule = rule_for(code)
    wait = None
    if rule.reason is Reason.RATE_LIMITED:
        wait = _or_default(retry_after, DEFAULT_RATE_LIMIT_WAIT_S)
    return make_error(
        rule.outcome,
        endpoint=endpoint,
        apply=apply,
        code=code,
        http_status=status,
        reason=rule.reason,
        permanent=rule.permanent,
        retry_after_s=wait,
        detail=f"{rule.meaning}{said}",
    )


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None  # an HTTP-date; Binance sends seconds
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _or_default(seconds: float | None, default: float) -> float:
    return default if seconds is None else seconds  # "Retry-After: 0" means 0, not missing


def _error_body(content: bytes) -> tuple[int | None, str]:
    try:
        body = load_json(content)
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code")
    msg = body.get("msg")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        msg if isinstance(msg, str) else "",
    )


def _banned_until_ms(msg: str) -> int | None:
    found = _BANNED_UNTIL.search(msg)
    return int(found.group(1)) if found else None
