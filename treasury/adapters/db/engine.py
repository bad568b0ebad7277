"""Engine construction: URL normalisation and the SQLite settings a money ledger needs.

SQLite: WAL, ``synchronous=FULL`` (a committed ``submitting`` must survive power loss),
foreign keys on, a busy timeout, and ``BEGIN IMMEDIATE`` for every transaction so two
writers never both read-then-write (pysqlite's default defers BEGIN and lets that happen).

The stores open every transaction and connection through ``transaction`` and
``connection`` below, never ``engine.begin()``/``engine.connect()`` directly: a
cancellation (shutdown, a task group giving up) waits for the database call in progress
and lands after it, so a transaction is never cut in half and its connection goes back to
the pool whole. Cut in half, the connection is invalidated and closed in a task of its own,
and on aiosqlite that close can wait forever once the cancellation is delivered again (the
event loop then never closes). The wait is bounded by the database: SQLite's busy timeout
below, and on PostgreSQL by transactions that are all short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from sqlalchemy import ARRAY, ColumnElement, any_, bindparam, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class UnsupportedDatabase(ValueError):
    """A URL this service cannot use; the message names the part and never the password."""


def normalize_url(url: str) -> URL:
    """Map plain ``sqlite://`` / ``postgresql://`` (and ``postgres://``, as hosting
    providers write it) URLs to their async drivers.

    Raises:
        UnsupportedDatabase: for a URL that is neither SQLite nor PostgreSQL.
        ValueError (and SQLAlchemy's ArgumentError): for a URL that does not parse.
    """
    parsed = make_url(url)
    if parsed.drivername in _ASYNC_DRIVERS:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[parsed.drivername])
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise UnsupportedDatabase(
            f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise UnsupportedDatabase(
            f"unsupported driver {parsed.drivername!r}: use aiosqlite or asyncpg"
        )
    return parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=15000",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, **kwargs)


def transaction(engine: AsyncEngine) -> AbstractAsyncContextManager[AsyncConnection]:
    """``engine.begin()`` that a cancellation cannot cut in half (see the module's note)."""
    return _whole(engine.begin())


def connection(engine: AsyncEngine) -> AbstractAsyncContextManager[AsyncConnection]:
    """``engine.connect()`` that a cancellation cannot cut in half (see the module's note)."""
    return _whole(engine.connect())


@asynccontextmanager
async def _whole(
    opened: AbstractAsyncContextManager[AsyncConnection],
) -> AsyncIterator[AsyncConnection]:
    with anyio.CancelScope(shield=True):
        async with opened as conn:
            yield conn
    await anyio.lowlevel.checkpoint_if_cancelled()  # a loop of calls still stops


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (absolute), or None (PostgreSQL, or SQLite in memory)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def sync_url(url: str) -> str:
    """The same database through a driver alembic's offline tooling could use (display)."""
    return normalize_url(url).render_as_string(hide_password=True)


def among(
    conn: AsyncConnection, column: ColumnElement[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """``column IN values``, written on PostgreSQL as ``column = ANY($1)`` with one array
    parameter, so that the SQL text is the same whatever the number of values: asyncpg
    prepares each distinct text once per connection and keeps only so many, and an
    ``IN`` list of each length is one more text (a daemon settling batches of every size
    re-prepared its statements over and over)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))
