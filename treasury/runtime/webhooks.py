"""The webhook runner as a process part: built from the settings over the ledger's engine,
with its own HTTP client (never the exchange's). ``treasury run`` starts it beside the
daemon; ``treasury webhook run`` runs it alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters import alerts as ops_alerts
from treasury.adapters import webhook_http
from treasury.adapters.db.webhooks import SqlWebhooks
from treasury.config import Settings, SettingsError
from treasury.services.webhooks import MissingKey, WebhookRunner


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


async def prepare(runner: WebhookRunner) -> None:
    """``runner.prepare()``, a missing key said as a configuration error.

    Raises:
        SettingsError: subscriptions exist and ``TREASURY_WEBHOOK_KEY`` is unset.
    """
    try:
        await runner.prepare()
    except MissingKey as exc:
        raise SettingsError(str(exc)) from None
