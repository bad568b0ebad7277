"""The webhook runner: fan outbox rows out to deliveries, attempt the due ones, record
every attempt. At least once: a delivery is marked delivered only after a 2xx, and one
whose attempt was cut off (a crash) is due again once its claim runs out; receivers
deduplicate on its ``delivery_id``, fixed at fan-out.

It runs beside the daemon in ``treasury run`` or alone (``treasury webhook run``); on
PostgreSQL several may run at once (claims skip locked rows). Its HTTP client is its own.
The configured alert channel is a subscription too (``builtin = 'alerts'``): its
deliveries go through ``AlertChannel`` in the channel's format, unsigned.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime

import anyio
import structlog
from anyio.abc import TaskStatus

from treasury.domain import webhooks as hooks
from treasury.ports.clock import utcnow
from treasury.ports.webhooks import (
    ALERTS_BUILTIN,
    AlertChannel,
    Delivery,
    Poster,
    PostResult,
    WebhookStore,
)

log = structlog.get_logger("treasury.webhooks")


class MissingKey(Exception):
    """Subscriptions exist and ``TREASURY_WEBHOOK_KEY`` is unset."""


class WebhookRunner:
    def __init__(
        self,
        store: WebhookStore,
        poster: Poster,
        *,
        key: str | None,
        alerts: AlertChannel | None = None,
        max_retry_s: float = 86400.0,
        timeout_s: float = 10.0,
        poll_s: float = 1.0,
        batch: int = 50,
        concurrency: int = 8,
        clock: Callable[[], datetime] = utcnow,
        on_alert_result: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.poster = poster
        self.key = key
        self.alerts = alerts
        self.max_retry_s = max_retry_s
        self.lease_s = 2 * timeout_s + 5.0  # an attempt cut off is tried again after this
        self.poll_s = poll_s
        self.batch = batch
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.clock = clock
        # the alert channel's attempts: ``delivered``, ``retry`` or ``failed`` (given up)
        self.on_alert_result = on_alert_result or (lambda _r: None)

    async def prepare(self) -> None:
        """Add (or retire) the alert channel's subscription; refuse to start without the
        key when subscriptions exist.

        Raises:
            MissingKey: subscriptions to sign for, and no ``TREASURY_WEBHOOK_KEY``.
        """
        await self.store.alert_channel(enabled=self.alerts is not None, now=self.clock())
        if self.key is None and await self.store.has_subscribers():
            raise MissingKey(
                "TREASURY_WEBHOOK_KEY is not set, and webhook subscriptions exist: set it "
                "(the key their signing secrets were derived from) or remove them "
                "(treasury webhook remove)"
            )

    async def step(self) -> int:
        """One round: fan out, then attempt what is due. The number of attempts made."""
        await self.store.fan_out(now=self.clock())
        due = await self.store.claim_due(now=self.clock(), lease_s=self.lease_s, limit=self.batch)
        if due:
            async with anyio.create_task_group() as tg:
                for delivery in due:
                    tg.start_soon(self._attempt_guarded, delivery)
        return len(due)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Rounds until cancelled (call ``prepare`` first); a round that found nothing to
        attempt waits ``poll_s`` (one that did goes on at once: more may be waiting)."""
        task_status.started()
        log.info("webhooks.runner_started")
        while True:
            try:
                busy = await self.step()
            except Exception as exc:  # the database away: try again, never stop
                log.warning("webhooks.round_failed", error=type(exc).__name__)
                busy = 0
            if busy == 0:
                await anyio.sleep(self.poll_s)

    async def _attempt_guarded(self, delivery: Delivery) -> None:
        async with self.limiter:
            try:
                await self._attempt(delivery)
            except Exception as exc:  # one delivery's trouble never stops the others
                log.warning(
                    "webhooks.attempt_failed",
                    delivery_id=delivery.delivery_id,
                    error=type(exc).__name__,
                )

    async def _attempt(self, delivery: Delivery) -> None:
        result = await self._send(delivery)
        now = self.clock()
        outcome = hooks.after_attempt(
            ok=result.ok,
            attempts=delivery.attempts + 1,
            first_attempt_at=delivery.created_at,
            now=now,
            max_retry_s=self.max_retry_s,
            at_least_s=result.retry_after_s,
        )
        await self.store.record(delivery, outcome, result, now=now)
        if delivery.builtin == ALERTS_BUILTIN:  # delivered, failed (given up) or retry
            self.on_alert_result("retry" if outcome.status == "pending" else outcome.status)
        if outcome.status == "failed":
            log.error(
                "webhooks.delivery_failed",
                delivery_id=delivery.delivery_id,
                subscription_id=delivery.subscription_id,
                attempts=delivery.attempts + 1,
                error=result.error,
            )
        elif outcome.status == "pending":
            log.info(
                "webhooks.retry",
                delivery_id=delivery.delivery_id,
                attempts=delivery.attempts + 1,
                error=result.error,
            )

    async def _send(self, delivery: Delivery) -> PostResult:
        data = json.loads(delivery.payload)
        if delivery.builtin == ALERTS_BUILTIN:
            if self.alerts is None:  # retired meanwhile; its rows wait for it
                return PostResult(None, "the alert channel is not configured")
            return await self.alerts.send(
                kind=str(data.get("kind", "")),
                message=str(data.get("message", "")),
                intent_id=data.get("intent_id"),
                at=delivery.outbox_created_at or delivery.created_at,
            )
        if self.key is None:
            return PostResult(None, "TREASURY_WEBHOOK_KEY is not set")
        assert delivery.outbox_created_at is not None
        raw = hooks.body(
            delivery=delivery.delivery_id,
            topic=delivery.topic,
            created_at=delivery.outbox_created_at,
            data=data,
        )
        secret = hooks.derive_secret(self.key, delivery.subscription_id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "treasury-webhooks",
            "Treasury-Delivery": delivery.delivery_id,
            "Treasury-Event": delivery.topic,
            "Treasury-Signature": hooks.signature(secret, int(time.time()), raw),
        }
        return await self.poster.post(delivery.url, raw, headers)
