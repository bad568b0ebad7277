"""The bodies the API reads and answers. Amounts are decimal strings, never numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from treasury.domain.intent import Intent
from treasury.domain.money import format_amount

AMOUNT = Field(
    description='exact decimal amount as a string, e.g. "125.50" (a JSON number is refused)',
    examples=["125.50"],
    max_length=64,
)


class IntentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    coin: str = Field(max_length=20, examples=["USDT"])
    network: str = Field(max_length=32, examples=["TRX"])
    address: str = Field(max_length=256)
    amount: str = AMOUNT
    address_tag: str | None = Field(default=None, max_length=128)
    account: str = Field(default="default", max_length=64)
    wallet: Literal["spot", "funding"] | None = None
    note: str | None = Field(default=None, max_length=1000)
    questionnaire: dict[str, Any] | None = Field(
        default=None, description="this withdrawal's own travel-rule questionnaire"
    )


class IntentOut(BaseModel):
    id: int
    request_id: str | None
    coin: str
    network: str
    address: str
    address_tag: str | None
    amount: str
    account: str
    wallet: str | None
    status: str
    status_reason: str | None
    requested_by: str | None
    note: str | None
    has_questionnaire: bool
    exchange_withdraw_id: str | None
    tx_id: str | None
    fee: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    settled_at: datetime | None

    @classmethod
    def of(cls, i: Intent) -> IntentOut:
        return cls(
            id=i.id,
            request_id=i.request_id,
            coin=i.coin,
            network=i.network,
            address=i.address,
            address_tag=i.address_tag,
            amount=format_amount(i.amount),
            account=i.account,
            wallet=None if i.wallet is None else i.wallet.value,
            status=i.status.value,
            status_reason=i.status_reason,
            requested_by=i.requested_by,
            note=i.note,
            has_questionnaire=i.questionnaire is not None,
            exchange_withdraw_id=i.exchange_withdraw_id,
            tx_id=i.tx_id,
            fee=None if i.fee is None else format_amount(i.fee),
            created_at=i.created_at,
            updated_at=i.updated_at,
            submitted_at=i.submitted_at,
            settled_at=i.settled_at,
        )


class IntentPage(BaseModel):
    items: list[IntentOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: last")


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str | None = Field(default=None, max_length=1000)


class CheckOut(BaseModel):
    name: str
    result: Literal["pass", "fail", "unknown"]
    reason: str
    effect: Literal["hold", "reject"] | None = Field(
        default=None, description="on fail, what the worker would do: hold (wait) or reject"
    )


class PreviewOut(BaseModel):
    checks: list[CheckOut]
    network_fee: str | None
    snapshot_age_s: float | None
    would_send: bool | None = Field(description="null: some check could not be made")


class AddressBookEntryOut(BaseModel):
    id: int
    account: str
    coin: str
    network: str
    address: str
    address_tag: str | None
    label: str
    source: str
    enabled: bool
    usable_from: datetime | None
    created_at: datetime
    version: int
    travel_rule: dict[str, Any] | str | None = Field(description="the profile, redacted")


class AddressBookOut(BaseModel):
    items: list[AddressBookEntryOut]


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
