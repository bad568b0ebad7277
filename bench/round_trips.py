"""Database round trips per send and per settlement, on SQLite and PostgreSQL.

    .venv/bin/python bench/round_trips.py                 # both dialects, ~10 s
    .venv/bin/python bench/round_trips.py --only sqlite   # or postgres
    .venv/bin/python bench/round_trips.py --verbose       # every statement, in order

PostgreSQL comes from ``TREASURY_TEST_POSTGRES_URL`` (default: the local server, trust
auth); a scratch database is created and dropped.

What it counts: every round trip the application makes to the database while the real
services run against the SQL ledger (``treasury.adapters.db``) and the scripted exchange
of the unit tests (``treasury.testing.FakeExchange``): each statement SQLAlchemy sends
(``before_cursor_execute``: SELECT / INSERT / UPDATE, savepoints), each BEGIN, COMMIT and
ROLLBACK (the connection's ``begin`` / ``commit`` / ``rollback`` events: on PostgreSQL
each is a round trip of its own; on SQLite the BEGIN is the ``BEGIN IMMEDIATE`` the engine
issues), and on PostgreSQL the pool's pre-ping at each checkout (``pool_pre_ping``: one
round trip per transaction). The counts are deterministic: caches are warmed by one
unmeasured send and settlement first (the namespace, the policy snapshot, the exchange
view, asyncpg's prepared statements), and nothing is timed.

The phases of one send, as the daemon runs them (``Daemon._intake_once`` then
``submit.process``):

* ``intake``: the pause check and the claim of a batch (here a batch of one: at the usual
  rates the sender claims one intent per round; a bigger batch shares this cost);
* ``checks``: the checks before the commit (the address book, read outside the commit);
* ``commit``: the commit-to-send transaction (``submit.commit``), the point of no return;
* ``record``: recording the exchange's answer (``submitted`` with its id).

Two sends are measured: ``plain`` (a policy in force, the amount under its approval
threshold, a destination the exchange's address book lists, the first send of the
intent) and ``approved`` (above the threshold, approved by two operators with signed
approvals, to a hand-added destination one operator approved: every read the commit can
make). Settlement: one history poll (``settle.poll_once``) that settles 1, then 10
withdrawals, already seen pending by the poll before (as in a running daemon).

``tests/integration/test_round_trips.py`` holds the counts to the figures this prints.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters.db import migrate
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.domain.approval_proof import entry_statement, statement
from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.services import approvals, operators, settle, submit, whitelist_approvals
from treasury.services.context import WorkerConfig, WorkerContext
from treasury.services.exchange_view import ExchangeView
from treasury.services.local_entity import LocalEntityRouting
from treasury.services.policy import PolicySource, apply_text
from treasury.testing import FakeExchange

PG_BASE = os.environ.get(
    "TREASURY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
ACCOUNT, WORKER, COIN, NETWORK = "default", "bench", "USDT", "TRX"
PLAIN, APPROVED = "TXplainDestination", "TXapprovedDestination"
POLICY = (
    "address_book_approvals_required = 1\n"
    "[coins.USDT]\n"
    'max_per_intent = "100000"\n'
    'daily_cap = "1000000"\n'
    'destination_daily_cap = "1000000"\n'
    'approval_threshold = "100"\n'
    "approvals_required = 2\n"
)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("bob", "carol")}
PHASES = ("intake", "checks", "commit", "record")


# -- counting ------------------------------------------------------------------------------

_TABLE = re.compile(r"\b(?:FROM|INTO|(?<!FOR )UPDATE)\s+\"?(\w+)", re.IGNORECASE)


def kind_of(sql: str) -> str:
    """A statement's kind and its tables: ``SELECT withdrawal_intents``,
    ``SELECT sender_leases+service_state`` (one statement reading both)."""
    words = sql.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    if verb in ("SAVEPOINT", "RELEASE"):
        return verb
    if verb == "ROLLBACK":
        return "ROLLBACK TO SAVEPOINT"
    if "pg_advisory_xact_lock" in sql:
        return "SELECT pg_advisory_xact_lock"
    tables = _TABLE.findall(sql)
    if not tables:
        return " ".join(sql.split())[:24]
    if verb == "SELECT":
        return "SELECT " + "+".join(sorted(set(tables)))
    return f"{verb} {tables[0]}"


@dataclass
class Tally:
    """Round trips by phase, in order."""

    phase: str | None = None
    seen: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str) -> None:
        if self.phase is not None:
            self.seen.setdefault(self.phase, []).append(kind)

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        before, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = before

    def count(self, phase: str) -> int:
        return len(self.seen.get(phase, []))


def instrument(engine: AsyncEngine, tally: Tally) -> None:
    sync = engine.sync_engine

    @event.listens_for(sync, "before_cursor_execute")
    def _statement(_c: Any, _cur: Any, sql: str, *_a: Any) -> None:
        if not sql.lstrip().upper().startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE: below
            tally.add(kind_of(sql))

    @event.listens_for(sync, "begin")
    def _begin(_c: Any) -> None:
        tally.add("BEGIN")

    @event.listens_for(sync, "commit")
    def _commit(_c: Any) -> None:
        tally.add("COMMIT")

    @event.listens_for(sync, "rollback")
    def _rollback(_c: Any) -> None:
        tally.add("ROLLBACK")

    dialect = sync.dialect
    ping = dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        tally.add("PING (pool_pre_ping)")
        return bool(ping(dbapi_connection))

    dialect.do_ping = counted_ping  # type: ignore[method-assign]


# -- the world -----------------------------------------------------------------------------


def _public(name: str) -> str:
    raw = (
        KEYS[name]
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


def _sign(name: str, message: bytes) -> str:
    return base64.b64encode(KEYS[name].sign(message)).decode()


class _PhasedUnits:
    """``ledger.units`` that marks the commit transaction as the ``commit`` phase."""

    def __init__(self, inner: Any, tally: Tally) -> None:
        self._inner, self._tally = inner, tally

    @asynccontextmanager
    async def open(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        if self._tally.phase != "checks":
            async with self._inner.open(*args, **kwargs) as unit:
                yield unit
            return
        with self._tally.during("commit"):
            async with self._inner.open(*args, **kwargs) as unit:
                yield unit
        self._tally.phase = "between"  # nothing touches the database before the request


@dataclass
class World:
    ledger: SqlLedger
    exchange: FakeExchange
    ctx: WorkerContext
    tally: Tally

    async def enqueue(self, address: str, amount: str) -> Intent:
        new = validate_new_intent(coin=COIN, network=NETWORK, address=address, amount=amount)
        intent, _ = await self.ledger.intents.enqueue(new, actor="cli:alice")
        return intent

    async def send(self, intent_id: int) -> Intent:
        """The daemon's intake round for one intent, phase by phase."""
        from treasury.ports.clock import utcnow

        t = self.tally
        with t.during("intake"):
            assert not (await self.ledger.state.pause_state(ACCOUNT)).paused
            now = utcnow()
            claimed = await self.ledger.intents.claim_queued(
                account=ACCOUNT, worker=WORKER, now=now, lease_until=now, limit=20
            )
        [intent] = [i for i in claimed if i.id == intent_id]
        with t.during("checks"):
            await submit.process(self.ctx, intent)
        t.phase = None
        return await self.ledger.intents.get(intent_id)


