"""Alerts to a webhook (generic JSON, Slack-compatible or Telegram-compatible).

Raising an alert must cost nothing and never fail the work that raised it: the daemon's
alert function (``outbox_alert``) writes an ``alert`` outbox row (migration 0016) in its
own short transaction, the text scrubbed first, and returns; it never awaits the network
and never raises. The webhook runner (``services.webhooks``) delivers the row to the
configured channel through ``AlertWebhook``, one attempt at a time, retried with backoff
and jitter up to ``TREASURY_WEBHOOK_MAX_RETRY_S``: an alert raised just before a crash is
delivered after the restart (the in-memory queue before it lost it). Every alert is in the
logs as well, so a dead webhook loses a notification, never the record. Delivery is at
least once.

Texts go through the log redaction before they are stored and again before they leave.
The webhook URL itself is a secret (a Slack hook path or a Telegram bot token):
``channel_from_settings`` registers it, and it is never logged nor stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx
import structlog

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
    "webhook_key_missing",
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
