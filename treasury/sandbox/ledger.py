"""The sandbox's ground truth: an append-only JSON Lines journal, and a pure reader of it.

Torture tests SIGKILL the daemon and then ask "was any intent withdrawn twice?"; only the
exchange side can answer, so every ``withdraw/apply`` request (accepted or not), every
withdrawal (from the API or injected), and every rule/balance/whitelist change is one
line here, written (and by default fsynced) *before* the HTTP answer leaves. One record
per line and one ``write`` per request keeps it O(1) per request; a line cut short by a
crash is ignored on read and cut off before the next append. On start the exchange state
is rebuilt by replaying these records over the config (:mod:`treasury.sandbox.state`).

Record types (``"type"``): ``start``, ``apply``, ``withdrawal``, ``account``, ``network``,
``whitelist``, ``clock``. Amounts are decimal strings; read them with
``parse_float=Decimal`` (done here).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

Record = dict[str, Any]


class JournalInUse(RuntimeError):
    """Another sandbox process already holds this state file."""


class Journal:
    """Appends records to a file (if any) and keeps them in memory for ``/_sandbox/ledger``."""

    def __init__(self, path: str | Path | None = None, *, fsync: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.fsync = fsync
        self.records: list[Record] = []
        self._file: IO[bytes] | None = None
        if self.path is not None:
            self._open(self.path)

    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(path, "a+b")  # noqa: SIM115 - held open for the journal's lifetime
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise JournalInUse(f"{path} is in use by another sandbox") from None
        file.seek(0)
        data = file.read()
        complete = data.rfind(b"\n") + 1
        if complete != len(data):  # a torn last line from a crash: drop it
            file.truncate(complete)
        self.records = parse_lines(data[:complete])
        self._file = file

    def append(self, *records: Record) -> None:
        """Write records as one append (and fsync), then keep them in memory."""
        if self._file is not None:
            data = b"".join(
                json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                for r in records
            )
            self._file.write(data)
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
        self.records.extend(records)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def parse_lines(data: bytes) -> list[Record]:
    records: list[Record] = []
    for line in data.splitlines():
        if line.strip():
            records.append(json.loads(line, parse_float=Decimal))
    return records


def read_records(path: str | Path) -> list[Record]:
    """All complete records of a journal file (a torn last line is skipped)."""
    data = Path(path).read_bytes()
    return parse_lines(data[: data.rfind(b"\n") + 1])


@dataclass(frozen=True, kw_only=True)
class LedgerWithdrawal:
    id: str
    account: str
    withdraw_order_id: str | None
    coin: str
    network: str
    address: str
    address_tag: str | None
    amount: Decimal
    fee: Decimal
    name: str | None  # the `name` param, which the project's client must never send
    source: str  # "api" or "foreign"
    applied_at: datetime
    applied_at_ms: int
    final_status: int  # 6 completed, 5 failure, 3 rejected, 1 cancelled (at settle_at_ms)
    settle_at_ms: int
    visible_at_ms: int  # first shown by withdraw/history (the history_lag_s fault)
    wallet_type: int = 0  # the wallet debited (and refunded): 0 spot, 1 funding
    review_status: int | None = None  # 0 or 2 until review_until_ms (the review fault)
    review_until_ms: int | None = None
    transfer_type: int = 0  # 1: an internal transfer to a Binance account's deposit address
    fee_to_recipient: bool = False  # transactionFeeFlag as sent (matters when internal)
    recipient: str | None = None  # the sandbox account an internal transfer credits
    recipient_wallet_type: int | None = None
    tr_id: int | None = None  # set for a localentity/withdraw/apply withdrawal
    tr_fails: bool = False  # the travel_rule fault failed its travel-rule check
    only_in: str | None = None  # the history_only_in fault: the one history it shows in

    @property
    def debited(self) -> Decimal:
        """What the sender's wallet lost: ``amount``, plus ``fee`` for an internal transfer
        whose sender pays it (``transactionFeeFlag`` false)."""
        on_top = self.transfer_type == 1 and not self.fee_to_recipient
        return self.amount + self.fee if on_top else self.amount

    @property
    def received(self) -> Decimal:
        """What the destination gets once it completes."""
        return self.debited - self.fee


@dataclass(frozen=True, kw_only=True)
class ApplyRequest:
    at_ms: int
    account: str | None
    params: dict[str, str]  # as received, minus the signature
    withdrawal_id: str | None  # set when accepted
    error_code: int | None  # set when refused
    http_status: int | None  # what was answered; None when the connection was dropped
    fault: str | None  # the injected fault that shaped the answer, if any
    endpoint: str = "capital"  # or "localentity" (localentity/withdraw/apply)
    refused: str | None = None  # a refused questionnaire: the info answered

    @property
    def accepted(self) -> bool:
        return self.withdrawal_id is not None


@dataclass(frozen=True)
class Ledger:
    withdrawals: list[LedgerWithdrawal]
    apply_requests: list[ApplyRequest]
    records: list[Record]

    def withdrawals_for(self, withdraw_order_id: str) -> list[LedgerWithdrawal]:
        return [w for w in self.withdrawals if w.withdraw_order_id == withdraw_order_id]

    def duplicates_by_withdraw_order_id(self) -> dict[str, list[LedgerWithdrawal]]:
        """Each withdrawOrderId that more than one withdrawal carries (per the whole ledger)."""
        groups: dict[str, list[LedgerWithdrawal]] = defaultdict(list)
        for w in self.withdrawals:
            if w.withdraw_order_id is not None:
                groups[w.withdraw_order_id].append(w)
        return {k: v for k, v in groups.items() if len(v) > 1}

    def apply_calls_for(self, withdraw_order_id: str) -> list[ApplyRequest]:
        return [
            r for r in self.apply_requests if r.params.get("withdrawOrderId") == withdraw_order_id
        ]


def read_ledger(path: str | Path) -> Ledger:
    """Read a journal file into a :class:`Ledger` (safe while the sandbox is writing)."""
    return ledger_from_records(read_records(path))


def ledger_from_records(records: list[Record]) -> Ledger:
    withdrawals: list[LedgerWithdrawal] = []
    requests: list[ApplyRequest] = []
    for r in records:
        if r["type"] == "withdrawal":
            withdrawals.append(
                LedgerWithdrawal(
                    id=r["id"],
                    account=r["account"],
                    withdraw_order_id=r.get("withdrawOrderId"),
                    coin=r["coin"],
                    network=r["network"],
                    address=r["address"],
                    address_tag=r.get("addressTag"),
                    amount=Decimal(r["amount"]),
                    fee=Decimal(r["fee"]),
                    name=r.get("name"),
                    source=r["source"],
                    applied_at=_utc(r["applied_at"]),
                    applied_at_ms=r["applied_at"],
                    final_status=r["final_status"],
                    settle_at_ms=r["settle_at"],
                    visible_at_ms=r["visible_at"] if "visible_at" in r else r["applied_at"],
                    wallet_type=r.get("walletType", 0),
                    review_status=r.get("review_status"),
                    review_until_ms=r.get("review_until"),
                    transfer_type=r.get("transferType", 0),
                    fee_to_recipient=r.get("transactionFeeFlag", False),
                    recipient=r.get("recipient"),
                    recipient_wallet_type=r.get("recipientWalletType"),
                    tr_id=r.get("trId"),
                    tr_fails=r.get("tr_fails", False),
                    only_in=r.get("only_in"),
                )
            )
        elif r["type"] == "apply":
            requests.append(
                ApplyRequest(
                    at_ms=r["t"],
                    account=r.get("account"),
                    params=dict(r["params"]),
                    withdrawal_id=r.get("id"),
                    error_code=r.get("code"),
                    http_status=r.get("http"),
                    fault=r.get("fault"),
                    endpoint=r.get("endpoint", "capital"),
                    refused=r.get("refused"),
                )
            )
    return Ledger(withdrawals, requests, list(records))


def _utc(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
