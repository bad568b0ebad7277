"""The benchmark's moving parts: sandbox, databases, the daemon process, intents.

* The sandbox runs in a thread of the bench process (``SandboxThread``) with a request
  log wrapped around its ASGI app: every request's path, status, and for
  ``withdraw/history`` its ``offset`` / ``withdrawOrderId``, so history polls and 429s
  are counted where they arrive. Its journal (the ledger) gives the apply times.
* The daemon is the real ``python -m treasury run``, a subprocess with its own
  environment, so its RSS and CPU are its own; its log goes to a file.
* Databases: a SQLite file in the run's temp dir, or a fresh PostgreSQL database
  (dropped at the end), migrated, with the whitelist synced from the sandbox.

Everything is registered with :class:`Cleanup`, which the runner always runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil

REPO = Path(__file__).resolve().parents[1]
PG_BASE = os.environ.get(
    "TREASURY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
COIN, NETWORK = "USDT", "TRX"
ADDRESS = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"  # whitelisted in the sandbox's default config
AMOUNT = Decimal("11")


# -- cleanup -----------------------------------------------------------------------------


class Cleanup:
    """Things to undo, newest first; each step runs even if an earlier one failed."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []

    def add(self, name: str, fn: Callable[[], None]) -> None:
        self._steps.append((name, fn))

    def run(self) -> list[str]:
        problems = []
        while self._steps:
            name, fn = self._steps.pop()
            try:
                fn()
            except Exception as exc:  # report and go on: the rest must still be undone
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
        return problems


# -- the machine -------------------------------------------------------------------------


def machine_info() -> dict[str, object]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# -- the sandbox -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    t: float  # epoch s when the answer was sent
    path: str
    status: int | None
    offset: int = 0
    by_order_id: bool = False
    dur_ms: float = 0.0  # time the sandbox spent on it (request in → answer out)


