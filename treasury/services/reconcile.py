"""Establish the outcome of sends left in ``submitting`` (timeouts, 5xx, crashes).

Runs at start-up before anything is sent, then periodically, for every ``submitting``
intent that no send of this process is currently handling. The rule itself, and why
it is safe, is in ``treasury.domain.reconcile``.
"""

from __future__ import annotations

import structlog

from treasury.domain import reconcile as rule
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.ports.clock import utcnow
from treasury.ports.exchange import ExchangeError
from treasury.ports.store import ConcurrentChange
from treasury.services import truth
from treasury.services.context import WorkerContext

log = structlog.get_logger("treasury.reconcile")
LOOKBACK_MS = 5 * 60 * 1000  # history is searched from a little before the signed time
PAGE = 1000
MAX_PAGES = 10


async def reconcile_all(ctx: WorkerContext) -> int:
    """Reconcile every ``submitting`` intent of the account; returns how many were decided.

    One history request covers them all: a time window from the oldest signed timestamp
    (paged by 1,000), grouped by ``withdrawOrderId``. A lookup per intent would cost
    18,000 weight each and take minutes after a crash with many sends in flight.
    """
    pending = [
        i
        for i in await ctx.ledger.intents.in_status(
            Status.SUBMITTING, account=ctx.config.account, limit=5000
        )
        if i.id not in ctx.in_flight
    ]
    if not pending:
        return 0
    # A fresh offset first: "absent" is judged against the exchange's clock, and a local
    # clock step since the last sync must not make a deadline look passed. Without it,
    # nothing is concluded — but the give-up limit still is: silence must not last.
    try:
        await ctx.exchange.sync_clock()
    except ExchangeError as exc:
        now_ms = ctx.exchange.now_ms()
        for intent in pending:
            await _lookup_failed(ctx, intent, now_ms, exc)
        return 0
    now_ms = ctx.exchange.now_ms()
    oldest = min((i.send_timestamp_ms or now_ms) for i in pending)
    start = max(oldest - LOOKBACK_MS, now_ms - rule.LOOKUP_WINDOW_MS)
    try:
        found = await _history_window(ctx, start, now_ms)
    except (ExchangeError, ValueError) as exc:
        for intent in pending:
            await _lookup_failed(ctx, intent, now_ms, exc)
        return 0
    by_oid: dict[str, list[WithdrawalRecord]] = {}
    # offset paging can return a record twice when new ones arrive between pages
    for record in {r.id: r for r in found}.values():
        if record.withdraw_order_id:
            by_oid.setdefault(record.withdraw_order_id, []).append(record)
    done = 0
    for intent in pending:
        try:
            await decide_one(ctx, intent, by_oid.get(intent.withdraw_order_id or "", []), now_ms)
        except ConcurrentChange:
            continue
        done += 1
    return done


async def _history_window(ctx: WorkerContext, start: int, end: int) -> list[WithdrawalRecord]:
    records: list[WithdrawalRecord] = []
    for page in range(MAX_PAGES):
        rows = await ctx.exchange.withdraw_history(
            start_time_ms=start, end_time_ms=max(end, start + 1), offset=page * PAGE, limit=PAGE
        )
        records.extend(rows)
        if len(rows) < PAGE:
            return records
    # More than MAX_PAGES * PAGE rows in the window: not conclusive for absence.
    raise ValueError("history window too large to prove absence")


async def _lookup_failed(ctx: WorkerContext, intent: Intent, now_ms: int, exc: Exception) -> None:
    age_s = (now_ms - (intent.send_timestamp_ms or now_ms)) / 1000
    if age_s > ctx.config.reconcile_give_up_s:
        try:
            await _attention(
                ctx,
                intent,
                (
                    f"outcome of {intent.withdraw_order_id} unknown, and the exchange could not "
                    f"be asked for {int(age_s)} s (last error: {exc}): look it up in the "
                    "account's withdrawal history on Binance, then `treasury resolve`"
                ),
            )
        except ConcurrentChange:
            return
    else:
        log.warning(
            "reconcile.lookup_failed",
            intent_id=intent.id,
            withdraw_order_id=intent.withdraw_order_id,
            error=str(exc),
        )


