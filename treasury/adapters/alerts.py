"""Alerts to a webhook (generic JSON, Slack-compatible or Telegram-compatible).

Since the outbox (migration 0015), ``treasury run`` writes each alert as an ``alert``
outbox row (``outbox_alert``) in its own short transaction, and the webhook runner
(``services.webhooks``) delivers it to the configured channel through ``AlertWebhook``,
one attempt at a time, retried with the runner's backoff: an alert raised just before a
crash is delivered after the restart. ``payload`` (the three formats) and the redaction
are the same for both paths.

``WebhookAlerts`` below is the earlier in-memory path, kept for embedders of
``treasury.api``; the daemon no longer uses it. Its note:

The worker raises an alert in the middle of money-moving work, so raising one must cost
nothing: ``__call__`` only appends to a bounded in-memory queue and returns; it never
awaits the network and never raises. ``run`` delivers in the background, one at a time
and in order, retrying with backoff (tenacity). When the queue is full the oldest alert
is dropped and counted: the newest says most about the present. Every alert is in the
logs as well, so a dead webhook loses a notification, never the record. Delivery is at
least once: an alert cut off mid-request by shutdown is sent again by the final flush.

Texts go through the log redaction before they leave. The webhook URL itself is a
secret (a Slack hook path or a Telegram bot token): ``from_settings`` registers it, and
it is never logged.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import anyio
import httpx
import structlog
import tenacity
from anyio.abc import TaskStatus

from treasury.adapters.webhook_http import result_of
from treasury.config import Settings
from treasury.logs import register_secret, scrub_text
from treasury.ports.webhooks import PostResult

log = structlog.get_logger("treasury.alerts")

Format = Literal["json", "slack", "telegram"]
FORMATS: tuple[Format, ...] = ("json", "slack", "telegram")
MAX_TEXT = 3500  # under Telegram's 4096-character limit, with room for the heading
KINDS = (
    "needs_attention",
    "failed",
    "unexpected_withdrawal",
    "can_withdraw_false",
    "ip_banned",
    "paused",
    "whitelist_unverified",
    "whitelist_approval_needed",
)


@dataclass(frozen=True, kw_only=True)
class AlertRecord:
    kind: str
    message: str
    intent_id: int | None
    at: datetime


def text_of(alert: AlertRecord) -> str:
    head = f"[treasury] {alert.kind}"
    if alert.intent_id is not None:
        head += f" (intent {alert.intent_id})"
    return f"{head}: {alert.message}"


def payload(fmt: Format, alert: AlertRecord, *, chat_id: str | None = None) -> dict[str, object]:
    """The request body for one alert in the given format."""
    if fmt == "slack":
        # Slack reads &, < and > as markup; its docs ask for exactly these escapes
        escaped = text_of(alert).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return {"text": escaped}
    if fmt == "telegram":
        return {"chat_id": chat_id, "text": text_of(alert)}
    return {
        "kind": alert.kind,
        "message": alert.message,
        "intent_id": alert.intent_id,
        "service": "treasury",
        "at": alert.at.isoformat(),
    }


class _Retry(Exception):
    def __init__(self, why: str, retry_after_s: float = 0.0) -> None:
        super().__init__(why)
        self.retry_after_s = retry_after_s


class _GiveUp(Exception):
    pass


def _retry_after(reply: httpx.Response) -> float:
    try:
        return max(0.0, float(reply.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0


class WebhookAlerts:
    """An ``Alert`` sink (``async (kind, message, intent_id) -> None``) for a webhook.

    Args:
        url: the webhook (http or https).
        fmt: ``json``, ``slack`` or ``telegram``.
        telegram_chat_id: required for ``telegram``.
        http: a client to use; None: ``run`` makes (and closes) its own.
        max_queue: alerts waiting beyond this push the oldest out (counted).
        retries: further attempts after the first one fails.
        timeout_s: per attempt.
        backoff_s, max_backoff_s: exponential backoff with jitter between attempts; a
            ``Retry-After`` from the receiver is honoured up to ``max_backoff_s``.
        on_result: called with ``delivered``, ``failed`` or ``dropped`` (metrics).
        flush_s: on shutdown, how long queued alerts still get (one attempt each).
    """

    def __init__(
        self,
        url: str,
        fmt: Format = "json",
        *,
        telegram_chat_id: str | None = None,
        http: httpx.AsyncClient | None = None,
        max_queue: int = 1000,
        retries: int = 5,
        timeout_s: float = 5.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        on_result: Callable[[str], None] | None = None,
        flush_s: float = 2.0,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"alert format must be one of {', '.join(FORMATS)}")
        if fmt == "telegram" and not telegram_chat_id:
            raise ValueError("the telegram alert format needs a chat id")
        if not url.startswith(("https://", "http://")):
            raise ValueError("the alert webhook must be an http(s) URL")
        if max_queue < 1 or retries < 0:
            raise ValueError("max_queue must be >= 1 and retries >= 0")
        self._url = url
        self.fmt: Format = fmt
        self._chat_id = telegram_chat_id
        self._http = http
        self._queue: deque[AlertRecord] = deque()
        self._max_queue = max_queue
        self._retries = retries
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._on_result = on_result or (lambda _r: None)
        self._flush_s = flush_s
        self._wake: anyio.Event | None = None  # made in the event loop, by run()
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return f"WebhookAlerts(fmt={self.fmt!r}, pending={len(self._queue)})"  # no URL

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def __call__(self, kind: str, message: str, intent_id: int | None) -> None:
        try:
            self._enqueue(
                AlertRecord(
                    kind=scrub_text(str(kind))[:64],
                    message=scrub_text(str(message))[:MAX_TEXT],
                    intent_id=intent_id,
                    at=datetime.now(UTC),
                )
            )
        except Exception:  # an alert must never break the work that raised it
            log.exception("alert.enqueue_failed", kind=kind)

    def _enqueue(self, alert: AlertRecord) -> None:
        if len(self._queue) >= self._max_queue:
            old = self._queue.popleft()
            self.dropped += 1
            self._on_result("dropped")
            log.warning(
                "alert.dropped",
                kind=old.kind,
                intent_id=old.intent_id,
                dropped_total=self.dropped,
                queue=self._max_queue,
            )
        self._queue.append(alert)
        if self._wake is not None:
            self._wake.set()

    # ---- delivery ------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver queued alerts until cancelled; then flush briefly (shielded)."""
        async with self._client() as http:
            task_status.started()
            current: AlertRecord | None = None
            try:
                while True:
                    while not self._queue:
                        self._wake = anyio.Event()
                        await self._wake.wait()
                    current = self._queue.popleft()
                    await self._deliver(http, current)
                    current = None
            finally:
                if current is not None:
                    self._queue.appendleft(current)
                await self._flush(http)

    async def _flush(self, http: httpx.AsyncClient) -> None:
        if not self._queue:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._flush_s):
            while self._queue:
                alert = self._queue.popleft()
                try:
                    await self._attempt(http, alert)
                    self._done(alert, "delivered")
                except (_Retry, _GiveUp) as exc:
                    self._done(alert, "failed", str(exc))
        if self._queue:
            log.error("alert.unsent_at_exit", count=len(self._queue))

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._http is not None:
            yield self._http
            return
        async with httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False) as http:
            yield http

    async def _deliver(self, http: httpx.AsyncClient, alert: AlertRecord) -> None:
        retrying = tenacity.AsyncRetrying(
            sleep=anyio.sleep,
            stop=tenacity.stop_after_attempt(self._retries + 1),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retry),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._attempt(http, alert)
        except (_Retry, _GiveUp) as exc:
            self._done(alert, "failed", str(exc))
        else:
            self._done(alert, "delivered")

    def _done(self, alert: AlertRecord, result: str, why: str = "") -> None:
        if result == "delivered":
            self.delivered += 1
            log.debug("alert.delivered", kind=alert.kind, intent_id=alert.intent_id)
        else:
            self.failed += 1
            log.error("alert.undelivered", kind=alert.kind, intent_id=alert.intent_id, error=why)
        self._on_result(result)

    async def _attempt(self, http: httpx.AsyncClient, alert: AlertRecord) -> None:
        body = payload(self.fmt, alert, chat_id=self._chat_id)
        try:
            reply = await http.post(self._url, json=body, timeout=self._timeout_s)
        except httpx.HTTPError as exc:  # no str(exc): it may carry the URL
            raise _Retry(type(exc).__name__) from None
        status = reply.status_code
        if 200 <= status < 300:
            return
        detail = f"HTTP {status}: {scrub_text(reply.text[:200])}".rstrip(": ")
        if status in (408, 425, 429) or status >= 500:
            raise _Retry(detail, _retry_after(reply))
        raise _GiveUp(detail)  # 3xx/4xx: a wrong URL, token or chat id; retrying won't help

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exp = min(self._max_backoff_s, self._backoff_s * 2.0 ** (state.attempt_number - 1))
        jittered = exp * (0.5 + random.random() / 2)
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = exc.retry_after_s if isinstance(exc, _Retry) else 0.0
        return min(self._max_backoff_s, max(jittered, hint))

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "alert.retry",
            attempt=state.attempt_number,
            error=str(exc),
            wait_s=round(state.upcoming_sleep, 2),
        )


