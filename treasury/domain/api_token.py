"""The HTTP API's clients: names, scopes and how a bearer token is recognised.

A token is ``trs_`` + 32 random bytes (urlsafe base64); only its sha256 is stored. This
module is pure: it checks names and scopes, hashes, and says which scope an endpoint
needs. Making a token (randomness) is the store's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from treasury.domain.errors import DomainError, InvalidField
from treasury.domain.validation import ACCOUNT_RE

PREFIX = "trs_"
SCOPES = ("enqueue", "read", "cancel")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# the Idempotency-Key a client sends: request_id = api:<name>:<key> fits its 128 characters
KEY_RE = re.compile(r"^[A-Za-z0-9._~:-]{1,64}$")
ACTOR_PREFIX = "api:"


class AlreadyRevoked(DomainError):
    """A revocation of a client whose token is revoked already (it stays as it was)."""


@dataclass(frozen=True, kw_only=True)
class ApiClient:
    name: str
    scopes: frozenset[str]
    accounts: frozenset[str] | None  # None: every account
    created_by: str
    created_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    @property
    def actor(self) -> str:
        """What the ledger records as ``requested_by`` and ``enqueued_via``."""
        return ACTOR_PREFIX + self.name

    def sees(self, account: str) -> bool:
        return self.accounts is None or account in self.accounts


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise InvalidField(
            "NAME",
            "1 to 32 lower-case letters, digits, '_' or '-', starting with a letter or digit",
        )
    return name


def parse_scopes(text: str) -> frozenset[str]:
    found = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(found - set(SCOPES))
    if unknown:
        names = ", ".join(repr(s) for s in unknown)
        raise InvalidField(
            "--scopes",
            f"unknown scope{'s' if len(unknown) > 1 else ''} {names} "
            f"(a comma-separated list of {', '.join(SCOPES)})",
        )
    if not found:
        raise InvalidField(
            "--scopes", f"no scope given (a comma-separated list of {', '.join(SCOPES)})"
        )
    return found


def parse_accounts(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    found = frozenset(a.strip() for a in text.split(",") if a.strip())
    bad = sorted(a for a in found if not ACCOUNT_RE.fullmatch(a))
    if bad or not found:
        raise InvalidField("--accounts", f"a comma-separated list of account names, not {text!r}")
    return found


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_hint(token: str) -> str:
    """What a log line may say of a presented token: a prefix of its hash, never the token."""
    return token_hash(token)[:8]


def request_id_of(client: str, key: str) -> str:
    """The ledger's ``request_id`` for a client's Idempotency-Key: keys are per client."""
    if not KEY_RE.fullmatch(key):
        raise InvalidField("Idempotency-Key", "1 to 64 characters of letters, digits and . _ ~ : -")
    return f"{ACTOR_PREFIX}{client}:{key}"
