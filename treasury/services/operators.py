"""The operators who may approve: registered with an Ed25519 public key, removed for good,
each change a service event (``operator_added`` / ``operator_removed``)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from treasury.domain import approval_proof as proof
from treasury.domain import webauthn as wa
from treasury.domain.validation import ACCOUNT_RE, validate_reason
from treasury.ports.clock import utcnow
from treasury.ports.store import (
    DuplicateEntry,
    Invite,
    InviteUnusable,
    Ledger,
    NotFound,
    Operator,
    Passkey,
)
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


# ---- passkeys ----------------------------------------------------------------------------

INVITE_MAX = timedelta(days=7)
INVITE_MIN = timedelta(minutes=1)


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} s"


def token_digest(token: str) -> str:
    """How an invite's token is stored: the hex sha256 of its text."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


@dataclass(frozen=True)
class Invitation:
    invite: Invite
    token: str = field(repr=False)  # shown once, never stored

    @property
    def console_path(self) -> str:
        return f"/console/register?token={self.token}"


async def invite(
    ledger: Ledger, name: str, *, actor: str, expires: timedelta = timedelta(minutes=30)
) -> Invitation:
    """A single-use invitation for operator ``name`` to register a passkey, valid for
    ``expires``; the token is returned once and stored as its sha256 only. Audited as
    ``operator_invited`` (never the token).

    Raises:
        Refused: no such current operator, or ``expires`` outside 1 minute .. 7 days.
    """
    if not INVITE_MIN <= expires <= INVITE_MAX:
        raise Refused(
            f"--expires: {_span(expires)} is outside 1 minute .. 7 days (an invite is for "
            "one registration soon; make a new one when it runs out)"
        )
    token = secrets.token_urlsafe(32)
    try:
        made = await ledger.passkeys.invite(
            name, token_digest(token), created_by=actor, expires_at=utcnow() + expires
        )
    except NotFound as exc:
        raise Refused(str(exc)) from None
    await ledger.events.record(
        "operator_invited",
        f"passkey invite {made.id}, expires {made.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        actor=actor,
        subject=name,
    )
    return Invitation(made, token)


def registration_challenge(token: str) -> bytes:
    """The challenge a passkey registration with invite ``token`` signs (no server-side
    session needed: it is bound to the single-use invite)."""
    return hashlib.sha256(b"treasury webauthn registration v1\n" + token.strip().encode()).digest()


async def register_passkey(
    ledger: Ledger,
    invite_token: str,
    *,
    client_data_json: bytes,
    attestation_object: bytes,
    origin: str,
    rp_id: str,
    expected_challenge: bytes | None = None,
) -> Passkey:
    """Register the passkey a browser created with an invite: the invite is used (single
    use, not expired, its operator still registered) and the credential stored, in one
    transaction. ``expected_challenge`` defaults to ``registration_challenge(token)``.
    Audited as ``passkey_registered``.

    Raises:
        Refused: the invite is unusable, the registration fails a check (named), or the
            credential is registered already. Nothing is written.
    """
    digest = token_digest(invite_token)
    found = await ledger.passkeys.invite_for(digest)
    now = utcnow()
    if found is None:
        raise Refused("passkey registration refused: no such invite")
    if found.used_at is not None or found.expires_at <= now:
        raise Refused("passkey registration refused: the invite was used already or expired")
    try:
        credential = wa.parse_registration(
            client_data_json,
            attestation_object,
            expected_challenge=expected_challenge or registration_challenge(invite_token),
            origin=origin,
            rp_id=rp_id,
        )
    except wa.WebAuthnError as exc:
        raise Refused(f"passkey registration refused: {exc.problem}") from None
    try:
        passkey = await ledger.passkeys.register(digest, credential, now=now)
    except (InviteUnusable, DuplicateEntry) as exc:
        raise Refused(f"passkey registration refused: {exc}") from None
    await ledger.events.record(
        "passkey_registered",
        f"passkey {passkey.id} ({passkey.credential_id[:12]}..., "
        f"{wa.ALGORITHMS[passkey.alg]}) with invite {found.id}",
        actor=f"invite:{found.id}",
        subject=passkey.operator,
    )
    return passkey


async def remove_passkey(ledger: Ledger, passkey_id: int, *, actor: str, reason: str) -> Passkey:
    """Remove a passkey for good: approvals made with it stop counting.

    Raises:
        Refused: no such passkey, or removed already.
    """
    reason = validate_reason(reason)
    try:
        passkey = await ledger.passkeys.remove(passkey_id, actor=actor, reason=reason)
    except NotFound as exc:
        raise Refused(str(exc)) from None
    await ledger.events.record(
        "passkey_removed", f"passkey {passkey_id}: {reason}", actor=actor, subject=passkey.operator
    )
    return passkey
