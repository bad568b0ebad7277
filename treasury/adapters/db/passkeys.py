"""Operators' passkeys and the invites to register them (``operator_passkeys``,
``operator_invites``, migration 0018)."""

from __future__ import annotations

import base64
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.tables import operator_invites as I
from treasury.adapters.db.tables import operator_passkeys as P
from treasury.adapters.db.tables import operators as O
from treasury.domain.webauthn import Credential, b64url
from treasury.ports.clock import utcnow
from treasury.ports.store import (
    DuplicateEntry,
    Invite,
    InviteUnusable,
    NotFound,
    Passkey,
)


def _passkey(row: object) -> Passkey:
    m = row._mapping  # type: ignore[attr-defined]
    return Passkey(
        id=m["id"],
        operator=m["operator"],
        credential_id=m["credential_id"],
        public_key=m["public_key"],
        alg=m["alg"],
        sign_count=m["sign_count"],
        rp_id=m["rp_id"],
        origin=m["origin"],
        created_at=m["created_at"],
        removed_by=m["removed_by"],
        removed_at=m["removed_at"],
        removed_reason=m["removed_reason"],
    )


def _invite(row: object) -> Invite:
    m = row._mapping  # type: ignore[attr-defined]
    return Invite(
        id=m["id"],
        operator=m["operator"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        used_at=m["used_at"],
    )


class PasskeyRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def invite(
        self, operator: str, token_sha256: str, *, created_by: str, expires_at: datetime
    ) -> Invite:
        async with transaction(self.engine) as conn:
            current = (
                await conn.execute(
                    select(O.c.name).where(O.c.name == operator, O.c.removed_at.is_(None))
                )
            ).first()
            if current is None:
                raise NotFound(f"operator {operator!r} (not registered, or removed)")
            new_id = (
                await conn.execute(
                    insert(I)
                    .values(
                        operator=operator,
                        token_sha256=token_sha256,
                        created_by=created_by,
                        created_at=utcnow(),
                        expires_at=expires_at,
                    )
                    .returning(I.c.id)
                )
            ).scalar_one()
            row = (await conn.execute(select(I).where(I.c.id == new_id))).one()
        return _invite(row)

    async def invite_for(self, token_sha256: str) -> Invite | None:
        async with connection(self.engine) as conn:
            row = (await conn.execute(select(I).where(I.c.token_sha256 == token_sha256))).first()
        return None if row is None else _invite(row)

    async def register(
        self, token_sha256: str, credential: Credential, *, now: datetime
    ) -> Passkey:
        try:
            async with transaction(self.engine) as conn:
                row = (
                    await conn.execute(
                        select(I, O.c.removed_at.label("operator_removed_at"))
                        .join(O, O.c.name == I.c.operator)
                        .where(I.c.token_sha256 == token_sha256)
                        .with_for_update(of=I)
                    )
                ).first()
                if row is None:
                    raise InviteUnusable("no such invite")
                if row.used_at is not None:
                    raise InviteUnusable("the invite was used already (an invite is single use)")
                if row.expires_at <= now:
                    raise InviteUnusable("the invite expired: ask an admin for a new one")
                if row.operator_removed_at is not None:
                    raise InviteUnusable(f"operator {row.operator!r} was removed")
                new_id = (
                    await conn.execute(
                        insert(P)
                        .values(
                            operator=row.operator,
                            credential_id=b64url(credential.credential_id),
                            public_key=base64.b64encode(credential.public_key).decode(),
                            alg=credential.alg,
                            sign_count=credential.sign_count,
                            rp_id=credential.rp_id,
                            origin=credential.origin,
                            invite_id=row.id,
                            created_at=now,
                        )
                        .returning(P.c.id)
                    )
                ).scalar_one()
                await conn.execute(update(I).where(I.c.id == row.id).values(used_at=now))
                out = (await conn.execute(select(P).where(P.c.id == new_id))).one()
        except IntegrityError:
            raise DuplicateEntry("that passkey is registered already") from None
        return _passkey(out)

    async def all(self, operator: str | None = None) -> list[Passkey]:
        query = select(P).order_by(P.c.id)
        if operator is not None:
            query = query.where(P.c.operator == operator)
        async with connection(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [_passkey(r) for r in rows]

    async def remove(self, passkey_id: int, *, actor: str, reason: str) -> Passkey:
        async with transaction(self.engine) as conn:
            result = await conn.execute(
                update(P)
                .where(P.c.id == passkey_id, P.c.removed_at.is_(None))
                .values(removed_by=actor, removed_at=utcnow(), removed_reason=reason)
            )
            if not result.rowcount:
                raise NotFound(f"passkey {passkey_id} (no such passkey, or removed already)")
            row = (await conn.execute(select(P).where(P.c.id == passkey_id))).one()
        return _passkey(row)

    @staticmethod
    async def current(conn: AsyncConnection) -> dict[str, tuple[Credential, ...]]:
        """Inside a transaction: each current operator's current passkeys."""
        rows = (
            await conn.execute(
                select(P)
                .join(O, O.c.name == P.c.operator)
                .where(P.c.removed_at.is_(None), O.c.removed_at.is_(None))
                .order_by(P.c.id)
            )
        ).all()
        out: dict[str, tuple[Credential, ...]] = {}
        for r in rows:
            p = _passkey(r)
            out[p.operator] = (*out.get(p.operator, ()), p.credential())
        return out

    @staticmethod
    async def advance(conn: AsyncConnection, credential_id: bytes, sign_count: int) -> bool:
        """Inside a transaction: raise the passkey's sign count (see the port)."""
        cid = b64url(credential_id)
        if sign_count == 0:
            stored = (
                await conn.execute(select(P.c.sign_count).where(P.c.credential_id == cid))
            ).scalar()
            return stored == 0
        result = await conn.execute(
            update(P)
            .where(
                P.c.credential_id == cid,
                P.c.removed_at.is_(None),
                P.c.sign_count < sign_count,
            )
            .values(sign_count=sign_count)
        )
        return bool(result.rowcount)
