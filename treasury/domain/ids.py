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


def intent_id_from_order_id(namespace: str, order_id: str) -> int | None:
    """The intent id an order id belongs to, or None if another ledger (or nobody) made it."""
    prefix = f"trs-{namespace}-"
    if not order_id.startswith(prefix):
        return None
    rest = order_id[len(prefix):]
    return int(rest) if rest.isdigit() else None
