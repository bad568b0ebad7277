"""Approvals that prove who approved: an Ed25519 signature over a canonical statement.

An operator is registered with a public key. To approve, they sign the statement of
exactly what is approved (the intent's id and request id, account, coin, network,
address, tag, amount and wallet); the daemon counts an approval only if its signature
verifies, with the key of an operator registered now, over the statement of the intent
as it is when it is committed to send. So an approval cannot be moved to another intent
(the id is signed), survive a change of amount or destination, be made in someone
else's name without their key, or count twice for one person.

Until the first operator is registered, approvals are by name (``--as``) as before: the
break-glass mode of a setup without keys. Registering one switches the ledger to signed
approvals for good (operators are never deleted, only removed).

The same proof covers a second person's approval of an address-book entry (see
``entry_statement``) and of a policy version (``policy_statement``), each with its own
prefix, so a signature over one kind of thing can never pass as one over another.

Pure: the signature check is computation, not I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from treasury.domain.errors import InvalidField
from treasury.domain.intent import Intent
from treasury.domain.money import format_amount
from treasury.domain.webauthn import Credential, is_passkey_proof, proof_problem

PREFIX = "treasury approval v1"
ENTRY_PREFIX = "treasury address-book approval v1"
POLICY_PREFIX = "treasury policy approval v1"


def _lines(prefix: str, fields: Iterable[tuple[str, str]]) -> bytes:
    return "\n".join([prefix, *(f"{k}={v}" for k, v in fields)]).encode() + b"\n"


def statement(intent: Intent) -> bytes:
    """The bytes an approver signs: one ``key=value`` per line, in a fixed order, with
    every field that decides where money goes and how much."""
    return _lines(
        PREFIX,
        (
            ("intent", str(intent.id)),
            ("request_id", intent.request_id or ""),
            ("account", intent.account),
            ("coin", intent.coin),
            ("network", intent.network),
            ("address", intent.address),
            ("address_tag", intent.address_tag or ""),
            ("amount", format_amount(intent.amount)),
            ("wallet", intent.wallet.value if intent.wallet else "account default"),
        ),
    )


class EntryVersion(Protocol):
    """One version of an address-book entry, as far as an approval of it is concerned
    (``treasury.ports.store.WhitelistEntry`` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def account(self) -> str: ...
    @property
    def coin(self) -> str: ...
    @property
    def network(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def address_tag(self) -> str | None: ...


def entry_statement(entry: EntryVersion) -> bytes:
    """The bytes a second person signs to approve one version of an address-book entry.

    The destination (account, coin, network, address, tag) is what the approver vouches
    for; the entry's id and version bind the signature to that row as it is now, so it
    cannot be copied onto another entry, and any later change of the entry (a disable and
    enable, a new label: each is a new version) needs approving again. The label and the
    source are left out: they decide nothing about where money goes.
    """
    return _lines(
        ENTRY_PREFIX,
        (
            ("entry", str(entry.id)),
            ("version", str(entry.version)),
            ("account", entry.account),
            ("coin", entry.coin),
            ("network", entry.network),
            ("address", entry.address),
            ("address_tag", entry.address_tag or ""),
        ),
    )


def policy_statement(version: int, sha256: str) -> bytes:
    """What approving a policy version signs: its number and the sha256 of its canonical
    text (the text itself is what the digest pins)."""
    return _lines(POLICY_PREFIX, (("version", str(version)), ("sha256", sha256)))


class Approver(Protocol):
    """A registered operator, as far as checking an approval is concerned
    (``treasury.ports.store.Operator`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def public_key(self) -> str: ...  # base64 of the raw 32 bytes
    @property
    def removed_at(self) -> datetime | None: ...


def policy_approval_problem(
    *,
    version: int,
    sha256: str,
    applied_by: str,
    approved_by: str | None,
    signature: str | None,
    activated_at: datetime | None,
    operators: Sequence[Approver],
) -> str | None:
    """Why an activated policy version's approval does not prove who approved it, or
    ``None`` when it does (or when it needed none: activated without an approver).

    As for intents: while no operator was ever registered an approval by name counts
    (break glass); once one is, the approver must be an operator other than the applier,
    not removed before the activation, whose key verifies ``signature`` over
    ``policy_statement``."""
    if approved_by is None:
        return None
    if person(approved_by) == person(applied_by):
        return f"approved by its applier {approved_by}"
    if not operators:
        return None
    match = [o for o in operators if person(o.name) == person(approved_by)]
    if not match:
        return f"approved by {approved_by}, who is not a registered operator"
    operator = match[0]
    if operator.removed_at is not None and (
        activated_at is None or operator.removed_at <= activated_at
    ):
        return f"approved by {operator.name}, removed before the approval"
    if signature is None:
        return f"approved by {operator.name} by name only, while approvals are signed"
    if not verifies(
        parse_public_key(operator.public_key), signature, policy_statement(version, sha256)
    ):
        return f"{operator.name}'s signature does not match version {version}"
    return None


def person(actor: str) -> str:
    """Who an actor or approver name stands for, to compare people: ``cli:Alice`` and
    ``alice`` are one person (operator names never contain ``:``)."""
    return actor.rsplit(":", 1)[-1].strip().casefold()


def parse_public_key(text: str) -> bytes:
    """A raw Ed25519 public key (32 bytes) from its base64 text.

    Raises:
        InvalidField: not base64 of 32 bytes.
    """
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField("public key", "is not base64 text") from None
    if len(raw) != 32:
        raise InvalidField("public key", f"is {len(raw)} bytes, an Ed25519 key is 32")
    return raw


def verifies(public_key: bytes, signature_b64: str, message: bytes) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class Approval:
    approver: str
    # base64 Ed25519 signature of ``statement``, or a passkey proof (a JSON document,
    # ``webauthn.PasskeyProof``); None: by name only
    signature: str | None
    recorded_at: datetime | None = None  # when it was recorded (a passkey's freshness)


# operator -> their registered, not removed, passkeys
Passkeys = Mapping[str, Sequence[Credential]]


@dataclass(frozen=True)
class Count:
    valid: tuple[str, ...]  # who counts, in order
    ignored: tuple[str, ...]  # why each other approval does not ("bob: ...")


def count(
    intent: Intent,
    approvals: Iterable[Approval],
    operators: Mapping[str, bytes] | None,
    passkeys: Passkeys | None = None,
) -> Count:
    """The approvals that count for ``intent``.

    ``operators`` maps each registered, not removed, operator to its public key; ``None``
    means no operator was ever registered (approvals by name count). An approval counts
    if signed with that key, or by one of the operator's ``passkeys`` over the challenge
    for the statement as it is now (``webauthn.proof_problem``). The requester never
    counts, nor anyone twice, whatever mix of keys.
    """
    requester = {person(intent.requested_by or ""): "requested this withdrawal"}
    return _count(statement(intent), approvals, operators, requester, "this intent", passkeys)


def count_entry(
    entry: EntryVersion,
    approvals: Iterable[Approval],
    operators: Mapping[str, bytes] | None,
    *,
    makers: Iterable[str],
    passkeys: Passkeys | None = None,
) -> Count:
    """The approvals that count for this version of ``entry`` (``approvals``: those
    recorded for its id and version).

    ``makers`` are the actors who added the entry and who made this version: they never
    count, since the point is a second person. ``operators`` as for ``count``.
    """
    excluded = {
        person(m): "added or changed this entry; a second person approves it" for m in makers
    }
    return _count(entry_statement(entry), approvals, operators, excluded, "this entry", passkeys)


def _count(
    message: bytes,
    approvals: Iterable[Approval],
    operators: Mapping[str, bytes] | None,
    excluded: Mapping[str, str],
    what: str,
    passkeys: Passkeys | None = None,
) -> Count:
    valid: list[str] = []
    ignored: list[str] = []
    excluded = {k: v for k, v in excluded.items() if k}
    for a in approvals:
        who = a.approver.strip()
        if not person(who):
            ignored.append(f"{who!r}: names nobody")
        elif person(who) in excluded:
            ignored.append(f"{who}: {excluded[person(who)]}")
        elif person(who) in (person(v) for v in valid):
            ignored.append(f"{who}: approved twice")
        elif operators is None:
            valid.append(who)
        elif who not in operators:
            ignored.append(f"{who}: not a registered operator")
        elif a.signature is None:
            ignored.append(f"{who}: not signed")
        elif is_passkey_proof(a.signature):
            problem = proof_problem(
                message,
                a.signature,
                (passkeys or {}).get(who, ()),
                recorded_at=a.recorded_at,
            )
            if problem:
                ignored.append(f"{who}: passkey approval: {problem}")
            else:
                valid.append(who)
        elif not verifies(operators[who], a.signature, message):
            ignored.append(f"{who}: the signature is not over {what} as it stands")
        else:
            valid.append(who)
    return Count(tuple(valid), tuple(ignored))
