"""Poll ``withdraw/history`` until submitted withdrawals settle — in batches.

History counts in the account's per-second UID limit (10 requests a second), apart from
``withdraw/apply``'s own per-minute pool, so sending does not compete with it (this
project used to book both into one 180,000-a-minute pool: ten history calls a minute,
and at 3 sends a second only one poll every 75 s). The poller still never asks per
withdrawal: one time-window request (up to 1,000 rows, paged if needed) covers every
withdrawal in flight. It also reveals withdrawals that no intent owns (a leaked key shows
itself so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.ids import intent_id_from_order_id
from treasury.domain.intent import Intent
from treasury.domain.money import format_amount
from treasury.domain.settle import is_known, settled_status
from treasury.domain.status import Status
from treasury.ports.exchange import ExchangeError
from treasury.ports.store import Change, ConcurrentChange
from treasury.services import truth
from treasury.services.context import WorkerConfig, WorkerContext

log = structlog.get_logger("treasury.settle")
PAGE = 1000
MAX_PAGES = 10
# History is searched from a little before the oldest signed timestamp: the exchange's
# applyTime can precede our server-time estimate by the clock error (bounded by recvWindow).
LOOKBACK_MS = 15_000
SCAN_WHEN_IDLE_MS = 60 * 60 * 1000  # with nothing in flight, still watch the last hour


def min_poll_gap_s(cfg: WorkerConfig) -> float:
    """The shortest gap between history polls: a poll (one request unless it pages) may
    start at most at a fifth of history's per-second limit, which leaves the rest to
    reconciliation's lookups; a poll that pages waits in the client's limiter. It does not
    depend on the sending rate."""
    return 1.0 / (cfg.history_per_second * 0.2)


def poll_interval_s(cfg: WorkerConfig, *, youngest_age_s: float | None) -> float:
    """Seconds until the next history poll: fast while withdrawals are young, slower as
    they age, and never under ``min_poll_gap_s``."""
    floor = min_poll_gap_s(cfg)
    wanted = cfg.poll_interval_s
    if youngest_age_s is None:
        wanted = max(wanted * 12, 60.0)  # idle: only the unexpected-withdrawal watch
    elif youngest_age_s > 120:
        wanted = min(max(wanted * 4, wanted), 60.0)  # all old: slower
    return max(wanted, floor)


@dataclass
class SettleStats:
    history_calls: int = 0
    settled: int = 0
    foreign_seen: set[str] = field(default_factory=set)


async def poll_once(ctx: WorkerContext, stats: SettleStats) -> float | None:
    """One poll. Returns the age in seconds of the youngest withdrawal in flight."""
    cfg = ctx.config
    repo = ctx.ledger.intents
    in_flight = await repo.in_status(Status.SUBMITTED, account=cfg.account, limit=20_000)
    now_ms = ctx.exchange.now_ms()
    sent_ms = [_sent_ms(i) for i in in_flight]
    start = (min(sent_ms) if sent_ms else now_ms - SCAN_WHEN_IDLE_MS) - LOOKBACK_MS
    start = max(start, now_ms - 89 * 24 * 3600 * 1000)
    records: list[WithdrawalRecord] = []
    try:
        for page in range(MAX_PAGES):
            rows = await ctx.exchange.withdraw_history(
                start_time_ms=start, end_time_ms=now_ms, offset=page * PAGE, limit=PAGE
            )
            stats.history_calls += 1
            records.extend(rows)
            if len(rows) < PAGE:
                break
    except (ExchangeError, ValueError) as exc:
        log.warning("settle.poll_failed", error=str(exc))
        # Silence must not last: the age limit is judged even when history cannot be read
        await _judge_ages(ctx, in_flight, now_ms, f"history unreadable: {exc}")
        return _youngest_age(sent_ms, now_ms)
    by_id = {r.id: r for r in records}
    by_oid = {r.withdraw_order_id: r for r in records if r.withdraw_order_id}
    changes: list[Change] = []
    for intent in in_flight:
        record = by_id.get(intent.exchange_withdraw_id or "") or by_oid.get(
            intent.withdraw_order_id or ""
        )
        change = _settlement(ctx.config, intent, record, now_ms)
        if change is None:
            continue
        status, reason, fields = change
        if record is not None:
            fields = {**fields, "exchange_amount": record.amount, **_ids_learned(intent, record)}
        changes.append(
            Change(
                intent_id=intent.id,
                to=status,
                reason=reason,
                actor="worker",
                expect=(Status.SUBMITTED,),
                # decided on this read of the intent: it lands on this version or not at
                # all (a changed intent is looked at again by the next poll)
                expect_version=intent.version,
                fields=fields,
            )
        )
    # One transaction for the whole poll: settling many withdrawals costs one commit, not
    # one each, and two statements per withdrawal (its event, its row; no re-read).
    alerts: list[tuple[str, str, int]] = []
    results = await repo.transition_many(changes) if changes else []
    for done in results:
        if isinstance(done, ConcurrentChange):
            continue
        stats.settled += done.status.terminal
        log.info(
            "intent.settled",
            intent_id=done.id,
            status=done.status.value,
            withdraw_order_id=done.withdraw_order_id,
            reason=done.status_reason,
        )
        if done.status is not Status.COMPLETED:
            alerts.append((done.status.value, f"intent {done.id}: {done.status_reason}", done.id))
    for kind, message, intent_id in alerts:
        await ctx.alert(kind, message, intent_id)
    await _watch(ctx, records, stats)
    return _youngest_age(sent_ms, now_ms)


async def _judge_ages(ctx: WorkerContext, in_flight: list[Intent], now_ms: int, why: str) -> None:
    """Send the withdrawals older than the age limit to a person, without a record."""
    for intent in in_flight:
        age_s = (now_ms - _sent_ms(intent)) / 1000
        if age_s <= ctx.config.max_settle_age_s:
            continue
        reason = (
            f"not settled after {int(age_s)} s, and the exchange could not be asked "
            f"({why}): look up "
            f"{intent.exchange_withdraw_id or f'withdrawOrderId {intent.withdraw_order_id}'} "
            "on Binance"
        )
        try:
            await ctx.ledger.intents.transition(
                intent.id,
                Status.NEEDS_ATTENTION,
                reason=reason,
                actor="worker",
                expect=(Status.SUBMITTED,),
                expect_version=intent.version,
            )
        except ConcurrentChange:
            continue
        log.error("intent.needs_attention", intent_id=intent.id, reason=reason)
        await ctx.alert(Status.NEEDS_ATTENTION.value, f"intent {intent.id}: {reason}", intent.id)


def _ids_learned(intent: Intent, record: WithdrawalRecord) -> dict[str, object]:
    """The ids a local-entity send learns only from a history: the withdrawal's own id
    (its apply answered with a travel-rule record id) and that record id."""
    fields: dict[str, object] = {}
    if intent.exchange_withdraw_id is None and not record.id.startswith("tr:"):
        fields["exchange_withdraw_id"] = record.id
    if intent.exchange_tr_id is None and record.tr_id is not None:
        fields["exchange_tr_id"] = record.tr_id
    return fields


def _sent_ms(intent: Intent) -> int:
    if intent.send_timestamp_ms is not None:
        return intent.send_timestamp_ms
    return int((intent.submitted_at or intent.updated_at).timestamp() * 1000)


def _youngest_age(sent_ms: list[int], now_ms: int) -> float | None:
    return (now_ms - max(sent_ms)) / 1000 if sent_ms else None


def _settlement(
    cfg: WorkerConfig, intent: Intent, record: WithdrawalRecord | None, now_ms: int
) -> tuple[Status, str, dict[str, object]] | None:
    """What the exchange's record (or its absence, after too long) means for the intent."""
    if record is not None:
        if not is_known(record.status):
            log.warning("settle.unknown_status", intent_id=intent.id, status=record.status)
        settled = settled_status(record)
        if settled is not None:
            fields: dict[str, object] = {"fee": record.fee}
            if record.tx_id:
                fields["tx_id"] = record.tx_id
            return settled[0], settled[1], fields
    age_s = (now_ms - _sent_ms(intent)) / 1000
    if age_s > cfg.max_settle_age_s:
        where = "still pending" if record is not None else "not found in history"
        return Status.NEEDS_ATTENTION, f"not settled after {int(age_s)} s ({where})", {}
    return None


