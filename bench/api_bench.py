"""HTTP API benchmark: ``POST /v1/intents`` latency and throughput, over real HTTP.

    .venv/bin/python bench/api_bench.py                 # SQLite, and PostgreSQL if reachable
    .venv/bin/python bench/api_bench.py -n 2000 -c 16

For each database: a fresh migrated ledger, a token (``treasury token create``), the real
``treasury api`` as a subprocess on a free loopback port, then ``-n`` creates (each its
own ``Idempotency-Key``) from ``-c`` concurrent clients over keep-alive connections, after
50 warm-up requests. Prints p50/p99 latency of a create (client side: request sent to
answer read) and creates per second over the whole run; every answer must be 201.
PostgreSQL: ``TREASURY_BENCH_POSTGRES_URL`` (default: the local test server's database
``test``, a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import quantiles

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get(
    "TREASURY_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BODY = {"coin": "USDT", "network": "TRX", "address": "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "treasury", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"treasury {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


async def _pg_scratch() -> tuple[str, str] | None:
    try:
        import asyncpg
    except ImportError:
        return None
    base = PG.replace("postgresql+asyncpg://", "postgresql://")
    name = f"treasury_bench_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(base, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG.rsplit("/", 1)[0] + "/" + name, name


async def _pg_drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _run(url: str, n: int, concurrency: int) -> dict[str, float]:
    env = {**os.environ, "TREASURY_DATABASE_URL": url, "TREASURY_LOG_LEVEL": "warning"}
    _cli(env, "migrate")
    token = json.loads(
        _cli(env, "token", "create", "bench", "--scopes", "enqueue,read", "--as", "bench", "--json")
    )["token"]
    port = _port()
    env["TREASURY_API_BIND"] = f"127.0.0.1:{port}"
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "treasury", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(
            base_url=base, headers=headers, timeout=30, limits=httpx.Limits(max_connections=64)
        ) as http:
            for _ in range(200):
                try:
                    if (await http.get("/openapi.json")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("treasury api did not come up")
            latencies: list[float] = []
            counter = iter(range(n + 50))

            async def one(record: bool) -> None:
                i = next(counter)
                body = {**BODY, "amount": f"{10 + i % 90}.{i % 100:02d}"}
                started = time.perf_counter()
                answer = await http.post(
                    "/v1/intents", json=body, headers={"Idempotency-Key": f"b-{i}"}
                )
                if answer.status_code != 201:
                    raise SystemExit(f"create answered {answer.status_code}: {answer.text}")
                if record:
                    latencies.append(time.perf_counter() - started)

            for _ in range(50):
                await one(False)

            async def worker(count: int) -> None:
                for _ in range(count):
                    await one(True)

            share = [n // concurrency + (k < n % concurrency) for k in range(concurrency)]
            began = time.perf_counter()
            await asyncio.gather(*(worker(c) for c in share))
            elapsed = time.perf_counter() - began
    finally:
        proc.terminate()
        proc.wait(10)
    cuts = quantiles(latencies, n=100)
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "per_s": n / elapsed}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="creates to time")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        rows.append(("SQLite", await _run(sqlite, args.n, args.c)))
    scratch = await _pg_scratch()
    if scratch is None:
        print("PostgreSQL not reachable: skipped (set TREASURY_BENCH_POSTGRES_URL)")
    else:
        try:
            rows.append(("PostgreSQL", await _run(scratch[0], args.n, args.c)))
        finally:
            await _pg_drop(scratch[1])
    print(
        f"POST /v1/intents, {args.n} creates, {args.c} concurrent clients, {os.cpu_count()} cores"
    )
    print(f"{'database':<12}{'p50 ms':>10}{'p99 ms':>10}{'creates/s':>12}")
    for name, r in rows:
        print(f"{name:<12}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['per_s']:>12.0f}")


if __name__ == "__main__":
    asyncio.run(main())
