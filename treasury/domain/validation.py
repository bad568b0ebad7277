"""Validation of an intent's own fields (no exchange rules here: see ``rules``).

Used by the CLI and the bots' API before anything is written, and by the worker
for rows that arrived by plain SQL, which skipped those front doors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from treasury.domain.errors import InvalidField
from treasury.domain.money import parse_amount
from treasury.domain.travel_rule import Entity, intent_questionnaire
from treasury.domain.wallet import Wallet, parse_wallet

COIN_RE = re.compile(r"^[A-Z0-9]{1,20}$")
NETWORK_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_ADDRESS = 256
MAX_TAG = 128
MAX_REQUEST_ID = 128
MAX_TEXT = 1000


@dataclass(frozen=True, kw_only=True)
class NewIntent:
    """A validated request to withdraw, ready to be stored."""

    coin: str
    network: str
    address: str
    address_tag: str | None
    amount: Decimal
    account: str = "default"
    request_id: str | None = None
    requested_by: str | None = None
    note: str | None = None
    wallet: Wallet | None = None  # None: the account's default wallet, fixed at the send
    # canonical JSON of the intent's own travel-rule questionnaire (replaces the profile)
    questionnaire: str | None = field(default=None, repr=False)


def _printable_token(field: str, value: str, max_len: int) -> str:
    if not value:
        raise InvalidField(field, "must not be empty")
    if len(value) > max_len:
        raise InvalidField(field, f"is longer than {max_len} characters")
    if any(c.isspace() for c in value):
        raise InvalidField(field, "must not contain whitespace")
    if not value.isprintable():
        raise InvalidField(field, "must contain printable characters only")
    return value


def validate_coin(value: str) -> str:
    if not COIN_RE.match(value):
        raise InvalidField("coin", f"{value!r} is not an upper-case asset symbol such as USDT")
    return value


def validate_network(value: str) -> str:
    if not NETWORK_RE.match(value):
        raise InvalidField(
            "network", f"{value!r} is not a network symbol as the exchange names it (e.g. TRX)"
        )
    return value


def validate_address(value: str) -> str:
    return _printable_token("address", value, MAX_ADDRESS)


def validate_tag(value: str | None) -> str | None:
    if value is None:
        return None
    return _printable_token("address_tag", value, MAX_TAG)


def validate_account(value: str) -> str:
    if not ACCOUNT_RE.match(value):
        raise InvalidField("account", f"{value!r} is not a valid account name")
    return value


def _optional_text(field: str, value: str | None, max_len: int) -> str | None:
    if value is None:
        return None
    if len(value) > max_len:
        raise InvalidField(field, f"is longer than {max_len} characters")
    if "\x00" in value:
        raise InvalidField(field, "must not contain NUL characters")
    if not is_unicode_text(value):
        raise InvalidField(field, "is not valid text (a byte that is not UTF-8?)")
    return value


MAX_REASON = 500


def validate_reason(value: str | None, *, field: str = "reason", default: str | None = None) -> str:
    """The reason a change is kept with in the trail, stripped: text a person can read later.

    A blank reason ("", spaces, a lone "\\r") is no reason: ``default`` where the change
    has a sensible one (a cancel, a pause), refused otherwise.

    Raises:
        InvalidField: ``field``, blank without a default, too long, or not text.
    """
    text = (value or "").strip()
    if not text:
        if default is not None:
            return default
        raise InvalidField(field, "say why (it is kept in the audit trail)")
    if len(text) > MAX_REASON or "\x00" in text or not is_unicode_text(text):
        raise InvalidField(field, f"at most {MAX_REASON} characters of text")
    return text


def is_unicode_text(value: str) -> bool:
    """False for a string holding lone surrogates: what Python makes of bytes in argv
    that are not UTF-8. No database can store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_new_intent(
    *,
    coin: str,
    network: str,
    address: str,
    amount: object,
    address_tag: str | None = None,
    account: str = "default",
    request_id: str | None = None,
    requested_by: str | None = None,
    note: str | None = None,
    wallet: object = None,
    questionnaire: object = None,
    local_entity: Entity | None = None,
) -> NewIntent:
    """Check every field and return a ``NewIntent``.

    ``questionnaire`` (a mapping or JSON text) is the intent's own travel-rule
    questionnaire, checked against ``local_entity``'s form when the account's entity is
    known (``travel_rule.intent_questionnaire``).

    Raises:
        InvalidField: naming the first bad field and what is wrong with it.
    """
    if request_id is not None:
        _printable_token("request_id", request_id, MAX_REQUEST_ID)
    return NewIntent(
        coin=validate_coin(coin),
        network=validate_network(network),
        address=validate_address(address),
        address_tag=validate_tag(address_tag),
        amount=parse_amount(amount),
        account=validate_account(account),
        request_id=request_id,
        requested_by=_optional_text("requested_by", requested_by, 128),
        note=_optional_text("note", note, MAX_TEXT),
        wallet=None if wallet is None else parse_wallet(wallet),
        questionnaire=intent_questionnaire(questionnaire, local_entity),
    )
