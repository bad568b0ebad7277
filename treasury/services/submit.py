"""Take one claimed intent from ``queued`` to ``submitted`` (or a reasoned stop).

Order matters and is the whole point: checks → commit ``submitting`` with the
``withdrawOrderId`` and the signed timestamp (durable) → only then the request →
record the answer. An answer that does not settle the outcome leaves the intent in
``submitting`` for the reconciler, which asks the exchange before anything is re-sent.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import structlog

from treasury.domain import approval_proof as proof
from treasury.domain import rules
from treasury.domain.decisions import Approve, Hold, Pass, Reject, Verdict
from treasury.domain.errors import InvalidField
from treasury.domain.exchange import WithdrawRequest
from treasury.domain.fee_payer import FeePayer, most_debited, parse_fee_payer
from treasury.domain.ids import next_free_order_id, withdraw_order_id
from treasury.domain.intent import Intent
from treasury.domain.money import format_amount
from treasury.domain.status import Status
from treasury.domain.travel_rule import Entity, canonical, entity_of_exchange_code, questionnaire_of
from treasury.domain.wallet import Wallet, parse_wallet
from treasury.ports.clock import utcnow
from treasury.ports.exchange import ExchangeError, NotSent, OutcomeUnknown, Rejected
from treasury.ports.store import ConcurrentChange, Ledger, StoreUnavailable
from treasury.services import truth
from treasury.services.address_book import Trust, entry_verdict
from treasury.services.checks import pre_send_verdict
from treasury.services.context import WorkerContext
from treasury.services.policy import PolicySnapshot

log = structlog.get_logger("treasury.worker")
SUBMITTED_WRITE_RETRIES_S = (0.2, 0.5, 1.0, 2.0, 4.0)  # ~8 s in all
TRAVEL_RULE_REQUIRED = -4104  # capital apply refused: the account is under a local entity


async def process(ctx: WorkerContext, intent: Intent) -> None:
    """Check, then send or stop with a reason. Never raises for an intent's own problems."""
    wallet = wallet_of(ctx, intent)
    payer = fee_payer_of(ctx)
    try:
        verdict = await pre_send_verdict(
            intent,
            ctx.view,
            ctx.ledger.whitelist,
            wallet=wallet,
            fee_payer=payer,
            trust=ctx.trust,
        )
        # the most the send can take from the wallet, counted against it once committed
        fee = rules.network_fee(intent, await ctx.view.rules())
    except ExchangeError as exc:
        await _hold(ctx, intent, f"cannot check with the exchange now: {exc}")
        return
    if isinstance(verdict, Reject):
        await _stop(ctx, intent, Status.REJECTED, verdict.reason)
        return
    if isinstance(verdict, Hold):
        await _hold(ctx, intent, verdict.reason, until_s=verdict.until_s)
        return
    await send(ctx, intent, debit=most_debited(intent.amount, fee, payer))


def wallet_of(ctx: WorkerContext, intent: Intent) -> Wallet:
    """The intent's own wallet, or its account's default (fixed when it commits to send)."""
    return intent.wallet or parse_wallet(ctx.config.wallet, "TREASURY_WALLET")


def fee_payer_of(ctx: WorkerContext) -> FeePayer:
    """Who pays an internal transfer's fee: the account's setting, sent with every send."""
    return parse_fee_payer(ctx.config.internal_fee_payer, "TREASURY_INTERNAL_FEE_PAYER")


