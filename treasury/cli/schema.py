"""``treasury migrate``: the database schema."""

from __future__ import annotations

from treasury.cli import output as out
from treasury.cli.common import app, read_settings, run


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (safe to run repeatedly)."""
    from treasury.adapters.db import migrate as migrations
    from treasury.bootstrap import open_ledger

    settings = read_settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            before = await migrations.current_revision(ledger.engine)
            await migrations.upgrade(ledger.engine)
            after = await migrations.current_revision(ledger.engine)
        if before == after:
            out.console.print(f"database already at {after}")
        else:
            out.console.print(f"database migrated from {before or 'empty'} to {after}")

    run(body)
