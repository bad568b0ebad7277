"""What the webhook runner asks of the database and of HTTP (``services.webhooks``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from treasury.domain.webhooks import Outcome

ALERTS_BUILTIN = "alerts"  # webhook_subscriptions.builtin of the configured alert channel


@dataclass(frozen=True, kw_only=True)
class Subscription:
    id: int
    url: str
    topics: tuple[str, ...]
    from_outbox_id: int
    builtin: str | None
    created_by: str
    created_at: datetime
    disabled_at: datetime | None
    disabled_by: str | None
    disabled_reason: str | None


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One (outbox row, subscription) as claimed for an attempt, or as listed."""

    id: int
    delivery_id: str
    subscription_id: int
    outbox_id: int
    status: str
    attempts: int
    last_error: str | None
    last_status_code: int | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    # the outbox row and where it goes (filled when claimed)
    topic: str = ""
    payload: str = "{}"
    outbox_created_at: datetime | None = None
    url: str = ""
    builtin: str | None = None


@dataclass(frozen=True)
class PostResult:
    status_code: int | None  # None: no answer (timeout, refused, TLS)
    error: str | None  # why not 2xx, without the URL or any secret
    retry_after_s: float = 0.0  # the receiver's Retry-After (e.g. Slack's 429), if any

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookStore(Protocol):
    async def fan_out(self, *, now: datetime, limit: int = 200) -> int:
        """Make the deliveries of outbox rows not yet fanned out; the count of rows."""
        ...

    async def claim_due(self, *, now: datetime, lease_s: float, limit: int) -> list[Delivery]:
        """Pending deliveries due by ``now``, moved ``lease_s`` ahead so that no other
        runner takes them meanwhile (PostgreSQL: ``FOR UPDATE SKIP LOCKED``)."""
        ...

    async def record(
        self, delivery: Delivery, outcome: Outcome, result: PostResult, *, now: datetime
    ) -> None: ...

    async def alert_channel(self, *, enabled: bool, now: datetime) -> int | None:
        """The alert channel's subscription (added when ``enabled``, removed otherwise)."""
        ...

    async def has_subscribers(self) -> bool:
        """Whether any enabled subscription but the alert channel's exists."""
        ...


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult: ...


class AlertChannel(Protocol):
    """The configured alert webhook (JSON, Slack or Telegram): one alert, one attempt."""

    async def send(
        self, *, kind: str, message: str, intent_id: int | None, at: datetime
    ) -> PostResult: ...