@asynccontextmanager
async def world(url: str) -> AsyncIterator[World]:
    """A migrated ledger at ``url`` with the policy, two operators and two destinations."""
    await migrate.upgrade(url)
    engine = create_engine(url)
    tally = Tally()
    instrument(engine, tally)
    try:
        ledger = SqlLedger.over(engine)
        exchange = FakeExchange(balances={COIN: "1000000"}, fee="1")
        exchange.add_network(COIN, NETWORK)
        real_withdraw = exchange.withdraw

        async def withdraw(*args: Any, **kwargs: Any) -> Any:
            try:
                return await real_withdraw(*args, **kwargs)
            finally:
                if tally.phase == "between":
                    tally.phase = "record"

        exchange.withdraw = withdraw  # type: ignore[method-assign]
        routed = LocalEntityRouting(exchange)
        ctx = WorkerContext(
            ledger=ledger,
            exchange=routed,
            view=ExchangeView(routed, rules_ttl_s=3600),
            config=WorkerConfig(account=ACCOUNT, worker_id=WORKER, manual_whitelist_cooling_s=0),
            policy=PolicySource(ledger.policies, reread_s=3600).current,
        )
        await apply_text(ledger, POLICY, actor="cli:admin", reason="bench")
        for name in KEYS:
            await operators.add(ledger, name, _public(name), actor="cli:admin")
        seen = await ledger.whitelist.add(
            account=ACCOUNT, coin=COIN, network=NETWORK, address=PLAIN, address_tag=None,
            actor="sync", reason="on the exchange's address book", source="exchange",
        )  # fmt: skip
        ctx.seen.record(ACCOUNT, [seen.key])
        entry = await ledger.whitelist.add(
            account=ACCOUNT, coin=COIN, network=NETWORK, address=APPROVED, address_tag=None,
            actor="cli:alice", reason="added by hand",
        )  # fmt: skip
        await whitelist_approvals.approve(
            ledger,
            entry.id,
            approver="carol",
            signature=_sign("carol", entry_statement(entry)),
            reason="checked",
            required=1,
            cooling_s=0,
        )
        assert await ledger.state.acquire_lease(ACCOUNT, WORKER, ttl_s=3600)
        ledger.units = _PhasedUnits(ledger.units, tally)  # type: ignore[assignment]
        yield World(ledger, exchange, ctx, tally)
    finally:
        await engine.dispose()


async def _approved(w: World, intent: Intent) -> None:
    """Send ``intent`` into ``awaiting_approval``, then approve it twice (signed)."""
    held = await w.send(intent.id)
    assert held.status is Status.AWAITING_APPROVAL, held
    for name in KEYS:
        await approvals.approve(
            w.ledger, intent.id, approver=name, signature=_sign(name, statement(held))
        )
    assert (await w.ledger.intents.get(intent.id)).status is Status.QUEUED


