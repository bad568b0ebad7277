"""Attacks on the address book with a database credential, on SQLite and PostgreSQL.

Adding an attacker's address is the first thing a leaked database credential would do.
Each attack here is refused by the database, or recorded and ignored by the daemon:

* a raw INSERT is recorded (actor ``sql``) and cools before the daemon sends to it, even
  when it claims an early ``usable_from`` or ``source='exchange'``;
* a raw UPDATE without the version bump and an actor, a change of the destination, a
  DELETE, and any change to ``whitelist_events`` are refused;
* an entry of one account does not let another account send.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from treasury.domain.exchange import WhitelistAddress
from treasury.domain.fee_payer import FeePayer
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.domain.wallet import Wallet
from treasury.services import submit
from treasury.services.address_book import ExchangeSeen, Trust
from treasury.services.whitelist_sync import sync_whitelist
from treasury.testing import FakeExchange

ATTACKER = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"  # a well-formed TRX address, not ours
RAW_INSERT = (
    "INSERT INTO whitelist_entries (coin, network, address, tag_key, label, source{extra}) "
    "VALUES ('USDT', 'TRX', :address, '', 'looks legit', :source{values})"
)


async def sql(engine: Any, statement: str, **params: Any) -> list[Any]:
    """Run one statement in its own transaction; the rows it returns, if any."""
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def refused(engine: Any, statement: str, match: str, **params: Any) -> None:
    with pytest.raises(DBAPIError, match=re.escape(match)):
        await sql(engine, statement, **params)


async def events(engine: Any, entry_id: int) -> list[tuple[Any, ...]]:
    result = await sql(
        engine,
        "SELECT kind, actor, reason, version FROM whitelist_events WHERE entry_id = :e ORDER BY id",
        e=entry_id,
    )
    return [tuple(r) for r in result]


async def raw_insert(engine: Any, *, source: str = "manual", usable_from: str | None = None) -> int:
    extra, values = ("", "") if usable_from is None else (", usable_from", f", '{usable_from}'")
    await sql(
        engine, RAW_INSERT.format(extra=extra, values=values), address=ATTACKER, source=source
    )
    [row] = await sql(engine, "SELECT id FROM whitelist_entries WHERE address = :a", a=ATTACKER)
    return int(row[0])


async def on_the_exchange_too(stack: Any) -> None:
    """The worst case: the exchange itself would take the attacker's address (after the
    daemon's sync), so only the daemon's own rule stands in the way."""
    await stack.admin(
        "whitelist",
        {
            "account": "default",
            "action": "add",
            "coin": "USDT",
            "network": "TRX",
            "address": ATTACKER,
            "name": "x",
        },
    )


async def test_a_raw_insert_is_recorded_as_sql_and_cools_before_a_send(
    stack_factory: Any,
) -> None:
    cooling = 4.0
    async with stack_factory(manual_whitelist_cooling_s=cooling) as stack:
        ledger = stack.rt.ledger
        await on_the_exchange_too(stack)
        # an early usable_from is the writer's claim, not the database's: it does not count
        entry_id = await raw_insert(ledger.engine, usable_from="2000-01-01 00:00:00")
        entry = await ledger.whitelist.get(entry_id)
        assert await events(ledger.engine, entry_id) == [
            ("add", "sql", "inserted by SQL without an actor or a reason", 1)
        ]
        new = validate_new_intent(coin="USDT", network="TRX", address=ATTACKER, amount="20")
        intent, _ = await ledger.intents.enqueue(new, actor="test")
        async with stack.daemon():
            with anyio.fail_after(20):
                while "still cooling" not in (
                    held := await ledger.intents.get(intent.id)
                ).status_reason:  # fmt: skip
                    await anyio.sleep(0.05)
            assert held.status is Status.QUEUED and held.withdraw_order_id is None
            [done] = await stack.wait_settled([intent.id])
    assert done.status is Status.COMPLETED
    assert done.submitted_at is not None
    assert done.submitted_at >= entry.created_at + timedelta(seconds=cooling)


async def test_a_forged_exchange_row_is_not_trusted(stack_factory: Any) -> None:
    async with stack_factory(manual_whitelist_cooling_s=3600) as stack:
        ledger = stack.rt.ledger
        await on_the_exchange_too(stack)  # even so: this daemon's sync has not seen it
        entry_id = await raw_insert(ledger.engine, source="exchange")
        ids = []
        for amount in ("20", "21"):
            new = validate_new_intent(coin="USDT", network="TRX", address=ATTACKER, amount=amount)
            ids.append((await ledger.intents.enqueue(new, actor="test"))[0].id)
        async with stack.daemon() as daemon:
            with anyio.fail_after(20):
                while True:
                    reasons = [(await ledger.intents.get(i)).status_reason or "" for i in ids]
                    if all("still cooling" in r for r in reasons):
                        break
                    await anyio.sleep(0.05)
            await anyio.sleep(1)  # more checks of the same entry: still one alert
            daemon.stop()
            await daemon.finished.wait()
        after = [await ledger.intents.get(i) for i in ids]
        trail = await events(ledger.engine, entry_id)  # while the engine is open
    assert all(i.status is Status.QUEUED and i.send_count == 0 for i in after)
    unverified = [a for a in stack.alerts if a[0] == "whitelist_unverified"]
    assert len(unverified) == 1 and f"whitelist entry {entry_id}" in unverified[0][1]
    assert trail == [("add", "sql", "inserted by SQL without an actor or a reason", 1)]


async def test_the_database_refuses_unaudited_changes(ledger: Any) -> None:
    engine = ledger.engine
    entry = await ledger.whitelist.add(
        account="default",
        coin="USDT",
        network="TRX",
        address="TOurs",
        address_tag=None,
        actor="cli:alice",
        reason="our wallet",
    )
    where = {"id": entry.id}
    unaudited = "version = version + 1 and a non-empty"
    # no version bump: refused, whatever it changes
    await refused(
        engine,
        "UPDATE whitelist_entries SET enabled = :f WHERE id = :id",
        unaudited,
        f=False,
        **where,
    )
    await refused(
        engine, "UPDATE whitelist_entries SET label = 'x' WHERE id = :id", unaudited, **where
    )
    # a bump without an actor or a reason: refused
    await refused(
        engine,
        "UPDATE whitelist_entries SET enabled = :f, version = version + 1, changed_by = NULL "
        "WHERE id = :id",
        unaudited,
        f=False,
        **where,
    )
    await refused(
        engine,
        "UPDATE whitelist_entries SET version = version + 1, change_reason = '  ' WHERE id = :id",
        unaudited,
        **where,
    )
    # the destination (and the cooling clock) cannot be changed at all, audited or not
    for column, value in (
        ("address", ATTACKER),
        ("account", "sub1"),
        ("created_at", "2000-01-01 00:00:00"),
    ):
        await refused(
            engine,
            f"UPDATE whitelist_entries SET {column} = '{value}', version = version + 1, "
            "changed_by = 'sql:mallory', change_reason = 'x' WHERE id = :id",
            "are fixed",
            **where,
        )
    await refused(
        engine, "DELETE FROM whitelist_entries WHERE id = :id", "disable the entry", **where
    )
    # a back-dated INSERT would skip the cooling period: refused
    await refused(
        engine,
        "INSERT INTO whitelist_entries (coin, network, address, created_at) "
        "VALUES ('USDT', 'TRX', :a, '2000-01-01 00:00:00')",
        "created_at",
        a=ATTACKER,
    )
    # the trail itself is append-only
    await refused(engine, "UPDATE whitelist_events SET actor = 'someone'", "append-only")
    await refused(engine, "DELETE FROM whitelist_events", "append-only")
    assert await ledger.whitelist.get(entry.id) == entry
    assert await events(engine, entry.id) == [("add", "cli:alice", "our wallet", 1)]
    # an UPDATE that does carry the bump, an actor and a reason is allowed, and recorded
    await sql(
        engine,
        "UPDATE whitelist_entries SET enabled = :f, version = version + 1, "
        "changed_by = 'sql:dba', change_reason = 'incident 7' WHERE id = :id",
        f=False,
        **where,
    )
    # ... and so is one that replays the previous actor: it is still an event
    await sql(
        engine,
        "UPDATE whitelist_entries SET enabled = :t, version = version + 1 WHERE id = :id",
        t=True,
        **where,
    )
    assert await events(engine, entry.id) == [
        ("add", "cli:alice", "our wallet", 1),
        ("disable", "sql:dba", "incident 7", 2),
        ("enable", "sql:dba", "incident 7", 3),
    ]


async def test_one_accounts_entry_does_not_let_another_account_send(ledger: Any) -> None:
    await ledger.whitelist.add(
        account="default",
        coin="USDT",
        network="TRX",
        address="TOurs",
        address_tag=None,
        actor="cli:alice",
        reason="default's wallet",
    )
    new = validate_new_intent(
        coin="USDT", network="TRX", address="TOurs", amount=Decimal(10), account="sub1"
    )
    intent, _ = await ledger.intents.enqueue(new, actor="test")
    assert await ledger.state.acquire_lease("sub1", "w", 60)
    trust = Trust(ExchangeSeen(), cooling_s=0)
    commit = {
        "worker": "w",
        "order_id": "trs-x-1",
        "timestamp_ms": 1,
        "recv_window_ms": 5000,
        "policy": None,
        "wallet": Wallet.SPOT,
        "fee_payer": FeePayer.RECIPIENT,
        "trust": trust,
    }
    with pytest.raises(submit.SendRefused, match="not in the local whitelist"):
        await submit.commit_to_send(ledger, intent, **commit)
    await ledger.whitelist.add(
        account="sub1",
        coin="USDT",
        network="TRX",
        address="TOurs",
        address_tag=None,
        actor="cli:alice",
        reason="sub1's wallet too",
    )
    committed = await submit.commit_to_send(ledger, intent, **commit)
    assert committed.status is Status.SUBMITTING


async def test_sync_is_per_account_and_audited(ledger: Any) -> None:
    exchanges = {name: FakeExchange() for name in ("default", "sub1")}
    exchanges["sub1"].whitelist = [
        WhitelistAddress(
            coin="USDT",
            network="TRX",
            address="TSub",
            address_tag=None,
            name="s",
            white_status=True,
        )
    ]
    seen = ExchangeSeen()
    for name, exchange in exchanges.items():
        await sync_whitelist(exchange, ledger.whitelist, ledger.events, account=name, seen=seen)
    [entry] = await ledger.whitelist.all()
    assert (entry.account, entry.source, entry.address) == ("sub1", "exchange", "TSub")
    assert seen.saw("sub1", entry.key) and not seen.saw("default", entry.key)
    exchanges["sub1"].whitelist = []
    await sync_whitelist(exchanges["sub1"], ledger.whitelist, account="sub1", seen=seen)
    assert not seen.saw("sub1", entry.key)
    assert await events(ledger.engine, entry.id) == [
        ("add", "sync:sub1", "on the exchange's address book", 1),
        ("disable", "sync:sub1", "no longer on the exchange's address book", 2),
    ]


async def test_a_restarted_daemon_syncs_before_it_sends(stack_factory: Any) -> None:
    """A new process has seen nothing on the exchange: it syncs each account before its
    first send, so the exchange's own entries are usable at once (and only those)."""
    from treasury.runtime.daemon import Daemon

    async with stack_factory() as stack:  # TREASURY_MANUAL_WHITELIST_COOLING_S: 24 h
        ctx = stack.rt.ctx
        ctx.seen = ExchangeSeen()  # what a freshly started process knows
        ledger = stack.rt.ledger

        async def sync() -> object:
            return await sync_whitelist(
                ctx.exchange, ledger.whitelist, account=ctx.config.account, seen=ctx.seen
            )

        new = validate_new_intent(
            coin="USDT", network="TRX", address="TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", amount="20"
        )
        intent, _ = await ledger.intents.enqueue(new, actor="test")
        daemon = Daemon(ctx, pace=stack.rt.exchange.apply_limiter.note_sent_at, whitelist_sync=sync)
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            try:
                [done] = await stack.wait_settled([intent.id], timeout=30)
            finally:
                daemon.stop()
    assert done.status is Status.COMPLETED, done.status_reason
