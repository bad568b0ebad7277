from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treasury.domain.errors import InvalidField
from treasury.domain.money import format_amount, is_multiple, parse_amount


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.1", Decimal("0.1")),
        ("12.500", Decimal("12.5")),
        ("0.000000000000000001", Decimal("1E-18")),
        (5, Decimal(5)),
        (Decimal("1E+1"), Decimal(10)),
    ],
)
def test_parse_amount_accepts_exact_values(raw: object, expected: Decimal) -> None:
    assert parse_amount(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (0.1, "binary float"),
        ("0", "greater than 0"),
        ("-1", "greater than 0"),
        ("abc", "not a decimal"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("", "not a plain decimal"),
        (" 1", "not a plain decimal"),
        ("1_000", "not a plain decimal"),
        ("0.0000000000000000001", "18 decimal"),
        ("1" * 21, "digits before the point"),
        (True, "binary float"),
        (None, "decimal number"),
    ],
)
def test_parse_amount_refuses_with_a_named_reason(raw: object, problem: str) -> None:
    with pytest.raises(InvalidField) as exc:
        parse_amount(raw)
    assert exc.value.field == "amount"
    assert problem in str(exc.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+1"), "10"),
        (Decimal("0.500"), "0.5"),
        (Decimal("1E-18"), "0.000000000000000001"),
        (Decimal("100"), "100"),
        (Decimal("123456789012345678.123456789012345678"), "123456789012345678.123456789012345678"),
    ],
)
def test_format_amount_is_plain_and_exact(value: Decimal, text: str) -> None:
    assert format_amount(value) == text
    assert Decimal(format_amount(value)) == value


@given(
    st.decimals(
        min_value=Decimal("1E-18"),
        max_value=Decimal("1E+18"),
        places=18,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_format_then_parse_round_trips_digit_for_digit(value: Decimal) -> None:
    text = format_amount(value)
    assert "E" not in text and "e" not in text
    assert parse_amount(text) == value


@pytest.mark.parametrize(
    ("amount", "step", "ok"),
    [
        ("10", "0.000001", True),
        ("10.0000001", "0.000001", False),
        ("3", "0", True),
        ("0.3", "0.1", True),
        ("0.35", "0.1", False),
    ],
)
def test_is_multiple(amount: str, step: str, ok: bool) -> None:
    assert is_multiple(Decimal(amount), Decimal(step)) is ok
