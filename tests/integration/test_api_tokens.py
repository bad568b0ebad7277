"""``api_tokens`` on SQLite and PostgreSQL: ``treasury token create / list / revoke`` in
process, and the database refusing any SQL that would delete a client, change what it is,
or undo or rewrite its revocation."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from test_cli_admin import cli, ok, one_line_error, refused, snapshot

from treasury.adapters.db.ledger import SqlLedger
from treasury.adapters.db.tokens import TokenStore
from treasury.domain.api_token import token_hash

TOKEN_RE = re.compile(r"trs_[A-Za-z0-9_-]{43}")  # trs_ + 32 random bytes, urlsafe base64


@pytest.fixture
def url(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TREASURY_DATABASE_URL", migrated_url)
    return migrated_url


async def _create(name: str, scopes: str = "enqueue,read", *extra: str) -> str:
    out = ok(await cli("token", "create", name, "--scopes", scopes, "--as", "alice", *extra))
    (token,) = (w for w in out.split() if w.startswith("trs_"))
    assert TOKEN_RE.fullmatch(token), token
    return token


async def _events(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT kind, subject, actor FROM service_events "
                "WHERE kind LIKE 'api_token_%' ORDER BY id"
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


# ---- the CLI -----------------------------------------------------------------------------


async def test_create_prints_the_token_once_and_list_never(url: str, ledger: SqlLedger) -> None:
    token = await _create("pay-bot", "enqueue,read", "--accounts", "default")
    client = await TokenStore(ledger.engine).by_token(token)
    assert client is not None and client.name == "pay-bot"
    assert client.scopes == {"enqueue", "read"} and client.accounts == {"default"}
    async with ledger.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT * FROM api_tokens"))).one()
    assert stored.token_sha256 == token_hash(token) and token not in str(tuple(stored))
    listed = ok(await cli("token", "list"))
    assert "pay-bot: enqueue,read on default; created by cli:alice; active" in listed
    listed_json = json.loads(ok(await cli("token", "list", "--json")))
    assert [c["name"] for c in listed_json] == ["pay-bot"] and "token" not in listed_json[0]
    for shown in (listed, json.dumps(listed_json)):
        assert "trs_" not in shown and token_hash(token) not in shown
    made = json.loads(ok(await cli("token", "create", "other", "--scopes", "read", "--json")))
    assert TOKEN_RE.fullmatch(made["token"]) and made["token"] != token
    assert await _events(ledger.engine) == [
        ("api_token_created", "pay-bot", "cli:alice"),
        ("api_token_created", "other", made["created_by"]),
    ]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--scopes", "enqueue,admin"], ["--scopes", "unknown scope 'admin'"]),
        (["--scopes", "read,Write,drop"], ["--scopes", "'Write'", "'drop'"]),
        (["--scopes", " , "], ["--scopes", "no scope"]),
        (["--scopes", "read", "--accounts", "a b"], ["--accounts", "'a b'"]),
    ],
)
async def test_create_refuses_bad_input_naming_it(
    url: str, ledger: SqlLedger, args: list[str], words: list[str]
) -> None:
    before = await snapshot(ledger.engine)
    err = refused(await cli("token", "create", "bot", *args, "--as", "alice"), 2, *words)
    one_line_error(err)
    bad_name = await cli("token", "create", "Bad Name", "--scopes", "read", "--as", "alice")
    refused(bad_name, 2, "NAME")
    assert await snapshot(ledger.engine) == before


async def test_revoke_refuses_the_token_and_the_name_is_never_reused(
    url: str, ledger: SqlLedger
) -> None:
    token = await _create("pay-bot")
    before = await snapshot(ledger.engine)
    unknown = refused(await cli("token", "revoke", "nobody", "--reason", "x", "--as", "bob"), 1)
    assert "'nobody' not found" in unknown
    one_line_error(unknown)
    assert await snapshot(ledger.engine) == before

    out = ok(await cli("token", "revoke", "pay-bot", "--reason", "key leaked", "--as", "bob"))
    assert "API client pay-bot revoked" in out
    client = await TokenStore(ledger.engine).by_token(token)
    assert client is not None and client.revoked_by == "cli:bob"
    assert client.revoked_reason == "key leaked" and client.revoked_at is not None
    assert "revoked" in ok(await cli("token", "list"))

    again = refused(await cli("token", "revoke", "pay-bot", "--reason", "x", "--as", "bob"), 1)
    assert "revoked already" in again and "cli:bob" in again
    reuse = await cli("token", "create", "pay-bot", "--scopes", "read", "--as", "alice")
    refused(reuse, 1, "pay-bot", "never reused")
    assert await _events(ledger.engine) == [
        ("api_token_created", "pay-bot", "cli:alice"),
        ("api_token_revoked", "pay-bot", "cli:bob"),
    ]
    after = await TokenStore(ledger.engine).get("pay-bot")
    assert after == client  # the refused revocation changed nothing


# ---- the database's own guard --------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM api_tokens WHERE name = 'live'",
        "DELETE FROM api_tokens",
        "UPDATE api_tokens SET name = 'renamed' WHERE name = 'live'",
        "UPDATE api_tokens SET token_sha256 = '" + "0" * 64 + "' WHERE name = 'live'",
        "UPDATE api_tokens SET scopes = 'cancel,enqueue,read' WHERE name = 'live'",
        "UPDATE api_tokens SET accounts = NULL WHERE name = 'live'",
        "UPDATE api_tokens SET created_by = 'cli:mallory' WHERE name = 'live'",
        "UPDATE api_tokens SET created_at = CURRENT_TIMESTAMP WHERE name = 'live'",
        # a half-set revocation (no time, or no one)
        "UPDATE api_tokens SET revoked_by = 'cli:bob' WHERE name = 'live'",
        "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE name = 'live'",
        "UPDATE api_tokens SET revoked_reason = 'x' WHERE name = 'live'",
        # a revocation undone or rewritten
        "UPDATE api_tokens SET revoked_at = NULL, revoked_by = NULL, revoked_reason = NULL "
        "WHERE name = 'gone'",
        "UPDATE api_tokens SET revoked_by = 'cli:mallory' WHERE name = 'gone'",
        "UPDATE api_tokens SET revoked_reason = 'other' WHERE name = 'gone'",
        "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE name = 'gone'",
        # a revocation smuggling in another scope
        "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP, revoked_by = 'cli:bob', "
        "scopes = 'cancel' WHERE name = 'live'",
    ],
)
async def test_the_database_refuses_to_rewrite_a_client(
    url: str, ledger: SqlLedger, statement: str
) -> None:
    store = TokenStore(ledger.engine)
    await store.create(
        "live", scopes=frozenset({"read"}), accounts=frozenset({"default"}), actor="a", reason="t"
    )
    await store.create("gone", scopes=frozenset({"read"}), accounts=None, actor="a", reason="t")
    await store.revoke("gone", actor="cli:bob", reason="leaked")
    before = await snapshot(ledger.engine)
    with pytest.raises(DBAPIError, match="api_tokens"):
        async with ledger.engine.begin() as conn:
            await conn.execute(text(statement))
    assert await snapshot(ledger.engine) == before


async def test_postgres_refuses_truncate(url: str, ledger: SqlLedger) -> None:
    if ledger.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's (SQLite has DELETE only, refused above)")
    await TokenStore(ledger.engine).create(
        "live", scopes=frozenset({"read"}), accounts=None, actor="a", reason="t"
    )
    with pytest.raises(DBAPIError, match="api_tokens"):
        async with ledger.engine.begin() as conn:
            await conn.execute(text("TRUNCATE api_tokens"))
    assert [c.name for c in await TokenStore(ledger.engine).all()] == ["live"]


async def test_a_revocation_by_sql_is_allowed_once(url: str, ledger: SqlLedger) -> None:
    """What ``token revoke`` writes, the guard lets through (and then nothing more)."""
    store = TokenStore(ledger.engine)
    await store.create("live", scopes=frozenset({"read"}), accounts=None, actor="a", reason="t")
    async with ledger.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE api_tokens SET revoked_at = CURRENT_TIMESTAMP, revoked_by = 'cli:bob' "
                "WHERE name = 'live'"
            )
        )
    client = await store.get("live")
    assert client.revoked_by == "cli:bob" and client.revoked_reason is None
