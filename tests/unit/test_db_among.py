"""``among``: on PostgreSQL an IN over any number of values is one SQL text, so asyncpg
prepares it once per connection (an IN of each length was one more prepared statement,
and a daemon settling batches of every size re-prepared over and over)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from treasury.adapters.db.engine import among
from treasury.adapters.db.tables import withdrawal_intents as T


def sql(dialect: Any, values: list[Any], column: Any = T.c.id) -> str:
    conn: Any = SimpleNamespace(dialect=dialect)
    return str(select(T.c.id).where(among(conn, column, values)).compile(dialect=dialect))


def test_one_text_for_any_count_on_postgresql() -> None:
    pg = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
    texts = {sql(pg, list(range(n))) for n in (1, 2, 30, 1000)}
    assert len(texts) == 1, texts
    (text,) = texts
    assert "= ANY (" in text and " IN " not in text
    assert (
        len({sql(pg, ["a"], T.c.withdraw_order_id), sql(pg, ["a", "b"], T.c.withdraw_order_id)})
        == 1
    )


def test_sqlite_keeps_in() -> None:
    text = sql(sqlite.dialect(), [1, 2])
    assert " IN (" in text