class RequestLog:
    """ASGI middleware: remembers every request's path and answer status."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hits: list[Hit] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int | None] = [None]
        began = time.perf_counter()

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            path = scope["path"]
            offset, by_oid = 0, False
            if path.endswith("/withdraw/history"):
                q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                with contextlib.suppress(ValueError):
                    offset = int(q.get("offset", ["0"])[0])
                by_oid = "withdrawOrderId" in q or "idList" in q
            self.hits.append(
                Hit(
                    time.time(),
                    path,
                    status[0],
                    offset,
                    by_oid,
                    (time.perf_counter() - began) * 1000,
                )
            )

    def between(self, start: float, end: float) -> list[Hit]:
        return [h for h in list(self.hits) if start <= h.t <= end]


_LOGS: dict[int, RequestLog] = {}


def _install_request_log() -> None:
    import treasury.sandbox.server as server

    if getattr(server.build_app, "_bench", False):
        return
    original = server.build_app

    def build_app(sandbox: Any) -> Any:
        log = RequestLog(original(sandbox))
        _LOGS[id(sandbox)] = log
        return log

    build_app._bench = True  # type: ignore[attr-defined]
    server.build_app = build_app  # type: ignore[assignment]


class Sandbox:
    """The sandbox exchange in a thread, with a raised rate limit and no failures."""

    def __init__(
        self, *, multiplier: float, processing_s: float, jitter_s: float = 0.0, seed: int = 7
    ) -> None:
        from treasury.sandbox.config import Timings, default_config

        base = default_config()
        self.config = dataclasses.replace(
            base,
            timings=Timings(
                processing_s=processing_s,
                processing_jitter_s=jitter_s,
                failure_share=0.0,
                rejection_share=0.0,
                seed=seed,
            ),
            rate_limits=dataclasses.replace(base.rate_limits, multiplier=Decimal(str(multiplier))),
            journal_fsync=False,
        )
        self.processing_s = processing_s
        self.multiplier = multiplier
        account = self.config.accounts["default"]
        self.api_key = account.api_key
        self.api_secret = account.hmac_secret or ""
        self._thread: Any = None
        self.log: RequestLog | None = None
        self._seen = 0
        self._applies = 0

    def start(self, cleanup: Cleanup) -> Sandbox:
        from treasury.sandbox.server import SandboxThread

        _install_request_log()
        self._thread = SandboxThread(config=self.config).start()
        cleanup.add("sandbox", self.stop)
        self.log = _LOGS[id(self._thread.sandbox)]
        return self

    @property
    def url(self) -> str:
        return str(self._thread.url)

    def records(self) -> list[dict[str, Any]]:
        return list(self._thread.sandbox.journal.records)

    def apply_count(self) -> int:
        """withdraw/apply requests received so far (incremental, cheap to poll)."""
        records = self._thread.sandbox.journal.records
        end = len(records)
        for r in records[self._seen : end]:
            if r.get("type") == "apply":
                self._applies += 1
        self._seen = end
        return self._applies

    def ledger(self) -> Any:
        return self._thread.ledger()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None


# -- databases ---------------------------------------------------------------------------


@dataclass
class Database:
    kind: str  # "sqlite" or "postgres"
    url: str
    name: str | None = None  # PostgreSQL database to drop


def _admin_dsn() -> str:
    return PG_BASE.replace("postgresql+asyncpg", "postgresql")


def postgres_reachable() -> bool:
    import socket

    parts = urlsplit(_admin_dsn())
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


async def new_database(kind: str, workdir: Path, cleanup: Cleanup) -> Database:
    if kind == "sqlite":
        path = workdir / f"ledger-{uuid.uuid4().hex[:8]}.sqlite3"
        return Database("sqlite", f"sqlite+aiosqlite:///{path}")
    import asyncpg

    name = f"treasury_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    cleanup.add(f"drop database {name}", lambda: asyncio.run(drop_database(name)))
    parts = urlsplit(PG_BASE)
    return Database("postgres", PG_BASE.replace(parts.path, f"/{name}"), name)


async def drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def settings_for(db: Database, sandbox: Sandbox, **extra: Any) -> Any:
    from treasury.config import load_settings

    return load_settings(
        database_url=db.url,
        binance_base_url=sandbox.url,
        binance_api_key=sandbox.api_key,
        binance_api_secret=sandbox.api_secret,
        **extra,
    )


async def prepare(db: Database, sandbox: Sandbox) -> None:
    """Migrate, then mirror the sandbox's whitelist (what an operator does before run)."""
    from treasury.adapters.db import migrate
    from treasury.bootstrap import runtime
    from treasury.services.whitelist_sync import sync_whitelist

    await migrate.upgrade(db.url)
    settings = settings_for(db, sandbox, exchange_limit_multiplier=sandbox.multiplier)
    async with runtime(settings, worker="bench-setup") as rt:
        await sync_whitelist(rt.exchange, rt.ledger.whitelist, account=rt.ctx.config.account)


def engine_for(db: Database) -> Any:
    from treasury.adapters.db.engine import create_engine

    return create_engine(db.url)


# -- intents -----------------------------------------------------------------------------


def intent_row(n: int, prefix: str, now: datetime) -> dict[str, Any]:
    return {
        "coin": COIN,
        "network": NETWORK,
        "address": ADDRESS,
        "address_tag": None,
        "amount": AMOUNT,
        "account": "default",
        "request_id": f"{prefix}-{n}",
        "requested_by": "bench",
        "status": "queued",
        "status_reason": "waiting for the worker",
        "enqueued_via": "bench",
        "created_at": now,
        "updated_at": now,
    }


async def bulk_enqueue(engine: Any, count: int, prefix: str, chunk: int = 5000) -> None:
    """INSERT ``count`` queued intents, many rows per statement (executemany)."""
    from sqlalchemy import insert

    from treasury.adapters.db.tables import withdrawal_intents as T

    now = datetime.now(UTC)
    for start in range(0, count, chunk):
        rows = [intent_row(n, prefix, now) for n in range(start, min(count, start + chunk))]
        async with engine.begin() as conn:
            await conn.execute(insert(T), rows)