async def send(ctx: WorkerContext, intent: Intent, *, debit: Decimal) -> None:
    """Commit, then send. ``debit``: the most the send can take from its wallet (the
    amount, plus the network fee when the sender pays an internal transfer's fee)."""
    cfg = ctx.config
    payer = fee_payer_of(ctx)
    hold = ctx.startup_hold
    if hold is not None and intent.send_count == 0 and intent.created_at < hold.created_before:
        # not the intent's own trouble: it does not count towards the maximum hold
        with contextlib.suppress(ConcurrentChange):
            await ctx.ledger.intents.hold(
                intent, reason=hold.reason, retry_at=hold.until, start_clock=False
            )
        return
    if intent.send_count > 0 and not await _absent_before_resend(ctx, intent):
        return
    try:
        entity = await _travel_rule_entity(ctx)
    except ExchangeError as exc:
        await _hold(ctx, intent, f"cannot ask the exchange for the account's local entity: {exc}")
        return
    order_id = intent.withdraw_order_id or withdraw_order_id(
        await ctx.ledger.intents.namespace(), intent.id
    )
    pacer = getattr(ctx.exchange, "apply_limiter", None)
    if pacer is not None:
        # Wait for the send slot *before* fixing the timestamp, so the signed timestamp
        # is fresh when the request leaves (a stale one would come back as -1021).
        await anyio.sleep(pacer.wait_s())
    timestamp_ms = ctx.exchange.now_ms()
    try:
        commitment = await commit(
            ctx.ledger,
            intent,
            worker=cfg.worker_id,
            order_id=order_id,
            timestamp_ms=timestamp_ms,
            recv_window_ms=cfg.apply_recv_window_ms,
            policy=await ctx.policy(),
            wallet=wallet_of(ctx, intent),
            fee_payer=payer,
            trust=ctx.trust,
            travel_rule=entity,
        )
    except SendRefused as refused:
        await _policy_refused(ctx, intent, refused)
        return
    except ConcurrentChange:
        return
    committed = commitment.intent
    order_id = committed.withdraw_order_id or order_id  # the commit may skip a burned id
    log.info(
        "send.committed",
        intent_id=intent.id,
        withdraw_order_id=order_id,
        timestamp_ms=timestamp_ms,
        internal_fee_payer=payer.value,
        **_what(committed),
    )
    request = WithdrawRequest(
        coin=intent.coin,
        network=intent.network,
        address=intent.address,
        address_tag=intent.address_tag,
        amount=intent.amount,
        withdraw_order_id=order_id,
        wallet=wallet_of(ctx, committed),
        fee_payer=payer,
        questionnaire=commitment.questionnaire,
    )
    ctx.in_flight.add(intent.id)
    # Counted against the cached balance until the next fetch shows the debit; should
    # the exchange lag behind, it refuses with -4026 and the intent is held, not lost.
    ctx.view.committed(request.wallet, intent.coin, debit)
    try:
        await _send_and_record(ctx, committed, request, timestamp_ms, debit)
    finally:
        ctx.in_flight.discard(intent.id)


async def _travel_rule_entity(ctx: WorkerContext) -> Entity | None:
    """The modelled entity whose questionnaire the account's sends carry, or None (no
    questionnaire: capital/withdraw/apply). The checks held an unmodelled entity back."""
    code = await ctx.view.travel_rule()
    return None if code is None else entity_of_exchange_code(code)


async def _absent_before_resend(ctx: WorkerContext, intent: Intent) -> bool:
    """One more look, by ``withdrawOrderId``, immediately before a re-send.

    Absence was proven before the intent went back to ``queued``; history may still have
    been late. Anything found is judged (adopted, or sent to a person) instead of sent.
    """
    oid = intent.withdraw_order_id
    if oid is None:
        return True
    try:
        found = await ctx.exchange.withdraw_history(withdraw_order_id=oid)
    except (ExchangeError, ValueError) as exc:
        await _hold(ctx, intent, f"cannot look {oid} up before sending it again: {exc}")
        return False
    mine = [r for r in found if r.withdraw_order_id == oid]
    if not mine:
        return True
    log.warning(
        "send.found_before_resend",
        intent_id=intent.id,
        withdraw_order_id=oid,
        exchange_withdraw_ids=[r.id for r in mine],
    )
    await truth.judge_records(ctx, mine, found_by="the look-up before a re-send")
    return False


async def _send_and_record(
    ctx: WorkerContext,
    intent: Intent,
    request: WithdrawRequest,
    timestamp_ms: int,
    debit: Decimal,
) -> None:
    repo = ctx.ledger.intents
    oid = request.withdraw_order_id
    try:
        accepted = await ctx.exchange.withdraw(request, timestamp_ms=timestamp_ms)
    except NotSent as exc:
        ctx.view.not_sent(request.wallet, request.coin, debit)
        retry = timedelta(seconds=max(exc.retry_after_s or 0.0, 1.0))
        await repo.transition(
            intent.id,
            Status.QUEUED,
            actor="worker",
            expect=(Status.SUBMITTING,),
            expect_version=intent.version,
            reason=f"not sent ({exc}); will try again",
            # held_since makes the maximum hold apply: a condition that never clears
            # (a permanent 429, a broken clock) ends in failed, not in retries forever
            fields={"not_before": utcnow() + retry, "held_since": intent.held_since or utcnow()},
        )
        log.warning("send.not_sent", intent_id=intent.id, withdraw_order_id=oid, error=str(exc))
        return
    except Rejected as exc:
        await _rejected_by_exchange(ctx, intent, exc, debit)
        return
    except OutcomeUnknown as exc:
        await repo.record_note(
            intent.id,
            actor="worker",
            kind="outcome_unknown",
            reason=f"outcome unknown ({exc}); reconciling with the exchange before any resend",
        )
        log.warning(
            "send.outcome_unknown", intent_id=intent.id, withdraw_order_id=oid, error=str(exc)
        )
        return
    except Exception as exc:  # anything else after the commit: the request may have left
        await repo.record_note(
            intent.id,
            actor="worker",
            kind="outcome_unknown",
            reason=f"unexpected error while sending ({type(exc).__name__}); reconciling "
            "before any resend",
        )
        log.exception("send.unexpected_error", intent_id=intent.id, withdraw_order_id=oid)
        return
    log.info(
        "send.accepted",
        intent_id=intent.id,
        withdraw_order_id=oid,
        exchange_withdraw_id=accepted.id,
        exchange_tr_id=accepted.tr_id,
        **_what(intent),
    )
    await _record_accepted(ctx, intent, accepted.id, tr_id=accepted.tr_id)


