"""``treasury operator``: who may approve, and with which key.

    treasury operator keygen --out bob.pem          # a new Ed25519 key; prints its public half
    treasury operator add bob --public-key bob.pub --as alice
    treasury operator list
    treasury operator remove bob --reason "left the team" --as alice
    treasury approve 12 --key bob.pem               # signs what bob approves
    treasury operator invite bob --as alice --expires 30m   # a passkey registration token
    treasury operator passkeys bob
    treasury operator remove-passkey 3 --reason "lost" --as alice

Once one operator is registered, only signed approvals count (see
``treasury.domain.approval_proof``).
"""

from __future__ import annotations

import base64
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from treasury.cli import output as out
from treasury.cli.common import (
    EXIT_BAD_INPUT,
    actor_of,
    app,
    read_settings,
    reason_of,
    validated,
    with_ledger,
)

if TYPE_CHECKING:
    from treasury.ports.store import Ledger

operator_app = typer.Typer(no_args_is_help=True, help="Operators who may approve, and their keys.")
app.add_typer(operator_app, name="operator")


def public_key_text(path: Path) -> str:
    """The base64 Ed25519 public key in ``path``: a PEM public key, or the base64 line
    ``keygen`` prints."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = path.read_bytes()
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            out.fail(f"--public-key: {path} is not a PEM public key", EXIT_BAD_INPUT)
        if not isinstance(key, Ed25519PublicKey):
            out.fail(f"--public-key: {path} is not an Ed25519 key", EXIT_BAD_INPUT)
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()
    return data.decode("ascii", "replace").strip()


def load_private_key(path: Path) -> object:
    """An Ed25519 private key from a PEM file (never printed, never logged)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        out.fail(f"--key: {path} is not an unencrypted PEM private key", EXIT_BAD_INPUT)
    if not isinstance(key, Ed25519PrivateKey):
        out.fail(f"--key: {path} is not an Ed25519 key", EXIT_BAD_INPUT)
    return key


def raw_public(key: object) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert isinstance(key, Ed25519PrivateKey)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def approver_of(as_: str | None, key: Path | None) -> tuple[str | None, object | None]:
    """An approve command's ``--as`` (the operator's name, without ``cli:``) and ``--key``
    (the private key, loaded): at least one must be given; exit 2 otherwise."""
    if as_ is None and key is None:
        out.fail("--as or --key: say who approves", EXIT_BAD_INPUT)
    name = actor_of(as_).removeprefix("cli:") if as_ is not None else None
    return name, None if key is None else load_private_key(key)


async def key_owner(ledger: Ledger, private: object, name: str | None) -> str:
    """The current operator whose key ``private`` is; ``name`` (``--as``), if given, must
    be theirs. Refused (nothing written) otherwise."""
    from treasury.services.admin import Refused

    mine = raw_public(private)
    match = [o for o in await ledger.operators.all() if o.public_key == mine]
    if not match:
        raise Refused("--key: this key is not a registered operator's (treasury operator list)")
    operator = match[0]
    if operator.removed_at is not None:
        raise Refused(f"--key: operator {operator.name} was removed: {operator.removed_reason}")
    if name is not None and name != operator.name:
        raise Refused(f"--as {name}: the key is {operator.name}'s")
    return operator.name


def sign(private: object, message: bytes) -> str:
    """The base64 Ed25519 signature of ``message`` by ``private``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert isinstance(private, Ed25519PrivateKey)
    return base64.b64encode(private.sign(message)).decode()


@operator_app.command("keygen")
def keygen(
    out_: Path = typer.Option(..., "--out", help="where to write the private key (PEM, 0600)"),
) -> None:
    """Make an Ed25519 key for approving; prints the public key to register."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if out_.exists():
        out.fail(f"--out: {out_} exists; choose another file", EXIT_BAD_INPUT)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(out_, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    out.console.print(raw_public(key), markup=False)


@operator_app.command("add")
def add(
    name: str = typer.Argument(..., help="the operator's name, as they will approve"),
    public_key: Path = typer.Option(
        ..., "--public-key", exists=True, dir_okay=False, help="PEM, or keygen's line"
    ),
    as_: str | None = typer.Option(None, "--as", help="who registers them (recorded)"),
) -> None:
    """Register an operator; from then on only signed approvals count."""
    from treasury.domain import approval_proof as proof
    from treasury.services import operators

    actor = actor_of(as_)
    text = public_key_text(public_key)
    validated(lambda: proof.parse_public_key(text))
    added = with_ledger(lambda ledger: operators.add(ledger, name, text, actor=actor))
    out.console.print(
        f"operator {added.name} added (key {operators.fingerprint(added.public_key)}…); "
        "approvals must now be signed: treasury approve ID --key FILE",
        markup=False,
    )


@operator_app.command("remove")
def remove(
    name: str = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="why (recorded)"),
    as_: str | None = typer.Option(None, "--as", help="who removes them (recorded)"),
) -> None:
    """Remove an operator for good: their approvals stop counting."""
    from treasury.services import operators

    actor = actor_of(as_)
    why = reason_of(reason)
    gone = with_ledger(lambda ledger: operators.remove(ledger, name, actor=actor, reason=why))
    out.console.print(f"operator {gone.name} removed; their approvals no longer count")


