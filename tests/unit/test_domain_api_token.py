"""``domain.api_token``: names, scopes, accounts, the hash of a token and the per-client
request id; every refusal names the field and the bad part."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import pytest

from treasury.domain.api_token import (
    PREFIX,
    SCOPES,
    ApiClient,
    parse_accounts,
    parse_scopes,
    request_id_of,
    token_hash,
    token_hint,
    validate_name,
)
from treasury.domain.errors import InvalidField


def test_token_hash_is_sha256_hex_and_the_hint_a_prefix() -> None:
    token = PREFIX + "abc"
    assert token_hash(token) == hashlib.sha256(b"trs_abc").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", token_hash(token))
    assert token_hint(token) == token_hash(token)[:8]
    assert "abc" not in token_hint(token)
    # a token that is not valid text (a lone surrogate from a bad header) still hashes
    assert len(token_hash("trs_\udcff")) == 64


@pytest.mark.parametrize("name", ["a", "pay-bot", "bot_2", "0x", "a" * 32])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Bot", "-bot", "_bot", "pay bot", "a" * 33, "bot!", "é"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidField) as caught:
        validate_name(name)
    assert caught.value.field == "NAME"


def test_scopes() -> None:
    assert SCOPES == ("enqueue", "read", "cancel")
    assert parse_scopes("read") == {"read"}
    assert parse_scopes(" enqueue , read,read,cancel ") == {"enqueue", "read", "cancel"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("admin", ["'admin'"]),
        ("read,admin", ["'admin'"]),
        ("READ", ["'READ'"]),
        ("read,write,drop", ["'drop'", "'write'", "scopes"]),
        ("read;cancel", ["'read;cancel'"]),
    ],
)
def test_an_unknown_scope_is_named(text: str, named: list[str]) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_scopes(text)
    assert caught.value.field == "--scopes"
    message = str(caught.value)
    for word in named:
        assert word in message, message
    assert "enqueue, read, cancel" in message  # and what is allowed


@pytest.mark.parametrize("text", ["", ",", " , "])
def test_no_scope_is_refused(text: str) -> None:
    with pytest.raises(InvalidField, match="no scope given"):
        parse_scopes(text)


def test_accounts() -> None:
    assert parse_accounts(None) is None
    assert parse_accounts("default, main") == {"default", "main"}
    for bad in ("", "a b", ","):
        with pytest.raises(InvalidField) as caught:
            parse_accounts(bad)
        assert caught.value.field == "--accounts" and repr(bad) in str(caught.value)


def test_request_id_is_per_client_and_the_key_is_checked() -> None:
    assert request_id_of("pay-bot", "k-1") == "api:pay-bot:k-1"
    assert request_id_of("pay-bot", "a" * 64).startswith("api:pay-bot:")
    for bad in ("", "a" * 65, "with space", "ü", "a/b"):
        with pytest.raises(InvalidField) as caught:
            request_id_of("pay-bot", bad)
        assert caught.value.field == "Idempotency-Key"


def test_client_actor_and_accounts() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    everywhere = ApiClient(
        name="bot", scopes=frozenset({"read"}), accounts=None, created_by="cli:a", created_at=at
    )
    assert everywhere.actor == "api:bot" and everywhere.sees("anything")
    one = ApiClient(
        name="bot", scopes=frozenset(), accounts=frozenset({"main"}), created_by="a", created_at=at
    )
    assert one.sees("main") and not one.sees("default")
