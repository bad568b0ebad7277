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
    "fleet_members",
    "unmatched_withdrawals",
    "operators",
    "operator_invites",
    "operator_passkeys",
    "whitelist_events",
    "whitelist_approvals",
    "policy_versions",
    "api_tokens",
    "outbox",
    "webhook_subscriptions",
    "webhook_deliveries",
    "webhook_events",
    "console_logins",
    "console_sessions",
    "console_challenges",
    "console_passkey_sessions",
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


async def test_0009_gives_every_existing_entry_a_history_and_goes_back(db_url: str) -> None:
    """Entries from before the address book was audited get an ``add`` event by
    ``migration``; the downgrade puts the one-book schema back (rows kept)."""
    from sqlalchemy import text

    await migrate.upgrade(db_url, "0008")
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            for address, tag in (("TOld1", ""), ("TOld2", "7")):
                await conn.execute(
                    text(
                        "INSERT INTO whitelist_entries (coin, network, address, address_tag, "
                        "tag_key, source) VALUES ('USDT', 'TRX', :a, :t, :k, 'exchange')"
                    ),
                    {"a": address, "t": tag or None, "k": tag},
                )
        await migrate.upgrade(db_url, "0009")
        async with engine.connect() as conn:
            entries = (
                await conn.execute(
                    text(
                        "SELECT id, account, version, changed_by FROM whitelist_entries ORDER BY id"
                    )
                )
            ).all()
            trail = (
                await conn.execute(
                    text(
                        "SELECT entry_id, account, address, kind, actor, version "
                        "FROM whitelist_events ORDER BY id"
                    )
                )
            ).all()
        assert [tuple(e)[1:] for e in entries] == [("default", 1, "migration")] * 2
        assert [tuple(t) for t in trail] == [
            (entries[0][0], "default", "TOld1", "add", "migration", 1),
            (entries[1][0], "default", "TOld2", "add", "migration", 1),
        ]
        await migrate.downgrade(db_url, "0008")
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT address FROM whitelist_entries"))).all()
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("whitelist_entries")}
            )
        assert sorted(r[0] for r in left) == ["TOld1", "TOld2"]
        assert "account" not in columns and "whitelist_events" not in await _tables(db_url)
        # without the triggers a plain DELETE works again (the 0008 schema)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM whitelist_entries"))
        await migrate.upgrade(db_url)
    finally:
        await engine.dispose()


async def test_0013_adds_the_travel_rule_columns_keeps_the_triggers_and_goes_back(
    db_url: str,
) -> None:
    """0013 only adds columns: the address book's audit triggers (0009) keep working after
    it and after its downgrade; an intent's questionnaire is fixed once inserted."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    await migrate.upgrade(db_url, "0012")
    engine = create_engine(db_url)

    async def columns(table: str) -> set[str]:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns(table)}
            )

    async def refused(sql: str) -> str:
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        except DBAPIError as exc:
            return str(exc)
        raise AssertionError(f"not refused: {sql}")

    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO whitelist_entries (coin, network, address, tag_key, source, "
                    "changed_by, change_reason) VALUES ('USDT', 'TRX', 'TOld1', '', 'manual', "
                    "'ops', 'before 0013')"
                )
            )
        await migrate.upgrade(db_url, "0013")
        assert "travel_rule_profile" in await columns("whitelist_entries")
        assert "questionnaire" in await columns("withdrawal_intents")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE whitelist_entries SET travel_rule_profile = '{}', "
                    "version = version + 1, changed_by = 'ops', change_reason = 'profile' "
                )
            )
            kinds = (
                await conn.execute(text("SELECT kind, version FROM whitelist_events ORDER BY id"))
            ).all()
            await conn.execute(
                text(
                    "INSERT INTO withdrawal_intents (coin, network, address, amount, account, "
                    "questionnaire) VALUES ('USDT', 'TRX', 'TOld1', '5', 'default', '{\"a\": 1}')"
                )
            )
        assert [tuple(k) for k in kinds] == [("add", 1), ("edit", 2)]
        # the 0009 guard still stands: a profile change without the version bump is refused
        assert "version" in await refused("UPDATE whitelist_entries SET travel_rule_profile = NULL")
        assert "questionnaire is fixed" in await refused(
            "UPDATE withdrawal_intents SET questionnaire = NULL"
        )
        assert "questionnaire is fixed" in await refused(
            "UPDATE withdrawal_intents SET questionnaire = '{\"a\": 2}'"
        )
        await migrate.downgrade(db_url, "0012")
        assert "travel_rule_profile" not in await columns("whitelist_entries")
        assert "questionnaire" not in await columns("withdrawal_intents")
        assert "version" in await refused("UPDATE whitelist_entries SET label = 'x'")
        assert "never deleted" in await refused("DELETE FROM whitelist_entries")
        await migrate.upgrade(db_url)
    finally:
        await engine.dispose()
