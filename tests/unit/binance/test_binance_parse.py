"""Response parsing: exact decimals, UTC times, optional fields, errors naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from treasury.adapters.binance.errors import NotSent, ResponseInvalid
from treasury.adapters.binance.parse import (
    load_json,
    parse_account,
    parse_coin_configs,
    parse_withdraw_history,
    parse_withdraw_id,
    to_decimal,
)

EP = "/test"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"0.000000000000000001"', Decimal("0.000000000000000001")),
        ("8.91", Decimal("8.91")),
        ('"8.91"', Decimal("8.91")),
        ("12", Decimal(12)),
        ('"0"', Decimal(0)),
        (
            '"123456789012345678901.123456789012345678"',
            Decimal("123456789012345678901.123456789012345678"),
        ),
        ("0.1", Decimal("0.1")),
    ],
)
def test_decimals_are_exact(raw: str, expected: Decimal) -> None:
    value = to_decimal(load_json(raw), endpoint=EP, field="amount")
    assert value == expected
    assert str(value) == str(expected)  # same digits, not only the same value


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        True,
        None,
        [],
        {},
        "",
        " 1",
        "1 ",
        "NaN",
        "Infinity",
        "-inf",
        "1,5",
        "0x10",
        "1_000",
        Decimal("NaN"),
        Decimal("Infinity"),
    ],
)
def test_bad_decimals_name_the_field(value: object) -> None:
    with pytest.raises(ResponseInvalid) as caught:
        to_decimal(value, endpoint=EP, field="balances[3].free")
    assert caught.value.field == "balances[3].free"
    assert "balances[3].free" in str(caught.value)
    assert isinstance(caught.value, NotSent)  # a read may be repeated


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "-Infinity", "{", ""])
def test_json_constants_and_garbage_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json's messages vary by input
        load_json(text)


def _history_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "b6ae22b3aa844210a7041aee7589627c",
        "amount": "8.91000000",
        "transactionFee": "0.004",
        "coin": "USDT",
        "status": 6,
        "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
        "txId": "0xb5ef8c13b968a406cc62a93a8bd80f9e9a906ef1b3fcf20a2e48573c17659268",
        "applyTime": "2019-10-12 11:12:02",
        "network": "ETH",
        "transferType": 0,
        "withdrawOrderId": "WITHDRAWtest123",
        "info": "",
        "confirmNo": 3,
        "walletType": 1,
        "txKey": "",
        "completeTime": "2023-03-23 16:52:41",
    }
    row.update(overrides)
    return row


def test_history_row_parses_with_utc_times() -> None:
    [record] = parse_withdraw_history([_history_row()], EP)
    assert record.id == "b6ae22b3aa844210a7041aee7589627c"
    assert record.amount == Decimal("8.91") and record.fee == Decimal("0.004")
    assert record.apply_time == datetime(2019, 10, 12, 11, 12, 2, tzinfo=UTC)
    assert record.complete_time == datetime(2023, 3, 23, 16, 52, 41, tzinfo=UTC)
    assert record.withdraw_order_id == "WITHDRAWtest123"
    assert record.network == "ETH" and record.address_tag is None


def test_history_optional_fields_and_unknown_status() -> None:
    row = _history_row(status=9, txId="")
    for absent in ("withdrawOrderId", "completeTime", "network", "info"):
        del row[absent]
    [record] = parse_withdraw_history([row], EP)
    assert record.status == 9  # kept as it came
    assert record.withdraw_order_id is None
    assert record.complete_time is None and record.network is None and record.tx_id is None
    assert record.info == ""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": None}, "<body>[1].amount"),
        ({"status": "6"}, "<body>[1].status"),
        ({"applyTime": "12/10/2019"}, "<body>[1].applyTime"),
        ({"id": 7}, "<body>[1].id"),
    ],
)
def test_history_errors_name_the_row_and_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ResponseInvalid) as caught:
        parse_withdraw_history([_history_row(), _history_row(**change)], EP)
    assert caught.value.field == field


def test_account_balances_are_exact() -> None:
    body = load_json(
        '{"canTrade": true, "canWithdraw": true, "canDeposit": false, "accountType": "SPOT",'
        ' "balances": [{"asset": "BTC", "free": "0.000000000000000001", "locked": 8.91}]}'
    )
    account = parse_account(body, EP)
    assert account.free("BTC") == Decimal("0.000000000000000001")
    assert account.balances["BTC"].locked == Decimal("8.91")
    assert account.can_withdraw and not account.can_deposit


def test_coin_config_defaults_for_fields_binance_added_late() -> None:
    body = [
        {
            "coin": "XRP",
            "withdrawAllEnable": True,
            "free": "1",
            "networkList": [
                {
                    "coin": "XRP",
                    "network": "XRP",
                    "withdrawEnable": True,
                    "withdrawMin": "1",
                    "withdrawMax": "1000000",
                    "withdrawIntegerMultiple": "0.000001",
                    "withdrawFee": "0.25",
                    "addressRegex": "^r[1-9A-HJ-NP-Za-km-z]{25,34}$",
                    "memoRegex": "^((?!0)[0-9]{1,10})$",
                }
            ],
        }
    ]
    rule = parse_coin_configs(body, EP)["XRP"].networks[0]
    assert rule.memo_required is None  # no withdrawTag in this answer: the exchange did not say
    assert rule.is_default is False and rule.busy is False
    assert rule.withdraw_multiple == Decimal("0.000001")


@pytest.mark.parametrize("body", [{}, {"id": ""}, {"id": 5}, [], {"code": -1000}])
def test_withdraw_id_must_be_a_non_empty_string(body: object) -> None:
    with pytest.raises(ResponseInvalid):
        parse_withdraw_id(body, EP)
