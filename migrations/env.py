"""Alembic environment: runs migrations on the async engine the service uses."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


def _database_url() -> str:
    url: Any = config.attributes.get("database_url")
    if url:
        return str(url)
    from treasury.config import load_settings

    return load_settings().database_url


connection = config.attributes.get("connection")
if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
elif connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async(_database_url()))
