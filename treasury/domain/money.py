"""Exact decimal amounts: parsing, validation and the wire format.

Amounts never pass through ``float``. Text comes in, ``Decimal`` is used inside,
and text goes out in plain positional notation (``Decimal('1E+1')`` is sent as ``10``).
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded, localcontext

from treasury.domain.errors import InvalidField

MAX_DECIMALS = 18
MAX_INTEGER_DIGITS = 20

# Arithmetic on amounts must never round: the default context keeps 28 digits, and an
# amount may have 38. This context is wide enough and traps any rounding as an error.
EXACT = Context(prec=80, traps=[Inexact, Rounded, InvalidOperation])


def parse_amount(value: object, *, field: str = "amount") -> Decimal:
    """Parse a positive, finite amount given as text, int or Decimal.

    Args:
        value: the raw value; ``float`` is refused because its digits are already damaged.
        field: the field name used in the error.

    Raises:
        InvalidField: naming ``field`` and the problem.
    """
    if isinstance(value, bool | float):
        raise InvalidField(field, "must be given as exact decimal text, not a binary float")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or text != value or any(c in text for c in "_ "):
            raise InvalidField(field, f"{value!r} is not a plain decimal number")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise InvalidField(field, f"{value!r} is not a decimal number") from None
    else:
        raise InvalidField(field, f"must be a decimal number, got {type(value).__name__}")
    if not amount.is_finite():
        raise InvalidField(field, "must be a finite number")
    exponent = amount.as_tuple().exponent
    # Checked before any arithmetic, so that 1E+1000000 is refused, not expanded.
    if isinstance(exponent, int) and exponent >= MAX_INTEGER_DIGITS:
        raise InvalidField(field, f"has more than {MAX_INTEGER_DIGITS} digits before the point")
    if isinstance(exponent, int) and exponent < -(MAX_DECIMALS + 200):
        raise InvalidField(field, f"has more than {MAX_DECIMALS} decimal places")
    if amount <= 0:
        raise InvalidField(field, f"must be greater than 0, got {format_amount(amount)}")
    if decimals(amount) > MAX_DECIMALS:
        raise InvalidField(field, f"has more than {MAX_DECIMALS} decimal places")
    if integer_digits(amount) > MAX_INTEGER_DIGITS:
        raise InvalidField(field, f"has more than {MAX_INTEGER_DIGITS} digits before the point")
    return amount


def decimals(amount: Decimal) -> int:
    """Significant decimal places, ignoring trailing zeros (``1.500`` has 1)."""
    text = format(amount, "f")
    if "." not in text:
        return 0
    return len(text.split(".", 1)[1].rstrip("0"))


def integer_digits(amount: Decimal) -> int:
    return len(str(abs(int(amount)))) if abs(amount) >= 1 else 0


def format_amount(amount: Decimal) -> str:
    """Plain positional text with no exponent and no superfluous trailing zeros.

    ``Decimal('1E+1')`` → ``'10'``, ``Decimal('0.500')`` → ``'0.5'``, ``Decimal('1E-18')`` →
    ``'0.000000000000000001'``. The value is unchanged, digit for digit.
    """
    if not amount.is_finite():
        raise ValueError("cannot format a non-finite amount")
    text = format(amount, "f")  # positional, exact (no context rounding)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0", "") else text


def is_multiple(amount: Decimal, step: Decimal) -> bool:
    """True when ``amount`` is a whole multiple of ``step`` (a step ≤ 0 means "any")."""
    if step <= 0:
        return True
    with localcontext(EXACT):
        return amount % step == 0


def add(*amounts: Decimal) -> Decimal:
    """Exact sum (raises instead of rounding)."""
    with localcontext(EXACT):
        total = Decimal(0)
        for a in amounts:
            total += a
        return total