# -- the measurements ----------------------------------------------------------------------


@dataclass
class Figures:
    dialect: str
    sends: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # scenario → phase
    settles: dict[int, list[str]] = field(default_factory=dict)  # withdrawals → round trips

    def send_total(self, scenario: str) -> int:
        return sum(len(v) for v in self.sends[scenario].values())

    def send_phase(self, scenario: str, phase: str) -> int:
        return len(self.sends[scenario].get(phase, []))


async def _measured_send(w: World, intent: Intent) -> dict[str, list[str]]:
    w.tally.seen = {}
    sent = await w.send(intent.id)
    assert sent.status is Status.SUBMITTED, sent
    seen, w.tally.seen = w.tally.seen, {}
    return {p: seen.get(p, []) for p in PHASES}


async def _settle(w: World, stats: settle.SettleStats, n: int) -> list[str]:
    """Send ``n`` intents, let a poll see them pending, complete them, then measure the
    poll that settles them."""
    sent = []
    for _ in range(n):
        intent = await w.enqueue(PLAIN, "10")
        sent.append(await w.send(intent.id))
    await settle.poll_once(w.ctx, stats)  # seen pending, judged once
    for intent in sent:
        assert intent.withdraw_order_id is not None
        w.exchange.complete(intent.withdraw_order_id)
    w.tally.seen = {}
    with w.tally.during("settle"):
        await settle.poll_once(w.ctx, stats)
    seen, w.tally.seen = w.tally.seen, {}
    for intent in sent:
        assert (await w.ledger.intents.get(intent.id)).status is Status.COMPLETED
    return seen.get("settle", [])


async def measure(url: str) -> Figures:
    """The round trips of a plain send, an approved send and two settlement polls."""
    async with world(url) as w:
        figures = Figures("postgresql" if url.startswith("postgresql") else "sqlite")
        stats = settle.SettleStats()
        await _settle(w, stats, 1)  # warm-up: every cache and prepared statement
        warm = await w.enqueue(APPROVED, "200")
        await _approved(w, warm)
        await w.send(warm.id)

        figures.sends["plain"] = await _measured_send(w, await w.enqueue(PLAIN, "10"))
        approved = await w.enqueue(APPROVED, "200")
        await _approved(w, approved)
        figures.sends["approved"] = await _measured_send(w, approved)
        for n in (1, 10):
            figures.settles[n] = await _settle(w, stats, n)
        return figures


# -- databases and the report --------------------------------------------------------------


async def _pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"treasury_rt_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_BASE.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_BASE.replace(urlsplit(PG_BASE).path, f"/{name}"), name


async def _drop_pg(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_BASE.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _breakdown(kinds: list[str]) -> str:
    return ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in Counter(kinds).items())


def report(all_figures: list[Figures], *, verbose: bool) -> str:
    lines = ["Round trips to the database (statements, BEGIN/COMMIT/ROLLBACK, pings)", ""]
    head = f"{'':34}" + "".join(f"{f.dialect:>12}" for f in all_figures)
    lines.append(head)
    for scenario in ("plain", "approved"):
        for phase in PHASES:
            row = f"  send ({scenario}): {phase:<{34 - 10 - len(scenario) - 2}}"
            lines.append(row + "".join(f"{f.send_phase(scenario, phase):>12}" for f in all_figures))
        total = f"send ({scenario}), total"
        lines.append(f"{total:<34}" + "".join(f"{f.send_total(scenario):>12}" for f in all_figures))
    for n in (1, 10):
        what = f"settle poll, {n} settled"
        lines.append(f"{what:<34}" + "".join(f"{len(f.settles[n]):>12}" for f in all_figures))
    per = "settle, per withdrawal (marginal)"
    lines.append(
        f"{per:<34}"
        + "".join(f"{(len(f.settles[10]) - len(f.settles[1])) / 9:>12.1f}" for f in all_figures)
    )
    for f in all_figures:
        lines += ["", f"== {f.dialect}: by statement kind"]
        for scenario, phases in f.sends.items():
            for phase, kinds in phases.items():
                lines.append(f"  send {scenario}/{phase} ({len(kinds)}): {_breakdown(kinds)}")
                if verbose:
                    lines += [f"      {k}" for k in kinds]
        for n, kinds in f.settles.items():
            lines.append(f"  settle {n} ({len(kinds)}): {_breakdown(kinds)}")
            if verbose:
                lines += [f"      {k}" for k in kinds]
    return "\n".join(lines)


async def main_async(only: str | None, verbose: bool) -> None:
    results = []
    if only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(await measure(f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}"))
    if only in (None, "postgres"):
        url, name = await _pg_database()
        try:
            results.append(await measure(url))
        finally:
            await _drop_pg(name)
    print(report(results, verbose=verbose))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument("--verbose", action="store_true", help="every round trip, in order")
    args = parser.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(main_async(args.only, args.verbose))


if __name__ == "__main__":
    main()
