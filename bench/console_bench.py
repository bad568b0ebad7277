"""Operator console benchmark: ``GET /console`` and one intent page with 100,000 intents
on PostgreSQL, over real HTTP with a signed-in session.

    .venv/bin/python bench/console_bench.py            # 100,000 intents, 50 requests each
    .venv/bin/python bench/console_bench.py -n 20000 -r 100

A scratch database (``TREASURY_BENCH_POSTGRES_URL``, default the local test server) is
created, migrated and filled in bulk: the intents are inserted ``queued`` in one
``INSERT ... SELECT`` (the creation trigger of migration 0001/0016 writes each one's
event and outbox row); then nine in ten move on to ``completed`` (and a few to
``needs_attention`` / ``awaiting_approval``) with their status event written first, as
migration 0010 requires. The app is served by uvicorn in a thread; after 5 warm-up
requests, ``-r`` sequential requests per page; prints p50/p95 (ms). The database is
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import uvicorn
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lib import percentile
from treasury.adapters.db import migrate
from treasury.adapters.db.console import ConsoleStore
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.http.app import create_app
from treasury.http.console import LOOPBACK_COOKIE
from treasury.http.serve import deps_for

PG = os.environ.get(
    "TREASURY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
FILL = [
    """INSERT INTO withdrawal_intents (coin, network, address, amount, account, requested_by,
       note, status)
       SELECT (ARRAY['USDT','BTC','ETH'])[1 + g % 3], (ARRAY['TRX','BTC','ETH'])[1 + g % 3],
              'addr' || g, (1 + g % 1000)::numeric, (ARRAY['default','ops','payroll'])[1 + g % 3],
              'api:bench', 'bench intent ' || g, 'queued'
       FROM generate_series(1, :n) AS g""",
    # status changes need their event first (migration 0010): nine in ten complete
    """INSERT INTO intent_events (intent_id, from_status, to_status, reason, actor, kind,
       intent_version)
       SELECT id, 'queued',
              CASE WHEN id % 100 = 1 THEN 'needs_attention'
                   WHEN id % 100 = 2 THEN 'awaiting_approval' ELSE 'completed' END,
              'bench', 'bench', 'status', version + 1
       FROM withdrawal_intents WHERE id % 10 <> 0""",
    """UPDATE withdrawal_intents SET
         status = CASE WHEN id % 100 = 1 THEN 'needs_attention'
                       WHEN id % 100 = 2 THEN 'awaiting_approval' ELSE 'completed' END,
         version = version + 1,
         submitted_at = now() - ((id % 1440) || ' minutes')::interval,
         settled_at = CASE WHEN id % 100 IN (1, 2) THEN NULL
                      ELSE now() - ((id % 1440) || ' minutes')::interval
                           + ((id % 600) || ' seconds')::interval END,
         tx_id = CASE WHEN id % 100 IN (1, 2) THEN NULL ELSE md5(id::text) || md5(id::text) END
       WHERE id % 10 <> 0""",
    "ANALYZE",
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _scratch() -> tuple[str, str]:
    import asyncpg

    name = f"treasury_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG.replace("postgresql+asyncpg://", "postgresql://"), timeout=3)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG.rsplit("/", 1)[0] + "/" + name, name


async def _drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _fill(url: str, n: int) -> None:
    await migrate.upgrade(url)
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            for sql in FILL[:-1]:
                await conn.execute(text(sql), {"n": n} if ":n" in sql else {})
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(FILL[-1]))
        ledger = SqlLedger.over(engine)
        await ledger.operators.add("bench", base64.b64encode(b"k" * 32).decode(), actor="bench")
        print(f"filled {n} intents in {time.perf_counter() - started:.1f} s")
    finally:
        await engine.dispose()


async def _measure(url: str, requests: int) -> dict[str, tuple[float, float]]:
    engine = create_engine(url)
    served = create_engine(url)
    port = _port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(deps_for(SqlLedger.over(served), cooling_s=0)),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await served.dispose()

    thread = threading.Thread(target=anyio.run, args=(serve,), daemon=True)
    thread.start()
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
            await asyncio.sleep(0.02)
        store = ConsoleStore(engine)
        token, _ = await store.create_login("bench", ttl=timedelta(minutes=5), actor="bench")
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            r = await http.post("/console/login", data={"token": token})
            assert r.status_code == 303, r.text
            http.cookies.set(LOOPBACK_COOKIE, r.cookies[LOOPBACK_COOKIE])
            async with engine.connect() as conn:
                one = await conn.scalar(text("SELECT max(id) / 2 FROM withdrawal_intents"))
            results = {}
            for path in (
                "/console",
                "/console?status=needs_attention",
                f"/console/intents/{one}",
                "/console/charts/activity.svg",
            ):
                for _ in range(5):
                    assert (await http.get(path)).status_code == 200, path
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    got = await http.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert got.status_code == 200, (path, got.status_code)
                results[path] = (percentile(times, 50), percentile(times, 95))
        return results
    finally:
        server.should_exit = True
        await anyio.to_thread.run_sync(thread.join, 10)
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="intents in the ledger")
    parser.add_argument("-r", type=int, default=50, help="requests per page")
    args = parser.parse_args()
    url, name = await _scratch()
    try:
        await _fill(url, args.n)
        results = await _measure(url, args.r)
    finally:
        await _drop(name)
    print(f"PostgreSQL, {args.n} intents, {args.r} sequential requests per page, signed in:")
    for path, (p50, p95) in results.items():
        print(f"  GET {path:<36} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
