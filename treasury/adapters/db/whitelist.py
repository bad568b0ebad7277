"""The address book: per-account destinations, and the record of every change to them.

The database keeps the record (migration 0009): an INSERT or UPDATE of
``whitelist_entries`` appends to ``whitelist_events`` from the row's ``changed_by`` and
``change_reason``; an UPDATE without a version bump and both of them is refused, and so
is any DELETE. This adapter writes the actor and reason in the same statement as the
change, so the event names who made it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.tables import whitelist_approvals, whitelist_entries, whitelist_events
from treasury.ports.clock import utcnow
from treasury.ports.store import (
    ConcurrentChange,
    DuplicateEntry,
    NotFound,
    WhitelistApproval,
    WhitelistEntry,
    WhitelistEvent,
    audit_fields,
)

W = whitelist_entries
E = whitelist_events
A = whitelist_approvals
__all__ = ["DuplicateEntry", "WhitelistEntry", "WhitelistRepository"]


def entry_of(r: object) -> WhitelistEntry:
    m = r._mapping  # type: ignore[attr-defined]
    return WhitelistEntry(
        id=m["id"],
        account=m["account"],
        coin=m["coin"],
        network=m["network"],
        address=m["address"],
        address_tag=m["address_tag"],
        label=m["label"],
        source=m["source"],
        enabled=bool(m["enabled"]),
        usable_from=m["usable_from"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        version=m["version"],
        changed_by=m["changed_by"],
        change_reason=m["change_reason"],
        travel_rule_profile=m["travel_rule_profile"],
    )


def event_of(r: object) -> WhitelistEvent:
    m = r._mapping  # type: ignore[attr-defined]
    return WhitelistEvent(**{k: m[k] for k in WhitelistEvent.__dataclass_fields__})


def approval_of(r: object) -> WhitelistApproval:
    m = r._mapping  # type: ignore[attr-defined]
    return WhitelistApproval(**{k: m[k] for k in WhitelistApproval.__dataclass_fields__})


def destination(
    coin: str, network: str, address: str, address_tag: str | None
) -> ColumnElement[bool]:
    return and_(
        W.c.coin == coin,
        W.c.network == network,
        W.c.address == address,
        W.c.tag_key == (address_tag or ""),
    )


class WhitelistRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(
        self,
        *,
        account: str,
        coin: str,
        network: str,
        address: str,
        address_tag: str | None,
        actor: str,
        reason: str,
        label: str = "",
        source: str = "manual",
        usable_from: datetime | None = None,
        travel_rule_profile: str | None = None,
    ) -> WhitelistEntry:
        actor, reason = audit_fields(actor, reason)
        try:
            async with transaction(self.engine) as conn:
                # created_at: the database's default (its clock starts the cooling period)
                row = (
                    await conn.execute(
                        insert(W)
                        .values(
                            account=account,
                            coin=coin,
                            network=network,
                            address=address,
                            address_tag=address_tag,
                            tag_key=address_tag or "",
                            label=label,
                            source=source,
                            enabled=True,
                            usable_from=usable_from,
                            version=1,
                            changed_by=actor,
                            change_reason=reason,
                            travel_rule_profile=travel_rule_profile,
                        )
                        .returning(W)
                    )
                ).one()
        except IntegrityError as exc:
            if "uq_whitelist_destination" not in str(exc) and "UNIQUE" not in str(exc):
                raise
            raise DuplicateEntry(
                f"{coin}/{network} {address}"
                + (f" tag {address_tag}" if address_tag else "")
                + f" is already in the whitelist of account {account}"
            ) from None
        return entry_of(row)

    async def get(self, entry_id: int) -> WhitelistEntry:
        async with connection(self.engine) as conn:
            row = (await conn.execute(select(W).where(W.c.id == entry_id))).first()
        if row is None:
            raise NotFound(f"whitelist entry {entry_id}")
        return entry_of(row)

    async def all(self, account: str | None = None) -> list[WhitelistEntry]:
        query = select(W).order_by(W.c.account, W.c.coin, W.c.network, W.c.id)
        if account is not None:
            query = query.where(W.c.account == account)
        async with connection(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [entry_of(r) for r in rows]

    async def find(
        self, coin: str, network: str, address: str, address_tag: str | None, *, account: str
    ) -> WhitelistEntry | None:
        async with connection(self.engine) as conn:
            row = (
                await conn.execute(
                    select(W).where(
                        W.c.account == account, destination(coin, network, address, address_tag)
                    )
                )
            ).first()
        return entry_of(row) if row is not None else None

    async def set_enabled(
        self, entry_id: int, enabled: bool, *, actor: str, reason: str, label: str | None = None
    ) -> WhitelistEntry:
        actor, reason = audit_fields(actor, reason)
        async with transaction(self.engine) as conn:
            row = (await conn.execute(select(W).where(W.c.id == entry_id))).first()
            if row is None:
                raise NotFound(f"whitelist entry {entry_id}")
            entry = entry_of(row)
            if entry.enabled == enabled and (label is None or label == entry.label):
                return entry
            values: dict[str, object] = {
                "enabled": enabled,
                "updated_at": utcnow(),
                "version": entry.version + 1,
                "changed_by": actor,
                "change_reason": reason,
            }
            if label is not None:
                values["label"] = label
            changed = (
                await conn.execute(
                    update(W)
                    .where(W.c.id == entry_id, W.c.version == entry.version)
                    .values(**values)
                    .returning(W)
                )
            ).first()
        if changed is None:
            raise ConcurrentChange(f"whitelist entry {entry_id} changed meanwhile")
        return entry_of(changed)

    async def set_profile(
        self, entry_id: int, profile: str | None, *, version: int, actor: str, reason: str
    ) -> WhitelistEntry:
        actor, reason = audit_fields(actor, reason)
        async with transaction(self.engine) as conn:
            changed = (
                await conn.execute(
                    update(W)
                    .where(W.c.id == entry_id, W.c.version == version)
                    .values(
                        travel_rule_profile=profile,
                        updated_at=utcnow(),
                        version=version + 1,
                        changed_by=actor,
                        change_reason=reason,
                    )
                    .returning(W)
                )
            ).first()
            if changed is None:
                exists = (await conn.execute(select(W.c.version).where(W.c.id == entry_id))).first()
                if exists is None:
                    raise NotFound(f"whitelist entry {entry_id}")
                raise ConcurrentChange(
                    f"whitelist entry {entry_id} is at version {exists[0]} now, not {version}"
                )
        return entry_of(changed)

    async def history(
        self, *, account: str | None = None, entry_id: int | None = None, limit: int = 1000
    ) -> list[WhitelistEvent]:
        query = select(E).order_by(E.c.id)
        if account is not None:
            query = query.where(E.c.account == account)
        if entry_id is not None:
            query = query.where(E.c.entry_id == entry_id)
        async with connection(self.engine) as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [event_of(r) for r in rows]

    async def add_approval(
        self,
        entry_id: int,
        *,
        version: int,
        approver: str,
        signature: str | None,
        reason: str | None,
        at: datetime | None = None,
        sign_count: tuple[bytes, int] | None = None,
    ) -> bool:
        from treasury.adapters.db.passkeys import PasskeyRepository

        async with transaction(self.engine) as conn:
            # the entry's row, locked (PostgreSQL): a change cannot land between the
            # version check and the insert
            current = (
                await conn.execute(select(W.c.version).where(W.c.id == entry_id).with_for_update())
            ).scalar()
            if current is None:
                raise NotFound(f"whitelist entry {entry_id}")
            if current != version:
                raise ConcurrentChange(
                    f"whitelist entry {entry_id} is at version {current} now, not {version}"
                )
            if sign_count is not None and not await PasskeyRepository.advance(conn, *sign_count):
                return False
            await conn.execute(
                insert(A).values(
                    entry_id=entry_id,
                    entry_version=version,
                    approver=approver,
                    signature=signature,
                    reason=reason,
                    **({} if at is None else {"created_at": at}),
                )
            )
        return True

    async def approvals(
        self, *, account: str | None = None, entry_id: int | None = None
    ) -> list[WhitelistApproval]:
        query = select(A).order_by(A.c.id)
        if account is not None:
            query = query.join(W, W.c.id == A.c.entry_id).where(W.c.account == account)
        if entry_id is not None:
            query = query.where(A.c.entry_id == entry_id)
        async with connection(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [approval_of(r) for r in rows]
