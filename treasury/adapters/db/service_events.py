"""Append-only record of service-wide facts (no intent owns them)."""

from __future__ import annotations

import hashlib

from sqlalchemy import and_, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.tables import service_events
from treasury.ports.clock import utcnow
from treasury.ports.store import ServiceEvent

S = service_events


class ServiceEvents:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(self, kind: str, detail: str, *, actor: str, subject: str = "") -> None:
        async with transaction(self.engine) as conn:
            await conn.execute(
                insert(S).values(
                    kind=kind, subject=subject, detail=detail, actor=actor, created_at=utcnow()
                )
            )

    async def record_once(self, kind: str, subject: str, detail: str, *, actor: str) -> bool:
        """Record unless an event of this kind and subject exists; True if recorded.

        Two processes asking at once (two daemons' senders) record it once: on PostgreSQL
        a transaction lock on (kind, subject) makes the second wait and then see the row;
        SQLite's write transaction already serialises them."""
        async with transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(kind, subject)}
                )
            seen = await conn.scalar(
                select(S.c.id).where(and_(S.c.kind == kind, S.c.subject == subject)).limit(1)
            )
            if seen is not None:
                return False
            await conn.execute(
                insert(S).values(
                    kind=kind, subject=subject, detail=detail, actor=actor, created_at=utcnow()
                )
            )
        return True

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[ServiceEvent]:
        query = select(S).order_by(S.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(S.c.kind == kind)
        async with connection(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [
            ServiceEvent(
                id=r.id,
                kind=r.kind,
                subject=r.subject,
                detail=r.detail,
                actor=r.actor,
                created_at=r.created_at,
            )
            for r in rows
        ]


def _lock_key(kind: str, subject: str) -> int:
    """A stable signed 64-bit advisory-lock key for one (kind, subject)."""
    digest = hashlib.sha256(f"treasury:event:{kind}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
