"""Intents that no daemon will ever pick up must not wait silently.

An intent inserted for an account that no running daemon serves (a typo in the
``account`` column, a daemon not started) would sit in ``queued`` forever. Any sender
notices it, gives it a reason a person can act on, records the fact as an event and
alerts — once per intent.
"""

from __future__ import annotations

import structlog

from treasury.services.context import WorkerContext

log = structlog.get_logger("treasury.watch")
UNSERVED_AFTER_S = 60.0
PREFIX = "no running daemon serves account"


async def flag_unserved(ctx: WorkerContext, *, after_s: float = UNSERVED_AFTER_S) -> int:
    repo = ctx.ledger.intents
    flagged = 0
    for intent_id, account in await repo.unserved(older_than_s=after_s, skip_reason_prefix=PREFIX):
        reason = (
            f"{PREFIX} {account!r}: start one with TREASURY_ACCOUNT={account}, or cancel the intent"
        )
        if not await repo.set_reason(intent_id, reason):
            continue  # no longer queued
        flagged += 1
        log.error("intent.unserved", intent_id=intent_id, account=account)
        await ctx.alert("needs_attention", f"intent {intent_id}: {PREFIX} {account!r}", intent_id)
    return flagged