async def bulk_fill(engine: Any, count: int, prefix: str) -> None:
    """INSERT ``count`` queued intents in ONE statement generated by the database
    (``generate_series`` / a recursive CTE): the COPY-like way to load a big table.
    The product's triggers still run for every row (guard, creation event, NOTIFY)."""
    from sqlalchemy import text

    now = datetime.now(UTC)
    cols = (
        "coin, network, address, amount, account, request_id, requested_by, status, "
        "status_reason, enqueued_via, created_at, updated_at"
    )
    if engine.dialect.name == "postgresql":
        sql = (
            f"INSERT INTO withdrawal_intents ({cols}) SELECT 'USDT', 'TRX', :addr, 11, "  # noqa: S608
            "'default', :prefix || g, 'bench', 'queued', 'waiting for the worker', 'bench', "
            ":now, :now FROM generate_series(1, :n) AS g"
        )
        params: dict[str, Any] = {"now": now}
    else:
        sql = (
            "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "  # noqa: S608
            f"INSERT INTO withdrawal_intents ({cols}) SELECT 'USDT', 'TRX', :addr, '11', "
            "'default', :prefix || x, 'bench', 'queued', 'waiting for the worker', 'bench', "
            ":now, :now FROM g"
        )
        params = {"now": now.strftime("%Y-%m-%d %H:%M:%S.%f")}
    async with engine.begin() as conn:  # constants only above; values are bound parameters
        await conn.execute(
            text(sql), {"addr": ADDRESS, "prefix": f"{prefix}-", "n": count, **params}
        )


async def make_terminal(engine: Any, up_to_id: int) -> None:
    """Mark every intent with ``id <= up_to_id`` completed (as if sent and settled)."""
    from sqlalchemy import BigInteger, String, cast, literal, update

    from treasury.adapters.db.tables import withdrawal_intents as T

    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            update(T)
            .where(T.c.id <= up_to_id)
            .values(
                status="completed",
                status_reason="bench: settled",
                version=T.c.version + 1,
                withdraw_order_id=literal("bench-") + cast(T.c.id, String),
                exchange_withdraw_id=cast(T.c.id, String),
                send_timestamp_ms=cast(T.c.id, BigInteger) + 1_700_000_000_000,
                send_count=1,
                submitted_at=now - timedelta(days=1),
                settled_at=now,
                updated_at=now,
            )
        )


async def enqueue_one(engine: Any, n: int, prefix: str) -> Any:
    """One intent through the repository (what ``treasury enqueue`` does)."""
    from treasury.adapters.db.repository import IntentRepository
    from treasury.domain.validation import validate_new_intent

    new = validate_new_intent(
        coin=COIN,
        network=NETWORK,
        address=ADDRESS,
        address_tag=None,
        amount=AMOUNT,
        request_id=None,
        requested_by="bench",
    )
    intent, _ = await IntentRepository(engine).enqueue(new, actor="bench")
    return intent


async def intents_table(engine: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from treasury.adapters.db.tables import withdrawal_intents as T

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    T.c.id,
                    T.c.status,
                    T.c.withdraw_order_id,
                    T.c.created_at,
                    T.c.submitted_at,
                    T.c.settled_at,
                )
            )
        ).all()
    return [dict(r._mapping) for r in rows]


async def status_counts(engine: Any) -> dict[str, int]:
    from treasury.adapters.db.repository import IntentRepository

    return await IntentRepository(engine).count_by_status()


# -- the daemon --------------------------------------------------------------------------


