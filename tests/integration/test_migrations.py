"""Every migration runs up and down on both databases, and the models agree with them."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from treasury.adapters.db import migrate
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.tables import metadata

TABLES = {
    "withdrawal_intents",
    "intent_events",
    "whitelist_entries",
    "intent_approvals",
    "service_events",
    "service_state",
    "sender_leases",
    "unmatched_withdrawals",
    "whitelist_events",
}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version"}


async def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    await migrate.upgrade(db_url)
    assert await migrate.current_revision(db_url) == migrate.head_revision()
    assert await _tables(db_url) == TABLES
    await migrate.downgrade(db_url, "base")
    assert await migrate.current_revision(db_url) is None
    assert await _tables(db_url) == set()
    await migrate.upgrade(db_url)
    assert await _tables(db_url) == TABLES


async def test_models_match_migrations(migrated_url: str) -> None:
    engine = create_engine(migrated_url)

    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # alembic warns about what it cannot compare
            return list(compare_metadata(ctx, metadata))

    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []
