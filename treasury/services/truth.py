"""Two-way reconciliation: the ledger checked against the exchange's history.

``judge_records`` applies the rule of ``treasury.domain.truth`` to history records that
anyone read (the settle poll, the sweep, ``treasury reconcile``) and carries out what it
decides: adopt, send to a person, alarm, and pause the account when the ledger is behind
the exchange. ``sweep`` reads the account's history for this ledger's order-id namespace
from a watermark kept in the database, so that a periodic sweep reads only what is new
(less the history-lag allowance: a record may appear late with its old apply time).

Cost: one history page (18,000 UID weight) covers 1,000 records; a periodic sweep of a
few minutes' sends is one page. The client's weight budget paces the pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from treasury.domain import truth
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.ids import intent_id_from_order_id
from treasury.domain.intent import Intent
from treasury.domain.money import format_amount
from treasury.domain.settle import settled_status
from treasury.domain.status import Status
from treasury.domain.wallet import Wallet
from treasury.ports.clock import utcnow
from treasury.ports.store import ConcurrentChange
from treasury.services.context import WorkerContext

log = structlog.get_logger("treasury.truth")
PAGE = 1000
LOOKBACK_MS = 5 * 60 * 1000  # an apply time may precede our clock estimate; margin
MAX_WINDOW_MS = 89 * 24 * 3600 * 1000  # history windows must be shorter than 90 days
# this host's clock against the exchange's second-resolution applyTime
CLOCK_TOLERANCE = timedelta(seconds=60)


@dataclass(frozen=True)
class Finding:
    """One difference between the ledger and the exchange, as an operator reads it."""

    kind: str  # adopt | attention | duplicate | disagreement | unknown | noted
    intent_id: int | None
    exchange_withdraw_id: str
    withdraw_order_id: str
    detail: str


@dataclass
class SweepResult:
    account: str
    start_ms: int
    end_ms: int
    records: int = 0
    pages: int = 0
    findings: list[Finding] = field(default_factory=list)


async def owners_of(
    ctx: WorkerContext, namespace: str, records: list[WithdrawalRecord]
) -> dict[str, tuple[Intent | None, int | None]]:
    """For each order id of our namespace among ``records``: its owner and named id.

    The owner is the intent that fixed that order id; failing that, the intent the
    order id names if it has fixed none yet (a restored intent, sent since the backup).
    """
    named = {
        r.withdraw_order_id: intent_id_from_order_id(namespace, r.withdraw_order_id)
        for r in records
        if r.withdraw_order_id
    }
    ours = {oid: iid for oid, iid in named.items() if iid is not None}
    if not ours:
        return {}
    repo = ctx.ledger.intents
    by_oid = await repo.get_by_order_ids(list(ours))
    by_id = await repo.get_many(sorted({i for i in ours.values() if i is not None}))
    applied = {r.withdraw_order_id: r.apply_time for r in records if r.withdraw_order_id}
    result: dict[str, tuple[Intent | None, int | None]] = {}
    for oid, iid in ours.items():
        owner = by_oid.get(oid)
        if owner is None:
            candidate = by_id.get(iid) if iid is not None else None
            if (
                candidate is not None
                and candidate.withdraw_order_id is None
                and not _newer(candidate, applied.get(oid))
            ):
                owner = candidate
        result[oid] = (owner, iid)
    return result


def _newer(intent: Intent, apply_time: datetime | None) -> bool:
    """Was ``intent`` created after the withdrawal was applied? Then it cannot be its
    intent: a restored ledger handed the lost intent's id to a new one."""
    if apply_time is None:
        return False
    return intent.created_at > apply_time + CLOCK_TOLERANCE