def _server_ms_of_local(ctx: WorkerContext, local_ms: int) -> int:
    offset = ctx.exchange.now_ms() - int(utcnow().timestamp() * 1000)
    return local_ms + offset


async def decide_one(
    ctx: WorkerContext, intent: Intent, found: list[WithdrawalRecord], now_ms: int
) -> None:
    repo = ctx.ledger.intents
    cfg = ctx.config
    oid = intent.withdraw_order_id
    if oid is None:
        await _attention(ctx, intent, "submitting without a withdraw_order_id on record")
        return
    last_ms = (
        _server_ms_of_local(ctx, int(intent.last_checked_at.timestamp() * 1000))
        if intent.last_checked_at is not None
        else None
    )
    mine = [r for r in found if r.withdraw_order_id == oid]
    if len(mine) == 1 and not rule.matches(intent, mine[0]):
        # A record of ours that contradicts the intent: the one rule for any record of ours
        # (truth.judge) decides it, so that it is filed and pauses the account however it
        # was found — by this look-up, the sweep or the settlement poll.
        log.info(
            "reconcile.decision", intent_id=intent.id, withdraw_order_id=oid, decision="Attention"
        )
        ctx.on_reconciled("Attention")
        await truth.judge_records(ctx, mine, found_by="reconciliation by withdrawOrderId")
        return
    decision = rule.decide(
        intent,
        found,
        server_now_ms=now_ms,
        lag_allowance_ms=int(cfg.history_lag_allowance_s * 1000),
        last_absent_check_ms=last_ms,
        min_gap_ms=int(cfg.reconcile_interval_s * 1000 / 2),
    )
    log.info(
        "reconcile.decision",
        intent_id=intent.id,
        withdraw_order_id=oid,
        decision=type(decision).__name__,
    )
    ctx.on_reconciled(type(decision).__name__)
    match decision:
        case rule.Adopt(record=record):
            await truth.adopt(ctx, intent, record, why="reconciled by withdrawOrderId")
        case rule.Attention(reason=reason):
            await _attention(ctx, intent, reason)
        case rule.Wait():
            return
        case rule.CountAbsence(reason=reason):
            await repo.update_fields(
                intent.id,
                expect_status=Status.SUBMITTING,
                expect_version=intent.version,
                fields={"absent_checks": intent.absent_checks + 1, "last_checked_at": utcnow()},
            )
            await repo.record_note(intent.id, reason=reason, actor="worker", kind="reconcile")
        case rule.ProvenAbsent(reason=reason) if cfg.resend == "manual":
            await _attention(
                ctx,
                intent,
                (
                    f"{reason}. TREASURY_RESEND=manual: check the account's withdrawal history on "
                    f"Binance for {oid}; if it is not there, `treasury resend {intent.id} --as "
                    "NAME` sends it again with the same id"
                ),
            )
        case rule.ProvenAbsent(reason=reason):
            await repo.transition(
                intent.id,
                Status.QUEUED,
                actor="worker",
                expect=(Status.SUBMITTING,),
                expect_version=intent.version,
                reason=f"reconciled: {reason}; will be sent again with the same id",
                fields={"absent_checks": 0, "last_checked_at": utcnow(), "not_before": None},
            )


async def _attention(ctx: WorkerContext, intent: Intent, reason: str) -> None:
    await ctx.ledger.intents.transition(
        intent.id,
        Status.NEEDS_ATTENTION,
        reason=reason,
        actor="worker",
        expect=(intent.status,),
        expect_version=intent.version,
    )
    log.error(
        "intent.needs_attention",
        intent_id=intent.id,
        withdraw_order_id=intent.withdraw_order_id,
        reason=reason,
    )
    await ctx.alert("needs_attention", f"intent {intent.id}: {reason}", intent.id)
