"""``treasury db roles`` on PostgreSQL: each role, over its own login, can do its work and
is refused the rest by the database itself.

The ledger is migrated by a non-superuser owner (as in production), the roles applied
with the CLI as that owner, and a login made per actor. Role names are global to the
server, so each test has its own prefix and drops its roles at the end.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from test_cli_admin import cli, ok, refused

from treasury.adapters.db import migrate
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.api import NotFound, Treasury
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.status import Status
from treasury.services.approvals import approve

# db_url: the shared fixture's fresh database, on PostgreSQL only (skips without one)
pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_url", ["postgres"], indirect=True)]
TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"
ACTORS = ("daemon", "operator", "bot", "other_bot")


@dataclass
class Logins:
    prefix: str
    owner: str  # URLs, one per login
    daemon: str
    operator: str
    bot: str
    other_bot: str

    def name(self, actor: str) -> str:
        return f"{self.prefix}{actor}_login"


def _as(url: str, user: str) -> str:
    return make_url(url).set(username=user).render_as_string(hide_password=False)


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg", "postgresql")


async def execute(url: str, *sql: str) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def logins(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Logins]:
    """The empty database made owned and migrated by a non-superuser, ``db roles`` applied
    by that owner, and a login per actor (``db_url`` is the superuser's)."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    owner = f"{prefix}owner"
    database = make_url(db_url).database
    try:
        await execute(
            db_url,
            f"CREATE ROLE {owner} LOGIN CREATEROLE",
            f'ALTER DATABASE "{database}" OWNER TO {owner}',
        )
        owner_url = _as(db_url, owner)
        await migrate.upgrade(owner_url)
        monkeypatch.setenv("TREASURY_DATABASE_URL", owner_url)
        ok(await cli("db", "roles", "--prefix", prefix))
        group = {"daemon": "daemon", "operator": "operator", "bot": "bot", "other_bot": "bot"}
        await execute(
            db_url,
            *(f"CREATE ROLE {prefix}{a}_login LOGIN IN ROLE {prefix}{group[a]}" for a in ACTORS),
        )
        yield Logins(prefix, owner_url, *(_as(db_url, f"{prefix}{a}_login") for a in ACTORS))
    finally:  # roles are the server's, not the database's: leave none behind
        existing = await rows(
            db_url, f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{prefix}%'"
        )
        gone = ", ".join(r["rolname"] for r in existing)
        if gone:
            await execute(
                db_url,
                f"REASSIGN OWNED BY {gone} TO CURRENT_USER",
                f"DROP OWNED BY {gone}",
                *(f"DROP ROLE {r['rolname']}" for r in existing),
            )


async def denied(url: str, sql: str) -> str:
    """``sql`` run as the login of ``url`` is refused by the database for privilege (a
    missing grant, or a row-level security policy); the message."""
    conn = await asyncpg.connect(_plain(url))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as refusal:
            await conn.execute(sql)
    finally:
        await conn.close()
    return str(refusal.value)


async def rows(url: str, sql: str) -> list[Any]:
    conn = await asyncpg.connect(_plain(url))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def enqueue_as(url: str, login: str, **fields: Any) -> int:
    """Through the bots' API (``treasury.api``), as a bot names itself: by its login."""
    async with Treasury.connect(url, actor=login) as t:
        intent = await t.enqueue(
            coin="USDT", network="TRX", address=TRX, amount=Decimal("20"), **fields
        )
    return intent.id


async def test_a_bot_enqueues_in_its_own_name_and_sees_only_its_own(logins: Logins) -> None:
    mine = await enqueue_as(logins.bot, logins.name("bot"), request_id="mine-1")
    theirs = await enqueue_as(logins.other_bot, logins.name("other_bot"))
    async with Treasury.connect(logins.bot, actor=logins.name("bot")) as t:
        assert (await t.get(mine)).requested_by == logins.name("bot")
        assert [e.reason for e in await t.history(mine)] == ["enqueued"]
        again = await t.enqueue(
            coin="USDT", network="TRX", address=TRX, amount=Decimal("20"), request_id="mine-1"
        )
        assert again.id == mine  # idempotent through its own rows
        with pytest.raises(NotFound):
            await t.get(theirs)
        with pytest.raises(ProgrammingError, match="row-level security"):
            await t.enqueue(
                coin="USDT", network="TRX", address=TRX, amount=Decimal("20"), requested_by="alice"
            )
    with pytest.raises(NotFound):  # another bot's key: unique, and not shown to this one
        await enqueue_as(logins.other_bot, logins.name("other_bot"), request_id="mine-1")
    assert [r["id"] for r in await rows(logins.bot, "SELECT id FROM withdrawal_intents")] == [mine]
    events = await rows(logins.bot, "SELECT DISTINCT intent_id FROM intent_events")
    assert [r["intent_id"] for r in events] == [mine]
    # the SQL route names the bot too
    assert "row-level security" in await denied(
        logins.bot,
        "INSERT INTO withdrawal_intents (coin, network, address, amount, requested_by) "
        f"VALUES ('USDT', 'TRX', '{TRX}', 1, '{logins.name('other_bot')}')",
    )


async def test_a_bot_trying_to_approve_or_edit_the_address_book_is_refused_by_the_database(
    logins: Logins,
) -> None:
    intent_id = await enqueue_as(logins.bot, logins.name("bot"))
    engine = create_engine(logins.bot)
    try:  # the real approval path, as the bot
        with pytest.raises(ProgrammingError, match="permission denied"):
            await approve(SqlLedger.over(engine), intent_id, approver="mallory")
    finally:
        await engine.dispose()
    bot = logins.bot
    for sql in (
        f"INSERT INTO intent_approvals (intent_id, approver) VALUES ({intent_id}, 'mallory')",
        "SELECT * FROM intent_approvals",
        f"UPDATE withdrawal_intents SET status = 'queued', version = version + 1 "
        f"WHERE id = {intent_id}",
        f"UPDATE withdrawal_intents SET amount = 500 WHERE id = {intent_id}",
        f"DELETE FROM withdrawal_intents WHERE id = {intent_id}",
        "SELECT * FROM whitelist_entries",
        "INSERT INTO whitelist_approvals (entry_id, entry_version, approver) "
        "VALUES (1, 1, 'mallory')",
        "INSERT INTO policy_versions (version, document, sha256, changes_need_approval, "
        "applied_by, reason, activated_at) "
        "VALUES (1, 'x', repeat('0', 64), false, 'm', 'm', now())",
        "INSERT INTO whitelist_entries (coin, network, address, changed_by, change_reason) "
        f"VALUES ('USDT', 'TRX', '{TRX}', 'mallory', 'mine now')",
        "UPDATE whitelist_entries SET enabled = true",
        "SELECT * FROM whitelist_events",
        "SELECT * FROM operators",
        "INSERT INTO operators (name, public_key, added_by) VALUES ('m', 'k', 'm')",
        "INSERT INTO service_state (key, value) VALUES ('paused', 'x')",
        "DELETE FROM service_state",
        "SELECT * FROM sender_leases",
        "SELECT * FROM service_events",
        "SELECT * FROM unmatched_withdrawals",
        "DELETE FROM intent_events",
        "CREATE TABLE withdrawal_intents_shadow (id int)",
    ):
        await denied(bot, sql)
    # a forged event on its own intent: only the creation event passes
    assert "row-level security" in await denied(
        bot,
        "INSERT INTO intent_events (intent_id, from_status, to_status, reason, actor, kind) "
        f"VALUES ({intent_id}, 'queued', 'completed', 'sent', 'worker', 'status')",
    )


async def test_row_security_leaves_the_owner_daemon_and_operator_alone(logins: Logins) -> None:
    await enqueue_as(logins.bot, logins.name("bot"))
    await enqueue_as(logins.other_bot, logins.name("other_bot"))
    for url in (logins.owner, logins.daemon, logins.operator):
        assert len(await rows(url, "SELECT id FROM withdrawal_intents")) == 2, url
        assert len(await rows(url, "SELECT id FROM intent_events")) == 2, url
    [forced] = await rows(
        logins.owner,
        "SELECT relforcerowsecurity FROM pg_class WHERE relname = 'withdrawal_intents'",
    )
    assert forced[0] is False


async def test_an_operator_runs_the_admin_commands_and_cannot_rewrite_the_record(
    logins: Logins, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TREASURY_DATABASE_URL", logins.operator)
    first = ok(
        await cli(
            "enqueue",
            "--coin",
            "USDT",
            "--network",
            "TRX",
            "--address",
            TRX,
            "--amount",
            "10",
            "--as",
            "alice",
            "--json",
        )
    )
    second = ok(
        await cli(
            "enqueue",
            "--coin",
            "USDT",
            "--network",
            "TRX",
            "--address",
            TRX,
            "--amount",
            "20",
            "--as",
            "alice",
            "--json",
        )
    )
    cancel_id, approve_id = json.loads(first)["id"], json.loads(second)["id"]
    ok(await cli("cancel", str(cancel_id), "--reason", "typo", "--as", "alice"))
    # the owner sets the stage: a status change by hand brings its event (migration 0010)
    await execute(
        logins.owner,
        "INSERT INTO intent_events (intent_id, from_status, to_status, reason, actor, "
        "intent_version) SELECT id, status, 'awaiting_approval', 'test', 'owner', version + 1 "
        f"FROM withdrawal_intents WHERE id = {approve_id}",
    )
    await execute(
        logins.owner,
        "UPDATE withdrawal_intents SET status = 'awaiting_approval', version = version + 1 "
        f"WHERE id = {approve_id}",
    )
    policy = tmp_path / "policy.toml"
    policy.write_text('[coins.USDT]\nmax_per_intent = "100"\n')
    ok(await cli("policy", "apply", str(policy), "--as", "alice", "--reason", "caps", "--yes"))
    [[version]] = await rows(logins.operator, "SELECT max(version) FROM policy_versions")
    assert version == 1
    ok(await cli("approve", str(approve_id), "--as", "bob"))
    ok(await cli("show", str(approve_id)))
    ok(await cli("list"))
    ok(await cli("pause", "--reason", "drill", "--as", "alice"))
    ok(await cli("resume", "--as", "alice"))
    ok(
        await cli(
            "whitelist",
            "add",
            "--coin",
            "USDT",
            "--network",
            "TRX",
            "--address",
            TRX,
            "--reason",
            "cold wallet",
            "--as",
            "alice",
        )
    )
    ok(await cli("whitelist", "disable", "1", "--reason", "rotated", "--as", "bob"))
    ok(await cli("whitelist", "history"))
    [approvals] = await rows(logins.operator, "SELECT count(*) FROM intent_approvals")
    assert approvals[0] == 1
    # adding an approver is the owner's; removing one (a lost key) is any operator's
    key = tmp_path / "dave.key"
    (tmp_path / "dave.pub").write_text(ok(await cli("operator", "keygen", "--out", str(key))))
    add = ("operator", "add", "dave", "--public-key", str(tmp_path / "dave.pub"))
    by_operator = await cli(*add, "--as", "alice")
    assert by_operator.exit_code != 0, by_operator.stdout
    assert by_operator.stderr == (
        "error: the database refused: permission denied for table operators: this database "
        "login's role may not do that (README, Database roles)\n"
    )
    monkeypatch.setenv("TREASURY_DATABASE_URL", logins.owner)
    ok(await cli(*add, "--as", "owner"))
    monkeypatch.setenv("TREASURY_DATABASE_URL", logins.operator)
    ok(await cli("operator", "remove", "dave", "--reason", "lost the key", "--as", "alice"))
    op = logins.operator
    for sql in (
        "UPDATE intent_events SET reason = 'nothing happened'",
        "DELETE FROM intent_events",
        "UPDATE whitelist_events SET actor = 'someone else'",
        "DELETE FROM whitelist_events",
        "UPDATE intent_approvals SET approver = 'carol'",
        "DELETE FROM intent_approvals",
        f"DELETE FROM withdrawal_intents WHERE id = {cancel_id}",
        f"UPDATE withdrawal_intents SET address = 'Tmine' WHERE id = {approve_id}",
        f"UPDATE withdrawal_intents SET withdraw_order_id = 'x' WHERE id = {approve_id}",
        "UPDATE whitelist_entries SET usable_from = now(), version = version + 1, "
        "changed_by = 'alice', change_reason = 'sooner'",
        "DELETE FROM sender_leases",
        "TRUNCATE intent_events",
        "ALTER TABLE intent_events DISABLE TRIGGER ALL",
        "DROP TRIGGER trg_events_append_only ON intent_events",
        "DROP TABLE intent_events",
        "CREATE TABLE notes (id int)",
        # a second key of one's own would make any quorum alone: adding is the owner's
        "INSERT INTO operators (name, public_key, added_by) VALUES ('alice2', 'k', 'alice')",
    ):
        await denied(op, sql)


@pytest.fixture
def migrated_url(logins: Logins) -> str:
    """``stack_factory``'s ledger: the roles' one, migrated by its owner already."""
    return logins.owner


async def test_the_daemon_completes_a_withdrawal_with_its_grants_only(
    logins: Logins, stack_factory: Any
) -> None:
    from treasury.cli.exchange import preflight_checks

    intent_id = await enqueue_as(logins.bot, logins.name("bot"))
    async with stack_factory(database_url=logins.daemon) as stack:
        checks = await preflight_checks(stack.rt)
        assert [c.ok for c in checks if c.name == "database"] == [True]
        assert await stack.rt.ledger.intents.unserved(older_than_s=0) == [(intent_id, "default")]
        async with stack.sender():
            [done] = await stack.wait_settled([intent_id])
        # a withdrawal the ledger cannot account for: on file, and its intent id burned
        foreign = WithdrawalRecord(
            id="w-foreign",
            withdraw_order_id=None,
            coin="USDT",
            network="TRX",
            address=TRX,
            address_tag=None,
            amount=Decimal("1"),
            fee=Decimal("0"),
            status=6,
            tx_id=None,
            apply_time=None,
            complete_time=None,
        )
        assert await stack.rt.ledger.unmatched.record(
            account="default", record=foreign, intent_id=40, reason="test", found_by="worker"
        )
    assert done.status is Status.COMPLETED
    assert await enqueue_as(logins.bot, logins.name("bot")) > 40
    for sql in (
        "DELETE FROM intent_events",
        "UPDATE intent_events SET reason = 'x'",
        f"INSERT INTO intent_approvals (intent_id, approver) VALUES ({intent_id}, 'worker')",
        "INSERT INTO operators (name, public_key, added_by) VALUES ('w', 'k', 'w')",
        "UPDATE whitelist_entries SET usable_from = now(), version = version + 1, "
        "changed_by = 'w', change_reason = 'x'",
        # the daemon reads the policy in force, never writes it
        "INSERT INTO policy_versions (version, document, sha256, changes_need_approval, "
        "applied_by, reason, activated_at) "
        "VALUES (1, 'x', repeat('0', 64), false, 'm', 'm', now())",
        "DELETE FROM withdrawal_intents",
        "DROP TABLE withdrawal_intents",
        "CREATE TABLE loot (id int)",
    ):
        await denied(logins.daemon, sql)


async def test_db_roles_again_is_harmless_and_a_login_role_of_that_name_is_refused(
    logins: Logins, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREASURY_DATABASE_URL", logins.owner)
    ok(await cli("db", "roles", "--prefix", logins.prefix))
    await enqueue_as(logins.bot, logins.name("bot"))  # still works
    await execute(logins.owner, f"ALTER ROLE {logins.prefix}bot LOGIN")
    err = refused(await cli("db", "roles", "--prefix", logins.prefix), 2, "can log in")
    assert err.count("\n") == 1


async def test_webhooks_with_the_roles_grants(logins: Logins) -> None:
    """A bot's enqueue writes its outbox row (the trigger is the owner's) but a bot can
    neither write nor read the outbox; an operator subscribes and removes; the daemon
    fans out, claims and records deliveries with its grants only."""
    from datetime import UTC, datetime

    from treasury.adapters.db.webhooks import SqlWebhooks
    from treasury.domain.webhooks import Outcome
    from treasury.ports.webhooks import PostResult

    intent_id = await enqueue_as(logins.bot, logins.name("bot"))
    assert "outbox" in await denied(
        logins.bot, "INSERT INTO outbox (topic, payload) VALUES ('intent.status', '{}')"
    )
    assert "outbox" in await denied(logins.bot, "SELECT * FROM outbox")
    assert "webhook_subscriptions" in await denied(
        logins.bot,
        "INSERT INTO webhook_subscriptions (url, events, created_by) VALUES ('x', 'alert', 'b')",
    )
    [row] = await rows(logins.owner, "SELECT topic, intent_id, payload FROM outbox")
    assert (row["topic"], row["intent_id"]) == ("intent.status", intent_id)
    assert json.loads(row["payload"])["requested_by"] == logins.name("bot")

    async def store_of(url: str) -> tuple[Any, SqlWebhooks]:
        engine = create_engine(url)
        return engine, SqlWebhooks(engine)

    op_engine, op_store = await store_of(logins.operator)
    daemon_engine, daemon_store = await store_of(logins.daemon)
    try:
        first = await op_store.add(
            url="https://example.test/a", topics=("intent.status",), actor="cli:o", reason="r"
        )
        second = await op_store.add(
            url="https://example.test/b", topics=("intent.status",), actor="cli:o", reason="r"
        )
        await enqueue_as(logins.bot, logins.name("bot"))
        await op_store.remove(second, actor="cli:o", reason="gone")
        now = datetime.now(UTC)
        assert await daemon_store.fan_out(now=now) == 2
        [due] = await daemon_store.claim_due(now=now, lease_s=10, limit=10)
        assert due.subscription_id == first
        await daemon_store.record(due, Outcome("delivered", None), PostResult(200, None), now=now)
        await daemon_store.alert_channel(enabled=True, now=now)
        await daemon_store.write_alert("failed", "m", None)
        assert [d.status for d in await op_store.deliveries()] == ["delivered"]
        assert "webhook_deliveries" in await denied(
            logins.operator, "UPDATE webhook_deliveries SET status = 'delivered'"
        )
        assert "webhook_events" in await denied(logins.daemon, "DELETE FROM webhook_events")
    finally:
        await op_engine.dispose()
        await daemon_engine.dispose()


async def test_a_temporary_table_cannot_take_the_outbox_row_of_a_bots_change(
    logins: Logins,
) -> None:
    """The outbox trigger runs as the owner with ``pg_temp`` last in its search path: a
    bot's temporary ``outbox`` (PUBLIC may create temporary tables) does not swallow the
    row of the bot's own enqueue, so no change of its can escape the webhooks."""
    conn = await asyncpg.connect(_plain(logins.bot))
    try:
        await conn.execute(
            "CREATE TEMP TABLE outbox (topic text, intent_id bigint, payload text, "
            "created_at timestamptz)"
        )
        intent_id = await conn.fetchval(
            "INSERT INTO withdrawal_intents (coin, network, address, amount, requested_by) "
            f"VALUES ('USDT', 'TRX', '{TRX}', 20, session_user) RETURNING id"
        )
        assert await conn.fetchval("SELECT count(*) FROM pg_temp.outbox") == 0
    finally:
        await conn.close()
    [row] = await rows(logins.owner, f"SELECT topic FROM outbox WHERE intent_id = {intent_id}")
    assert row["topic"] == "intent.status"