def _what(intent: Intent) -> dict[str, str | None]:
    """What leaves and where to, for the log line of a send (an operator reads it alone)."""
    return {
        "account": intent.account,
        "coin": intent.coin,
        "network": intent.network,
        "amount": format_amount(intent.amount),
        "address": intent.address,
        "address_tag": intent.address_tag,
        "wallet": intent.wallet,
    }


async def _record_accepted(
    ctx: WorkerContext, intent: Intent, exchange_id: str | None, *, tr_id: int | None = None
) -> None:
    """Write ``submitted`` with the exchange id, retrying a failing database for a while:
    while we still hold the id, a write is cheaper than a reconciliation. If it never
    lands, the intent stays ``submitting`` and reconciliation finds it by order id.
    A local-entity apply answers with the travel-rule record id (``tr_id``) and often no
    withdrawal id: the settlement poll finds the withdrawal by order id and fills it in."""
    delays = list(SUBMITTED_WRITE_RETRIES_S)
    if exchange_id is not None:
        said = f"accepted by the exchange as {exchange_id}"
    else:
        said = f"accepted by the exchange's local entity as travel-rule record {tr_id}"
    fields: dict[str, object] = {"exchange_withdraw_id": exchange_id}
    if tr_id is not None:
        fields["exchange_tr_id"] = tr_id
    while True:
        try:
            await ctx.ledger.intents.transition(
                intent.id,
                Status.SUBMITTED,
                actor="worker",
                expect=(Status.SUBMITTING,),
                expect_version=intent.version,
                reason=said,
                fields=fields,
            )
        except ConcurrentChange:
            # reconciliation (a sweep, `treasury reconcile --apply`) recorded it first
            log.info(
                "send.recorded_elsewhere", intent_id=intent.id, exchange_withdraw_id=exchange_id
            )
            return
        except StoreUnavailable as exc:
            if not delays:
                log.error(
                    "send.accepted_not_recorded",
                    intent_id=intent.id,
                    exchange_withdraw_id=exchange_id,
                    error=type(exc).__name__,
                )
                return
            log.warning(
                "send.record_retry",
                intent_id=intent.id,
                exchange_withdraw_id=exchange_id,
                error=type(exc).__name__,
            )
            await anyio.sleep(delays.pop(0))
            continue
        ctx.on_submitted()
        return


async def _rejected_by_exchange(
    ctx: WorkerContext, intent: Intent, exc: Rejected, debit: Decimal
) -> None:
    repo = ctx.ledger.intents
    ctx.view.not_sent(wallet_of(ctx, intent), intent.coin, debit)
    if exc.code is not None and -4023 <= exc.code <= -4018:
        ctx.view.rules_changed()
    if exc.code == TRAVEL_RULE_REQUIRED:
        # the account is (now) under a local entity: ask again, and send this intent
        # with its questionnaire, or refuse it for want of one, on the next round
        ctx.view.travel_rule_changed()
        exc = Rejected(
            str(exc), endpoint=exc.endpoint, reason=exc.reason, permanent=False, code=exc.code
        )
    if exc.permanent:
        await repo.transition(
            intent.id,
            Status.FAILED,
            actor="worker",
            expect=(Status.SUBMITTING,),
            expect_version=intent.version,
            reason=f"refused by the exchange for good: {exc}",
        )
        await ctx.alert("failed", f"intent {intent.id} refused by the exchange: {exc}", intent.id)
        log.error("send.rejected", intent_id=intent.id, code=exc.code, error=str(exc))
        return
    ctx.view.standing_changed()
    await repo.transition(
        intent.id,
        Status.QUEUED,
        actor="worker",
        expect=(Status.SUBMITTING,),
        expect_version=intent.version,
        reason=f"refused by the exchange for now: {exc}",
        fields={
            "not_before": utcnow() + timedelta(seconds=ctx.config.hold_backoff_s),
            "held_since": intent.held_since or utcnow(),
        },
    )
    log.warning("send.refused_for_now", intent_id=intent.id, code=exc.code, error=str(exc))


