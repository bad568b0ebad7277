"""The ledger on both databases: exact amounts, constraints, idempotency, transitions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import anyio
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from treasury.adapters.db.tables import intent_events, withdrawal_intents
from treasury.domain.errors import IllegalTransition
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.services.admin import Ledger


def new(amount: str = "10", request_id: str | None = None, **kw: str):  # type: ignore[no-untyped-def]
    fields = {"coin": "USDT", "network": "TRX", "address": "TXyz", **kw}
    return validate_new_intent(amount=amount, request_id=request_id, **fields)


async def count(ledger: Ledger, table=withdrawal_intents) -> int:  # type: ignore[no-untyped-def]
    async with ledger.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)))


async def test_eighteen_decimals_round_trip_digit_for_digit(ledger: Ledger) -> None:
    amount = "123456789012345678.123456789012345678"
    intent, _ = await ledger.intents.enqueue(new(amount), actor="test")
    again = await ledger.intents.get(intent.id)
    assert str(again.amount) == amount
    assert again.amount == Decimal(amount)


async def test_float_damage_cannot_be_produced(ledger: Ledger) -> None:
    a, _ = await ledger.intents.enqueue(new("0.1"), actor="test")
    b, _ = await ledger.intents.enqueue(new("0.2"), actor="test")
    got = [(await ledger.intents.get(i.id)).amount for i in (a, b)]
    assert sum(got) == Decimal("0.3")
    assert str(got[0] + got[1]) == "0.3"
    # Summing in SQL must not go through float either (where the dialect can sum text).
    if ledger.engine.dialect.name == "postgresql":
        async with ledger.engine.connect() as conn:
            total = await conn.scalar(select(func.sum(withdrawal_intents.c.amount)))
        assert total == Decimal("0.3")


@pytest.mark.parametrize("literal", ["0", "-1", "0.0", "'0'", "'-5'", "'abc'", "'1e5'"])
async def test_sql_insert_with_bad_amount_is_refused(ledger: Ledger, literal: str) -> None:
    if ledger.engine.dialect.name == "postgresql" and literal in ("'1e5'",):
        pytest.skip("1e5 is exact NUMERIC 100000 on PostgreSQL")
    if ledger.engine.dialect.name == "postgresql" and literal == "'abc'":
        exc_type: type[Exception] = DBAPIError
    else:
        exc_type = IntegrityError
    with pytest.raises(exc_type):
        async with ledger.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO withdrawal_intents (coin, network, address, amount) "
                    f"VALUES ('USDT', 'TRX', 'TXyz', {literal})"
                )
            )
    assert await count(ledger) == 0


async def test_sqlite_refuses_unquoted_float_literals(ledger: Ledger) -> None:
    if ledger.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL parses the literal as exact NUMERIC")
    with pytest.raises(IntegrityError, match="amount_positive_exact"):
        async with ledger.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO withdrawal_intents (coin, network, address, amount) "
                    "VALUES ('USDT', 'TRX', 'TXyz', 0.30000000000000004)"
                )
            )
    assert await count(ledger) == 0


@pytest.mark.parametrize(
    "values",
    [
        "('USDT', 'TRX', 'TXyz', '1', 'teleported')",
        "('USDT', '', 'TXyz', '1', 'queued')",
        "('', 'TRX', 'TXyz', '1', 'queued')",
        "('usdt', 'TRX', 'TXyz', '1', 'queued')",
        "('USDT', 'TRX', '', '1', 'queued')",
        "('USDT', 'TRX', 'TXyz', '1', 'submitted')",
    ],
)
async def test_sql_insert_with_bad_fields_is_refused(ledger: Ledger, values: str) -> None:
    with pytest.raises(DBAPIError):
        async with ledger.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO withdrawal_intents (coin, network, address, amount, status) "
                    f"VALUES {values}"
                )
            )
    assert await count(ledger) == 0
    assert await count(ledger, intent_events) == 0


async def test_sql_insert_is_recorded_as_an_event(ledger: Ledger) -> None:
    async with ledger.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO withdrawal_intents (coin, network, address, amount) "
                "VALUES ('USDT', 'TRX', 'TXyz', '12.5')"
            )
        )
    [intent] = await ledger.intents.search()
    assert intent.status is Status.QUEUED and intent.amount == Decimal("12.5")
    [event] = await ledger.intents.events(intent.id)
    assert (event.from_status, event.to_status, event.actor) == (None, "queued", "sql")


async def test_same_request_id_twice_yields_one_row(ledger: Ledger) -> None:
    first, created1 = await ledger.intents.enqueue(new("5", "bot-1"), actor="api")
    second, created2 = await ledger.intents.enqueue(new("5", "bot-1"), actor="api")
    assert (created1, created2) == (True, False)
    assert first.id == second.id
    assert await count(ledger) == 1


async def test_concurrent_enqueues_with_one_request_id_yield_one_row(ledger: Ledger) -> None:
    results: list[int] = []

    async def one() -> None:
        intent, _ = await ledger.intents.enqueue(new("5", "bot-race"), actor="api")
        results.append(intent.id)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert len(set(results)) == 1
    assert await count(ledger) == 1


async def test_sql_duplicate_request_id_is_refused(ledger: Ledger) -> None:
    await ledger.intents.enqueue(new("5", "dup"), actor="api")
    with pytest.raises(IntegrityError):
        async with ledger.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO withdrawal_intents (coin, network, address, amount, request_id) "
                    "VALUES ('USDT', 'TRX', 'TXyz', '5', 'dup')"
                )
            )
    assert await count(ledger) == 1


async def test_illegal_transition_raises_and_writes_nothing(ledger: Ledger) -> None:
    intent, _ = await ledger.intents.enqueue(new(), actor="test")
    intent = await ledger.intents.transition(intent.id, Status.REJECTED, reason="x", actor="test")
    with pytest.raises(IllegalTransition):
        await ledger.intents.transition(intent.id, Status.COMPLETED, reason="x", actor="test")
    after = await ledger.intents.get(intent.id)
    assert after.status is Status.REJECTED and after.version == intent.version
    assert len(await ledger.intents.events(intent.id)) == 2


async def test_transition_writes_status_and_event_together(ledger: Ledger) -> None:
    intent, _ = await ledger.intents.enqueue(new(), actor="test")
    moved = await ledger.intents.transition(
        intent.id, Status.REJECTED, reason="network unknown", actor="worker"
    )
    assert moved.status is Status.REJECTED and moved.settled_at is not None
    events = await ledger.intents.events(intent.id)
    assert [(e.from_status, e.to_status, e.reason, e.actor) for e in events][-1] == (
        "queued",
        "rejected",
        "network unknown",
        "worker",
    )


async def test_raw_sql_cannot_change_status_or_amount_or_events(ledger: Ledger) -> None:
    intent, _ = await ledger.intents.enqueue(new(), actor="test")
    for statement in (
        f"UPDATE withdrawal_intents SET status = 'completed' WHERE id = {intent.id}",
        f"UPDATE withdrawal_intents SET amount = '99' WHERE id = {intent.id}",
        f"UPDATE withdrawal_intents SET address = 'Tother' WHERE id = {intent.id}",
        "UPDATE intent_events SET reason = 'rewritten'",
        "DELETE FROM intent_events",
    ):
        with pytest.raises(DBAPIError):
            async with ledger.engine.begin() as conn:
                await conn.execute(text(statement))
    after = await ledger.intents.get(intent.id)
    assert (after.status, after.amount, after.address) == (Status.QUEUED, Decimal(10), "TXyz")
    assert len(await ledger.intents.events(intent.id)) == 1


async def test_a_raw_status_change_needs_its_event_even_with_a_version_bump(
    ledger: Ledger,
) -> None:
    """The bump alone passed before migration 0010 and left no trail."""
    intent, _ = await ledger.intents.enqueue(new(), actor="test")
    bump = (
        "UPDATE withdrawal_intents SET status = 'cancelled', version = version + 1 "
        f"WHERE id = {intent.id}"
    )
    with pytest.raises(DBAPIError, match="a status change needs its event first"):
        async with ledger.engine.begin() as conn:
            await conn.execute(text(bump))

    # an event for another change (wrong version, wrong target) does not do either
    async def event_then_bump(version: int, to: str) -> None:
        async with ledger.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO intent_events (intent_id, from_status, to_status,"
                    " reason, actor, intent_version)"
                    " VALUES (:i, 'queued', :to, 'by hand', 'mallory', :v)"
                ),
                {"i": intent.id, "to": to, "v": version},
            )
            await conn.execute(text(bump))

    for version, to in ((intent.version, "cancelled"), (intent.version + 1, "rejected")):
        with pytest.raises(DBAPIError, match="needs its event first"):
            await event_then_bump(version, to)
    after = await ledger.intents.get(intent.id)
    assert (after.status, after.version) == (Status.QUEUED, intent.version)
    assert len(await ledger.intents.events(intent.id)) == 1  # the failed attempts rolled back
    # with its event the change goes through, and the trail says who claimed it
    await event_then_bump(intent.version + 1, "cancelled")
    after = await ledger.intents.get(intent.id)
    assert after.status is Status.CANCELLED
    events = await ledger.intents.events(intent.id)
    assert [(e.to_status, e.actor) for e in events][-1] == ("cancelled", "mallory")


async def test_an_intent_cannot_be_dated_by_its_writer(ledger: Ledger) -> None:
    """``created_at`` starts the approval window: a bot dating its intent a year ahead
    would keep it open for a year."""
    insert = (
        "INSERT INTO withdrawal_intents (coin, network, address, amount{col}) "
        "VALUES ('USDT', 'TRX', 'TXyz', '10'{val})"
    )
    for when in ("2099-01-01 00:00:00", "2001-01-01 00:00:00"):
        with pytest.raises(DBAPIError, match="created_at is set by the database clock"):
            async with ledger.engine.begin() as conn:
                await conn.execute(
                    text(insert.format(col=", created_at", val=", :at")),
                    {"at": datetime.fromisoformat(when).replace(tzinfo=UTC)},
                )
    async with ledger.engine.begin() as conn:
        await conn.execute(text(insert.format(col="", val="")))
    async with ledger.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(withdrawal_intents)) == 1


async def test_the_ledgers_own_status_changes_pass_the_guard(ledger: Ledger) -> None:
    intent, _ = await ledger.intents.enqueue(new(), actor="test")
    moved = await ledger.intents.transition(
        intent.id, Status.CANCELLED, reason="not needed", actor="alice"
    )
    async with ledger.engine.connect() as conn:
        versions = (
            await conn.execute(
                text(
                    "SELECT to_status, intent_version FROM intent_events "
                    "WHERE intent_id = :i ORDER BY id"
                ),
                {"i": intent.id},
            )
        ).all()
    assert [tuple(v) for v in versions] == [("queued", None), ("cancelled", moved.version)]


async def test_an_unreachable_database_is_store_unavailable() -> None:
    """The port's error, not the driver's: services retry on it without knowing SQL."""
    from treasury.adapters.db.engine import create_engine
    from treasury.adapters.db.ledger import SqlLedger
    from treasury.ports.store import StoreUnavailable

    # nothing listens on port 1: the connection is refused (asyncpg: no helper thread
    # left behind, unlike a failed aiosqlite connect)
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/test")
    try:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            await SqlLedger.over(engine).intents.transition(
                1, Status.SUBMITTED, reason="x", actor="test"
            )
    finally:
        await engine.dispose()


async def test_record_once_records_once_when_many_ask_at_once(ledger: Ledger) -> None:
    """Two daemons' senders alerting the same fact at the same moment: one event, one
    alert (on PostgreSQL the reads of READ COMMITTED transactions would both see none)."""
    said: list[bool] = []

    async def ask(i: int) -> None:
        said.append(await ledger.events.record_once("operator_announced", "bob", f"{i}", actor="w"))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(ask, i)
    assert sorted(said) == [False] * 7 + [True]
    assert len(await ledger.events.recent("operator_announced")) == 1
