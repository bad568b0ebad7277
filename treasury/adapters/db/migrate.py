"""Run the alembic migrations shipped in the package (``treasury._migrations``)."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from treasury.adapters.db.engine import create_engine


def alembic_config(database_url: str) -> Config:
    pkg = importlib.import_module("treasury._migrations")  # mapped from ./migrations
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(str(pkg.__file__)).parent))
    cfg.attributes["database_url"] = database_url
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def schema_probe(database_url: str) -> Callable[[], Awaitable[tuple[str | None, str]]]:
    """The preflight's view of the schema: (the database's revision, the code's head)."""

    async def probe() -> tuple[str | None, str]:
        return await current_revision(database_url), head_revision()

    return probe


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (alembic runs its own event loop, so in a thread)."""
    cfg = alembic_config(database_url)
    await anyio.to_thread.run_sync(command.upgrade, cfg, revision)


async def downgrade(database_url: str, revision: str) -> None:
    cfg = alembic_config(database_url)
    await anyio.to_thread.run_sync(command.downgrade, cfg, revision)


async def current_revision(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:

            def _rev(sync_conn: Connection) -> str | None:
                return MigrationContext.configure(sync_conn).get_current_revision()

            return await conn.run_sync(_rev)
    finally:
        await engine.dispose()
