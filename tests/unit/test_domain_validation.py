from __future__ import annotations

from decimal import Decimal

import pytest

from treasury.domain.errors import InvalidField
from treasury.domain.ids import intent_id_from_order_id, withdraw_order_id
from treasury.domain.validation import validate_new_intent, validate_reason

GOOD = {"coin": "USDT", "network": "TRX", "address": "TXyz123", "amount": "10.5"}


def test_valid_intent() -> None:
    new = validate_new_intent(**GOOD, address_tag=None, request_id="r-1")
    assert new.amount == Decimal("10.5") and new.account == "default"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("coin", "usdt"),
        ("coin", ""),
        ("coin", "US DT"),
        ("network", ""),
        ("network", "trx"),
        ("network", "T" * 40),
        ("address", ""),
        ("address", "T xyz"),
        ("address", "Txyz\n"),
        ("address", "a" * 300),
        ("address_tag", ""),
        ("address_tag", "12 34"),
        ("amount", "0"),
        ("amount", "-5"),
        ("amount", "1e"),
        ("amount", 0.5),
        ("account", ""),
        ("account", "a b"),
        ("request_id", ""),
        ("request_id", "x y"),
    ],
)
def test_each_bad_field_is_named(field: str, value: object) -> None:
    kwargs: dict[str, object] = {**GOOD, field: value}
    with pytest.raises(InvalidField) as exc:
        validate_new_intent(**kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_order_id_is_deterministic_and_reversible() -> None:
    oid = withdraw_order_id("ab12cd34", 42)
    assert oid == withdraw_order_id("ab12cd34", 42)
    assert intent_id_from_order_id("ab12cd34", oid) == 42
    assert intent_id_from_order_id("ffffffff", oid) is None
    assert all(c.isalnum() or c in "-_" for c in oid)


@pytest.mark.parametrize("blank", ["", "   ", "\r", "\t\n", None])
def test_a_blank_reason_is_no_reason(blank: str | None) -> None:
    with pytest.raises(InvalidField, match=r"^--reason: say why"):
        validate_reason(blank, field="--reason")
    assert validate_reason(blank, default="cancelled by operator") == "cancelled by operator"


def test_a_reason_is_kept_stripped_and_bounded() -> None:
    assert validate_reason("  ticket 812\n") == "ticket 812"
    assert validate_reason("x" * 500) == "x" * 500
    for bad in ("x" * 501, "a\x00b", "caf\udce9"):
        with pytest.raises(InvalidField, match="at most 500 characters of text"):
            validate_reason(bad)
