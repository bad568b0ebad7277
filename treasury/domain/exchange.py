"""What the exchange tells us, as plain immutable values (no I/O, no HTTP).

The Binance adapter parses responses into these; the sandbox, the worker and the
policy code read them. Amounts are ``Decimal``; times are aware UTC datetimes or
epoch milliseconds where the exchange speaks in milliseconds.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from treasury.domain.fee_payer import FeePayer
from treasury.domain.wallet import Wallet


class ExchangeWithdrawStatus(enum.IntEnum):
    """Binance withdraw/history status codes (withdrawal codes, not deposit codes)."""

    EMAIL_SENT = 0  # waiting for e-mail confirmation (not used for API withdrawals)
    CANCELLED = 1  # cancelled (older docs; treated as terminal if seen)
    AWAITING_APPROVAL = 2  # waiting for the exchange's review
    REJECTED = 3  # rejected by the exchange: terminal, funds returned
    PROCESSING = 4  # being broadcast / confirmed on chain
    FAILURE = 5  # failed (older docs; treated as terminal if seen)
    COMPLETED = 6  # done; txId and completeTime are known


@dataclass(frozen=True, kw_only=True)
class NetworkRule:
    """One (coin, network) row of ``capital/config/getall``."""

    coin: str
    network: str
    withdraw_enable: bool
    withdraw_min: Decimal
    withdraw_max: Decimal
    withdraw_multiple: Decimal  # withdrawIntegerMultiple; 0 means no constraint
    withdraw_fee: Decimal
    address_regex: str
    memo_regex: str
    memo_required: bool | None  # withdrawTag; None when the answer lacks the field
    is_default: bool = False
    busy: bool = False
    withdraw_desc: str = ""


@dataclass(frozen=True, kw_only=True)
class CoinConfig:
    coin: str
    withdraw_all_enable: bool
    free: Decimal
    networks: tuple[NetworkRule, ...]

    def network(self, name: str) -> NetworkRule | None:
        return next((n for n in self.networks if n.network == name), None)


@dataclass(frozen=True, kw_only=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal


@dataclass(frozen=True, kw_only=True)
class AccountInfo:
    can_withdraw: bool
    can_trade: bool
    can_deposit: bool
    balances: dict[str, Balance] = field(default_factory=dict)

    def free(self, asset: str) -> Decimal:
        b = self.balances.get(asset)
        return b.free if b else Decimal(0)


@dataclass(frozen=True, kw_only=True)
class ApiRestrictions:
    ip_restrict: bool
    enable_withdrawals: bool
    enable_reading: bool
    trading_authority_expiration_time: int | None = None  # epoch ms, when reported


@dataclass(frozen=True, kw_only=True)
class SystemStatus:
    normal: bool  # status 0
    message: str


@dataclass(frozen=True, kw_only=True)
class WithdrawalRecord:
    """One row of ``withdraw/history``."""

    id: str
    withdraw_order_id: str | None
    coin: str
    network: str | None
    address: str
    address_tag: str | None
    amount: Decimal
    fee: Decimal
    status: int  # ExchangeWithdrawStatus value; unknown values are kept as they came
    tx_id: str | None
    apply_time: datetime | None
    complete_time: datetime | None
    info: str = ""
    transfer_type: int = 0  # 1: an internal transfer between Binance accounts, no chain tx
    wallet_type: int | None = None  # the wallet debited: 0 spot, 1 funding
    tx_key: str = ""
    confirm_no: int | None = None
    # from the local-entity history (travel rule), when the withdrawal shows there
    tr_id: int | None = None
    travel_rule_status: int | None = None  # a TravelRuleStatus value, as it came

    @property
    def internal(self) -> bool:
        return self.transfer_type == 1


@dataclass(frozen=True, kw_only=True)
class WhitelistAddress:
    """One row of ``withdraw/address/list``."""

    coin: str
    network: str
    address: str
    address_tag: str | None
    name: str
    white_status: bool


@dataclass(frozen=True, kw_only=True)
class WithdrawQuota:
    """24-hour withdraw quota in USD."""

    quota: Decimal
    used: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.quota - self.used)


@dataclass(frozen=True, kw_only=True)
class WithdrawRequest:
    """What the worker asks the exchange to send. ``name`` is deliberately absent."""

    coin: str
    network: str
    address: str
    address_tag: str | None
    amount: Decimal
    withdraw_order_id: str
    wallet: Wallet  # sent as walletType, always
    # who pays an internal transfer's fee: sent as transactionFeeFlag, always (Binance
    # ignores it on chain; the client cannot tell the two apart before sending)
    fee_payer: FeePayer
    # the travel rule's answers, for an account under a local entity: the request then
    # goes through localentity/withdraw/apply. Personal data: kept out of repr.
    questionnaire: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class WithdrawAccepted:
    """An accepted apply. ``id`` is the withdrawal's id; a local-entity apply answers with
    the travel-rule record's ``tr_id`` instead, and ``id`` is None until a history shows it."""

    id: str | None
    timestamp_ms: int  # the timestamp that was signed
    recv_window_ms: int
    tr_id: int | None = None


