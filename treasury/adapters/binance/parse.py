"""Response bodies → domain values, exactly, or a ``ResponseInvalid`` naming the field.

JSON numbers are read with ``parse_float=Decimal`` so ``8.91`` never becomes a binary
float; decimal fields accept JSON numbers and strings alike, and refuse floats, NaN,
Infinity and anything that is not plainly a number. Optional fields are optional because
Binance omits them (``withdrawOrderId`` when none, ``completeTime`` before status 6,
``network`` on old records); everything else is required.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from treasury.adapters.binance.errors import ResponseInvalid
from treasury.domain.exchange import (
    AccountInfo,
    ApiRestrictions,
    Balance,
    CoinConfig,
    LocalEntityWithdrawalRecord,
    NetworkRule,
    SystemStatus,
    TravelRuleCountry,
    TravelRuleRegion,
    Vasp,
    WhitelistAddress,
    WithdrawalRecord,
    WithdrawQuota,
)

_DECIMAL_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_HISTORY_TIME = "%Y-%m-%d %H:%M:%S"


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def load_json(content: bytes | str) -> object:
    """Decode a body; ``ValueError`` when it is not JSON (NaN/Infinity included), also for
    a body nested too deeply or carrying a number beyond Decimal's range."""
    try:
        return json.loads(content, parse_float=Decimal, parse_constant=_refuse_constant)
    except (RecursionError, ArithmeticError) as exc:
        raise ValueError(f"unusable JSON body ({type(exc).__name__})") from None


def to_decimal(value: object, *, endpoint: str, field: str) -> Decimal:
    """An exact ``Decimal`` from a JSON number or a decimal string.

    Raises:
        ResponseInvalid: a float, bool, NaN/Infinity, empty or malformed text.
    """
    if isinstance(value, bool):
        raise ResponseInvalid(endpoint=endpoint, field=field, problem="is a boolean, not a number")
    if isinstance(value, float):
        raise ResponseInvalid(endpoint=endpoint, field=field, problem="came as a binary float")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ResponseInvalid(endpoint=endpoint, field=field, problem="is not finite")
        return value
    if isinstance(value, str):
        if not _DECIMAL_TEXT.fullmatch(value):
            raise ResponseInvalid(
                endpoint=endpoint, field=field, problem=f"is not a decimal number: {value[:40]!r}"
            )
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid text
            raise ResponseInvalid(
                endpoint=endpoint, field=field, problem="is not a decimal number"
            ) from None
    raise ResponseInvalid(
        endpoint=endpoint, field=field, problem=f"must be a number, got {type(value).__name__}"
    )


