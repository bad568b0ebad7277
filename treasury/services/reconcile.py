"""Establish the outcome of sends left in ``submitting`` (timeouts, 5xx, crashes).

Runs at start-up before anything is sent, then periodically, for every ``submitting``
intent that no send of this process is currently handling. The rule itself, and why
it is safe, is in ``treasury.domain.reconcile``.
"""

from __future__ import annotations

import structlog

from treasury.adapters.binance.errors import ExchangeError
from treasury.adapters.db.repository import ConcurrentChange, utcnow
from treasury.domain import reconcile as rule
from treasury.domain.intent import Intent
from treasury.domain.settle import settled_status
from treasury.domain.status import Status
from treasury.services.context import WorkerContext

log = structlog.get_logger("treasury.reconcile")
LOOKBACK_MS = 5 * 60 * 1000  # history is searched from a little before the signed time


async def reconcile_all(ctx: WorkerContext) -> int:
    """Reconcile every ``submitting`` intent of the account; returns how many were looked up."""
    pending = await ctx.ledger.intents.in_status(Status.SUBMITTING, account=ctx.config.account)
    done = 0
    for intent in pending:
        if intent.id in ctx.in_flight:
            continue
        try:
            await reconcile_one(ctx, intent)
        except ConcurrentChange:
            continue
        done += 1
    return done


def _server_ms_of_local(ctx: WorkerContext, local_ms: int) -> int:
    offset = ctx.exchange.now_ms() - int(utcnow().timestamp() * 1000)
    return local_ms + offset


async def reconcile_one(ctx: WorkerContext, intent: Intent) -> None:
    repo = ctx.ledger.intents
    cfg = ctx.config
    oid = intent.withdraw_order_id
    now_ms = ctx.exchange.now_ms()
    if oid is None:
        await _attention(ctx, intent, "submitting without a withdraw_order_id on record")
        return
    start = (intent.send_timestamp_ms or now_ms) - LOOKBACK_MS
    try:
        found = await ctx.exchange.withdraw_history(
            withdraw_order_id=oid, start_time_ms=start, end_time_ms=max(now_ms, start + 1)
        )
    except (ExchangeError, ValueError) as exc:
        age_s = (now_ms - (intent.send_timestamp_ms or now_ms)) / 1000
        if age_s > cfg.reconcile_give_up_s:
            await _attention(ctx, intent, f"could not look {oid} up for {int(age_s)} s: {exc}")
        else:
            log.warning("reconcile.lookup_failed", intent_id=intent.id, withdraw_order_id=oid,
                        error=str(exc))
        return
    last_ms = (
        _server_ms_of_local(ctx, int(intent.last_checked_at.timestamp() * 1000))
        if intent.last_checked_at is not None else None
    )
    decision = rule.decide(
        intent, found, server_now_ms=now_ms, margin_ms=int(cfg.settle_margin_s * 1000),
        last_absent_check_ms=last_ms, min_gap_ms=int(cfg.reconcile_interval_s * 1000 / 2),
    )
    log.info("reconcile.decision", intent_id=intent.id, withdraw_order_id=oid,
             decision=type(decision).__name__)
    match decision:
        case rule.Adopt(record=record):
            fields: dict[str, object] = {"exchange_withdraw_id": record.id}
            settled = settled_status(record)
            target, why = settled if settled else (Status.SUBMITTED, "")
            if target is Status.COMPLETED:
                fields.update(tx_id=record.tx_id, fee=record.fee)
            await repo.transition(
                intent.id, target, actor="worker", expect=(Status.SUBMITTING,),
                reason=f"reconciled: the exchange has it as {record.id}"
                + (f"; {why}" if why else ""),
                fields=fields,
            )
        case rule.Attention(reason=reason):
            await _attention(ctx, intent, reason)
        case rule.Wait():
            return
        case rule.CountAbsence(reason=reason):
            await repo.update_fields(
                intent.id, expect_status=Status.SUBMITTING,
                fields={"absent_checks": intent.absent_checks + 1, "last_checked_at": utcnow()},
            )
            await repo.record_note(intent.id, reason=reason, actor="worker", kind="reconcile")
        case rule.ProvenAbsent(reason=reason):
            await repo.transition(
                intent.id, Status.QUEUED, actor="worker", expect=(Status.SUBMITTING,),
                reason=f"reconciled: {reason}; will be sent again with the same id",
                fields={"absent_checks": 0, "last_checked_at": utcnow(), "not_before": None},
            )


async def _attention(ctx: WorkerContext, intent: Intent, reason: str) -> None:
    await ctx.ledger.intents.transition(
        intent.id, Status.NEEDS_ATTENTION, reason=reason, actor="worker",
        expect=(intent.status,),
    )
    log.error("intent.needs_attention", intent_id=intent.id,
              withdraw_order_id=intent.withdraw_order_id, reason=reason)
    await ctx.alert("needs_attention", f"intent {intent.id}: {reason}", intent.id)
