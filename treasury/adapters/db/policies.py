"""The policy's versions (table ``policy_versions``) and their audit events.

Every write takes the table's write lock first (SQLite: ``BEGIN IMMEDIATE`` already does;
PostgreSQL: ``LOCK TABLE``), so an apply and an approval at once are one after the other:
the approval of a version that a newer apply made lapse cannot slip in between.
"""

from __future__ import annotations

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.tables import policy_versions as P
from treasury.adapters.db.tables import service_events
from treasury.ports.clock import utcnow
from treasury.ports.store import ConcurrentChange, NotFound, PolicyVersion, policy_status

_CURRENT = select(func.max(P.c.version)).where(P.c.activated_at.is_not(None))
_LATEST = select(func.max(P.c.version))


class PolicyRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def current_version(self) -> int | None:
        async with connection(self.engine) as conn:
            version: int | None = await conn.scalar(_CURRENT)
        return version

    async def current(self) -> PolicyVersion | None:
        async with connection(self.engine) as conn:
            version = await conn.scalar(_CURRENT)
            if version is None:
                return None
            return await self._get(conn, version)

    async def get(self, version: int) -> PolicyVersion:
        async with connection(self.engine) as conn:
            return await self._get(conn, version)

    async def history(self, limit: int = 100) -> list[PolicyVersion]:
        async with connection(self.engine) as conn:
            current, latest = await conn.scalar(_CURRENT), await conn.scalar(_LATEST)
            rows = (await conn.execute(select(P).order_by(P.c.version.desc()).limit(limit))).all()
        return [_version(r, current, latest or 0) for r in rows]

    async def add(
        self,
        document: str,
        *,
        sha256: str,
        changes_need_approval: bool,
        applied_by: str,
        reason: str,
        activate: bool,
        after: int | None,
        audit: str,
    ) -> PolicyVersion:
        try:
            async with transaction(self.engine) as conn:
                await _lock(conn)
                latest = await conn.scalar(_LATEST)
                if latest != after:
                    raise ConcurrentChange(
                        f"the policy changed meanwhile (now at version {latest}); look again"
                    )
                version = (latest or 0) + 1
                # created_at: the database's default, its clock
                await conn.execute(
                    insert(P).values(
                        version=version,
                        document=document,
                        sha256=sha256,
                        changes_need_approval=changes_need_approval,
                        applied_by=applied_by,
                        reason=reason,
                        activated_at=utcnow() if activate else None,
                    )
                )
                await _audit(conn, "policy_applied", version, audit, applied_by)
                return await self._get(conn, version)
        except IntegrityError:  # another process took that version number first
            raise ConcurrentChange("the policy changed meanwhile; look again") from None

    async def activate(
        self, version: int, *, approved_by: str, audit: str, signature: str | None = None
    ) -> PolicyVersion:
        async with transaction(self.engine) as conn:
            await _lock(conn)
            if version != await conn.scalar(_LATEST):
                raise ConcurrentChange(f"policy version {version} is not the newest version")
            result = await conn.execute(
                update(P)
                .where(P.c.version == version, P.c.activated_at.is_(None))
                .values(
                    approved_by=approved_by, approval_signature=signature, activated_at=utcnow()
                )
            )
            if not result.rowcount:
                raise ConcurrentChange(f"policy version {version} is not pending")
            await _audit(conn, "policy_approved", version, audit, approved_by)
            return await self._get(conn, version)

    @staticmethod
    async def _get(conn: AsyncConnection, version: int) -> PolicyVersion:
        row = (await conn.execute(select(P).where(P.c.version == version))).one_or_none()
        if row is None:
            raise NotFound(f"policy version {version}")
        current, latest = await conn.scalar(_CURRENT), await conn.scalar(_LATEST)
        return _version(row, current, latest or 0)


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("LOCK TABLE policy_versions IN SHARE ROW EXCLUSIVE MODE"))


async def _audit(conn: AsyncConnection, kind: str, version: int, detail: str, actor: str) -> None:
    await conn.execute(
        insert(service_events).values(
            kind=kind, subject=f"v{version}", detail=detail, actor=actor, created_at=utcnow()
        )
    )


def _version(row: object, current: int | None, latest: int) -> PolicyVersion:
    m = row._mapping  # type: ignore[attr-defined]
    activated = m["activated_at"] is not None
    return PolicyVersion(
        version=m["version"],
        document=m["document"],
        sha256=m["sha256"],
        applied_by=m["applied_by"],
        reason=m["reason"],
        created_at=m["created_at"],
        changes_need_approval=bool(m["changes_need_approval"]),
        approved_by=m["approved_by"],
        approval_signature=m["approval_signature"],
        activated_at=m["activated_at"],
        status=policy_status(m["version"], activated, current=current, latest=latest),
    )