@operator_app.command("list")
def list_() -> None:
    """The operators, current and removed."""
    from treasury.services.operators import fingerprint

    rows = with_ledger(lambda ledger: ledger.operators.all())
    if not rows:
        out.console.print(
            "no operators: approvals are by name (--as); register one to require signatures"
        )
    for o in rows:
        state = (
            f"removed {o.removed_at:%Y-%m-%d %H:%M} by {o.removed_by}: {o.removed_reason}"
            if o.removed_at
            else "current"
        )
        out.console.print(
            f"{o.name}  key {fingerprint(o.public_key)}…  added {o.added_at:%Y-%m-%d %H:%M} by "
            f"{o.added_by}  {state}",
            markup=False,
        )


def duration_of(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``90s``: exit 2 naming the problem otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    if len(raw) < 2 or raw[-1] not in units or not raw[:-1].isdigit():
        out.fail(f"--expires: {text!r} is not a duration like 30m, 2h or 1d", EXIT_BAD_INPUT)
    return timedelta(seconds=int(raw[:-1]) * units[raw[-1]])


@operator_app.command("invite")
def invite(
    name: str = typer.Argument(..., help="the registered operator who will add a passkey"),
    as_: str | None = typer.Option(None, "--as", help="who invites (recorded)"),
    expires: str = typer.Option("30m", "--expires", help="how long it is valid (30m, 2h, 1d)"),
) -> None:
    """A single-use, expiring token for NAME to register a passkey in the console.

    The token is printed once and stored as its sha256 only. Inviting is as powerful as
    adding an operator: with least-privilege roles it is the owner's to do."""
    from treasury.services import operators

    actor = actor_of(as_)
    lifetime = duration_of(expires)
    settings = read_settings()
    made = with_ledger(
        lambda ledger: operators.invite(ledger, name, actor=actor, expires=lifetime), settings
    )
    out.console.print(
        f"invite {made.invite.id} for {made.invite.operator}, single use, valid until "
        f"{made.invite.expires_at:%Y-%m-%d %H:%M:%S} UTC (shown once, not stored):",
        markup=False,
    )
    out.console.print(made.token, markup=False, soft_wrap=True)
    # open it in a browser at exactly the console's base URL (the passkey's origin)
    out.console.print(
        f"console: {settings.console_base}{made.console_path}", markup=False, soft_wrap=True
    )


@operator_app.command("passkeys")
def passkeys(name: str = typer.Argument(..., help="the operator")) -> None:
    """NAME's passkeys, current and removed (ids and a prefix of the credential id only)."""
    from treasury.domain.webauthn import ALGORITHMS

    rows = with_ledger(lambda ledger: ledger.passkeys.all(name))
    if not rows:
        out.console.print(f"{name} has no passkey (treasury operator invite {name})", markup=False)
    for p in rows:
        state = (
            f"removed {p.removed_at:%Y-%m-%d %H:%M} by {p.removed_by}: {p.removed_reason}"
            if p.removed_at
            else "current"
        )
        out.console.print(
            f"{p.id}  {p.credential_id[:12]}…  {ALGORITHMS.get(p.alg, p.alg)}  "
            f"rp {p.rp_id}  sign count {p.sign_count}  added {p.created_at:%Y-%m-%d %H:%M}  "
            f"{state}",
            markup=False,
        )


@operator_app.command("remove-passkey")
def remove_passkey(
    passkey_id: int = typer.Argument(..., help="the passkey's id (treasury operator passkeys)"),
    reason: str = typer.Option(..., "--reason", help="why (recorded)"),
    as_: str | None = typer.Option(None, "--as", help="who removes it (recorded)"),
) -> None:
    """Remove a passkey for good: approvals made with it stop counting."""
    from treasury.services import operators

    actor = actor_of(as_)
    why = reason_of(reason)
    gone = with_ledger(
        lambda ledger: operators.remove_passkey(ledger, passkey_id, actor=actor, reason=why)
    )
    out.console.print(
        f"passkey {gone.id} of {gone.operator} removed; approvals made with it no longer count",
        markup=False,
    )
