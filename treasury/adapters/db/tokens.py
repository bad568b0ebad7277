"""The HTTP API's clients (``api_tokens``): create, list, revoke, and find by token.

A new token is made here (``secrets``) and returned once; the row keeps its sha256.
Creation and revocation write their ``service_events`` row in the same transaction.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.tables import api_tokens, service_events
from treasury.domain.api_token import PREFIX, AlreadyRevoked, ApiClient, token_hash
from treasury.ports.clock import utcnow
from treasury.ports.store import DuplicateEntry, NotFound

T = api_tokens


def _client(row: Any) -> ApiClient:
    return ApiClient(
        name=row.name,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        accounts=None if row.accounts is None else frozenset(row.accounts.split(",")),
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_by=row.revoked_by,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )


class TokenStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        name: str,
        *,
        scopes: frozenset[str],
        accounts: frozenset[str] | None,
        actor: str,
        reason: str,
    ) -> tuple[str, ApiClient]:
        """A new client and its token (shown once, never stored). ``DuplicateEntry`` if
        the name was ever used (a revoked name is not reused)."""
        token = PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        shown_scopes = ",".join(sorted(scopes))
        shown_accounts = None if accounts is None else ",".join(sorted(accounts))
        try:
            async with transaction(self.engine) as conn:
                await conn.execute(
                    insert(T).values(
                        name=name,
                        token_sha256=token_hash(token),
                        scopes=shown_scopes,
                        accounts=shown_accounts,
                        created_by=actor,
                        created_at=now,
                    )
                )
                await conn.execute(
                    insert(service_events).values(
                        kind="api_token_created",
                        subject=name,
                        detail=f"scopes {shown_scopes}; accounts {shown_accounts or 'all'}; "
                        f"{reason}",
                        actor=actor,
                        created_at=now,
                    )
                )
        except IntegrityError:
            raise DuplicateEntry(
                f"an API client named {name!r} exists already (names are never reused)"
            ) from None
        return token, await self.get(name)

    async def get(self, name: str) -> ApiClient:
        async with connection(self.engine) as conn:
            row = (await conn.execute(select(T).where(T.c.name == name))).first()
        if row is None:
            raise NotFound(f"API client {name!r}")
        return _client(row)

    async def all(self) -> list[ApiClient]:
        async with connection(self.engine) as conn:
            rows = (await conn.execute(select(T).order_by(T.c.name))).all()
        return [_client(r) for r in rows]

    async def by_token(self, token: str) -> ApiClient | None:
        """The client holding ``token``, revoked or not (None: no such token)."""
        async with connection(self.engine) as conn:
            row = (
                await conn.execute(select(T).where(T.c.token_sha256 == token_hash(token)))
            ).first()
        return None if row is None else _client(row)

    async def revoke(self, name: str, *, actor: str, reason: str) -> ApiClient:
        """``NotFound`` if there is no such client, ``AlreadyRevoked`` if it is revoked."""
        now = utcnow()
        async with transaction(self.engine) as conn:
            result = await conn.execute(
                update(T)
                .where(T.c.name == name, T.c.revoked_at.is_(None))
                .values(revoked_by=actor, revoked_at=now, revoked_reason=reason)
            )
            if not result.rowcount:
                row = (await conn.execute(select(T).where(T.c.name == name))).first()
                if row is None:
                    raise NotFound(f"API client {name!r}")
                raise AlreadyRevoked(
                    f"API client {name!r} was revoked already "
                    f"({row.revoked_at:%Y-%m-%d %H:%M} UTC by {row.revoked_by})"
                )
            await conn.execute(
                insert(service_events).values(
                    kind="api_token_revoked",
                    subject=name,
                    detail=reason,
                    actor=actor,
                    created_at=now,
                )
            )
        return await self.get(name)
