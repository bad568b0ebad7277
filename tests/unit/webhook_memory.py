"""An in-memory ``WebhookStore`` for the runner's unit tests: the same decisions as the
SQL store (``domain.webhooks.recipients``, claims that move ``next_attempt_at``)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from treasury.domain import webhooks as hooks
from treasury.domain.webhooks import Outcome
from treasury.ports.webhooks import ALERTS_BUILTIN, Delivery, PostResult


@dataclasses.dataclass
class Row:
    id: int
    topic: str
    payload: str
    created_at: datetime
    fanned: bool = False


class MemoryStore:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.subs: dict[int, hooks.Subscriber] = {}
        self.builtin: dict[int, str] = {}
        self.urls: dict[int, str] = {}
        self.deliveries: dict[int, Delivery] = {}

    # what a writer does
    def write(self, topic: str, data: dict[str, object]) -> int:
        row = Row(len(self.rows) + 1, topic, json.dumps(data), datetime.now(UTC))
        self.rows.append(row)
        return row.id

    def subscribe(self, url: str, topics: tuple[str, ...], builtin: str | None = None) -> int:
        sid = len(self.subs) + 1
        self.subs[sid] = hooks.Subscriber(sid, topics, len(self.rows))
        self.urls[sid] = url
        if builtin:
            self.builtin[sid] = builtin
        return sid

    # the port
    async def fan_out(self, *, now: datetime, limit: int = 200) -> int:
        todo = [r for r in self.rows if not r.fanned][:limit]
        for row in todo:
            for sid in hooks.recipients(row.id, row.topic, self.subs.values()):
                new = len(self.deliveries) + 1
                self.deliveries[new] = Delivery(
                    id=new,
                    delivery_id=hooks.delivery_id(row.id, sid),
                    subscription_id=sid,
                    outbox_id=row.id,
                    status="pending",
                    attempts=0,
                    last_error=None,
                    last_status_code=None,
                    created_at=now,
                    next_attempt_at=now,
                    delivered_at=None,
                    topic=row.topic,
                    payload=row.payload,
                    outbox_created_at=row.created_at,
                    url=self.urls[sid],
                    builtin=self.builtin.get(sid),
                )
            row.fanned = True
        return len(todo)

    async def claim_due(self, *, now: datetime, lease_s: float, limit: int) -> list[Delivery]:
        due = [
            d
            for d in self.deliveries.values()
            if d.status == "pending" and d.next_attempt_at <= now
        ][:limit]
        for d in due:
            self.deliveries[d.id] = dataclasses.replace(
                d, next_attempt_at=now + timedelta(seconds=lease_s)
            )
        return due

    async def record(
        self, delivery: Delivery, outcome: Outcome, result: PostResult, *, now: datetime
    ) -> None:
        d = self.deliveries[delivery.id]
        self.deliveries[delivery.id] = dataclasses.replace(
            d,
            status=outcome.status,
            attempts=d.attempts + 1,
            last_status_code=result.status_code,
            last_error=None if result.ok else result.error,
            next_attempt_at=outcome.next_attempt_at or now,
            delivered_at=now if outcome.status == "delivered" else None,
        )

    async def alert_channel(self, *, enabled: bool, now: datetime) -> int | None:
        current = next((s for s, b in self.builtin.items() if b == ALERTS_BUILTIN), None)
        if enabled and current is None:
            return self.subscribe("builtin:alerts", ("alert",), ALERTS_BUILTIN)
        return current

    async def has_subscribers(self) -> bool:
        return any(s not in self.builtin for s in self.subs)
