"""Run the alembic migrations shipped in the package (``treasury._migrations``).

Every function works on the process's engine (alembic is handed one of its connections,
so a command never opens a second engine just to migrate or to read the revision). A URL
is accepted too, for tests and tools that have no engine: one is opened and closed.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters.db.engine import connection, create_engine

Target = AsyncEngine | str


def alembic_config(database_url: str | None = None) -> Config:
    pkg = importlib.import_module("treasury._migrations")  # mapped from ./migrations
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(str(pkg.__file__)).parent))
    if database_url is not None:
        cfg.attributes["database_url"] = database_url
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


@asynccontextmanager
async def _engine(target: Target) -> AsyncIterator[AsyncEngine]:
    if isinstance(target, AsyncEngine):
        yield target
        return
    engine = create_engine(target)
    try:
        yield engine
    finally:
        await engine.dispose()


def schema_probe(target: Target) -> Callable[[], Awaitable[tuple[str | None, str]]]:
    """The preflight's view of the schema: (the database's revision, the code's head)."""

    async def probe() -> tuple[str | None, str]:
        return await current_revision(target), head_revision()

    return probe


def _on(sync_conn: Connection, verb: Callable[[Config, str], None], revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn  # migrations/env.py runs on this connection
    verb(cfg, revision)


async def _run(target: Target, verb: Callable[[Config, str], None], revision: str) -> None:
    async with _engine(target) as engine, connection(engine) as conn:
        await conn.run_sync(_on, verb, revision)
        await conn.commit()


async def upgrade(target: Target, revision: str = "head") -> None:
    """Bring the schema to ``revision``."""
    await _run(target, command.upgrade, revision)


async def downgrade(target: Target, revision: str) -> None:
    await _run(target, command.downgrade, revision)


async def current_revision(target: Target) -> str | None:
    async with _engine(target) as engine, connection(engine) as conn:

        def _rev(sync_conn: Connection) -> str | None:
            return MigrationContext.configure(sync_conn).get_current_revision()

        return await conn.run_sync(_rev)
