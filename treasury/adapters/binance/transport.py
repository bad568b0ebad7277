"""One HTTP exchange with Binance: send the signed bytes, read the answer, classify it.

Also the one place that logs a call and reports it to the metrics hook. It logs the
endpoint path, HTTP status, Binance code, reason and duration, and never the URL, the
query, the signature or the API key: a signed URL is a replayable credential for as
long as its recvWindow lasts.

withdraw/apply is shielded from cancellation (bounded by ``apply_timeout_s``): a
shutdown in the middle of a send then ends with a known result or an ``OutcomeUnknown``
that says so, instead of an abandoned request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
import httpx
import structlog

from treasury.adapters.binance import classify
from treasury.adapters.binance.classify import ApplyContext
from treasury.adapters.binance.encoding import SignedQuery
from treasury.adapters.binance.endpoints import Endpoint
from treasury.adapters.binance.errors import (
    ExchangeError,
    IpBanned,
    NotSent,
    OutcomeUnknown,
    ResponseInvalid,
)
from treasury.adapters.binance.limits import RateLimiter
from treasury.adapters.binance.parse import load_json

T = TypeVar("T")
OnCall = Callable[[str, str, float], None]

log = structlog.get_logger("treasury.binance")

REDACTED = "<redacted>"


@dataclass(frozen=True)
class Reply(Generic[T]):
    value: T
    sent_at: float  # wall-clock seconds just before sending
    received_at: float  # wall-clock seconds when the answer was in


class Transport:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        limiter: RateLimiter,
        wall_clock: Callable[[], float],
        on_call: OnCall | None,
        apply_timeout_s: float,
    ) -> None:
        base = httpx.URL(base_url)
        if base.scheme not in ("http", "https") or not base.host or base.query:
            raise ValueError("base_url must be an http(s) URL without a query string")
        self._http = http
        self._base = base
        self._prefix = base.raw_path.rstrip(b"/")
        self._api_key = api_key
        self._limiter = limiter
        self._wall_clock = wall_clock
        self._on_call = on_call
        self._apply_timeout_s = apply_timeout_s

    async def send(
        self,
        endpoint: Endpoint,
        query: SignedQuery,
        parse: Callable[[object, str], T],
        *,
        apply: ApplyContext | None = None,
    ) -> Reply[T]:
        """Send ``query`` as is and return the parsed answer, or raise the mapped error."""
        path = self._prefix + endpoint.path.encode("ascii")
        if query.text:
            path += b"?" + query.text.encode("ascii")
        url = self._base.copy_with(raw_path=path)
        headers = {"X-MBX-APIKEY": self._api_key} if endpoint.signed else {}
        started = time.perf_counter()
        sent_at = self._wall_clock()
        try:
            response = await self._exchange(endpoint, url, headers, shielded=apply is not None)
        except httpx.RequestError as exc:
            error = classify.from_transport(exc, endpoint=endpoint, apply=apply)
            self._report(endpoint, error, started, status=None)
            raise error from None
        except Exception as exc:
            if apply is None:
                raise
            # Not an httpx error (an event hook, a custom transport...): the request may
            # have left, and the caller must hear "unknown", not an arbitrary exception.
            error = classify.unexpected(exc, endpoint=endpoint, apply=apply)
            self._report(endpoint, error, started, status=None)
            raise error from None  # __context__ keeps it for a debugger, not for log output
        if response is None:  # only a shielded call comes back without a response
            error = classify.no_answer(
                endpoint=endpoint, apply=apply, seconds=self._apply_timeout_s
            )
            self._report(endpoint, error, started, status=None)
            raise error
        received_at = self._wall_clock()
        self._limiter.observe(endpoint, response.headers)
        status = response.status_code
        if 200 <= status < 300:
            try:
                value = parse(self._decode(endpoint, response.content), endpoint.path)
            except ResponseInvalid as invalid:
                error = classify.from_bad_success(
                    invalid, endpoint=endpoint, apply=apply, status=status
                )
            else:
                self._report(endpoint, None, started, status=status)
                return Reply(value, sent_at, received_at)
        else:
            error = classify.from_response(
                endpoint=endpoint,
                status=status,
                content=response.content,
                headers=response.headers,
                apply=apply,
                wall_now=received_at,
                scrub=lambda text: self._scrub(text, query),
            )
            self._book_back_off(endpoint, error)
        self._report(endpoint, error, started, status=status)
        raise error

    async def _exchange(
        self, endpoint: Endpoint, url: httpx.URL, headers: dict[str, str], *, shielded: bool
    ) -> httpx.Response | None:
        if not shielded:
            return await self._http.request(endpoint.method, url, headers=headers)
        response = None
        with anyio.move_on_after(self._apply_timeout_s, shield=True):
            response = await self._http.request(endpoint.method, url, headers=headers)
        return response

    @staticmethod
    def _decode(endpoint: Endpoint, content: bytes) -> object:
        try:
            return load_json(content)
        except ValueError:
            raise ResponseInvalid(
                endpoint=endpoint.path, field="<body>", problem="is not valid JSON"
            ) from None

    def _book_back_off(self, endpoint: Endpoint, error: ExchangeError) -> None:
        if isinstance(error, IpBanned):
            self._limiter.ban(error.retry_after_s or 0.0)
            log.error(
                "binance.ip_banned",
                endpoint=endpoint.path,
                until=error.until.isoformat(),
                seconds=error.retry_after_s,
                http_status=error.http_status,
                code=error.code,
                note="every Binance call pauses until the ban lifts",
            )
        elif isinstance(error, NotSent) and error.retry_after_s:
            self._limiter.block(endpoint, error.retry_after_s)

    def _scrub(self, text: str, query: SignedQuery) -> str:
        for secret in (*query.secrets(), self._api_key):
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def _report(
        self, endpoint: Endpoint, error: ExchangeError | None, started: float, *, status: int | None
    ) -> None:
        seconds = time.perf_counter() - started
        outcome = "ok" if error is None else error.outcome
        fields = {
            "endpoint": endpoint.path,
            "method": endpoint.method,
            "http_status": status,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 1),
        }
        if error is None:
            log.debug("binance.call", **fields)
        else:
            fields.update(code=error.code, reason=error.reason.value)
            if isinstance(error, OutcomeUnknown):
                log.error(
                    "binance.call",
                    **fields,
                    withdraw_order_id=error.withdraw_order_id,
                    timestamp_ms=error.timestamp_ms,
                    recv_window_ms=error.recv_window_ms,
                )
            else:
                log.warning("binance.call", **fields)
        if self._on_call is not None:
            try:
                self._on_call(endpoint.path, outcome, seconds)
            except Exception as exc:  # a metrics bug must never hide a withdrawal's result
                log.warning(
                    "binance.on_call_failed", endpoint=endpoint.path, error=type(exc).__name__
                )