# -- travel rule (local entities) -------------------------------------------------------------


class TravelRuleStatus(enum.IntEnum):
    """``travelRuleStatus`` of the local-entity withdraw history (Binance's three values).

    The withdrawal itself proceeds only once the travel-rule check is COMPLETED; a FAILED
    check means the withdrawal will not complete (reference §11)."""

    COMPLETED = 0
    PENDING = 1
    FAILED = 2


@dataclass(frozen=True, kw_only=True)
class Vasp:
    """One row of ``localentity/vasp``: what a questionnaire's ``vasp`` names.

    ``identifier`` is what the questionnaire takes since 2026-02-27; ``code`` (the older
    ``vaspCode``) is kept because older answers carry only it."""

    name: str
    code: str
    identifier: str | None


@dataclass(frozen=True, kw_only=True)
class TravelRuleCountry:
    """One row of ``localentity/country/list``; ``code`` is ISO-2 lower case."""

    code: str
    name: str
    block_type: str  # supported, limited or blocked
    deposit_allowed: bool
    withdrawal_allowed: bool
    has_region_restrictions: bool = False


@dataclass(frozen=True, kw_only=True)
class TravelRuleRegion:
    """One row of ``localentity/region/list``; ``name`` is what a questionnaire takes."""

    country_code: str
    name: str
    block_type: str
    deposit_allowed: bool
    withdrawal_allowed: bool


@dataclass(frozen=True, kw_only=True)
class LocalEntityWithdrawAccepted:
    """An accepted ``localentity/withdraw/apply``.

    Binance's answer carries the travel-rule record id (``trId``), not the withdrawal's
    own id: ``id`` is ``None`` unless the answer happened to include one. The withdrawal id
    is read from the local-entity history (by ``trId`` or ``withdrawOrderId``)."""

    tr_id: int
    info: str
    timestamp_ms: int  # the timestamp that was signed
    recv_window_ms: int
    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class LocalEntityWithdrawalRecord:
    """One row of ``localentity/withdraw/history`` (v1 or v2).

    Binance documents ``id``, ``transactionFee``, ``withdrawalStatus``, ``transferType``,
    ``withdrawOrderId`` and ``confirmNo`` as present only for withdrawals made through the
    API, hence optional. ``questionnaire`` holds personal data: it is kept out of ``repr``.
    """

    tr_id: int
    id: str | None
    withdraw_order_id: str | None
    coin: str
    network: str | None
    address: str
    amount: Decimal
    fee: Decimal | None
    withdrawal_status: int | None  # an ExchangeWithdrawStatus value, as it came
    travel_rule_status: int  # a TravelRuleStatus value, as it came
    tx_id: str | None
    apply_time: datetime | None
    complete_time: datetime | None = None
    info: str = ""
    transfer_type: int | None = None
    wallet_type: int | None = None
    confirm_no: int | None = None
    questionnaire: str | None = field(default=None, repr=False)
