"""SQL the commit to send needs inside its unit of work: the per-account advisory-lock
key and the amounts committed in the last 24 hours (the policy's rolling caps).

The decision itself reads top to bottom in ``treasury.services.submit.commit_to_send``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from treasury.adapters.db.tables import withdrawal_intents
from treasury.domain.intent import Intent
from treasury.domain.money import add
from treasury.domain.status import Status

T = withdrawal_intents
COMMITTED = (Status.SUBMITTING, Status.SUBMITTED, Status.COMPLETED, Status.NEEDS_ATTENTION)


def account_lock_key(account: str) -> int:
    """A stable signed 64-bit advisory-lock key for an account."""
    digest = hashlib.sha256(f"treasury:sender:{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def usage_24h(
    conn: AsyncConnection, intent: Intent, now: datetime
) -> tuple[Decimal, Decimal]:
    """Amounts of the intent's coin committed in the last 24 h: per account, per destination.

    Summed in Python: on SQLite amounts are text, and SQL's SUM would go through float.
    """
    rows = (
        await conn.execute(
            select(T.c.amount, T.c.network, T.c.address, T.c.address_tag).where(
                and_(
                    T.c.account == intent.account,
                    T.c.coin == intent.coin,
                    T.c.status.in_([s.value for s in COMMITTED]),
                    T.c.submitted_at > now - timedelta(hours=24),
                    T.c.id != intent.id,
                )
            )
        )
    ).all()
    coin_total = add(*(r.amount for r in rows))
    dest_total = add(
        *(
            r.amount
            for r in rows
            if (r.network, r.address, r.address_tag)
            == (intent.network, intent.address, intent.address_tag)
        )
    )
    return coin_total, dest_total
