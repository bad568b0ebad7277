"""The signed query string: built once, signed over, and sent as these very bytes.

Why everything goes in the query string, even for ``POST withdraw/apply``: Binance signs
"query string + body" and rejects (since 2026-01-15) a signature over anything but the
percent-encoded form. With an empty body there is one string to build, sign and send, so
"sent byte for byte as signed" holds by construction; no form encoder gets a chance to
encode a value differently from what was signed (the ``-1022`` bugs in python-binance and
CCXT came from exactly that). The official connector sends withdraw params the same way.

Values are percent-encoded with ``quote(value, safe="")``: only RFC 3986 unreserved
characters stay literal, so a space is ``%20`` and ``+`` is ``%2B``, never ``+``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from urllib.parse import quote

from treasury.adapters.binance.signing import Signer
from treasury.domain.money import format_amount

ParamValue = str | int | bool | Decimal
Params = Sequence[tuple[str, ParamValue]]


def format_value(value: ParamValue) -> str:
    """Wire text of one value: ``true``/``false``, plain integers, positional decimals."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format_amount(value)  # never str(Decimal): Decimal('1E+1') must go as 10
    if isinstance(value, str):
        return value
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


def encode_query(params: Params) -> str:
    """``key=value`` pairs in the given order, percent-encoded, joined by ``&``.

    Raises:
        ValueError: a name appears twice (Binance answers -1101; better to never send it).
    """
    seen: set[str] = set()
    parts: list[str] = []
    for name, value in params:
        if name in seen:
            raise ValueError(f"parameter {name!r} given twice")
        seen.add(name)
        parts.append(f"{quote(name, safe='')}={quote(format_value(value), safe='')}")
    return "&".join(parts)


class SignedQuery:
    """A query string with its signature appended last. Never printed in full."""

    __slots__ = ("signature", "text")

    def __init__(self, text: str, signature: str | None) -> None:
        self.text = text
        self.signature = signature

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach a log line or an exception message."""
        if self.signature is None:
            return ()
        return (self.text, self.signature, quote(self.signature, safe=""))

    def __repr__(self) -> str:
        return "SignedQuery(<redacted>)" if self.signature else f"SignedQuery({self.text!r})"


def unsigned_query(params: Params) -> SignedQuery:
    return SignedQuery(encode_query(params), None)


def sign_query(params: Params, signer: Signer) -> SignedQuery:
    """Encode ``params``, sign exactly those bytes, and append ``signature`` last."""
    if any(name == "signature" for name, _ in params):
        raise ValueError("'signature' is added by the signer, not passed as a parameter")
    payload = encode_query(params)
    signature = signer.sign(payload.encode("ascii"))  # quote() leaves only ASCII
    encoded = quote(signature, safe="")  # base64 '/', '+', '=' → %2F, %2B, %3D
    text = f"{payload}&signature={encoded}" if payload else f"signature={encoded}"
    return SignedQuery(text, signature)
