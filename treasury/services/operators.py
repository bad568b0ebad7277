"""The operators who may approve: registered with an Ed25519 public key, removed for good,
each change a service event (``operator_added`` / ``operator_removed``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable

from treasury.domain import approval_proof as proof
from treasury.domain.validation import ACCOUNT_RE, validate_reason
from treasury.ports.store import DuplicateEntry, Ledger, NotFound, Operator
from treasury.services.admin import Refused


def current_keys(registered: Iterable[Operator]) -> dict[str, bytes] | None:
    """Each current operator's raw public key; ``None`` when none was ever registered
    (approvals by name count then), as ``IntentUnit.operator_keys`` reads them."""
    listed = list(registered)
    if not listed:
        return None
    return {o.name: base64.b64decode(o.public_key) for o in listed if o.removed_at is None}


def fingerprint(public_key: str) -> str:
    """A short, stable name for a key in messages (its first 12 base64 characters)."""
    return public_key[:12]


async def add(ledger: Ledger, name: str, public_key: str, *, actor: str) -> Operator:
    """Register ``name`` with ``public_key`` (base64 of 32 bytes).

    Raises:
        InvalidField: the name or the key is malformed (nothing written).
        Refused: the name or the key is taken, now or before.
    """
    from treasury.domain.errors import InvalidField

    if not ACCOUNT_RE.fullmatch(name):
        raise InvalidField("name", f"{name!r}: letters, digits, '.', '_', '-' (1-64)")
    raw = proof.parse_public_key(public_key)
    text = base64.b64encode(raw).decode()
    try:
        operator = await ledger.operators.add(name, text, actor=actor)
    except DuplicateEntry as exc:
        raise Refused(str(exc)) from None
    await ledger.events.record(
        "operator_added", f"key {fingerprint(text)}", actor=actor, subject=name
    )
    return operator


async def remove(ledger: Ledger, name: str, *, actor: str, reason: str) -> Operator:
    """Remove ``name`` for good: their approvals stop counting, signed or not.

    Raises:
        Refused: no such operator, or removed already.
    """
    reason = validate_reason(reason)
    try:
        operator = await ledger.operators.remove(name, actor=actor, reason=reason)
    except NotFound as exc:
        raise Refused(str(exc)) from None
    await ledger.events.record("operator_removed", reason, actor=actor, subject=name)
    return operator
