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
  check, and history may lag some seconds more. Only when the server clock is past
  ``timestamp + recvWindow + 10 s + margin`` does a lookup count, and only two such
  lookups, taken at least ``min_gap`` apart, prove absence: then — and only then —
  the intent may go back to ``queued`` and be sent again with the same id.
* Anything else (no usable timing data, the 7-day lookup window exceeded) goes to a
  person.
"""

from __future__ import annotations

from dataclasses import dataclass

from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.intent import Intent

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


def matches(intent: Intent, record: WithdrawalRecord) -> bool:
    return (
        record.coin == intent.coin
        and record.address == intent.address
        and (record.address_tag or None) == (intent.address_tag or None)
        and record.amount == intent.amount
        and (record.network is None or record.network == intent.network)
    )


def safe_after_ms(intent: Intent, margin_ms: int) -> int | None:
    if intent.send_timestamp_ms is None or intent.send_recv_window_ms is None:
        return None
    return intent.send_timestamp_ms + intent.send_recv_window_ms + PROCESSING_TIMEOUT_MS + margin_ms


def decide(
    intent: Intent,
    found: list[WithdrawalRecord],
    *,
    server_now_ms: int,
    margin_ms: int,
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
                f"the exchange's withdrawal {record.id} for {oid} does not match the intent "
                "(coin, network, address, tag or amount differ)"
            )
        return Adopt(record)
    deadline = safe_after_ms(intent, margin_ms)
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
