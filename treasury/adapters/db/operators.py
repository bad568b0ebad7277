"""The operators who may approve, and their public keys (table ``operators``)."""

from __future__ import annotations

import base64

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.tables import operators as O
from treasury.ports.clock import utcnow
from treasury.ports.store import DuplicateEntry, NotFound, Operator


def _operator(row: object) -> Operator:
    m = row._mapping  # type: ignore[attr-defined]
    return Operator(
        name=m["name"],
        public_key=m["public_key"],
        added_by=m["added_by"],
        added_at=m["added_at"],
        removed_by=m["removed_by"],
        removed_at=m["removed_at"],
        removed_reason=m["removed_reason"],
    )


class OperatorRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, name: str, public_key: str, *, actor: str) -> Operator:
        try:
            async with transaction(self.engine) as conn:
                await conn.execute(
                    insert(O).values(
                        name=name, public_key=public_key, added_by=actor, added_at=utcnow()
                    )
                )
                row = (await conn.execute(select(O).where(O.c.name == name))).one()
        except IntegrityError:
            raise DuplicateEntry(
                f"operator {name!r} or that public key is registered already (names and "
                "keys are never reused, even after a removal)"
            ) from None
        return _operator(row)

    async def remove(self, name: str, *, actor: str, reason: str) -> Operator:
        async with transaction(self.engine) as conn:
            result = await conn.execute(
                update(O)
                .where(O.c.name == name, O.c.removed_at.is_(None))
                .values(removed_by=actor, removed_at=utcnow(), removed_reason=reason)
            )
            if not result.rowcount:
                raise NotFound(f"operator {name!r} (not registered, or removed already)")
            row = (await conn.execute(select(O).where(O.c.name == name))).one()
        return _operator(row)

    async def all(self) -> list[Operator]:
        async with connection(self.engine) as conn:
            rows = (await conn.execute(select(O).order_by(O.c.added_at, O.c.name))).all()
        return [_operator(r) for r in rows]

    @staticmethod
    async def keys(conn: AsyncConnection) -> dict[str, bytes] | None:
        """Inside a transaction: each current operator's raw key; None if none ever was."""
        rows = (await conn.execute(select(O.c.name, O.c.public_key, O.c.removed_at))).all()
        if not rows:
            return None
        return {r.name: base64.b64decode(r.public_key) for r in rows if r.removed_at is None}