async def judge_records(
    ctx: WorkerContext,
    records: list[WithdrawalRecord],
    *,
    found_by: str,
    apply: bool = True,
) -> list[Finding]:
    """Judge every record of our namespace; carry the judgements out unless dry run."""
    namespace = await ctx.ledger.intents.namespace()
    unique = list({r.id: r for r in records}.values())
    owners = await owners_of(ctx, namespace, unique)
    # A withdrawal on file as unmatched was judged, alarmed and its order id burned: the
    # intent that now carries its intent id (SQLite reuses ids after a restore) is not it.
    on_file = await ctx.ledger.unmatched.on_file(
        ctx.config.account, [r.id for r in unique if (r.withdraw_order_id or "") in owners]
    )
    unique = [r for r in unique if r.id not in on_file]
    findings: list[Finding] = []
    for record in unique:
        oid = record.withdraw_order_id or ""
        if oid not in owners:
            continue  # another ledger's, or no order id: the unexpected-withdrawal watch
        owner, named = owners[oid]
        if owner is not None and owner.id in ctx.in_flight:
            continue  # its send is being answered right now
        judgement = truth.judge(record, owner, account=ctx.config.account, intent_id=named)
        finding = _finding(judgement)
        if finding is None:
            continue
        findings.append(finding)
        if apply:
            try:
                await _carry_out(ctx, judgement, found_by)
            except ConcurrentChange:
                continue  # the intent moved meanwhile; the next look judges it afresh
    return findings


def _finding(j: truth.Judgement) -> Finding | None:
    match j:
        case truth.Consistent():
            return None
        case truth.Adopt(intent=i, record=r):
            return Finding(
                "adopt",
                i.id,
                r.id,
                r.withdraw_order_id or "",
                f"intent {i.id} ({i.status.value}) is {truth.describe(r)}: adopt it",
            )
        case truth.Attention(intent=i, record=r, reason=why):
            return Finding("attention", i.id, r.id, r.withdraw_order_id or "", why)
        case truth.Duplicate(intent=i, record=r):
            return Finding(
                "duplicate",
                i.id,
                r.id,
                r.withdraw_order_id or "",
                f"intent {i.id} already has withdrawal {i.exchange_withdraw_id}; "
                f"the exchange also has {truth.describe(r)}",
            )
        case truth.Disagreement(intent=i, record=r, reason=why):
            return Finding("disagreement", i.id, r.id, r.withdraw_order_id or "", why)
        case truth.Unknown(record=r, intent_id=iid, reason=why):
            return Finding("unknown", iid, r.id, r.withdraw_order_id or "", why)
        case truth.Noted(intent=i, record=r, reason=why):
            return Finding("noted", i.id, r.id, r.withdraw_order_id or "", why)
    return None


async def _carry_out(ctx: WorkerContext, j: truth.Judgement, found_by: str) -> None:
    match j:
        case truth.Adopt(intent=i, record=r):
            await adopt(ctx, i, r, why=f"found by {found_by}")
        case truth.Attention(intent=i, record=r, reason=why):
            await _attention(ctx, i, r, why, found_by)
        case truth.Duplicate(intent=i, record=r):
            await _duplicate(ctx, i, r, found_by)
        case truth.Disagreement(intent=i, record=r, reason=why, pause=pause):
            await _disagreement(ctx, i, r, why, pause, found_by)
        case truth.Unknown(record=r, intent_id=iid, reason=why):
            await _unknown(ctx, r, iid, why, found_by)
        case truth.Noted(intent=i, record=r, reason=why):
            if await ctx.ledger.events.record_once(
                "exchange_record_noted", f"{i.id}:{r.id}", why, actor="worker"
            ):
                await ctx.ledger.intents.record_note(
                    i.id, reason=why, actor="worker", kind="reconcile"
                )


def record_fields(record: WithdrawalRecord) -> dict[str, object]:
    """What the ledger keeps of the exchange's record when it takes it as the intent's."""
    fields: dict[str, object] = {
        "exchange_withdraw_id": record.id,
        "exchange_amount": record.amount,
        "fee": record.fee,
    }
    if record.tx_id:
        fields["tx_id"] = record.tx_id
    if record.tr_id is not None:
        fields["exchange_tr_id"] = record.tr_id
    return fields


