"""One withdrawal: its fate is decided at acceptance, its status is read off the clock.

Nothing ticks in the background. When a withdrawal is accepted, a seeded RNG (seed and
sequence number, so a restart or a second run gives the same answers) fixes its id, when
it settles, how (6 completed, 5 failure, 3 rejected) and its txId. ``status(now)`` is
then a comparison, which makes thousands of withdrawals cheap, keeps the sandbox
deterministic, and lets a test jump to the end with a manual clock. The whole decision is
written to the journal, so replay never needs the RNG.

Fees: as on Binance, the fee comes out of the amount. The balance is debited by
``amount`` (the requested, gross amount, which is also what the journal and the admin
ledger hold); ``transactionFee`` is the network fee at acceptance; the recipient gets
``amount - fee``. A failed or rejected withdrawal gives ``amount`` back. Binance's
``withdraw/history`` most likely reports that *net* amount (tax tools book a row as
``amount + transactionFee``), so the history item does by default; ``gross=True`` (the
``history_amount`` setting) shows the requested amount instead.

Internal transfers (``transferType`` 1: the destination is a Binance account's deposit
address): no chain, so no confirmations (``confirmNo`` 0) and a ``txId`` of Binance's own
form, "Off-chain transfer <digits>"; they are final at acceptance (status 6 at once,
unless the seeded fate or a review says otherwise). The fee is the network's internal
fee, and ``transactionFeeFlag`` says who pays it: false (Binance's default) debits the
sender ``amount + fee`` and the recipient gets ``amount``; true debits ``amount`` and the
recipient gets ``amount - fee``. History's net ``amount`` is what the recipient gets, so a
sender-pays transfer shows the whole requested amount either way. A recipient that is a
sandbox account is credited when the transfer completes, in the wallet journaled with it.

Reviews (the ``review`` fault): a withdrawal may first sit in status 0 (email sent) or 2
(awaiting approval) until ``review_until_ms``, then either go on as decided (processing,
then its fate, the settle time pushed back by the hold) or end cancelled (1) at that
moment, refunded like a failure. The review is part of the journaled record, like the
rest of the fate, so a replay needs no fault. The funds stay debited during the review,
as Binance holds them: the client never sees them as spendable twice.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from treasury.domain.money import format_amount
from treasury.sandbox.config import EVM_NETWORKS, Timings

EMAIL_SENT, CANCELLED, AWAITING_APPROVAL = 0, 1, 2
PROCESSING, REJECTED, FAILURE, COMPLETED = 4, 3, 5, 6
REVIEW_STATUSES = (EMAIL_SENT, AWAITING_APPROVAL)
FAILURE_INFO = "The withdrawal failed on the network; the amount was returned to your balance."
REJECTION_INFO = "Your withdrawal was rejected by risk control; the amount was returned."
CANCEL_INFO = "The withdrawal was cancelled; the amount was returned to your balance."
STATUS_INFO = {FAILURE: FAILURE_INFO, REJECTED: REJECTION_INFO, CANCELLED: CANCEL_INFO}
TRAVEL_RULE_FAILED_INFO = (
    "The travel rule check failed; the withdrawal was cancelled and the amount returned."
)
TR_COMPLETED, TR_PENDING, TR_FAILED = 0, 1, 2  # travelRuleStatus
OFF_CHAIN_PREFIX = "Off-chain transfer "  # Binance's txId prefix since 2024-05-28
EXTERNAL, INTERNAL = 0, 1  # transferType


@dataclass(frozen=True, kw_only=True)
class Fate:
    id: str
    settle_after_ms: int
    final_status: int
    info: str
    tx_id: str


def decide_fate(
    seed: int | None, seq: int, network: str, timings: Timings, *, internal: bool = False
) -> Fate:
    """The id and outcome of the ``seq``-th withdrawal, reproducible for a given seed.

    An internal transfer draws the same numbers (so the fates of the withdrawals after it
    do not change), settles at once and gets an off-chain txId."""
    rng = random.Random(f"{seed}:{seq}" if seed is not None else os.urandom(16))
    wid = f"{rng.getrandbits(128):032x}"
    spread = rng.uniform(-timings.processing_jitter_s, timings.processing_jitter_s)
    delay = max(0, round((timings.processing_s + spread) * 1000))
    draw = rng.random()
    if draw < timings.failure_share:
        status, info = FAILURE, FAILURE_INFO
    elif draw < timings.failure_share + timings.rejection_share:
        status, info = REJECTED, REJECTION_INFO
    else:
        status, info = COMPLETED, ""
    tx_hash = hashlib.sha256(f"{wid}:{rng.getrandbits(64)}".encode()).hexdigest()
    tx_id = "0x" + tx_hash if network in EVM_NETWORKS else tx_hash  # shown once completed
    if internal:
        delay, tx_id = 0, f"{OFF_CHAIN_PREFIX}{int(tx_hash[:15], 16)}"
    return Fate(id=wid, settle_after_ms=delay, final_status=status, info=info, tx_id=tx_id)


@dataclass(frozen=True, kw_only=True)
class Withdrawal:
    seq: int
    id: str
    source: str  # "api" or "foreign"
    account: str
    coin: str
    network: str
    address: str
    address_tag: str | None
    amount: Decimal
    fee: Decimal
    withdraw_order_id: str | None
    name: str | None
    wallet_type: int
    applied_at_ms: int
    visible_at_ms: int  # hidden from history before this (the history_lag_s fault)
    settle_at_ms: int
    final_status: int
    info: str
    tx_id: str
    confirm_no: int
    review_status: int | None = None  # 0 or 2 until review_until_ms (the review fault)
    review_until_ms: int | None = None
    transfer_type: int = EXTERNAL  # INTERNAL: to a Binance account's deposit address
    fee_to_recipient: bool = False  # transactionFeeFlag as sent (matters when internal)
    recipient: str | None = None  # the sandbox account an internal transfer credits
    recipient_wallet_type: int | None = None  # ... and which of its wallets
    # travel rule: set for withdrawals made through localentity/withdraw/apply only
    tr_id: int | None = None
    questionnaire: str | None = None  # as received; the local-entity history echoes it
    tr_until_ms: int | None = None  # the travel-rule check is pending until then
    tr_fails: bool = False  # ... and then fails (the withdrawal is cancelled, refunded)
    only_in: str | None = None  # "capital" / "localentity": the one history it shows in

    @property
    def internal(self) -> bool:
        return self.transfer_type == INTERNAL

    @property
    def sender_pays_fee_on_top(self) -> bool:
        return self.internal and not self.fee_to_recipient

    @property
    def debited(self) -> Decimal:
        """What left the sender's wallet (and comes back if it fails): the amount, plus the
        fee for an internal transfer whose sender pays it."""
        return self.amount + self.fee if self.sender_pays_fee_on_top else self.amount

    def status(self, now_ms: int) -> int:
        review, until = self.review_status, self.review_until_ms
        if review is not None and until is not None and now_ms < until:
            return review
        return self.final_status if now_ms >= self.settle_at_ms else PROCESSING

    def pending(self, now_ms: int) -> bool:
        """Not final yet (in review or processing): its amount is still "withdrawing"."""
        return now_ms < self.settle_at_ms

    def refunded(self, now_ms: int) -> bool:
        return self.final_status != COMPLETED and now_ms >= self.settle_at_ms

    def under_review(self, status: int, hold_ms: int, *, cancel: bool) -> Withdrawal:
        """This withdrawal held in ``status`` for ``hold_ms`` after it was applied, then
        processed as already decided (``settle_at_ms`` pushed back by the hold), or, with
        ``cancel``, cancelled (1) and refunded when the hold ends."""
        until = self.applied_at_ms + hold_ms
        if cancel:
            return replace(
                self,
                review_status=status,
                review_until_ms=until,
                settle_at_ms=until,
                final_status=CANCELLED,
                info=CANCEL_INFO,
            )
        return replace(
            self,
            review_status=status,
            review_until_ms=until,
            settle_at_ms=self.settle_at_ms + hold_ms,
        )

    def travel_rule_status(self, now_ms: int) -> int:
        """0 completed, 1 pending, 2 failed; the withdrawal proceeds only after 0."""
        if self.tr_until_ms is not None and now_ms < self.tr_until_ms:
            return TR_PENDING
        return TR_FAILED if self.tr_fails else TR_COMPLETED

    def travel_rule_check(self, hold_ms: int, *, fail: bool) -> Withdrawal:
        """Hold this (local-entity) withdrawal in travel-rule review for ``hold_ms``: its
        status is 2 (awaiting approval) meanwhile; then it proceeds as already decided, or,
        with ``fail``, is cancelled (1) and refunded as Binance must not complete it."""
        held = self.under_review(AWAITING_APPROVAL, hold_ms, cancel=fail)
        if fail:
            held = replace(held, info=TRAVEL_RULE_FAILED_INFO)
        return replace(held, tr_until_ms=self.applied_at_ms + hold_ms, tr_fails=fail)

    def local_history_item(self, now_ms: int, *, gross: bool) -> dict[str, object]:
        """The item as the local-entity history shows it: the capital item's fields with
        ``withdrawalStatus`` for ``status``, plus ``trId``, ``travelRuleStatus`` and the
        questionnaire; ``addressTag`` is not part of it (removed from both versions)."""
        item = self.history_item(now_ms, gross=gross)
        item["withdrawalStatus"] = item.pop("status")
        item.pop("addressTag", None)
        item["trId"] = self.tr_id
        item["travelRuleStatus"] = self.travel_rule_status(now_ms)
        item["questionnaire"] = self.questionnaire
        return item

    @property
    def net_amount(self) -> Decimal:
        """What the recipient gets: the requested amount minus the fee, or all of it for an
        internal transfer whose sender pays the fee."""
        return self.amount if self.sender_pays_fee_on_top else self.amount - self.fee

    def history_item(self, now_ms: int, *, gross: bool) -> dict[str, object]:
        """The item exactly as ``withdraw/history`` shows it (``amount`` net unless ``gross``)."""
        status = self.status(now_ms)
        item: dict[str, object] = {
            "id": self.id,
            "amount": format_amount(self.amount if gross else self.net_amount),
            "transactionFee": format_amount(self.fee),
            "coin": self.coin,
            "status": status,
            "address": self.address,
            "addressTag": self.address_tag or "",
            "txId": self.tx_id if status == COMPLETED else "",
            "applyTime": _utc(self.applied_at_ms),
            "network": self.network,
            "transferType": self.transfer_type,
            "info": self.info if status in STATUS_INFO else "",
            "confirmNo": self.confirm_no if status == COMPLETED and not self.internal else 0,
            "walletType": self.wallet_type,
            "txKey": "",
        }
        if self.withdraw_order_id is not None:
            item["withdrawOrderId"] = self.withdraw_order_id
        if status == COMPLETED:
            item["completeTime"] = _utc(self.settle_at_ms)
        return item

    def to_record(self) -> dict[str, Any]:
        return {
            "type": "withdrawal",
            "seq": self.seq,
            "id": self.id,
            "source": self.source,
            "account": self.account,
            "coin": self.coin,
            "network": self.network,
            "address": self.address,
            "addressTag": self.address_tag,
            "amount": format_amount(self.amount),
            "fee": format_amount(self.fee),
            "withdrawOrderId": self.withdraw_order_id,
            "name": self.name,
            "walletType": self.wallet_type,
            "applied_at": self.applied_at_ms,
            "visible_at": self.visible_at_ms,
            "settle_at": self.settle_at_ms,
            "final_status": self.final_status,
            "info": self.info,
            "txId": self.tx_id,
            "confirmNo": self.confirm_no,
            "review_status": self.review_status,
            "review_until": self.review_until_ms,
            "transferType": self.transfer_type,
            "transactionFeeFlag": self.fee_to_recipient,
            "recipient": self.recipient,
            "recipientWalletType": self.recipient_wallet_type,
            "trId": self.tr_id,
            "questionnaire": self.questionnaire,
            "tr_until": self.tr_until_ms,
            "tr_fails": self.tr_fails,
            "only_in": self.only_in,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Withdrawal:
        return cls(
            seq=r["seq"],
            id=r["id"],
            source=r["source"],
            account=r["account"],
            coin=r["coin"],
            network=r["network"],
            address=r["address"],
            address_tag=r["addressTag"],
            amount=Decimal(r["amount"]),
            fee=Decimal(r["fee"]),
            withdraw_order_id=r["withdrawOrderId"],
            name=r["name"],
            wallet_type=r["walletType"],
            applied_at_ms=r["applied_at"],
            visible_at_ms=r["visible_at"],
            settle_at_ms=r["settle_at"],
            final_status=r["final_status"],
            info=r["info"],
            tx_id=r["txId"],
            confirm_no=r["confirmNo"],
            review_status=r.get("review_status"),  # absent in journals older than reviews
            review_until_ms=r.get("review_until"),
            # absent in journals older than internal transfers: on chain, as they were
            transfer_type=r.get("transferType", EXTERNAL),
            fee_to_recipient=r.get("transactionFeeFlag", False),
            recipient=r.get("recipient"),
            recipient_wallet_type=r.get("recipientWalletType"),
            # absent in journals older than the travel rule: capital withdrawals
            tr_id=r.get("trId"),
            questionnaire=r.get("questionnaire"),
            tr_until_ms=r.get("tr_until"),
            tr_fails=r.get("tr_fails", False),
            only_in=r.get("only_in"),
        )


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
