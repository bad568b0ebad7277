"""The unit of work around one intent, over SQL: one transaction, the intent's row locked.

On PostgreSQL the row is locked ``FOR UPDATE`` and, when asked, commits of the account
are serialised across processes by a transaction-scoped advisory lock taken first (the
policy's rolling caps are summed inside the unit). SQLite's ``BEGIN IMMEDIATE`` already
serialises every writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from treasury.adapters.db.engine import transaction
from treasury.adapters.db.operators import OperatorRepository
from treasury.adapters.db.passkeys import PasskeyRepository
from treasury.adapters.db.repository import IntentRepository
from treasury.adapters.db.sending import account_lock_key, usage_24h
from treasury.adapters.db.state import ServiceState
from treasury.adapters.db.tables import (
    intent_approvals,
    whitelist_approvals,
    whitelist_entries,
    whitelist_events,
)
from treasury.adapters.db.unmatched import UnmatchedWithdrawals
from treasury.adapters.db.whitelist import entry_of
from treasury.domain.approval_proof import Approval
from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.domain.webauthn import Credential
from treasury.ports.clock import utcnow
from treasury.ports.store import WhitelistEntry

A = intent_approvals
W = whitelist_entries
WA = whitelist_approvals
WE = whitelist_events


class SqlIntentUnit:
    def __init__(self, conn: AsyncConnection, repo: IntentRepository, intent: Intent) -> None:
        self._conn = conn
        self._repo = repo
        self._intent = intent
        # read at most once per unit (one transaction): the address book's verdict and
        # the policy's approvals both count signatures against them
        self._keys: tuple[dict[str, bytes] | None] | None = None
        self._passkeys: dict[str, tuple[Credential, ...]] | None = None

    @property
    def intent(self) -> Intent:
        return self._intent

    async def send_refusal(self, worker: str) -> str | None:
        return await ServiceState.send_refusal(self._conn, self._intent.account, worker)

    async def address_book_entry(self) -> WhitelistEntry | None:
        i = self._intent
        row = (
            await self._conn.execute(
                select(W).where(
                    and_(
                        W.c.account == i.account,
                        W.c.coin == i.coin,
                        W.c.network == i.network,
                        W.c.address == i.address,
                        W.c.tag_key == (i.address_tag or ""),
                    )
                )
            )
        ).first()
        return None if row is None else entry_of(row)

    async def usage_24h(self, now: datetime) -> tuple[Decimal, Decimal]:
        return await usage_24h(self._conn, self._intent, now)

    async def approvers(self) -> tuple[str, ...]:
        rows = await self._conn.execute(
            select(A.c.approver).where(A.c.intent_id == self._intent.id).order_by(A.c.id)
        )
        return tuple(rows.scalars())

    async def approvals(self) -> tuple[Approval, ...]:
        rows = await self._conn.execute(
            select(A.c.approver, A.c.signature, A.c.created_at)
            .where(A.c.intent_id == self._intent.id)
            .order_by(A.c.id)
        )
        return tuple(Approval(r.approver, r.signature, r.created_at) for r in rows)

    async def operator_keys(self) -> dict[str, bytes] | None:
        if self._keys is None:
            self._keys = (await OperatorRepository.keys(self._conn),)
        return self._keys[0]

    async def passkeys(self) -> dict[str, tuple[Credential, ...]]:
        if self._passkeys is None:
            self._passkeys = await PasskeyRepository.current(self._conn)
        return self._passkeys

    async def advance_sign_count(self, credential_id: bytes, sign_count: int) -> bool:
        self._passkeys = None  # a later read sees the new count
        return await PasskeyRepository.advance(self._conn, credential_id, sign_count)

    async def add_approval(
        self, approver: str, signature: str | None = None, *, at: datetime | None = None
    ) -> bool:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(A).values(
                        intent_id=self._intent.id,
                        approver=approver,
                        created_at=at or utcnow(),
                        signature=signature,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def entry_approvals(self, entry: WhitelistEntry) -> tuple[Approval, ...]:
        rows = await self._conn.execute(
            select(WA.c.approver, WA.c.signature, WA.c.created_at)
            .where(WA.c.entry_id == entry.id, WA.c.entry_version == entry.version)
            .order_by(WA.c.id)
        )
        return tuple(Approval(r.approver, r.signature, r.created_at) for r in rows)

    async def entry_added_by(self, entry_id: int) -> str | None:
        return (
            await self._conn.execute(
                select(WE.c.actor)
                .where(WE.c.entry_id == entry_id, WE.c.kind == "add")
                .order_by(WE.c.id)
                .limit(1)
            )
        ).scalar()

    async def burned_order_ids(self) -> set[str]:
        return await UnmatchedWithdrawals.burned_in(self._conn, self._intent.id)

    async def note(self, *, reason: str, actor: str, kind: str) -> None:
        await self._repo.record_note(
            self._intent.id, reason=reason, actor=actor, kind=kind, conn=self._conn
        )

    async def transition(
        self, to: Status, *, reason: str, actor: str, fields: Mapping[str, Any] | None = None
    ) -> Intent:
        self._intent = await self._repo.transition(
            self._intent.id,
            to,
            reason=reason,
            actor=actor,
            fields=fields,
            conn=self._conn,
            locked=self._intent,
        )
        return self._intent


class SqlUnits:
    def __init__(self, repo: IntentRepository) -> None:
        self._repo = repo

    @asynccontextmanager
    async def open(
        self, intent_id: int, *, serialize_account: str | None = None
    ) -> AsyncIterator[SqlIntentUnit]:
        async with transaction(self._repo.engine) as conn:
            if serialize_account is not None and self._repo.is_postgres:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:k)"),
                    {"k": account_lock_key(serialize_account)},
                )
            intent = await self._repo.lock(conn, intent_id)
            yield SqlIntentUnit(conn, self._repo, intent)
