"""The outbox and webhook tables (migration 0016): fan-out, claims, attempts, and the
subscriptions the CLI adds and removes (each change recorded in ``webhook_events``)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from treasury.adapters.db.engine import among, connection, transaction
from treasury.adapters.db.tables import (
    outbox,
    webhook_deliveries,
    webhook_events,
    webhook_subscriptions,
)
from treasury.domain import webhooks as hooks
from treasury.domain.webhooks import Outcome
from treasury.ports.clock import utcnow
from treasury.ports.store import NotFound
from treasury.ports.webhooks import ALERTS_BUILTIN, Delivery, PostResult, Subscription

OB, S, D, E = outbox, webhook_subscriptions, webhook_deliveries, webhook_events
SYSTEM_ACTOR = "treasury"
ALERT_CHANNEL_URL = "builtin:alerts"  # the real URL is a secret setting, never stored


def _subscription(r: Any) -> Subscription:
    return Subscription(
        id=r.id,
        url=r.url,
        topics=tuple(t for t in r.events.split(",") if t),
        from_outbox_id=r.from_outbox_id,
        builtin=r.builtin,
        created_by=r.created_by,
        created_at=r.created_at,
        disabled_at=r.disabled_at,
        disabled_by=r.disabled_by,
        disabled_reason=r.disabled_reason,
    )


def _delivery(r: Any, *, claimed: bool = False) -> Delivery:
    extra: dict[str, Any] = {}
    if claimed:
        extra = {
            "topic": r.topic,
            "payload": r.payload,
            "outbox_created_at": r.outbox_created_at,
            "url": r.url,
            "builtin": r.builtin,
        }
    return Delivery(
        id=r.id,
        delivery_id=r.delivery_id,
        subscription_id=r.subscription_id,
        outbox_id=r.outbox_id,
        status=r.status,
        attempts=r.attempts,
        last_error=r.last_error,
        last_status_code=r.last_status_code,
        created_at=r.created_at,
        next_attempt_at=r.next_attempt_at,
        delivered_at=r.delivered_at,
        **extra,
    )


def _insert_ignoring_duplicates(conn: AsyncConnection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(D).on_conflict_do_nothing()


async def write_alert(
    conn: AsyncConnection, *, kind: str, message: str, intent_id: int | None
) -> None:
    """An ``alert`` outbox row (the text already scrubbed by the caller)."""
    payload = json.dumps({"kind": kind, "message": message, "intent_id": intent_id})
    await conn.execute(
        insert(OB).values(topic="alert", intent_id=intent_id, payload=payload, created_at=utcnow())
    )


class SqlWebhooks:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # ---- the daemon's alerts ---------------------------------------------------------

    async def write_alert(self, kind: str, message: str, intent_id: int | None) -> None:
        async with transaction(self.engine) as conn:
            await write_alert(conn, kind=kind, message=message, intent_id=intent_id)

    # ---- the runner ------------------------------------------------------------------

    async def fan_out(self, *, now: datetime, limit: int = 200) -> int:
        async with transaction(self.engine) as conn:
            query = select(OB.c.id, OB.c.topic).where(OB.c.fanned_at.is_(None))
            query = query.order_by(OB.c.id).limit(limit)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = (await conn.execute(query)).all()
            if not rows:
                return 0
            subscribers = [
                hooks.Subscriber(
                    id=s.id, topics=tuple(s.events.split(",")), from_outbox_id=s.from_outbox_id
                )
                for s in (
                    await conn.execute(
                        select(S.c.id, S.c.events, S.c.from_outbox_id).where(
                            S.c.disabled_at.is_(None)
                        )
                    )
                ).all()
            ]
            values = [
                {
                    "delivery_id": hooks.delivery_id(row.id, sub),
                    "subscription_id": sub,
                    "outbox_id": row.id,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                }
                for row in rows
                for sub in hooks.recipients(row.id, row.topic, subscribers)
            ]
            if values:
                await conn.execute(_insert_ignoring_duplicates(conn), values)
            await conn.execute(
                update(OB).where(among(conn, OB.c.id, [r.id for r in rows])).values(fanned_at=now)
            )
        return len(rows)

    async def claim_due(self, *, now: datetime, lease_s: float, limit: int) -> list[Delivery]:
        async with transaction(self.engine) as conn:
            # a removed subscription's pending deliveries end here (the runner's to
            # write: operators may not change deliveries)
            removed = select(S.c.id).where(S.c.disabled_at.is_not(None))
            ending = select(D.c.id).where(
                and_(D.c.status == "pending", D.c.subscription_id.in_(removed))
            )
            if conn.dialect.name == "postgresql":  # rows another runner holds: its to end
                ending = ending.with_for_update(skip_locked=True)
            await conn.execute(
                update(D)
                .where(D.c.id.in_(ending.scalar_subquery()))
                .values(status="failed", last_error="subscription removed")
            )
            query = (
                select(
                    D,
                    OB.c.topic,
                    OB.c.payload,
                    OB.c.created_at.label("outbox_created_at"),
                    S.c.url,
                    S.c.builtin,
                )
                .join(OB, OB.c.id == D.c.outbox_id)
                .join(S, S.c.id == D.c.subscription_id)
                .where(
                    and_(
                        D.c.status == "pending",
                        D.c.next_attempt_at <= now,
                        S.c.disabled_at.is_(None),
                    )
                )
                .order_by(D.c.next_attempt_at, D.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(of=D, skip_locked=True)
            rows = (await conn.execute(query)).all()
            if rows:
                await conn.execute(
                    update(D)
                    .where(among(conn, D.c.id, [r.id for r in rows]))
                    .values(next_attempt_at=now + timedelta(seconds=lease_s))
                )
        return [_delivery(r, claimed=True) for r in rows]

    async def record(
        self, delivery: Delivery, outcome: Outcome, result: PostResult, *, now: datetime
    ) -> None:
        values: dict[str, Any] = {
            "status": outcome.status,
            "attempts": D.c.attempts + 1,
            "last_status_code": result.status_code,
            "last_error": None if result.ok else (result.error or "")[:500],
            "next_attempt_at": outcome.next_attempt_at or now,
        }
        if outcome.status == "delivered":
            values["delivered_at"] = now
        async with transaction(self.engine) as conn:
            await conn.execute(
                update(D).where(and_(D.c.id == delivery.id, D.c.status == "pending")).values(values)
            )

    async def alert_channel(self, *, enabled: bool, now: datetime) -> int | None:
        async with transaction(self.engine) as conn:
            current = await conn.scalar(
                select(S.c.id).where(and_(S.c.builtin == ALERTS_BUILTIN, S.c.disabled_at.is_(None)))
            )
            if enabled and current is None:
                try:
                    async with conn.begin_nested():
                        current = await self._add(
                            conn,
                            url=ALERT_CHANNEL_URL,
                            topics=("alert",),
                            actor=SYSTEM_ACTOR,
                            reason="TREASURY_ALERT_WEBHOOK_URL is set",
                            builtin=ALERTS_BUILTIN,
                        )
                except IntegrityError:  # another process added it meanwhile
                    current = None
            elif not enabled and current is not None:
                await self._remove(
                    conn, current, actor=SYSTEM_ACTOR, reason="TREASURY_ALERT_WEBHOOK_URL unset"
                )
                current = None
        return current

    async def has_subscribers(self) -> bool:
        async with connection(self.engine) as conn:
            found = await conn.scalar(
                select(S.c.id)
                .where(and_(S.c.disabled_at.is_(None), S.c.builtin.is_(None)))
                .limit(1)
            )
        return found is not None

    # ---- the CLI -------------------------------------------------------------------

    async def add(self, *, url: str, topics: tuple[str, ...], actor: str, reason: str) -> int:
        async with transaction(self.engine) as conn:
            return await self._add(conn, url=url, topics=topics, actor=actor, reason=reason)

    async def remove(self, subscription_id: int, *, actor: str, reason: str) -> None:
        """Disable a subscription; the runner ends its pending deliveries failed.

        Raises:
            NotFound: no such subscription in force (or it is the alert channel's).
        """
        async with transaction(self.engine) as conn:
            row = (await conn.execute(select(S).where(S.c.id == subscription_id))).first()
            if row is None or row.disabled_at is not None:
                raise NotFound(f"webhook subscription {subscription_id}: none in force")
            if row.builtin is not None:
                raise NotFound(
                    f"webhook subscription {subscription_id} is the alert channel's: unset "
                    "TREASURY_ALERT_WEBHOOK_URL instead"
                )
            await self._remove(conn, subscription_id, actor=actor, reason=reason)

    async def subscriptions(self, *, include_disabled: bool = False) -> list[Subscription]:
        query = select(S).order_by(S.c.id)
        if not include_disabled:
            query = query.where(S.c.disabled_at.is_(None))
        async with connection(self.engine) as conn:
            return [_subscription(r) for r in (await conn.execute(query)).all()]

    async def deliveries(
        self, *, subscription_id: int | None = None, status: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        query = select(D).order_by(D.c.id.desc()).limit(limit)
        if subscription_id is not None:
            query = query.where(D.c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(D.c.status == status)
        async with connection(self.engine) as conn:
            return [_delivery(r) for r in (await conn.execute(query)).all()]

    async def _add(
        self,
        conn: AsyncConnection,
        *,
        url: str,
        topics: tuple[str, ...],
        actor: str,
        reason: str,
        builtin: str | None = None,
    ) -> int:
        newest = await conn.scalar(select(func.coalesce(func.max(OB.c.id), 0)))
        new_id = await conn.scalar(
            insert(S)
            .values(
                url=url,
                events=",".join(topics),
                from_outbox_id=int(newest or 0),
                builtin=builtin,
                created_by=actor,
                created_at=utcnow(),
            )
            .returning(S.c.id)
        )
        assert new_id is not None
        await conn.execute(
            insert(E).values(
                subscription_id=new_id,
                kind="added",
                actor=actor,
                reason=reason,
                created_at=utcnow(),
            )
        )
        return int(new_id)

    async def _remove(
        self, conn: AsyncConnection, subscription_id: int, *, actor: str, reason: str
    ) -> None:
        now = utcnow()
        await conn.execute(
            update(S)
            .where(S.c.id == subscription_id)
            .values(disabled_at=now, disabled_by=actor, disabled_reason=reason)
        )
        await conn.execute(
            insert(E).values(
                subscription_id=subscription_id,
                kind="removed",
                actor=actor,
                reason=reason,
                created_at=now,
            )
        )