@dataclass
class Daemon:
    """``python -m treasury run`` as a subprocess, watched with psutil."""

    name: str
    db: Database
    sandbox: Sandbox
    rate: float
    multiplier: float
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None  # default: [python, -m, treasury, run]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    peak_rss: int = 0
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    _stop_sampling: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TREASURY_") and k != "CREDENTIALS_DIRECTORY"
        }
        env.update(
            {
                "TREASURY_DATABASE_URL": self.db.url,
                "TREASURY_BINANCE_BASE_URL": self.sandbox.url,
                "TREASURY_BINANCE_API_KEY": self.sandbox.api_key,
                "TREASURY_BINANCE_API_SECRET": self.sandbox.api_secret,
                "TREASURY_WITHDRAW_RATE": str(self.rate),
                "TREASURY_EXCHANGE_LIMIT_MULTIPLIER": str(self.multiplier),
                "TREASURY_WORKER_ID": f"bench-{self.name}",
                # the sandbox shows every withdrawal at once: a short allowance is honest here
                "TREASURY_HISTORY_LAG_ALLOWANCE_S": "1",
                "TREASURY_LOG_FORMAT": "json",
                "TREASURY_LOG_LEVEL": "info",
                "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, cleanup: Cleanup) -> Daemon:
        run_dir = self.workdir / f"daemon-{self.name}"
        run_dir.mkdir(parents=True, exist_ok=True)  # cwd: no stray .env is read
        self.log_path = run_dir / "daemon.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command or [sys.executable, "-m", "treasury", "run"],
                cwd=run_dir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        cleanup.add(f"daemon {self.name}", self.stop)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        assert self.proc is not None
        try:
            p = psutil.Process(self.proc.pid)
            while not self._stop_sampling.is_set() and self.proc.poll() is None:
                rss = p.memory_info().rss
                self.peak_rss = max(self.peak_rss, rss)
                self.rss_samples.append((time.time(), rss))
                self._stop_sampling.wait(0.1)
        except psutil.Error:
            pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    async def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Wait for ``sender.active`` in the log; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise RuntimeError(
                    f"daemon {self.name} exited ({code}); log tail:\n{self.log_text()[-3000:]}"
                )
            if '"sender.active"' in self.log_text():
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise TimeoutError(
            f"daemon {self.name} not active after {timeout_s} s; log tail:\n"
            f"{self.log_text()[-3000:]}"
        )

    def sched_wait_s(self) -> float:
        """Seconds the daemon's threads were runnable but waiting for a CPU (schedstat)."""
        assert self.proc is not None
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(task.read_text().split()[1])
        return total / 1e9

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    async def cpu_percent_over(self, seconds: float) -> float:
        """CPU used by the daemon over ``seconds`` of wall time, in % of one core."""
        before, t0 = self.cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        after, t1 = self.cpu_seconds(), time.monotonic()
        return 100.0 * (after - before) / (t1 - t0)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        self._stop_sampling.set()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def problems(self) -> dict[str, int]:
        """Warning/error events in the log, counted by event name."""
        counts: dict[str, int] = {}
        for e in self.events():
            if e.get("level") in ("warning", "error", "critical"):
                key = f"{e.get('level')}:{e.get('event')}"
                counts[key] = counts.get(key, 0) + 1
        return counts


async def wait_until(
    predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.1, what: str = "condition"
) -> float:
    """Await ``predicate()`` (sync or async) becoming true; returns the seconds waited."""
    started = time.monotonic()
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)


def ms_of(dt: datetime) -> float:
    return dt.timestamp() * 1000.0


async def pause_sending(engine: Any) -> None:
    """The kill switch (``treasury pause``): the daemon claims and commits nothing more."""
    from treasury.adapters.db.state import ServiceState

    await ServiceState(engine).pause(reason="bench: sending window over", by="bench")


async def time_claims(engine: Any, *, repeats: int, batch: int) -> list[float]:
    """Seconds per ``claim_queued`` call of ``batch`` due intents, ``repeats`` times.

    The same worker re-claims the same rows each time (its own lease does not hide them),
    so every call does the full select-and-lease work.
    """
    from treasury.adapters.db.repository import IntentRepository, utcnow

    repo = IntentRepository(engine)
    times = []
    for n in range(repeats + 3):
        now = utcnow()
        t0 = time.perf_counter()
        claimed = await repo.claim_queued(
            account="default",
            worker="bench-claim",
            now=now,
            lease_until=now + timedelta(seconds=60),
            limit=batch,
        )
        elapsed = time.perf_counter() - t0
        if len(claimed) != batch:
            raise RuntimeError(f"claimed {len(claimed)} intents, expected {batch}")
        if n >= 3:  # the first calls warm caches and the connection pool
            times.append(elapsed)
    return times


async def analyze(engine: Any) -> None:
    """Refresh planner statistics, as autovacuum/``ANALYZE`` would after a bulk load."""
    from sqlalchemy import text

    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))


async def explain_claim(engine: Any) -> str:
    """The plan of the claim's SELECT (for the report when the figure is not flat)."""
    from sqlalchemy import bindparam, text

    from treasury.adapters.db.types import UTCDateTime

    sql = (
        "SELECT id FROM withdrawal_intents WHERE status = 'queued' AND account = 'default'"
        " AND (not_before IS NULL OR not_before <= :now)"
        " AND (claimed_until IS NULL OR claimed_until < :now OR claimed_by = 'x')"
        " ORDER BY id LIMIT 20"
    )
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    stmt = text(prefix + sql).bindparams(bindparam("now", type_=UTCDateTime()))
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt, {"now": datetime.now(UTC)})).all()
    return "\n".join(" ".join(str(c) for c in r) for r in rows)
