"""The webhook runner as a process part: built from the settings over the ledger's engine,
with its own HTTP client (never the exchange's). ``treasury run`` starts it beside the
daemon; ``treasury webhook run`` runs it alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters import alerts as ops_alerts
from treasury.adapters import webhook_http
from treasury.adapters.db.webhooks import SqlWebhooks
from treasury.config import Settings, SettingsError
from treasury.services.context import Alert
from treasury.services.webhooks import MissingKey, WebhookRunner

log = structlog.get_logger("treasury.webhooks")


@asynccontextmanager
async def webhook_runner(
    settings: Settings,
    engine: AsyncEngine,
    *,
    on_alert_result: Callable[[str], None] | None = None,
) -> AsyncIterator[WebhookRunner]:
    """The runner for these settings (not yet prepared: see ``prepared``)."""
    key = settings.require_webhook_key() if settings.webhook_key is not None else None
    async with webhook_http.client(settings.webhook_timeout_s) as http:
        yield WebhookRunner(
            SqlWebhooks(engine),
            webhook_http.HttpPoster(http, timeout_s=settings.webhook_timeout_s),
            key=key,
            alerts=ops_alerts.channel_from_settings(settings, http=http),
            max_retry_s=settings.webhook_max_retry_s,
            timeout_s=settings.webhook_timeout_s,
            poll_s=settings.webhook_poll_s,
            on_alert_result=on_alert_result,
        )


async def prepare(runner: WebhookRunner, *, alert: Alert | None = None) -> None:
    """``runner.prepare()``, a missing key said as a configuration error.

    Beside the daemon (``alert`` given), a missing key does not stop the start: sends
    matter more than notifications. It is logged and alerted, and the deliveries that
    need signing wait, each attempt recording why, until the key is set or they reach
    ``TREASURY_WEBHOOK_MAX_RETRY_S``.

    Raises:
        SettingsError: subscriptions exist and ``TREASURY_WEBHOOK_KEY`` is unset, and no
            ``alert`` was given (``treasury webhook run``: delivering is its only job).
    """
    try:
        await runner.prepare()
    except MissingKey as exc:
        if alert is None:
            raise SettingsError(str(exc)) from None
        log.error("webhooks.key_missing", error=str(exc))
        await alert("webhook_key_missing", f"webhook deliveries cannot be signed: {exc}", None)
