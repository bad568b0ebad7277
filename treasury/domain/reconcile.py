"""What to conclude when a send's outcome is unknown: the reconciliation rule.

Binance documents no deduplication of ``withdrawOrderId``: sending again may create a
second withdrawal. So after a timeout, a 5xx, a dropped connection or a crash while
``submitting``, we look the client id up in ``withdraw/history`` and decide:

* Exactly one record that matches the intent (coin, address, tag, amount): it was
  accepted — adopt it.
* A record that does not match, or more than one: something is wrong that software
  must not paper over — ``needs_attention``.
* No record: absence proves nothing until no copy of the request can still be
  accepted *and* an accepted one would be visible. The signed ``timestamp`` was stored
  before the request left; the exchange refuses a request once its clock passes
  ``timestamp + recvWindow``, may take up to its 10 s processing timeout after that
  check, and history may show it later still — Binance documents no bound on that lag.
  Only when the server clock is past ``timestamp + recvWindow + 10 s + lag allowance``
  (``TREASURY_HISTORY_LAG_ALLOWANCE_S``: minutes, not seconds) does a lookup count, and
  only two such lookups, taken at least ``min_gap`` apart, prove absence. Then — and only
  then — the intent may go back to ``queued`` (or to a person, with ``TREASURY_RESEND=
  manual``); the worker looks the id up once more immediately before the re-send.
* Anything else (no usable timing data, the 7-day lookup window exceeded) goes to a
  person.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.intent import Intent
from treasury.domain.money import format_amount

PROCESSING_TIMEOUT_MS = 10_000  # Binance's documented backend processing timeout
REQUIRED_ABSENT_CHECKS = 2
LOOKUP_WINDOW_MS = 7 * 24 * 3600 * 1000 - 3600 * 1000  # under the 7-day limit, with room


@dataclass(frozen=True)
class Adopt:
    record: WithdrawalRecord


@dataclass(frozen=True)
class Attention:
    reason: str


@dataclass(frozen=True)
class Wait:
    reason: str
    retry_at_ms: int


@dataclass(frozen=True)
class CountAbsence:
    """An absence that counts; not yet enough of them."""

    reason: str


@dataclass(frozen=True)
class ProvenAbsent:
    reason: str


ReconcileDecision = Adopt | Attention | Wait | CountAbsence | ProvenAbsent


def amount_matches(requested: Decimal, record: WithdrawalRecord) -> bool:
    """Does the record's amount stand for ``requested``?

    Binance documents neither form: its history ``amount`` is most likely *net* of
    ``transactionFee`` (recipients get the requested amount minus the fee, and tax tools
    book a row's balance change as ``amount + transactionFee``), but the gross form is
    possible too. Both are accepted, exactly; nothing in between.

    Internal transfers (``transferType`` 1) fit the same two forms: when the recipient
    pays the fee (``transactionFeeFlag`` true) the recipient gets ``requested - fee``, so a
    net row shows ``amount + fee == requested``; when the sender pays (false) the
    recipient gets all of ``requested`` and the fee is charged on top, so the row shows
    ``amount == requested``. A row showing ``amount == requested + fee`` (the sender's
    whole debit as the amount) fits no reading of Binance's data (a tax tool would book
    it as ``requested + 2 * fee``) and is *not* accepted: such a record goes to a person
    rather than being adopted silently. Only the judgement of whether a record is this
    intent's withdrawal depends on this; nothing is sent either way.
    """
    return record.amount == requested or record.amount + record.fee == requested


def wallet_matches(intent: Intent, record: WithdrawalRecord) -> bool:
    """The record's ``walletType`` against the intent's wallet, where both are known."""
    if intent.wallet is None or record.wallet_type is None:
        return True
    return record.wallet_type == intent.wallet.wallet_type


def matches(intent: Intent, record: WithdrawalRecord) -> bool:
    return (
        record.coin == intent.coin
        and record.address == intent.address
        and (record.address_tag or None) == (intent.address_tag or None)
        and amount_matches(intent.amount, record)
        and (record.network is None or record.network == intent.network)
        and wallet_matches(intent, record)
    )


def mismatch(intent: Intent, record: WithdrawalRecord) -> str:
    """Which fields of the record differ from the intent, both sides named."""
    diffs = []
    if record.coin != intent.coin:
        diffs.append(f"coin {record.coin} vs {intent.coin}")
    if record.network is not None and record.network != intent.network:
        diffs.append(f"network {record.network} vs {intent.network}")
    if record.address != intent.address:
        diffs.append(f"address {record.address} vs {intent.address}")
    if (record.address_tag or None) != (intent.address_tag or None):
        diffs.append(f"tag {record.address_tag or '-'} vs {intent.address_tag or '-'}")
    if not amount_matches(intent.amount, record):
        diffs.append(
            f"amount {format_amount(record.amount)} + fee {format_amount(record.fee)} vs "
            f"{format_amount(intent.amount)} requested"
        )
    if not wallet_matches(intent, record):
        debited = {0: "spot", 1: "funding"}.get(record.wallet_type or 0, str(record.wallet_type))
        diffs.append(f"wallet {debited} (walletType {record.wallet_type}) vs {intent.wallet}")
    return "; ".join(diffs) or "no difference"


def safe_after_ms(intent: Intent, lag_allowance_ms: int) -> int | None:
    if intent.send_timestamp_ms is None or intent.send_recv_window_ms is None:
        return None
    return (
        intent.send_timestamp_ms
        + intent.send_recv_window_ms
        + PROCESSING_TIMEOUT_MS
        + lag_allowance_ms
    )


def decide(
    intent: Intent,
    found: list[WithdrawalRecord],
    *,
    server_now_ms: int,
    lag_allowance_ms: int,
    last_absent_check_ms: int | None,
    min_gap_ms: int,
) -> ReconcileDecision:
    """Decide what a history lookup by ``withdrawOrderId`` means for ``intent``."""
    oid = intent.withdraw_order_id
    mine = [r for r in found if r.withdraw_order_id == oid]
    if len(mine) > 1:
        ids = ", ".join(r.id for r in mine)
        return Attention(f"the exchange shows {len(mine)} withdrawals for {oid} ({ids})")
    if len(mine) == 1:
        record = mine[0]
        if not matches(intent, record):
            return Attention(
                f"the exchange's withdrawal {record.id} for {oid} does not match the intent: "
                + mismatch(intent, record)
            )
        return Adopt(record)
    deadline = safe_after_ms(intent, lag_allowance_ms)
    if deadline is None:
        return Attention(f"no signed timestamp recorded for {oid}: cannot prove it was not sent")
    if intent.send_timestamp_ms is not None and server_now_ms - intent.send_timestamp_ms > (
        LOOKUP_WINDOW_MS
    ):
        return Attention(f"{oid} is older than the exchange's 7-day lookup window")
    if server_now_ms < deadline:
        return Wait(f"not in history yet; absence counts only after {deadline}", deadline)
    if last_absent_check_ms is not None and server_now_ms - last_absent_check_ms < min_gap_ms:
        return Wait("waiting before the next absence check", last_absent_check_ms + min_gap_ms)
    if intent.absent_checks + 1 >= REQUIRED_ABSENT_CHECKS:
        return ProvenAbsent(
            f"{oid} absent from history in {intent.absent_checks + 1} lookups after the "
            "request could no longer be accepted: it was not sent"
        )
    return CountAbsence(f"{oid} absent from history (lookup {intent.absent_checks + 1})")
