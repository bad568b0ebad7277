"""Shared fixtures. A developer's TREASURY_* environment never leaks into a test.

Database tests run on SQLite and on PostgreSQL. PostgreSQL comes from
TREASURY_TEST_POSTGRES_URL (default: the local server, trust auth, database `test`);
where it is unreachable those tests skip with a message saying how to enable them,
unless TREASURY_REQUIRE_POSTGRES=1 (CI), where they fail instead.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from treasury.logs import forget_secrets

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
_KEEP = {
    "TREASURY_TEST_POSTGRES_URL",
    "TREASURY_REQUIRE_POSTGRES",
    "TREASURY_TORTURE_ROUNDS",
    "TREASURY_REQUIRE_BROWSER",
    "TREASURY_REFRESH_DOCS",
    "TREASURY_AXE_SCRIPT",
}


@pytest.fixture(autouse=True)
def _stacks_before_a_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    """A hung async test shows only the event loop's ``select`` when pytest-timeout stops
    it. Shortly before that, print every asyncio task's stack and every thread's, so the
    report names what was waiting (set up first, so it also covers other fixtures'
    tear-downs)."""
    limit = float(
        request.config.getoption("timeout", None) or request.config.getini("timeout") or 0
    )
    if limit <= 0:
        yield
        return

    def dump() -> None:
        out = sys.__stderr__ or sys.stderr
        print(
            f"\n=== {request.node.nodeid}: still running after {limit * 0.9:.0f} s; "
            "asyncio tasks ===",
            file=out,
        )
        for task in list(getattr(asyncio.tasks, "_all_tasks", ())):
            if not task.done():
                print(f"task {task.get_name()}:", file=out)
                for where in _awaiting(task.get_coro()):
                    print(f"    {where}", file=out)
        print("=== threads ===", file=out)
        faulthandler.dump_traceback(file=out, all_threads=True)

    timer = threading.Timer(limit * 0.9, dump)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


def _awaiting(coro: object) -> list[str]:
    """Where a suspended coroutine waits, outermost first (``Task.get_stack`` stops at
    the first frame)."""
    chain = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("TREASURY_") and key not in _KEEP:
            monkeypatch.delenv(key)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    yield
    forget_secrets()


def postgres_base_url() -> str:
    return os.environ.get("TREASURY_TEST_POSTGRES_URL", DEFAULT_PG)


def _pg_reachable(url: str) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


def require_postgres() -> str:
    url = postgres_base_url()
    if not _pg_reachable(url):
        msg = (
            f"PostgreSQL not reachable at {url}. To run these tests, start PostgreSQL and set "
            "TREASURY_TEST_POSTGRES_URL=postgresql+asyncpg://USER@HOST:PORT/DB (trust auth)."
        )
        if os.environ.get("TREASURY_REQUIRE_POSTGRES") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return url


async def make_pg_database() -> tuple[str, str]:
    """A fresh, empty database on the test server; returns (url, name)."""
    import asyncpg

    base = require_postgres()
    name = f"treasury_t_{uuid.uuid4().hex[:12]}"
    admin_url = base.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(base)
    return base.replace(parts.path, f"/{name}"), name


async def drop_pg_database(name: str) -> None:
    import asyncpg

    admin_url = postgres_base_url().replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    url, name = await make_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


@pytest.fixture
async def migrated_url(db_url: str) -> str:
    from treasury.adapters.db import migrate

    await migrate.upgrade(db_url)
    return db_url


@pytest.fixture
async def ledger(migrated_url: str) -> AsyncIterator[object]:
    from treasury.adapters.db.engine import create_engine
    from treasury.adapters.db.ledger import SqlLedger as Ledger

    engine = create_engine(migrated_url)
    try:
        yield Ledger.over(engine)
    finally:
        await engine.dispose()
