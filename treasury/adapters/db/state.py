"""Service-wide state in the database: the kill switch and the per-account sender lease.

The pause flag lives in the database so it survives restarts and every daemon sees it.
The lease makes one process the sender for an account; it is also checked inside the
transaction that commits an intent to ``submitting`` (a fence), so a process whose
lease ran out cannot commit a send.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.tables import fleet_members, sender_leases, service_state
from treasury.ports.clock import utcnow
from treasury.ports.store import PauseState

PAUSED = "paused"
ACCOUNT_PAUSED = "paused:"  # + account: the automatic pause of one account
WATERMARK = "sweep_watermark:"  # + account: exchange ms up to which history was swept
L = sender_leases


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

    async def pause_state(self, account: str | None = None) -> PauseState:
        """The kill switch; with ``account``, what stops that account's sends (the kill
        switch first, else the account's own pause)."""
        keys = [PAUSED] if account is None else [PAUSED, ACCOUNT_PAUSED + account]
        async with connection(self.engine) as conn:
            rows = {
                r.key: r
                for r in (
                    await conn.execute(select(service_state).where(service_state.c.key.in_(keys)))
                ).all()
            }
        for key in keys:
            row = rows.get(key)
            if row is not None:
                return PauseState(
                    paused=True, reason=row.value, by=row.updated_by, at=row.updated_at
                )
        return PauseState(paused=False, reason="", by="", at=None)

    async def account_pauses(self) -> dict[str, PauseState]:
        """Every account paused on its own (not by the kill switch), by account."""
        async with connection(self.engine) as conn:
            rows = (
                await conn.execute(
                    select(service_state).where(service_state.c.key.startswith(ACCOUNT_PAUSED))
                )
            ).all()
        return {
            r.key.removeprefix(ACCOUNT_PAUSED): PauseState(
                paused=True, reason=r.value, by=r.updated_by, at=r.updated_at
            )
            for r in rows
        }

    async def pause(self, *, reason: str, by: str, account: str | None = None) -> bool:
        """Engage the kill switch (or one account's pause). False when already engaged."""
        key = PAUSED if account is None else ACCOUNT_PAUSED + account
        try:
            async with transaction(self.engine) as conn:
                await conn.execute(
                    insert(service_state).values(
                        key=key, value=reason, updated_by=by, updated_at=utcnow()
                    )
                )
        except IntegrityError:
            return False
        return True

    async def resume(self, account: str | None = None) -> bool:
        """Release the kill switch (or one account's pause). False when not engaged."""
        key = PAUSED if account is None else ACCOUNT_PAUSED + account
        async with transaction(self.engine) as conn:
            result = await conn.execute(delete(service_state).where(service_state.c.key == key))
        return bool(result.rowcount)

    # ---- sweep watermark -------------------------------------------------------------

    async def watermark(self, account: str) -> int | None:
        """Exchange time (ms) up to which ``account``'s history has been swept."""
        async with connection(self.engine) as conn:
            value = await conn.scalar(
                select(service_state.c.value).where(service_state.c.key == WATERMARK + account)
            )
        return int(value) if value is not None else None

    async def publish(self, key: str, value: str, *, by: str) -> None:
        """Write or replace ``key`` (a published value, e.g. the daemon's exchange view)."""
        await self._put(key, value, by=by)

    async def published(self, key: str) -> str | None:
        async with connection(self.engine) as conn:
            value = await conn.scalar(
                select(service_state.c.value).where(service_state.c.key == key)
            )
        return None if value is None else str(value)

    async def set_watermark(self, account: str, ms: int, *, by: str) -> None:
        await self._put(WATERMARK + account, str(ms), by=by)

    async def _put(self, key: str, value: str, *, by: str) -> None:
        async with transaction(self.engine) as conn:
            result = await conn.execute(
                update(service_state)
                .where(service_state.c.key == key)
                .values(value=value, updated_by=by, updated_at=utcnow())
            )
            if not result.rowcount:
                await conn.execute(
                    insert(service_state).values(
                        key=key, value=value, updated_by=by, updated_at=utcnow()
                    )
                )

    # ---- sender lease --------------------------------------------------------------

    async def acquire_lease(self, account: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the sender lease of ``account``; False if someone else holds it."""
        async with transaction(self.engine) as conn:
            now = await db_now(conn)
            expires = now + timedelta(seconds=ttl_s)
            result = await conn.execute(
                update(L)
                .where(
                    and_(L.c.account == account, or_(L.c.holder == holder, L.c.expires_at < now))
                )
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
        async with transaction(self.engine) as conn:
            await conn.execute(delete(L).where(and_(L.c.account == account, L.c.holder == holder)))

    @staticmethod
    async def holds_lease(conn: AsyncConnection, account: str, holder: str) -> bool:
        """Inside a transaction: is ``holder`` still the account's live sender?"""
        row = await conn.scalar(
            select(L.c.holder).where(
                and_(
                    L.c.account == account,
                    L.c.holder == holder,
                    L.c.expires_at > await db_now(conn),
                )
            )
        )
        return row is not None

    @staticmethod
    async def send_refusal(conn: AsyncConnection, account: str, holder: str) -> str | None:
        """Inside the commit transaction, in one query: why no send may be committed now
        (kill switch or the account's pause engaged, or ``holder`` no longer the account's
        live sender)."""
        paused = select(service_state.c.key).where(
            service_state.c.key.in_([PAUSED, ACCOUNT_PAUSED + account])
        )
        # the lease is judged by db_now, written into the query: PostgreSQL's now() is the
        # transaction's start, the value db_now would have fetched in a query of its own
        now = func.now() if conn.dialect.name == "postgresql" else utcnow()
        leased = select(L.c.holder).where(
            and_(L.c.account == account, L.c.holder == holder, L.c.expires_at > now)
        )
        row = (
            await conn.execute(select(paused.exists().label("p"), leased.exists().label("l")))
        ).one()
        if row.p:
            return "paused"
        if not row.l:
            return "this worker is not the account's sender"
        return None

    async def lease_holders(self) -> dict[str, str]:
        """Every account's live (unexpired) lease holder."""
        async with connection(self.engine) as conn:
            now = await db_now(conn)
            rows = (
                await conn.execute(select(L.c.account, L.c.holder).where(L.c.expires_at > now))
            ).all()
        return {r.account: r.holder for r in rows}

    # ---- fleet membership (migration 0020) -----------------------------------------

    async def heartbeat_member(self, worker: str, accounts: list[str], ttl_s: float) -> None:
        """Write or renew ``worker``'s membership for ``ttl_s`` (the database's clock),
        with the accounts it can serve; delete the rows of members long expired."""
        F = fleet_members
        async with transaction(self.engine) as conn:
            now = await db_now(conn)
            values = {
                "accounts": json.dumps(sorted(accounts)),
                "expires_at": now + timedelta(seconds=ttl_s),
            }
            result = await conn.execute(update(F).where(F.c.worker_id == worker).values(**values))
            if not result.rowcount:
                await conn.execute(insert(F).values(worker_id=worker, **values))
            await conn.execute(delete(F).where(F.c.expires_at < now - timedelta(minutes=10)))

    async def live_members(self) -> dict[str, list[str]]:
        """The live members (unexpired rows), each with the accounts it can serve."""
        F = fleet_members
        async with connection(self.engine) as conn:
            now = await db_now(conn)
            rows = (
                await conn.execute(select(F.c.worker_id, F.c.accounts).where(F.c.expires_at > now))
            ).all()
        return {r.worker_id: list(json.loads(r.accounts)) for r in rows}

    async def leave_fleet(self, worker: str) -> None:
        async with transaction(self.engine) as conn:
            await conn.execute(delete(fleet_members).where(fleet_members.c.worker_id == worker))
