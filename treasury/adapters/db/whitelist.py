"""The local mirror of the exchange's withdrawal address whitelist."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.tables import whitelist_entries
from treasury.ports.clock import utcnow
from treasury.ports.store import DuplicateEntry, WhitelistEntry

W = whitelist_entries
__all__ = ["DuplicateEntry", "WhitelistEntry", "WhitelistRepository"]


def entry_of(r: object) -> WhitelistEntry:
    m = r._mapping  # type: ignore[attr-defined]
    return WhitelistEntry(
        id=m["id"],
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
    )


class WhitelistRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(
        self,
        *,
        coin: str,
        network: str,
        address: str,
        address_tag: str | None,
        label: str = "",
        source: str = "manual",
        usable_from: datetime | None = None,
    ) -> WhitelistEntry:
        now = utcnow()
        try:
            async with transaction(self.engine) as conn:
                row = (
                    await conn.execute(
                        insert(W)
                        .values(
                            coin=coin,
                            network=network,
                            address=address,
                            address_tag=address_tag,
                            tag_key=address_tag or "",
                            label=label,
                            source=source,
                            enabled=True,
                            usable_from=usable_from,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(W)
                    )
                ).one()
        except IntegrityError:
            raise DuplicateEntry(
                f"{coin}/{network} {address}"
                + (f" tag {address_tag}" if address_tag else "")
                + " is already in the whitelist"
            ) from None
        return entry_of(row)

    async def all(self) -> list[WhitelistEntry]:
        async with connection(self.engine) as conn:
            rows = (await conn.execute(select(W).order_by(W.c.coin, W.c.network, W.c.id))).all()
        return [entry_of(r) for r in rows]

    async def find(
        self, coin: str, network: str, address: str, address_tag: str | None
    ) -> WhitelistEntry | None:
        async with connection(self.engine) as conn:
            row = (
                await conn.execute(
                    select(W).where(
                        and_(
                            W.c.coin == coin,
                            W.c.network == network,
                            W.c.address == address,
                            W.c.tag_key == (address_tag or ""),
                        )
                    )
                )
            ).first()
        return entry_of(row) if row is not None else None

    async def remove(self, entry_id: int) -> bool:
        async with transaction(self.engine) as conn:
            result = await conn.execute(delete(W).where(W.c.id == entry_id))
        return bool(result.rowcount)

    async def set_enabled(self, entry_id: int, enabled: bool, label: str | None = None) -> None:
        values: dict[str, object] = {"enabled": enabled, "updated_at": utcnow()}
        if label is not None:
            values["label"] = label
        async with transaction(self.engine) as conn:
            await conn.execute(update(W).where(W.c.id == entry_id).values(**values))