async def adopt(
    ctx: WorkerContext, intent: Intent, record: WithdrawalRecord, *, why: str
) -> Intent:
    """Take the exchange's withdrawal as the intent's own: it is never sent again."""
    settled = settled_status(record)
    target, how = settled if settled is not None else (Status.SUBMITTED, "")
    fields = record_fields(record)
    if intent.withdraw_order_id is None:
        fields["withdraw_order_id"] = record.withdraw_order_id
    if intent.wallet is None and record.wallet_type in (0, 1):
        # the wallet the exchange debited becomes the intent's record of it
        fields["wallet"] = Wallet.SPOT if record.wallet_type == 0 else Wallet.FUNDING
    if intent.submitted_at is None:  # it left: it counts against the policy's 24 h caps
        fields["submitted_at"] = record.apply_time or utcnow()
    reason = f"adopted: the exchange has it as {record.id} ({why}); it is never sent again" + (
        f"; {how}" if how else ""
    )
    done = await ctx.ledger.intents.transition(
        intent.id,
        target,
        actor="worker",
        reason=reason,
        fields=fields,
        expect=(intent.status,),
        expect_version=intent.version,
    )
    await announce(ctx, done, reason)
    if target is Status.SUBMITTED:
        ctx.on_submitted()
    return done


async def announce(ctx: WorkerContext, intent: Intent, reason: str) -> None:
    """Log (and alert, unless it completed) a status that reconciliation reached, as the
    settle poll does for the ones it reaches."""
    log.info(
        "intent.settled" if intent.status.terminal else "intent.adopted",
        intent_id=intent.id,
        status=intent.status.value,
        withdraw_order_id=intent.withdraw_order_id,
        reason=reason,
    )
    if intent.status.terminal and intent.status is not Status.COMPLETED:
        await ctx.alert(intent.status.value, f"intent {intent.id}: {reason}", intent.id)


async def pause_account(ctx: WorkerContext, why: str) -> None:
    """Stop the account's sends until a person resumes it (``treasury resume --account``)."""
    account = ctx.config.account
    reason = (
        f"the ledger disagrees with the exchange: {why} — check with `treasury reconcile "
        f"--account {account}`, then `treasury resume --account {account}`"
    )
    if await ctx.ledger.state.pause(reason=reason, by="worker", account=account):
        await ctx.ledger.events.record("paused", reason, actor="worker", subject=account)
        log.error("account.paused", account=account, reason=why)
        await ctx.alert("paused", f"account {account!r} paused: {reason}", None)


async def _attention(
    ctx: WorkerContext, intent: Intent, record: WithdrawalRecord, why: str, found_by: str
) -> None:
    await ctx.ledger.unmatched.record(
        account=ctx.config.account,
        record=record,
        intent_id=intent.id,
        reason=why,
        found_by=found_by,
    )
    await ctx.ledger.intents.transition(
        intent.id,
        Status.NEEDS_ATTENTION,
        actor="worker",
        reason=why,
        expect=(intent.status,),
        expect_version=intent.version,
    )
    log.error("intent.needs_attention", intent_id=intent.id, reason=why)
    await ctx.alert("needs_attention", f"intent {intent.id}: {why}", intent.id)
    await pause_account(ctx, f"intent {intent.id}: {why}")


async def _duplicate(ctx: WorkerContext, owner: Intent, r: WithdrawalRecord, found_by: str) -> None:
    """A second withdrawal carries an intent's id: the one thing that must never happen."""
    message = (
        f"DUPLICATE: withdrawal {r.id} carries the id {r.withdraw_order_id} of intent "
        f"{owner.id}, whose withdrawal is {owner.exchange_withdraw_id}: "
        f"{truth.describe(r)}"
    )
    await ctx.ledger.unmatched.record(
        account=ctx.config.account, record=r, intent_id=owner.id, reason=message, found_by=found_by
    )
    if not await ctx.ledger.events.record_once(
        "duplicate_withdrawal", r.id, message, actor="worker"
    ):
        return
    await ctx.ledger.intents.record_note(owner.id, reason=message, actor="worker", kind="alarm")
    log.error("alarm.duplicate_withdrawal", intent_id=owner.id, exchange_withdraw_id=r.id)
    await ctx.alert("duplicate_withdrawal", message, owner.id)
    await pause_account(ctx, message)


