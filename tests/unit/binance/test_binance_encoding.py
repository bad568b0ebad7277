"""The query string: values, percent-encoding, and the signature appended last."""

from __future__ import annotations

from decimal import Decimal

import pytest

from treasury.adapters.binance.encoding import (
    encode_query,
    format_value,
    sign_query,
    unsigned_query,
)
from treasury.adapters.binance.signing import HmacSigner


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (1499827319559, "1499827319559"),
        (Decimal("1E+1"), "10"),
        (Decimal("0.500"), "0.5"),
        (Decimal("1E-18"), "0.000000000000000001"),
        (Decimal("8.91"), "8.91"),
        ("ETH", "ETH"),
    ],
)
def test_values_have_one_wire_form(value: str | int | bool | Decimal, wire: str) -> None:
    assert format_value(value) == wire


def test_float_is_refused() -> None:
    with pytest.raises(TypeError):
        format_value(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a b", "a%20b"),
        ("a+b", "a%2Bb"),
        ("a/b=c&d", "a%2Fb%3Dc%26d"),
        ("A-z_0.9~", "A-z_0.9~"),  # RFC 3986 unreserved stay literal
        ("é", "%C3%A9"),
        ("1,2", "1%2C2"),
    ],
)
def test_values_are_percent_encoded(value: str, encoded: str) -> None:
    assert encode_query([("addressTag", value)]) == f"addressTag={encoded}"


def test_order_is_kept_and_duplicates_refused() -> None:
    assert encode_query([("b", 1), ("a", 2)]) == "b=1&a=2"
    with pytest.raises(ValueError, match="twice"):
        encode_query([("a", 1), ("a", 2)])


def test_signature_is_last_and_over_exactly_the_preceding_bytes() -> None:
    signer = HmacSigner("secret")
    signed = sign_query([("coin", "USDT"), ("addressTag", "a b+c"), ("timestamp", 1)], signer)
    payload = "coin=USDT&addressTag=a%20b%2Bc&timestamp=1"
    assert signed.text == f"{payload}&signature={signer.sign(payload.encode())}"


def test_signature_cannot_be_passed_as_a_parameter() -> None:
    with pytest.raises(ValueError, match="signature"):
        sign_query([("signature", "x")], HmacSigner("secret"))


def test_signed_query_repr_hides_it() -> None:
    signed = sign_query([("timestamp", 1)], HmacSigner("secret"))
    assert signed.signature is not None
    assert signed.signature not in repr(signed)
    assert repr(unsigned_query([("a", 1)])) == "SignedQuery('a=1')"
