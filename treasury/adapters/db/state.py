"""Service-wide state in the database: the kill switch and the per-account sender lease.

The pause flag lives in the database so it survives restarts and every daemon sees it.
The lease makes one process the sender for an account; it is also checked inside the
transaction that commits an intent to ``submitting`` (a fence), so a process whose
lease ran out cannot commit a send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from treasury.adapters.db.repository import utcnow
from treasury.adapters.db.tables import sender_leases, service_state

PAUSED = "paused"
L = sender_leases


@dataclass(frozen=True, kw_only=True)
class PauseState:
    paused: bool
    reason: str
    by: str
    at: datetime | None


async def db_now(conn: AsyncConnection) -> datetime:
    """The time by which leases are judged: the database's clock on PostgreSQL (one clock
    for every host), this host's on SQLite (one host by construction)."""
    if conn.dialect.name == "postgresql":
        value = await conn.scalar(select(func.now()))
        assert isinstance(value, datetime)
        return value
    return utcnow()


class ServiceState:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def pause_state(self, conn: AsyncConnection | None = None) -> PauseState:
        query = select(service_state).where(service_state.c.key == PAUSED)
        if conn is not None:
            row = (await conn.execute(query)).first()
        else:
            async with self.engine.connect() as c:
                row = (await c.execute(query)).first()
        if row is None:
            return PauseState(paused=False, reason="", by="", at=None)
        return PauseState(paused=True, reason=row.value, by=row.updated_by, at=row.updated_at)

    async def pause(self, *, reason: str, by: str) -> bool:
        """Engage the kill switch. Returns False when it was already engaged."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(service_state).values(
                        key=PAUSED, value=reason, updated_by=by, updated_at=utcnow()
                    )
                )
        except IntegrityError:
            return False
        return True

    async def resume(self) -> bool:
        """Release the kill switch. Returns False when it was not engaged."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(service_state).where(service_state.c.key == PAUSED))
        return bool(result.rowcount)

    # ---- sender lease --------------------------------------------------------------

    async def acquire_lease(self, account: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the sender lease of ``account``; False if someone else holds it."""
        async with self.engine.begin() as conn:
            now = await db_now(conn)
            expires = now + timedelta(seconds=ttl_s)
            result = await conn.execute(
                update(L)
                .where(and_(L.c.account == account,
                            or_(L.c.holder == holder, L.c.expires_at < now)))
                .values(holder=holder, expires_at=expires)
            )
            if result.rowcount:
                return True
            exists = await conn.scalar(select(L.c.holder).where(L.c.account == account))
            if exists is not None:
                return False
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(L).values(account=account, holder=holder, expires_at=expires)
                    )
            except IntegrityError:
                return False
            return True

    async def release_lease(self, account: str, holder: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(L).where(and_(L.c.account == account, L.c.holder == holder))
            )

    @staticmethod
    async def holds_lease(conn: AsyncConnection, account: str, holder: str) -> bool:
        """Inside a transaction: is ``holder`` still the account's live sender?"""
        row = await conn.scalar(
            select(L.c.holder).where(
                and_(L.c.account == account, L.c.holder == holder,
                     L.c.expires_at > await db_now(conn))
            )
        )
        return row is not None

    @staticmethod
    async def send_refusal(conn: AsyncConnection, account: str, holder: str) -> str | None:
        """Inside the commit transaction, in one query: why no send may be committed now
        (kill switch engaged, or ``holder`` no longer the account's live sender)."""
        paused = select(service_state.c.key).where(service_state.c.key == PAUSED)
        leased = select(L.c.holder).where(
            and_(L.c.account == account, L.c.holder == holder,
                 L.c.expires_at > await db_now(conn))
        )
        row = (
            await conn.execute(select(paused.exists().label("p"), leased.exists().label("l")))
        ).one()
        if row.p:
            return "paused"
        if not row.l:
            return "this worker is not the account's sender"
        return None