async def _disagreement(
    ctx: WorkerContext, intent: Intent, r: WithdrawalRecord, why: str, pause: bool, found_by: str
) -> None:
    if pause:
        await ctx.ledger.unmatched.record(
            account=ctx.config.account, record=r, intent_id=intent.id, reason=why, found_by=found_by
        )
    if not await ctx.ledger.events.record_once("exchange_disagrees", r.id, why, actor="worker"):
        return
    await ctx.ledger.intents.record_note(
        intent.id, reason=f"ALARM: {why}", actor="worker", kind="alarm"
    )
    log.error(
        "alarm.exchange_disagrees", intent_id=intent.id, exchange_withdraw_id=r.id, reason=why
    )
    await ctx.alert("exchange_disagrees", why, intent.id)
    if pause:
        await pause_account(ctx, why)


async def _unknown(
    ctx: WorkerContext, r: WithdrawalRecord, intent_id: int | None, why: str, found_by: str
) -> None:
    if not await ctx.ledger.unmatched.record(
        account=ctx.config.account, record=r, intent_id=intent_id, reason=why, found_by=found_by
    ):
        return  # on file already: alarmed when first found
    log.error(
        "alarm.ledger_behind_exchange",
        exchange_withdraw_id=r.id,
        withdraw_order_id=r.withdraw_order_id,
        amount=format_amount(r.amount),
        coin=r.coin,
    )
    await ctx.alert("ledger_behind_exchange", why, None)
    await pause_account(ctx, why)


async def history_window(
    ctx: WorkerContext, start_ms: int, end_ms: int
) -> tuple[list[WithdrawalRecord], int]:
    """Every record applied in [start, end], paged by 1,000; and the number of pages."""
    records: list[WithdrawalRecord] = []
    page = 0
    while True:
        rows = await ctx.exchange.withdraw_history(
            start_time_ms=start_ms,
            end_time_ms=max(end_ms, start_ms + 1),
            offset=page * PAGE,
            limit=PAGE,
        )
        records.extend(rows)
        page += 1
        if len(rows) < PAGE:
            return records, page


async def sweep_start_ms(ctx: WorkerContext, now_ms: int) -> int:
    """Where the next sweep begins: the watermark less the lag allowance; with none yet,
    the account's oldest intent (a restored ledger may predate every sweep)."""
    cfg = ctx.config
    mark = await ctx.ledger.state.watermark(cfg.account)
    if mark is not None:
        start = mark - int(cfg.history_lag_allowance_s * 1000) - LOOKBACK_MS
    else:
        oldest = await ctx.ledger.intents.earliest_created_ms(cfg.account)
        start = (oldest - LOOKBACK_MS) if oldest is not None else now_ms - MAX_WINDOW_MS
    return max(start, now_ms - MAX_WINDOW_MS)


async def sweep(
    ctx: WorkerContext,
    *,
    since_ms: int | None = None,
    apply: bool = True,
    found_by: str = "sweep",
) -> SweepResult:
    """Read the account's history since the watermark (or ``since_ms``) and judge it.

    Raises:
        ExchangeError, ValueError: the history could not be read; nothing was changed.
    """
    now_ms = ctx.exchange.now_ms()
    start = since_ms if since_ms is not None else await sweep_start_ms(ctx, now_ms)
    start = max(start, now_ms - MAX_WINDOW_MS)
    result = SweepResult(account=ctx.config.account, start_ms=start, end_ms=now_ms)
    records, result.pages = await history_window(ctx, start, now_ms)
    result.records = len(records)
    result.findings = await judge_records(ctx, records, found_by=found_by, apply=apply)
    if apply:
        await ctx.ledger.state.set_watermark(ctx.config.account, now_ms, by=found_by)
    log.info(
        "sweep.done",
        account=ctx.config.account,
        records=result.records,
        pages=result.pages,
        findings=len(result.findings),
        applied=apply,
    )
    return result