def from_settings(
    settings: Settings,
    *,
    on_result: Callable[[str], None] | None = None,
    http: httpx.AsyncClient | None = None,
) -> WebhookAlerts | None:
    """The configured webhook sink, or None when ``TREASURY_ALERT_WEBHOOK_URL`` is unset.

    Registers the URL (and its long path segments, e.g. a bot token) as secrets first.

    Raises:
        ValueError: an unusable URL or format combination.
    """
    url = settings.alert_webhook_url
    if not url:
        return None
    _register_url(url)
    return WebhookAlerts(
        url,
        settings.alert_format,
        telegram_chat_id=settings.alert_telegram_chat_id,
        on_result=on_result,
        http=http,
    )


# ---- the outbox path (treasury run) ---------------------------------------------------

AlertWriter = Callable[[str, str, "int | None"], Awaitable[None]]


def outbox_alert(write: AlertWriter) -> Callable[[str, str, int | None], Awaitable[None]]:
    """An ``Alert`` that writes an ``alert`` outbox row (``write``: its own transaction),
    the text scrubbed and cut first. It never raises: an alert must not break the work
    that raised it (the log line ``_logged`` writes keeps the record)."""

    async def alert(kind: str, message: str, intent_id: int | None) -> None:
        try:
            await write(scrub_text(str(kind))[:64], scrub_text(str(message))[:MAX_TEXT], intent_id)
        except Exception as exc:
            log.error("alert.not_written", kind=kind, intent_id=intent_id, error=type(exc).__name__)

    return alert