async def _policy_refused(ctx: WorkerContext, intent: Intent, refused: SendRefused) -> None:
    verdict = refused.verdict
    who = refused.source
    if isinstance(verdict, Reject):
        await _stop(ctx, intent, Status.REJECTED, f"{who}: {verdict.reason}")
    elif isinstance(verdict, Approve):
        await _stop(ctx, intent, Status.AWAITING_APPROVAL, f"{who}: {verdict.reason}")
    elif isinstance(verdict, Hold):
        await _hold(ctx, intent, f"{who}: {verdict.reason}")
    elif verdict is None or isinstance(verdict, Pass):
        await ctx.ledger.intents.release(intent)  # paused, lease lost or changed: let go
        log.info("send.not_committed", intent_id=intent.id, reason=refused.reason)


async def _stop(ctx: WorkerContext, intent: Intent, to: Status, reason: str) -> None:
    try:
        await ctx.ledger.intents.transition(
            intent.id, to, reason=reason, actor="worker", expect=(Status.QUEUED,)
        )
    except ConcurrentChange:
        return
    log.info("intent.stopped", intent_id=intent.id, status=to.value, reason=reason)


async def _hold(
    ctx: WorkerContext, intent: Intent, reason: str, until_s: float | None = None
) -> None:
    """Keep a queued intent back with a reason; held longer than ``max_hold_s``, it fails."""
    retry_at = utcnow() + timedelta(seconds=ctx.config.hold_backoff_s)
    if until_s is not None:
        retry_at = max(retry_at, datetime.fromtimestamp(until_s, UTC))
    held_for = (utcnow() - (intent.held_since or utcnow())).total_seconds()
    try:
        if held_for > ctx.config.max_hold_s:
            failed = await ctx.ledger.intents.transition(
                intent.id,
                Status.FAILED,
                actor="worker",
                expect=(Status.QUEUED,),
                reason=f"held for more than {int(ctx.config.max_hold_s)} s; last reason: {reason}",
            )
            await ctx.alert(
                "failed", f"intent {intent.id} failed: {failed.status_reason}", intent.id
            )
            log.info("intent.held", intent_id=intent.id, reason=reason, status="failed")
            return
        await ctx.ledger.intents.hold(intent, reason=reason, retry_at=retry_at)
    except ConcurrentChange:
        return
    log.info("intent.held", intent_id=intent.id, reason=reason, status="queued")