async def _watch(ctx: WorkerContext, records: list[WithdrawalRecord], stats: SettleStats) -> None:
    """Every record seen for the first time is judged: ours against the ledger (the rule
    in ``treasury.domain.truth``), anyone else's as an unexpected withdrawal."""
    unknown = [r for r in records if r.id not in stats.foreign_seen]
    # Remember only what is still in the window: older ids never come back.
    stats.foreign_seen = {r.id for r in records}
    if not unknown:
        return
    namespace = await ctx.ledger.intents.namespace()
    ours = [
        r
        for r in unknown
        if r.withdraw_order_id
        and intent_id_from_order_id(namespace, r.withdraw_order_id) is not None
    ]
    # judged once per process; the periodic sweep looks at every record again
    await truth.judge_records(ctx, ours, found_by="the settlement poll")
    for r in unknown:
        if r in ours:
            continue
        message = (
            f"unexpected withdrawal {r.id} on the exchange: {format_amount(r.amount)} {r.coin}"
            f" to {r.address} (withdrawOrderId {r.withdraw_order_id or 'none'}) — no intent "
            "owns it"
        )
        if not await ctx.ledger.events.record_once(
            "unexpected_withdrawal", r.id, message, actor="worker"
        ):
            continue  # alarmed before (e.g. by an earlier run)
        log.error(
            "alarm.unexpected_withdrawal",
            exchange_withdraw_id=r.id,
            coin=r.coin,
            amount=format_amount(r.amount),
            address=r.address,
        )
        await ctx.alert("unexpected_withdrawal", message, None)


__all__ = ["SettleStats", "poll_interval_s", "poll_once"]