class Fields:
    """Typed access to one JSON object, with the field path in every error."""

    def __init__(self, data: object, *, endpoint: str, where: str = "") -> None:
        if not isinstance(data, dict):
            raise ResponseInvalid(
                endpoint=endpoint, field=where or "<body>", problem="is not a JSON object"
            )
        self._data: dict[str, object] = data
        self._endpoint = endpoint
        self._where = where

    def _name(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def _bad(self, key: str, problem: str) -> ResponseInvalid:
        return ResponseInvalid(endpoint=self._endpoint, field=self._name(key), problem=problem)

    def _required(self, key: str) -> object:
        if key not in self._data or self._data[key] is None:
            raise self._bad(key, "is missing")
        return self._data[key]

    def text(self, key: str) -> str:
        value = self._required(key)
        if not isinstance(value, str):
            raise self._bad(key, f"must be a string, got {type(value).__name__}")
        return value

    def opt_text(self, key: str, default: str | None = None) -> str | None:
        """Absent, null and ``""`` all mean "none" (Binance uses each of them)."""
        if self._data.get(key) in (None, ""):
            return default
        return self.text(key)

    def flag(self, key: str, default: bool | None = None) -> bool:
        if default is not None and self._data.get(key) is None:
            return default
        value = self._required(key)
        if not isinstance(value, bool):
            raise self._bad(key, f"must be a boolean, got {type(value).__name__}")
        return value

    def opt_flag(self, key: str) -> bool | None:
        return None if self._data.get(key) is None else self.flag(key)

    def integer(self, key: str) -> int:
        value = self._required(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, f"must be an integer, got {type(value).__name__}")
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if self._data.get(key) is None else self.integer(key)

    def decimal(self, key: str) -> Decimal:
        return to_decimal(self._required(key), endpoint=self._endpoint, field=self._name(key))

    def opt_decimal(self, key: str) -> Decimal | None:
        """Absent, null and ``""`` mean "none"; anything else must be a decimal."""
        if self._data.get(key) in (None, ""):
            return None
        return self.decimal(key)

    def get(self, key: str) -> object:
        """The raw value (``None`` when absent), for fields read as they come."""
        return self._data.get(key)

    def opt_time(self, key: str) -> datetime | None:
        text = self.opt_text(key)
        if text is None:
            return None
        try:
            return datetime.strptime(text, _HISTORY_TIME).replace(tzinfo=UTC)
        except ValueError:
            raise self._bad(key, f"is not a 'YYYY-MM-DD HH:MM:SS' time: {text[:40]!r}") from None

    def items(self, key: str) -> list[Fields]:
        return items(self._required(key), endpoint=self._endpoint, where=self._name(key))


def items(data: object, *, endpoint: str, where: str = "<body>") -> list[Fields]:
    if not isinstance(data, list):
        raise ResponseInvalid(endpoint=endpoint, field=where, problem="is not a JSON array")
    return [Fields(item, endpoint=endpoint, where=f"{where}[{i}]") for i, item in enumerate(data)]


# -- one function per endpoint --------------------------------------------------------------


def parse_server_time(data: object, endpoint: str) -> int:
    return Fields(data, endpoint=endpoint).integer("serverTime")


def parse_account(data: object, endpoint: str) -> AccountInfo:
    body = Fields(data, endpoint=endpoint)
    balances: dict[str, Balance] = {}
    for row in body.items("balances"):
        asset = row.text("asset")
        balances[asset] = Balance(
            asset=asset, free=row.decimal("free"), locked=row.decimal("locked")
        )
    return AccountInfo(
        can_withdraw=body.flag("canWithdraw"),
        can_trade=body.flag("canTrade"),
        can_deposit=body.flag("canDeposit"),
        balances=balances,
    )


def parse_funding_assets(data: object, endpoint: str) -> dict[str, Balance]:
    """``get-funding-asset``: a list of ``{asset, free, locked, freeze, withdrawing, ...}``.

    Only ``free`` can be withdrawn; ``locked``, ``freeze`` and ``withdrawing`` are not.
    """
    balances: dict[str, Balance] = {}
    for row in items(data, endpoint=endpoint):
        asset = row.text("asset")
        balances[asset] = Balance(
            asset=asset, free=row.decimal("free"), locked=row.decimal("locked")
        )
    return balances


def parse_account_status(data: object, endpoint: str) -> str:
    """``account/status``: ``{"data": "Normal"}`` or the exchange's restriction text."""
    return Fields(data, endpoint=endpoint).text("data")


def parse_system_status(data: object, endpoint: str) -> SystemStatus:
    body = Fields(data, endpoint=endpoint)
    return SystemStatus(normal=body.integer("status") == 0, message=body.text("msg"))


def parse_api_restrictions(data: object, endpoint: str) -> ApiRestrictions:
    body = Fields(data, endpoint=endpoint)
    return ApiRestrictions(
        ip_restrict=body.flag("ipRestrict"),
        enable_withdrawals=body.flag("enableWithdrawals"),
        enable_reading=body.flag("enableReading"),
        trading_authority_expiration_time=body.opt_integer("tradingAuthorityExpirationTime"),
    )


def _network_rule(row: Fields) -> NetworkRule:
    return NetworkRule(
        coin=row.text("coin"),
        network=row.text("network"),
        withdraw_enable=row.flag("withdrawEnable"),
        withdraw_min=row.decimal("withdrawMin"),
        withdraw_max=row.decimal("withdrawMax"),
        withdraw_multiple=row.decimal("withdrawIntegerMultiple"),
        withdraw_fee=row.decimal("withdrawFee"),
        address_regex=row.opt_text("addressRegex", "") or "",
        memo_regex=row.opt_text("memoRegex", "") or "",
        memo_required=row.opt_flag("withdrawTag"),  # added 2025-09-08; absent before
        is_default=row.flag("isDefault", default=False),
        busy=row.flag("busy", default=False),
        withdraw_desc=row.opt_text("withdrawDesc", "") or "",
    )


def parse_coin_configs(data: object, endpoint: str) -> dict[str, CoinConfig]:
    configs: dict[str, CoinConfig] = {}
    for row in items(data, endpoint=endpoint):
        coin = row.text("coin")
        configs[coin] = CoinConfig(
            coin=coin,
            withdraw_all_enable=row.flag("withdrawAllEnable"),
            free=row.decimal("free"),
            networks=tuple(_network_rule(net) for net in row.items("networkList")),
        )
    return configs


def parse_withdraw_history(data: object, endpoint: str) -> list[WithdrawalRecord]:
    return [
        WithdrawalRecord(
            id=row.text("id"),
            withdraw_order_id=row.opt_text("withdrawOrderId"),
            coin=row.text("coin"),
            network=row.opt_text("network"),
            address=row.text("address"),
            address_tag=row.opt_text("addressTag"),
            amount=row.decimal("amount"),
            fee=row.decimal("transactionFee"),
            status=row.integer("status"),  # unknown values are kept, not refused
            tx_id=row.opt_text("txId"),
            apply_time=row.opt_time("applyTime"),
            complete_time=row.opt_time("completeTime"),
            info=row.opt_text("info", "") or "",
            transfer_type=row.opt_integer("transferType") or 0,
            wallet_type=row.opt_integer("walletType"),
            tx_key=row.opt_text("txKey", "") or "",
            confirm_no=row.opt_integer("confirmNo"),
        )
        for row in items(data, endpoint=endpoint)
    ]


def parse_whitelist(data: object, endpoint: str) -> list[WhitelistAddress]:
    return [
        WhitelistAddress(
            coin=row.text("coin"),
            network=row.text("network"),
            address=row.text("address"),
            address_tag=row.opt_text("addressTag"),
            name=row.opt_text("name", "") or "",
            white_status=row.flag("whiteStatus"),
        )
        for row in items(data, endpoint=endpoint)
    ]


def parse_withdraw_quota(data: object, endpoint: str) -> WithdrawQuota:
    body = Fields(data, endpoint=endpoint)
    return WithdrawQuota(quota=body.decimal("wdQuota"), used=body.decimal("usedWdQuota"))


def parse_withdraw_id(data: object, endpoint: str) -> str:
    """The ``id`` of an accepted withdrawal: a non-empty string, nothing else."""
    withdraw_id = Fields(data, endpoint=endpoint).text("id")
    if not withdraw_id.strip():
        raise ResponseInvalid(endpoint=endpoint, field="id", problem="is empty")
    return withdraw_id


# -- travel rule (local entities) -------------------------------------------------------------

NO_QUESTIONNAIRE = "NIL"  # questionnaire-requirements' answer when none is needed


def parse_questionnaire_requirement(data: object, endpoint: str) -> str | None:
    """``{"questionnaireCountryCode": "JP"}``; ``NIL`` (any case) means none is needed."""
    code = Fields(data, endpoint=endpoint).text("questionnaireCountryCode").strip()
    if not code:
        raise ResponseInvalid(
            endpoint=endpoint, field="questionnaireCountryCode", problem="is empty"
        )
    return None if code.upper() == NO_QUESTIONNAIRE else code


@dataclass(frozen=True, kw_only=True)
class LocalApplyAnswer:
    """``localentity/withdraw/apply``'s body: ``accepted`` (documented ``accpted``)."""

    accepted: bool
    tr_id: int | None
    info: str
    id: str | None


def parse_local_withdraw(data: object, endpoint: str) -> LocalApplyAnswer:
    """The documented example spells the flag ``accpted``; a real answer quoted in
    openxapi/openxapi#41 and Binance's connectors since 2026-06-30 spell it ``accepted``.
    Either is read (``accepted`` wins when both come); neither is an invalid answer. An
    accepted request must carry its ``trId``; a refusal need not."""
    body = Fields(data, endpoint=endpoint)
    key = "accepted" if body.get("accepted") is not None else "accpted"
    accepted = body.flag(key)
    tr_id = body.integer("trId") if accepted else body.opt_integer("trId")
    if tr_id is not None and tr_id <= 0:
        raise ResponseInvalid(endpoint=endpoint, field="trId", problem="is not positive")
    return LocalApplyAnswer(
        accepted=accepted,
        tr_id=tr_id,
        info=body.opt_text("info", "") or "",
        id=body.opt_text("id"),
    )


def parse_vasps(data: object, endpoint: str) -> list[Vasp]:
    return [
        Vasp(
            name=row.text("vaspName"),
            code=row.text("vaspCode"),
            identifier=row.opt_text("identifier"),  # added 2026-02-27
        )
        for row in items(data, endpoint=endpoint)
    ]


def parse_countries(data: object, endpoint: str) -> list[TravelRuleCountry]:
    return [
        TravelRuleCountry(
            code=row.text("countryCode"),
            name=row.text("countryName"),
            block_type=row.text("blockType"),
            deposit_allowed=row.flag("depositAllowed"),
            withdrawal_allowed=row.flag("withdrawalAllowed"),
            has_region_restrictions=row.flag("hasRegionRestrictions", default=False),
        )
        for row in Fields(data, endpoint=endpoint).items("countries")
    ]


def parse_regions(data: object, endpoint: str) -> list[TravelRuleRegion]:
    body = Fields(data, endpoint=endpoint)
    country = body.text("countryCode")
    return [
        TravelRuleRegion(
            country_code=country,
            name=row.text("regionName"),
            block_type=row.text("blockType"),
            deposit_allowed=row.flag("depositAllowed"),
            withdrawal_allowed=row.flag("withdrawalAllowed"),
        )
        for row in body.items("regions")
    ]


def parse_local_history(data: object, endpoint: str) -> list[LocalEntityWithdrawalRecord]:
    records: list[LocalEntityWithdrawalRecord] = []
    for row in items(data, endpoint=endpoint):
        records.append(
            LocalEntityWithdrawalRecord(
                tr_id=row.integer("trId"),
                id=row.opt_text("id"),
                withdraw_order_id=row.opt_text("withdrawOrderId"),
                coin=row.text("coin"),
                network=row.opt_text("network"),
                address=row.text("address"),
                amount=row.decimal("amount"),
                fee=row.opt_decimal("transactionFee"),  # only for API withdrawals
                withdrawal_status=row.opt_integer("withdrawalStatus"),
                travel_rule_status=row.integer("travelRuleStatus"),
                tx_id=row.opt_text("txId"),
                apply_time=row.opt_time("applyTime"),
                complete_time=row.opt_time("completeTime"),
                info=row.opt_text("info", "") or "",
                transfer_type=row.opt_integer("transferType"),
                wallet_type=row.opt_integer("walletType"),
                confirm_no=row.opt_integer("confirmNo"),
                questionnaire=_questionnaire_text(row.get("questionnaire")),
            )
        )
    return records


def _questionnaire_text(value: object) -> str | None:
    """History echoes the questionnaire as a string or an object; kept as text, unread."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
