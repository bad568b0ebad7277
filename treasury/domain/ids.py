"""The client id (``withdrawOrderId``) an intent carries to the exchange.

Deterministic from the ledger's namespace and the intent id, so it can be derived
again after a crash, and unique across deployments that share an exchange account
(each ledger draws its own namespace when it is created). Binance documents no
charset or length: we keep to ``[A-Za-z0-9_-]`` and well under 64 characters.
"""

from __future__ import annotations

import re

ORDER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]{4,16}$")


def withdraw_order_id(namespace: str, intent_id: int) -> str:
    if not NAMESPACE_RE.match(namespace):
        raise ValueError(f"bad ledger namespace {namespace!r}")
    if intent_id <= 0:
        raise ValueError("intent ids are positive")
    return f"trs-{namespace}-{intent_id}"


def next_free_order_id(base: str, burned: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... : the first the exchange has not seen.

    Only where an intent id was handed out again (a restored SQLite ledger reuses ids the
    exchange already saw for other withdrawals) does an intent get a suffixed order id.
    """
    if base not in burned:
        return base
    n = 2
    while f"{base}-{n}" in burned:
        n += 1
    return f"{base}-{n}"


def intent_id_from_order_id(namespace: str, order_id: str) -> int | None:
    """The intent id an order id names (``trs-NS-ID`` or ``trs-NS-ID-N``), or None if
    another ledger (or nobody) made it."""
    prefix = f"trs-{namespace}-"
    if not order_id.startswith(prefix):
        return None
    parts = order_id[len(prefix) :].split("-")
    if len(parts) > 2 or not all(_digits(p) for p in parts) or len(parts[0]) >= 19:
        return None
    return int(parts[0])


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