class AlertWebhook:
    """The configured alert channel as the runner's ``AlertChannel``: one attempt per
    call, in the channel's format, the text scrubbed again on the way out."""

    def __init__(
        self,
        url: str,
        fmt: Format = "json",
        *,
        http: httpx.AsyncClient,
        telegram_chat_id: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"alert format must be one of {', '.join(FORMATS)}")
        if fmt == "telegram" and not telegram_chat_id:
            raise ValueError("the telegram alert format needs a chat id")
        if not url.startswith(("https://", "http://")):
            raise ValueError("the alert webhook must be an http(s) URL")
        self._url = url
        self.fmt: Format = fmt
        self._chat_id = telegram_chat_id
        self._http = http
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"AlertWebhook(fmt={self.fmt!r})"  # no URL

    async def send(
        self, *, kind: str, message: str, intent_id: int | None, at: datetime
    ) -> PostResult:
        alert = AlertRecord(
            kind=scrub_text(kind)[:64],
            message=scrub_text(message)[:MAX_TEXT],
            intent_id=intent_id,
            at=at,
        )
        body = payload(self.fmt, alert, chat_id=self._chat_id)
        try:
            reply = await self._http.post(self._url, json=body, timeout=self._timeout_s)
        except httpx.HTTPError as exc:  # no str(exc): it may carry the URL
            return PostResult(None, type(exc).__name__)
        result = result_of(reply)
        if result.ok:
            log.debug("alert.delivered", kind=alert.kind, intent_id=alert.intent_id)
        return result


def channel_from_settings(
    settings: Settings,
    *,
    http: httpx.AsyncClient,
) -> AlertWebhook | None:
    """The configured channel for the runner, or None when ``TREASURY_ALERT_WEBHOOK_URL``
    is unset; the URL (and its long path segments) registered as secrets first."""
    url = settings.alert_webhook_url
    if not url:
        return None
    _register_url(url)
    return AlertWebhook(
        url,
        settings.alert_format,
        http=http,
        telegram_chat_id=settings.alert_telegram_chat_id,
    )


def _register_url(url: str) -> None:
    register_secret(url)
    parsed = httpx.URL(url)
    for part in (*parsed.path.split("/"), parsed.query.decode()):
        if len(part) >= 16:
            register_secret(part)
