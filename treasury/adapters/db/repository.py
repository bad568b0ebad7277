"""The intent ledger: every read and write of intents and their events.

Each public method is one transaction. A status change is a compare-and-set on the
row's ``version`` plus the audit event, committed together; a concurrent change
makes it fail (``ConcurrentChange``) instead of silently overwriting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from treasury.adapters.db.engine import among, connection, transaction
from treasury.adapters.db.tables import intent_events, service_state, withdrawal_intents
from treasury.domain import machine
from treasury.domain.intent import EventRecord, Intent
from treasury.domain.status import Status
from treasury.domain.validation import NewIntent
from treasury.domain.wallet import Wallet
from treasury.ports.clock import utcnow
from treasury.ports.store import (
    Change,
    ConcurrentChange,
    IdempotencyConflict,
    NotFound,
    StoreUnavailable,
    new_intent_row,
    same_request,
)

T = withdrawal_intents
E = intent_events
__all__ = [
    "ConcurrentChange",
    "IdempotencyConflict",
    "IntentRepository",
    "NotFound",
    "to_intent",
    "utcnow",
]


def to_intent(row: Row[Any] | Mapping[str, Any]) -> Intent:
    m = row._mapping if isinstance(row, Row) else row
    return Intent(
        id=m["id"],
        coin=m["coin"],
        network=m["network"],
        address=m["address"],
        address_tag=m["address_tag"],
        amount=m["amount"],
        account=m["account"],
        request_id=m["request_id"],
        requested_by=m["requested_by"],
        note=m["note"],
        status=Status(m["status"]),
        status_reason=m["status_reason"],
        withdraw_order_id=m["withdraw_order_id"],
        exchange_withdraw_id=m["exchange_withdraw_id"],
        tx_id=m["tx_id"],
        fee=m["fee"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
        not_before=m["not_before"],
        held_since=m["held_since"],
        send_timestamp_ms=m["send_timestamp_ms"],
        send_recv_window_ms=m["send_recv_window_ms"],
        send_count=m["send_count"],
        absent_checks=m["absent_checks"],
        last_checked_at=m["last_checked_at"],
        submitted_at=m["submitted_at"],
        settled_at=m["settled_at"],
        exchange_amount=m["exchange_amount"],
        wallet=None if m["wallet"] is None else Wallet(m["wallet"]),
        questionnaire=m["questionnaire"],
        exchange_tr_id=m["exchange_tr_id"],
    )


class IntentRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._namespace: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # ---- reads -------------------------------------------------------------------

    async def namespace(self) -> str:
        if self._namespace is None:
            async with connection(self.engine) as conn:
                value = await conn.scalar(
                    select(service_state.c.value).where(service_state.c.key == "namespace")
                )
            if value is None:
                raise RuntimeError("the ledger has no namespace: run `treasury migrate`")
            self._namespace = str(value)
        return self._namespace

    async def get(self, intent_id: int) -> Intent:
        async with connection(self.engine) as conn:
            row = (await conn.execute(select(T).where(T.c.id == intent_id))).first()
        if row is None:
            raise NotFound(f"intent {intent_id}")
        return to_intent(row)

    async def get_by_request_id(self, request_id: str) -> Intent:
        async with connection(self.engine) as conn:
            row = (await conn.execute(select(T).where(T.c.request_id == request_id))).first()
        if row is None:
            raise NotFound(f"intent with request_id {request_id!r}")
        return to_intent(row)

    async def get_by_order_ids(self, order_ids: Sequence[str]) -> dict[str, Intent]:
        if not order_ids:
            return {}
        async with connection(self.engine) as conn:
            query = select(T).where(among(conn, T.c.withdraw_order_id, order_ids))
            rows = (await conn.execute(query)).all()
        return {r.withdraw_order_id: to_intent(r) for r in rows}

    async def get_many(self, intent_ids: Sequence[int]) -> dict[int, Intent]:
        if not intent_ids:
            return {}
        async with connection(self.engine) as conn:
            rows = (await conn.execute(select(T).where(among(conn, T.c.id, intent_ids)))).all()
        return {r.id: to_intent(r) for r in rows}

    async def earliest_created_ms(self, account: str) -> int | None:
        """When the account's oldest intent was created (epoch ms), or None."""
        async with connection(self.engine) as conn:
            value = await conn.scalar(
                select(func.min(T.c.created_at)).where(T.c.account == account)
            )
        return int(value.timestamp() * 1000) if value is not None else None

    async def search(
        self,
        *,
        statuses: Sequence[Status] = (),
        coin: str | None = None,
        account: str | None = None,
        limit: int = 50,
        requested_by: str | None = None,
        accounts: Sequence[str] | None = None,
        before_id: int | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[Intent]:
        query = select(T).order_by(T.c.id.desc()).limit(limit)
        if statuses:
            query = query.where(T.c.status.in_([s.value for s in statuses]))
        if coin:
            query = query.where(T.c.coin == coin)
        if account:
            query = query.where(T.c.account == account)
        if requested_by is not None:
            query = query.where(T.c.requested_by == requested_by)
        if accounts is not None:
            query = query.where(T.c.account.in_(list(accounts)))
        if before_id is not None:
            query = query.where(T.c.id < before_id)
        if created_after is not None:
            query = query.where(T.c.created_at >= created_after)
        if created_before is not None:
            query = query.where(T.c.created_at < created_before)
        async with connection(self.engine) as conn:
            return [to_intent(r) for r in (await conn.execute(query)).all()]

    async def count_by_status(self) -> dict[str, int]:
        async with connection(self.engine) as conn:
            rows = (await conn.execute(select(T.c.status, func.count()).group_by(T.c.status))).all()
        return {r[0]: int(r[1]) for r in rows}

    async def events(self, intent_id: int) -> list[EventRecord]:
        async with connection(self.engine) as conn:
            rows = (
                await conn.execute(select(E).where(E.c.intent_id == intent_id).order_by(E.c.id))
            ).all()
        return [
            EventRecord(
                id=r.id,
                intent_id=r.intent_id,
                from_status=r.from_status,
                to_status=r.to_status,
                reason=r.reason,
                actor=r.actor,
                kind=r.kind,
                created_at=r.created_at,
            )
            for r in rows
        ]

    # ---- writes ------------------------------------------------------------------

    async def enqueue(self, new: NewIntent, *, actor: str) -> tuple[Intent, bool]:
        """Store a new intent; with a known request_id, return the existing one instead.

        Returns:
            The intent and whether it was created by this call.

        Raises:
            IdempotencyConflict: the request_id exists with different contents.
        """
        if new.request_id is not None:
            try:
                existing = await self.get_by_request_id(new.request_id)
            except NotFound:
                pass
            else:
                return same_request(existing, new), False
        now = utcnow()
        values = new_intent_row(new, actor=actor, now=now)
        try:
            async with transaction(self.engine) as conn:
                result = await conn.execute(insert(T).values(**values).returning(T))
                row = result.one()
        except IntegrityError:
            if new.request_id is None:
                raise
            # A concurrent enqueue with the same request_id won the race.
            existing = await self.get_by_request_id(new.request_id)
            return same_request(existing, new), False
        return to_intent(row), True

    async def transition(
        self,
        intent_id: int,
        to: Status,
        *,
        reason: str,
        actor: str,
        expect: Sequence[Status] | None = None,
        expect_version: int | None = None,
        fields: Mapping[str, Any] | None = None,
        conn: AsyncConnection | None = None,
        locked: Intent | None = None,
    ) -> Intent:
        """Move an intent to ``to`` and append its event, atomically.

        Args:
            conn: run inside this transaction instead of a new one.
            locked: the row as already read and locked in ``conn`` (saves a query).

        Raises:
            NotFound, IllegalTransition, ConcurrentChange: nothing was written.
        """
        if conn is not None:
            return await self._transition(
                conn, intent_id, to, reason, actor, expect, expect_version, fields, locked
            )
        try:
            async with transaction(self.engine) as c:
                return await self._transition(
                    c, intent_id, to, reason, actor, expect, expect_version, fields, None
                )
        except (OperationalError, InterfaceError, OSError) as exc:
            # PEP 249's errors of the database's operation, not of the statement: a lost
            # connection, a restart, a lock timeout. The write may be tried again.
            raise StoreUnavailable(
                f"intent {intent_id}: the database did not answer ({type(exc).__name__})"
            ) from exc

    async def transition_many(self, changes: Sequence[Change]) -> list[Intent | ConcurrentChange]:
        """Several status changes in one transaction (one commit): one that meets a
        concurrent change is skipped and reported, the others land. A change that names
        its one expected status and version writes nothing when it misses (see
        ``_transition_unread``); any other takes a savepoint."""
        results: list[Intent | ConcurrentChange] = []
        async with transaction(self.engine) as conn:
            for c in changes:
                unread = (
                    c.expect_version is not None and c.expect is not None and len(c.expect) == 1
                )
                # a miss of an unread change writes nothing: no savepoint to roll back
                scope = contextlib.nullcontext() if unread else conn.begin_nested()
                try:
                    async with scope:
                        results.append(
                            await self._transition(
                                conn,
                                c.intent_id,
                                c.to,
                                c.reason,
                                c.actor,
                                c.expect,
                                c.expect_version,
                                c.fields,
                                None,
                            )
                        )
                except ConcurrentChange as exc:
                    results.append(exc)
        return results

    async def _transition(
        self,
        conn: AsyncConnection,
        intent_id: int,
        to: Status,
        reason: str,
        actor: str,
        expect: Sequence[Status] | None,
        expect_version: int | None,
        fields: Mapping[str, Any] | None,
        locked: Intent | None,
    ) -> Intent:
        if (
            locked is None
            and expect_version is not None
            and expect is not None
            and len(expect) == 1
        ):
            return await self._transition_unread(
                conn, intent_id, to, reason, actor, expect[0], expect_version, fields
            )
        current = locked if locked is not None else await self.lock(conn, intent_id)
        if expect is not None and current.status not in expect:
            raise ConcurrentChange(
                f"intent {intent_id} is {current.status.value}, expected "
                + " or ".join(s.value for s in expect)
            )
        if expect_version is not None and current.version != expect_version:
            raise ConcurrentChange(f"intent {intent_id} changed meanwhile")
        event = machine.transition(intent_id, current.status, to, reason=reason, actor=actor)
        now = utcnow()
        values: dict[str, Any] = {
            "status": to.value,
            "status_reason": reason,
            "version": current.version + 1,
            "updated_at": now,
            "claimed_by": None,
            "claimed_until": None,
        }
        if to.terminal:
            values["settled_at"] = now
        values.update(fields or {})
        # The event first: the database refuses a status change whose event is not
        # already written (migration 0010). Were the UPDATE to miss, the exception rolls
        # the event back with the transaction (or the caller's savepoint).
        await self._insert_event(conn, event, now, intent_version=current.version + 1)
        result = await conn.execute(
            update(T)
            .where(and_(T.c.id == intent_id, T.c.version == current.version))
            .values(**values)
            .returning(T)
        )
        new_row = result.first()
        if new_row is None:
            raise ConcurrentChange(f"intent {intent_id} changed meanwhile")
        return to_intent(new_row)

    async def _transition_unread(
        self,
        conn: AsyncConnection,
        intent_id: int,
        to: Status,
        reason: str,
        actor: str,
        expect: Status,
        expect_version: int,
        fields: Mapping[str, Any] | None,
    ) -> Intent:
        """``_transition`` when the caller names the one status and the version it expects:
        the row is not read first. The event is inserted from the row itself, only if it
        still has that status and version (on PostgreSQL the same statement locks it,
        ``FOR UPDATE``), so the UPDATE that follows cannot miss; when the row is no longer
        as expected, nothing at all is written (no savepoint needed around it). A status
        change bumps the version (the database refuses one that does not), so a row at
        ``expect_version`` in ``expect`` is the row the caller decided on."""
        event = machine.transition(intent_id, expect, to, reason=reason, actor=actor)
        now = utcnow()
        at = and_(T.c.id == intent_id, T.c.version == expect_version, T.c.status == expect.value)
        source = select(
            T.c.id,
            T.c.status,
            literal(event.to_status.value, E.c.to_status.type),
            literal(event.reason, E.c.reason.type),
            literal(event.actor, E.c.actor.type),
            literal(event.kind, E.c.kind.type),
            literal(now, E.c.created_at.type),
            T.c.version + 1,
        ).where(at)
        if self.is_postgres:
            source = source.with_for_update()
        columns = ["intent_id", "from_status", "to_status", "reason", "actor", "kind"]
        written = await conn.execute(
            insert(E).from_select([*columns, "created_at", "intent_version"], source)
        )
        if written.rowcount != 1:
            row = (await conn.execute(select(T.c.status).where(T.c.id == intent_id))).first()
            if row is None:
                raise NotFound(f"intent {intent_id}")
            if row.status != expect.value:
                raise ConcurrentChange(
                    f"intent {intent_id} is {row.status}, expected {expect.value}"
                )
            raise ConcurrentChange(f"intent {intent_id} changed meanwhile")
        values: dict[str, Any] = {
            "status": to.value,
            "status_reason": reason,
            "version": expect_version + 1,
            "updated_at": now,
            "claimed_by": None,
            "claimed_until": None,
        }
        if to.terminal:
            values["settled_at"] = now
        values.update(fields or {})
        new_row = (await conn.execute(update(T).where(at).values(**values).returning(T))).first()
        if new_row is None:
            # cannot happen: the row is locked (PostgreSQL) or the writer lock held
            # (SQLite). Not a ConcurrentChange: that would let ``transition_many`` commit
            # the event without its change; this rolls the whole transaction back.
            raise RuntimeError(f"intent {intent_id} changed under its lock")
        return to_intent(new_row)

    async def lock(self, conn: AsyncConnection, intent_id: int) -> Intent:
        """Read an intent inside ``conn``'s transaction, locking its row on PostgreSQL
        (SQLite's ``BEGIN IMMEDIATE`` already holds the write lock).

        Raises:
            NotFound: no such intent.
        """
        query = select(T).where(T.c.id == intent_id)
        if self.is_postgres:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"intent {intent_id}")
        return to_intent(row)

    async def _insert_event(
        self,
        conn: AsyncConnection,
        event: machine.Event,
        now: datetime,
        *,
        intent_version: int | None = None,
    ) -> None:
        """Append ``event``; a status change names the intent version it produces."""
        await conn.execute(
            insert(E).values(
                intent_id=event.intent_id,
                from_status=event.from_status.value if event.from_status else None,
                to_status=event.to_status.value,
                reason=event.reason,
                actor=event.actor,
                kind=event.kind,
                created_at=now,
                intent_version=intent_version,
            )
        )

    async def record_note(
        self,
        intent_id: int,
        *,
        reason: str,
        actor: str,
        kind: str,
        conn: AsyncConnection | None = None,
    ) -> None:
        """Append an event that records a fact without a status change."""

        async def _do(c: AsyncConnection) -> None:
            status = await c.scalar(select(T.c.status).where(T.c.id == intent_id))
            if status is None:
                raise NotFound(f"intent {intent_id}")
            ev = machine.note(intent_id, Status(status), reason=reason, actor=actor, kind=kind)
            await self._insert_event(c, ev, utcnow())

        if conn is not None:
            await _do(conn)
            return
        async with transaction(self.engine) as c:
            await _do(c)

    async def update_fields(
        self,
        intent_id: int,
        *,
        expect_status: Status,
        fields: Mapping[str, Any],
        expect_version: int | None = None,
    ) -> Intent:
        """Change service-owned columns (never the status) if the status is as expected.

        With ``expect_version`` it is a compare-and-set that also bumps the version, so a
        decision taken on an older read of the row can never land on a newer attempt.
        """
        where = and_(T.c.id == intent_id, T.c.status == expect_status.value)
        values: dict[str, Any] = {"updated_at": utcnow(), **fields}
        if expect_version is not None:
            where = and_(where, T.c.version == expect_version)
            values["version"] = expect_version + 1
        async with transaction(self.engine) as conn:
            result = await conn.execute(update(T).where(where).values(**values).returning(T))
            row = result.first()
        if row is None:
            raise ConcurrentChange(f"intent {intent_id} is no longer {expect_status.value}")
        return to_intent(row)

    # ---- worker queries ------------------------------------------------------------

    async def claim_queued(
        self, *, account: str, worker: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[Intent]:
        """Lease up to ``limit`` due queued intents of ``account`` to ``worker``.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED`` so concurrent workers take disjoint rows.
        SQLite: the transaction is ``BEGIN IMMEDIATE``, which serialises claimers.
        """
        due = and_(
            # a literal, not a parameter: SQLite uses a partial index only when it can
            # see that the query's condition implies the index's
            T.c.status == literal_column("'queued'"),
            T.c.account == account,
            or_(T.c.not_before.is_(None), T.c.not_before <= now),
            or_(T.c.claimed_until.is_(None), T.c.claimed_until < now, T.c.claimed_by == worker),
        )
        ids_query = select(T.c.id).where(due).order_by(T.c.id).limit(limit)
        if self.is_postgres:
            ids_query = ids_query.with_for_update(skip_locked=True)
        async with transaction(self.engine) as conn:
            # one statement: the rows are chosen (and locked) by the subquery
            rows = (
                await conn.execute(
                    update(T)
                    .where(T.c.id.in_(ids_query.scalar_subquery()))
                    .values(claimed_by=worker, claimed_until=lease_until)
                    .returning(T)
                )
            ).all()
        return sorted((to_intent(r) for r in rows), key=lambda i: i.id)

    async def next_due(self, *, account: str, worker: str, now: datetime) -> datetime | None:
        queued = and_(T.c.status == literal_column("'queued'"), T.c.account == account)
        query = select(
            func.min(T.c.not_before).filter(T.c.not_before > now),
            func.min(T.c.claimed_until).filter(
                and_(T.c.claimed_until > now, T.c.claimed_by != worker)
            ),
        ).where(queued)
        async with connection(self.engine) as conn:
            row = (await conn.execute(query)).one()
        times = [t for t in row if t is not None]
        return min(times) if times else None

    async def release_claims(self, *, account: str, keep: str) -> int:
        """Free the queued intents of ``account`` claimed by anyone but ``keep`` (a new
        sender takes over from a dead one). Safe: a claim only schedules work; the commit
        to send re-checks status and version."""
        async with transaction(self.engine) as conn:
            result = await conn.execute(
                update(T)
                .where(
                    and_(
                        T.c.account == account,
                        T.c.status == Status.QUEUED.value,
                        T.c.claimed_by.is_not(None),
                        T.c.claimed_by != keep,
                    )
                )
                .values(claimed_by=None, claimed_until=None)
            )
        return int(result.rowcount or 0)

    async def in_status(
        self, status: Status, *, account: str | None = None, limit: int = 1000
    ) -> list[Intent]:
        query = select(T).where(T.c.status == status.value).order_by(T.c.id).limit(limit)
        if account is not None:
            query = query.where(T.c.account == account)
        async with connection(self.engine) as conn:
            return [to_intent(r) for r in (await conn.execute(query)).all()]

    async def hold(
        self, intent: Intent, *, reason: str, retry_at: datetime, start_clock: bool = True
    ) -> Intent:
        """Keep a queued intent back with a reason until ``retry_at``; an event is written
        when the reason changes, not on every retry.

        Raises:
            ConcurrentChange: it is no longer queued.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "status_reason": reason,
            "not_before": retry_at,
            "held_since": intent.held_since or (now if start_clock else None),
            "claimed_by": None,
            "claimed_until": None,
            "updated_at": now,
        }
        async with transaction(self.engine) as conn:
            row = (
                await conn.execute(
                    update(T)
                    .where(and_(T.c.id == intent.id, T.c.status == Status.QUEUED.value))
                    .values(**values)
                    .returning(T)
                )
            ).first()
            if row is None:
                raise ConcurrentChange(f"intent {intent.id} is no longer queued")
            if reason != intent.status_reason:
                await self.record_note(
                    intent.id, reason=f"held: {reason}", actor="worker", kind="hold", conn=conn
                )
        return to_intent(row)

    async def release(self, intent: Intent) -> None:
        """Give a claimed intent back (nothing was decided for it)."""
        async with transaction(self.engine) as conn:
            await conn.execute(
                update(T)
                .where(and_(T.c.id == intent.id, T.c.claimed_by.is_not(None)))
                .values(claimed_by=None, claimed_until=None)
            )

    async def unserved(
        self, *, older_than_s: float, skip_reason_prefix: str | None = None, limit: int = 500
    ) -> list[tuple[int, str]]:
        """Queued intents older than ``older_than_s`` whose account no live sender lease
        covers, and whose reason does not start with ``skip_reason_prefix`` yet (when
        given)."""
        from treasury.adapters.db.state import db_now
        from treasury.adapters.db.tables import sender_leases as L

        async with connection(self.engine) as conn:
            now = await db_now(conn)
            live = exists().where(and_(L.c.account == T.c.account, L.c.expires_at > now))
            rows = (
                await conn.execute(
                    select(T.c.id, T.c.account)
                    .where(
                        and_(
                            T.c.status == Status.QUEUED.value,
                            T.c.created_at < now - timedelta(seconds=older_than_s),
                            ~live,
                            true()
                            if skip_reason_prefix is None
                            else or_(
                                T.c.status_reason.is_(None),
                                ~T.c.status_reason.startswith(skip_reason_prefix),
                            ),
                        )
                    )
                    .limit(limit)
                )
            ).all()
        return [(int(r.id), str(r.account)) for r in rows]

    async def set_reason(self, intent_id: int, reason: str, *, kind: str = "hold") -> bool:
        """Give a queued intent a reason (and an event) without a status change."""
        async with transaction(self.engine) as conn:
            result = await conn.execute(
                update(T)
                .where(and_(T.c.id == intent_id, T.c.status == Status.QUEUED.value))
                .values(status_reason=reason, updated_at=utcnow())
            )
            if not result.rowcount:
                return False
            await self.record_note(intent_id, reason=reason, actor="worker", kind=kind, conn=conn)
        return True

    async def last_send_ms(self, account: str) -> int | None:
        async with connection(self.engine) as conn:
            value = await conn.scalar(
                select(func.max(T.c.send_timestamp_ms)).where(T.c.account == account)
            )
        return int(value) if value is not None else None