class SendRefused(Exception):
    """The commit did not happen; nothing will be sent.

    ``verdict`` is the policy's (or the address book's) word when they refused, else None
    (paused, lease lost, changed meanwhile: the worker simply lets go of the intent).
    """

    def __init__(
        self, reason: str, verdict: Verdict | None = None, *, source: str = "policy"
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.verdict = verdict
        self.source = source  # "policy" or "address book": who said no


@dataclass(frozen=True)
class Commitment:
    """What ``commit`` decided: the intent as committed and, for an account under a local
    entity, the questionnaire read in the same transaction (what the request carries)."""

    intent: Intent
    questionnaire: dict[str, Any] | None = field(default=None, repr=False)


async def commit_to_send(
    ledger: Ledger,
    intent: Intent,
    *,
    worker: str,
    order_id: str,
    timestamp_ms: int,
    recv_window_ms: int,
    policy: PolicySnapshot | None,
    wallet: Wallet,
    fee_payer: FeePayer,
    trust: Trust,
) -> Intent:
    """``commit`` for an account without the travel rule: the committed intent."""
    done = await commit(
        ledger,
        intent,
        worker=worker,
        order_id=order_id,
        timestamp_ms=timestamp_ms,
        recv_window_ms=recv_window_ms,
        policy=policy,
        wallet=wallet,
        fee_payer=fee_payer,
        trust=trust,
    )
    return done.intent


async def commit(
    ledger: Ledger,
    intent: Intent,
    *,
    worker: str,
    order_id: str,
    timestamp_ms: int,
    recv_window_ms: int,
    policy: PolicySnapshot | None,
    wallet: Wallet,
    fee_payer: FeePayer,
    trust: Trust,
    travel_rule: Entity | None = None,
) -> Commitment:
    """The point of no return: in ONE unit of work, every reason not to send is read and
    the intent moves to ``submitting`` with its ``withdrawOrderId`` and the timestamp
    that will be signed. Only after this returns may the request leave.

    In order: the kill switch and the account's pause, the sender lease (a fence: a
    process whose lease ran out cannot commit), the intent's status and version, an order
    id the exchange has not seen, the address book again (an entry disabled since the
    checks ran stops this send, and so does one still cooling or still waiting for its
    second-person approvals: ``trust`` says when an entry may be used), and the policy's
    caps against what is already committed (commits of one account are serialised, so a
    burst cannot exceed a cap together). ``policy`` is the snapshot of one version: the
    commit's event names it, and its ``address_book_approvals_required`` applies.
    The wallet to debit is written with them: an intent that named none takes ``wallet``
    (its account's default), and the request sends exactly what the row says. Who pays an
    internal transfer's fee (``fee_payer``, sent as ``transactionFeeFlag``) is an account
    setting, not a column: the audit event of the commit names it. Under a local entity
    (``travel_rule``), the questionnaire is built from the entry read here and the
    intent's own, and checked against the entity's form; the event names its sha256,
    never a word of it.

    Raises:
        SendRefused: nothing was written; ``verdict`` says why when it is a decision.
    """
    async with ledger.units.open(intent.id, serialize_account=intent.account) as unit:
        refusal = await unit.send_refusal(worker)
        if refusal is not None:
            raise SendRefused(refusal)
        current = unit.intent
        if current.status is not Status.QUEUED or current.version != intent.version:
            raise SendRefused(f"intent changed meanwhile ({current.status.value})")
        if current.withdraw_order_id not in (None, order_id):
            raise SendRefused("withdraw_order_id differs from the one on record")
        if current.wallet not in (None, wallet):
            raise SendRefused(f"the intent's wallet is {current.wallet}, not {wallet}")
        if current.withdraw_order_id is None:
            # an id the exchange has already seen for another withdrawal (a restored
            # ledger handed the intent id out again) is never sent: take the next free one
            order_id = next_free_order_id(order_id, await unit.burned_order_ids())
        now = utcnow()
        book_approvals = 0 if policy is None else policy.address_book_approvals_required
        entry = await unit.address_book_entry()  # read once: the verdict and the questionnaire
        verdict = await entry_verdict(
            unit, trust, current, entry, now, approvals_required=book_approvals
        )
        if not isinstance(verdict, Pass):
            raise SendRefused(
                getattr(verdict, "reason", "address book"), verdict, source="address book"
            )
        questionnaire, answered = None, ""
        if travel_rule is not None:
            try:
                questionnaire = questionnaire_of(
                    travel_rule,
                    None if entry is None else entry.travel_rule_profile,
                    current.questionnaire,
                )
            except InvalidField as exc:
                reason = f"({travel_rule.value} questionnaire) {exc}"
                raise SendRefused(reason, Reject(reason), source="travel rule") from None
            digest = hashlib.sha256(canonical(questionnaire).encode("utf-8")).hexdigest()
            answered = f"; travel-rule questionnaire {travel_rule.value} sha256:{digest}"
        if policy is not None:
            coin_used, dest_used = await unit.usage_24h(now)
            approvals = 0
            if policy.approvals_needed(current):
                # only approvals that prove who approved this intent as it stands now count
                keys = await unit.operator_keys()
                passkeys = await unit.passkeys() if keys is not None else None
                counted = proof.count(current, await unit.approvals(), keys, passkeys)
                approvals = len(counted.valid)
            verdict = policy.decide(current, coin_used, dest_used, approvals)
            if not isinstance(verdict, Pass):
                raise SendRefused(getattr(verdict, "reason", "policy"), verdict)
        under = "no policy" if policy is None else policy.label
        committed = await unit.transition(
            Status.SUBMITTING,
            actor="worker",
            reason=(
                f"committed to send as {order_id} (signed timestamp {timestamp_ms}; "
                f"wallet {wallet}; an internal transfer's fee {fee_payer.described}; "
                f"{under}{answered})"
            ),
            fields={
                "withdraw_order_id": order_id,
                "wallet": wallet,
                "send_timestamp_ms": timestamp_ms,
                "send_recv_window_ms": recv_window_ms,
                "send_count": current.send_count + 1,
                "absent_checks": 0,
                "last_checked_at": None,
                "submitted_at": now,
            },
        )
    return Commitment(committed, questionnaire)
