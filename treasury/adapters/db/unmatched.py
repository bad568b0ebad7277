"""Withdrawals of our namespace that the ledger cannot account for (``unmatched_withdrawals``).

A row is written once per exchange withdrawal; whether the write was new tells the
caller to pause and alert (a second sighting stays quiet). The order ids here are
burned: the commit to send never uses one of them again.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from treasury.adapters.db.engine import among, connection, transaction
from treasury.adapters.db.tables import unmatched_withdrawals, withdrawal_intents
from treasury.domain.exchange import WithdrawalRecord
from treasury.ports.clock import utcnow
from treasury.ports.store import Unmatched

U = unmatched_withdrawals


class UnmatchedWithdrawals:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(
        self,
        *,
        account: str,
        record: WithdrawalRecord,
        intent_id: int | None,
        reason: str,
        found_by: str,
    ) -> bool:
        """Keep ``record`` on file; True if it was not on file before."""
        try:
            async with transaction(self.engine) as conn:
                await conn.execute(
                    insert(U).values(
                        account=account,
                        exchange_withdraw_id=record.id,
                        withdraw_order_id=record.withdraw_order_id or "",
                        intent_id=intent_id,
                        coin=record.coin,
                        network=record.network,
                        address=record.address,
                        address_tag=record.address_tag or None,
                        amount=record.amount,
                        fee=record.fee,
                        exchange_status=record.status,
                        apply_time=record.apply_time,
                        reason=reason,
                        found_by=found_by,
                        created_at=utcnow(),
                    )
                )
                if intent_id is not None:
                    await _advance_intent_ids(conn, intent_id)
        except IntegrityError:
            return False
        return True

    @staticmethod
    async def burned_in(conn: AsyncConnection, intent_id: int) -> set[str]:
        """Inside a transaction: order ids naming ``intent_id`` that the exchange has used
        for something else."""
        query = select(U.c.withdraw_order_id).where(U.c.intent_id == intent_id)
        return set((await conn.execute(query)).scalars())

    async def on_file(self, account: str, exchange_ids: Sequence[str]) -> set[str]:
        """Which of ``exchange_ids`` (of ``account``) are on file already."""
        if not exchange_ids:
            return set()
        async with connection(self.engine) as conn:
            rows = await conn.execute(
                select(U.c.exchange_withdraw_id).where(
                    U.c.account == account, among(conn, U.c.exchange_withdraw_id, exchange_ids)
                )
            )
            return set(rows.scalars())

    async def list(self, account: str | None = None, limit: int = 1000) -> list[Unmatched]:
        query = select(U).order_by(U.c.id).limit(limit)
        if account is not None:
            query = query.where(U.c.account == account)
        async with connection(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [
            Unmatched(**{k: getattr(r, k) for k in Unmatched.__dataclass_fields__}) for r in rows
        ]


async def _advance_intent_ids(conn: AsyncConnection, intent_id: int) -> None:
    """Never hand out again an intent id (hence order id) the exchange has seen.

    PostgreSQL: move the id sequence past it. SQLite assigns ``max(id) + 1`` and has no
    sequence to move; there the commit to send skips burned order ids instead (see
    ``SendLedger.commit_to_send``), which is what keeps the exchange from seeing one twice.
    """
    if conn.dialect.name != "postgresql":
        return
    current = await conn.scalar(select(func.max(withdrawal_intents.c.id)))
    await conn.execute(
        text(
            "SELECT setval(pg_get_serial_sequence('withdrawal_intents', 'id'), "
            "GREATEST(:seen, :current, (SELECT last_value FROM withdrawal_intents_id_seq)))"
        ),
        {"seen": intent_id, "current": current or 0},
    )
