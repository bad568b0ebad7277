"""A withdrawal intent as the service sees it: an immutable snapshot of one row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from treasury.domain.status import Status
from treasury.domain.wallet import Wallet


@dataclass(frozen=True, kw_only=True)
class Intent:
    id: int
    coin: str
    network: str
    address: str
    address_tag: str | None
    amount: Decimal
    account: str
    request_id: str | None
    requested_by: str | None
    note: str | None
    status: Status
    status_reason: str | None
    withdraw_order_id: str | None
    exchange_withdraw_id: str | None
    tx_id: str | None
    fee: Decimal | None
    created_at: datetime
    updated_at: datetime
    version: int = 0
    not_before: datetime | None = None
    held_since: datetime | None = None
    send_timestamp_ms: int | None = None
    send_recv_window_ms: int | None = None
    send_count: int = 0
    absent_checks: int = 0
    last_checked_at: datetime | None = None
    submitted_at: datetime | None = None
    settled_at: datetime | None = None
    exchange_amount: Decimal | None = None  # the `amount` the exchange's history shows
    # the wallet to debit; None until committed to send means "the account's default"
    wallet: Wallet | None = None
    # the intent's own travel-rule questionnaire (canonical JSON), replacing its address-book
    # entry's profile; personal data: never logged in full (``travel_rule.redacted``)
    questionnaire: str | None = field(default=None, repr=False)
    # the travel-rule record id (``trId``) of a withdrawal sent through the local entity
    exchange_tr_id: int | None = None

    @property
    def destination(self) -> tuple[str, str, str, str | None]:
        return (self.coin, self.network, self.address, self.address_tag)


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    id: int
    intent_id: int
    from_status: str | None
    to_status: str
    reason: str
    actor: str
    kind: str
    created_at: datetime
