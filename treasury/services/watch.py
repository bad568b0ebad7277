"""Intents that no daemon will ever pick up must not wait silently.

An intent inserted for an account that no running daemon serves (a typo in the
``account`` column, a daemon not started) would sit in ``queued`` forever. Any sender
notices it, gives it a reason a person can act on, records the fact as an event and
alerts — once per intent.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import and_, exists, or_, select, update

from treasury.adapters.db.repository import utcnow
from treasury.adapters.db.state import db_now
from treasury.adapters.db.tables import sender_leases, withdrawal_intents
from treasury.domain.status import Status
from treasury.services.context import WorkerContext

T = withdrawal_intents
L = sender_leases
log = structlog.get_logger("treasury.watch")
UNSERVED_AFTER_S = 60.0
PREFIX = "no running daemon serves account"


async def flag_unserved(ctx: WorkerContext, *, after_s: float = UNSERVED_AFTER_S) -> int:
    repo = ctx.ledger.intents
    async with repo.engine.connect() as conn:
        now = await db_now(conn)
    live = exists().where(and_(L.c.account == T.c.account, L.c.expires_at > now))
    query = (
        select(T.c.id, T.c.account)
        .where(and_(
            T.c.status == Status.QUEUED.value,
            T.c.created_at < now - timedelta(seconds=after_s),
            ~live,
            or_(T.c.status_reason.is_(None), ~T.c.status_reason.startswith(PREFIX)),
        ))
        .limit(500)
    )
    flagged = 0
    async with repo.engine.begin() as conn:
        rows = (await conn.execute(query)).all()
        for intent_id, account in rows:
            reason = (f"{PREFIX} {account!r}: start one with TREASURY_ACCOUNT={account}, "
                      "or cancel the intent")
            await conn.execute(
                update(T).where(and_(T.c.id == intent_id, T.c.status == Status.QUEUED.value))
                .values(status_reason=reason, updated_at=utcnow())
            )
            await repo.record_note(intent_id, reason=reason, actor="worker", kind="hold",
                                   conn=conn)
            flagged += 1
    for intent_id, account in rows:
        log.error("intent.unserved", intent_id=intent_id, account=account)
        await ctx.alert("needs_attention", f"intent {intent_id}: {PREFIX} {account!r}",
                        intent_id)
    return flagged
