"""The operator SQL snippets of the README, run verbatim on the dialect they name.

A snippet is a fenced block opened by a line ```` ```sql ```` whose first line is a
comment ``-- sqlite: ...`` or ``-- postgres: ...``. The blocks of one dialect run in
document order on one freshly migrated database, through the plain driver an
operator's client would use (sqlite3, asyncpg), not through the service. Every intent
an INSERT creates must be what the worker expects: queued, the exact amount as a
Decimal, valid fields, and a creation event with actor ``sql``.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger as Ledger
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE_OPEN = re.compile(r"^```sql\s*$")
TAG = re.compile(r"^--\s*(sqlite|postgres):\s*(\S.*)$")


@dataclass(frozen=True)
class Snippet:
    dialect: str
    title: str
    line: int
    sql: str

    @property
    def statements(self) -> list[str]:
        return split_statements(self.sql)


def extract_snippets(markdown: str) -> list[Snippet]:
    """Fenced ```sql blocks whose first line is a ``-- sqlite:`` / ``-- postgres:`` comment."""
    snippets = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        if FENCE_OPEN.match(lines[i]):
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            body = lines[start:end]
            match = TAG.match(body[0].strip()) if body else None
            if match:
                snippets.append(
                    Snippet(
                        dialect=match.group(1),
                        title=match.group(2).strip(),
                        line=start + 1,
                        sql="\n".join(body),
                    )
                )
            i = end + 1
        else:
            i += 1
    return snippets


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` outside quotes and ``--`` comments; drop comment-only pieces."""
    statements, current = [], []
    quote: str | None = None
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            current.append(ch)
            if ch == quote:
                if i + 1 < len(sql) and sql[i + 1] == quote:  # doubled quote inside a literal
                    current.append(sql[i + 1])
                    i += 1
                else:
                    quote = None
        elif ch in ("'", '"'):
            quote = ch
            current.append(ch)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end == -1 else end
            current.append(sql[i:end])
            i = end - 1
        elif ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if _code(s)]


def _code(statement: str) -> str:
    return "\n".join(
        line for line in statement.splitlines() if not line.strip().startswith("--")
    ).strip()


def first_keyword(statement: str) -> str:
    return _code(statement).split(None, 1)[0].upper()


NUMBER = r"\d+(?:\.\d+)?"
LITERAL = re.compile(rf"'({NUMBER})'|(?<![\w.'\"-])({NUMBER})(?![\w.'\"-])")


def numeric_literals(sql: str) -> set[Decimal]:
    """Numbers written as a whole literal ('250.10' or 250.10), not digits inside names."""
    return {Decimal(quoted or bare) for quoted, bare in LITERAL.findall(sql)}


# ---- the extractor itself ------------------------------------------------------------------


def test_extractor_and_splitter() -> None:
    sample = (
        "text\n```sql\n-- sqlite: enqueue one\nINSERT INTO t (a, b) VALUES ('x;y', 'it''s');\n"
        "SELECT 1; -- trailing; comment\n```\n"
        "```sql\nSELECT 'untagged';\n```\n"
        "```sh\n-- postgres: not sql\n```\n"
        "```sql\n-- postgres: summary\nSELECT status FROM t\n```\n"
    )
    snippets = extract_snippets(sample)
    assert [(s.dialect, s.title) for s in snippets] == [
        ("sqlite", "enqueue one"),
        ("postgres", "summary"),
    ]
    assert snippets[0].statements == [
        "-- sqlite: enqueue one\nINSERT INTO t (a, b) VALUES ('x;y', 'it''s')",
        "SELECT 1",
    ]
    assert [first_keyword(s) for s in snippets[0].statements] == ["INSERT", "SELECT"]
    assert snippets[1].statements == ["-- postgres: summary\nSELECT status FROM t"]
    assert numeric_literals("VALUES ('USDT', 'TRX', 'T1x', '250.10', 'r-2026-1')") == {
        Decimal("250.10")
    }
    assert numeric_literals("VALUES ('XRP', 'r9', 40.000001, 'id-7') LIMIT 3") == {
        Decimal("40.000001"),
        Decimal("3"),
    }


# ---- the README's snippets ----------------------------------------------------------------


def readme_snippets(dialect: str) -> list[Snippet]:
    assert README.is_file(), f"{README} is missing"
    snippets = [
        s for s in extract_snippets(README.read_text(encoding="utf-8")) if s.dialect == dialect
    ]
    if not snippets:
        pytest.fail(
            f"README.md has no operator SQL snippet for {dialect}: add fenced ```sql blocks "
            f"whose first line is '-- {dialect}: <what it does>' (an INSERT that enqueues a "
            "withdrawal, a SELECT of an intent's history from intent_events, a status summary)"
        )
    if not any(first_keyword(st) == "INSERT" for s in snippets for st in s.statements):
        pytest.fail(f"README.md has no {dialect} snippet that enqueues (INSERT INTO ...)")
    return snippets


def _dialect_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


def _run_sqlite(url: str, statement: str) -> list[tuple[object, ...]]:
    path = url.split(":///", 1)[1]
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit, as the sqlite3 shell
    try:
        return list(conn.execute(statement).fetchall())
    finally:
        conn.close()


async def _run_postgres(url: str, statement: str) -> list[tuple[object, ...]]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(statement)]
    finally:
        await conn.close()


async def test_readme_sql_snippets_run_and_enqueue_what_the_worker_expects(
    migrated_url: str,
) -> None:
    dialect = _dialect_of(migrated_url)
    snippets = readme_snippets(dialect)
    engine = create_engine(migrated_url)
    ledger = Ledger.over(engine)
    try:
        for snippet in snippets:
            for statement in snippet.statements:
                where = f"README.md line {snippet.line} ({dialect}: {snippet.title})"
                before = {i.id for i in await ledger.intents.search(limit=10000)}
                try:
                    if dialect == "sqlite":
                        rows = _run_sqlite(migrated_url, statement)
                    else:
                        rows = await _run_postgres(migrated_url, statement)
                except Exception as exc:
                    pytest.fail(f"{where} failed: {type(exc).__name__}: {exc}\n{statement}")
                kind = first_keyword(statement)
                if kind == "SELECT":
                    assert isinstance(rows, list), where
                    continue
                if kind != "INSERT":
                    continue
                created = [
                    i for i in await ledger.intents.search(limit=10000) if i.id not in before
                ]
                assert created, f"{where}: the INSERT created no intent"
                for intent in created:
                    assert intent.status is Status.QUEUED, where
                    assert isinstance(intent.amount, Decimal), where
                    assert intent.amount in numeric_literals(statement), (
                        f"{where}: stored amount {intent.amount} is not one written in the SQL"
                    )
                    # the worker re-validates rows that came in by SQL: they must pass
                    validate_new_intent(
                        coin=intent.coin,
                        network=intent.network,
                        address=intent.address,
                        amount=intent.amount,
                        address_tag=intent.address_tag,
                        account=intent.account,
                        request_id=intent.request_id,
                    )
                    events = await ledger.intents.events(intent.id)
                    assert [(e.from_status, e.to_status, e.actor) for e in events] == [
                        (None, "queued", "sql")
                    ], f"{where}: {events}"
    finally:
        await engine.dispose()
