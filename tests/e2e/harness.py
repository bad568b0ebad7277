"""End-to-end harness: a real sandbox process, a real ``treasury run`` process, a real DB.

One :class:`World` is one isolated installation: a work directory, a database (a SQLite
file or a fresh PostgreSQL database), the sandbox exchange as its own process with a
journal file (the ground truth), and any number of ``treasury run`` processes started
with the fast knobs below. Everything is asynchronous so that independent worlds can
run side by side in one event loop (the suite has no xdist), and everything a world
started is killed when its ``async with`` block ends, whatever happened.

Used by ``tests/e2e`` and by ``torture/run.py``; depends on nothing pytest-specific.
"""
# A test harness: starting a process (Popen) and opening its log files are quick blocking
# calls, and deadlines are plain arguments because every wait reports what it waited for.
# ruff: noqa: ASYNC220, ASYNC230, ASYNC240

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from treasury.adapters.db.engine import normalize_url
from treasury.sandbox.ledger import Ledger, read_ledger

API_KEY = "sandbox-api-key"
API_SECRET = "sandbox-api-secret"  # the sandbox's documented demo secret
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SETTLED = frozenset({"completed", "failed", "rejected", "cancelled", "needs_attention"})
TERMINAL = frozenset({"completed", "failed", "rejected", "cancelled"})

# The daemon's fast knobs (the brief's values). Safe point of a reconciliation:
# signed ts + 1000 ms recvWindow + 10 s processing timeout + 1 s margin.
FAST_ENV: dict[str, str] = {
    "TREASURY_POLL_INTERVAL_S": "0.5",
    "TREASURY_INTAKE_INTERVAL_S": "0.1",
    "TREASURY_RECONCILE_INTERVAL_S": "0.5",
    "TREASURY_HISTORY_LAG_ALLOWANCE_S": "1",
    "TREASURY_HOLD_BACKOFF_S": "0.5",
    "TREASURY_LEASE_TTL_S": "2",
    "TREASURY_APPLY_RECV_WINDOW_MS": "1000",
    "TREASURY_WITHDRAW_RATE": "20",
    "TREASURY_EXCHANGE_LIMIT_MULTIPLIER": "100",
    "TREASURY_LOG_FORMAT": "json",
    "TREASURY_LOG_LEVEL": "info",
    "TREASURY_METRICS_BIND": "127.0.0.1:0",  # any free port: worlds run side by side
}

# Whitelisted destinations of the sandbox's default config (account ``default``).
USDT_TRX = ("USDT", "TRX", "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", None)
USDT_TRX_2 = ("USDT", "TRX", "T2WouRpQKa1QRj1xs34r742gcgx1APB6g2", None)
USDT_TRX_3 = ("USDT", "TRX", "TUcB2DE5w875K7B9eaD1Gkuafq6gKFkSgU", None)
USDT_ETH = ("USDT", "ETH", "0x94df8b352de7f46f64b01d3666bf6e936e44ce60", None)
USDT_BSC = ("USDT", "BSC", "0xe4a618e2fc5ad76525f555970363ae97afc1f426", None)
BTC_BTC = ("BTC", "BTC", "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", None)
ETH_ARB = ("ETH", "ARBITRUM", "0x94df8b352de7f46f64b01d3666bf6e936e44ce60", None)
XRP_1 = ("XRP", "XRP", "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", "104400725")
XRP_2 = ("XRP", "XRP", "r9Q997XVDHVduUDtPiNm9kvLEzFq5yxhR9", "treasury-ops_1")
DESTINATIONS = [
    USDT_TRX,
    USDT_TRX_2,
    USDT_TRX_3,
    USDT_ETH,
    USDT_BSC,
    BTC_BTC,
    ETH_ARB,
    XRP_1,
    XRP_2,
]
# A plausible amount per coin (above every network's minimum, within its precision).
SAMPLE_AMOUNTS = {
    "USDT": ["10.5", "12.000001", "250", "1234.56789", "99.99", "31.4159"],
    "BTC": ["0.01234567", "0.001", "0.00500001"],
    "ETH": ["0.00250001", "0.1", "0.0123"],
    "XRP": ["40", "2.5", "123.456789"],
}


class HarnessError(AssertionError):
    """A process did not behave (start, stop, deadline): the test fails with context."""


# ---- small utilities -------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Awaitable[Any]],
    *,
    timeout: float,
    poll: float = 0.1,
    what: str = "condition",
    describe: Callable[[], Awaitable[str]] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = await describe() if describe is not None else ""
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}")
        await anyio.sleep(poll)


async def run_concurrently(jobs: Mapping[str, Callable[[], Awaitable[object]]]) -> dict[str, Any]:
    """Run independent scenarios side by side; raise one AssertionError naming every failure.

    Each job runs to its end even if another fails, so one report shows them all.
    """
    results: dict[str, Any] = {}
    failures: dict[str, BaseException] = {}

    async def one(name: str, job: Callable[[], Awaitable[object]]) -> None:
        try:
            results[name] = await job()
        except Exception as exc:
            failures[name] = exc

    async with anyio.create_task_group() as tg:
        for name, job in jobs.items():
            tg.start_soon(one, name, job)
    if failures:
        text_ = "\n\n".join(f"[{name}] {type(e).__name__}: {e}" for name, e in failures.items())
        first = next(iter(failures.values()))
        message = f"{len(failures)} of {len(jobs)} scenarios failed:\n{text_}"
        raise AssertionError(message) from first
    return results


def postgres_base_url() -> str:
    return os.environ.get("TREASURY_TEST_POSTGRES_URL", DEFAULT_PG)


def postgres_reachable() -> bool:
    import socket

    parts = urlsplit(postgres_base_url().replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


async def create_pg_database() -> tuple[str, str]:
    import asyncpg

    base = postgres_base_url()
    name = f"treasury_e2e_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.replace(urlsplit(base).path, f"/{name}"), name


async def drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres_base_url().replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def sandbox_config(
    *,
    processing_s: float = 1.0,
    failure_share: float = 0.0,
    rejection_share: float = 0.0,
    seed: int | None = None,
    multiplier: int = 100,
) -> dict[str, object]:
    """A sandbox config derived from the built-in one: fast settlement, raised limits."""
    return {
        "timings": {
            "processing_s": str(processing_s),
            "processing_jitter_s": "0",
            "failure_share": str(failure_share),
            "rejection_share": str(rejection_share),
            "seed": seed,
        },
        "rate_limit_multiplier": str(multiplier),
        "journal_fsync": False,  # a SIGKILLed daemon cannot tear the sandbox's page cache
    }


# ---- processes ---------------------------------------------------------------------------


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREASURY_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await anyio.sleep(0.02)
    return proc.poll()


@dataclass(repr=False)
class SandboxProcess:
    """``python -m treasury.sandbox`` as a child process; its journal is the ground truth."""

    proc: subprocess.Popen[bytes]
    url: str
    state_path: Path
    log_path: Path
    _http: httpx.AsyncClient

    @classmethod
    async def start(
        cls,
        workdir: Path,
        *,
        config: Mapping[str, object],
        faults: Mapping[str, object] | None,
        name: str = "sandbox",
        state_path: Path | None = None,
    ) -> SandboxProcess:
        config_path = workdir / f"{name}-config.json"
        config_path.write_text(json.dumps(config))
        state_path = state_path or workdir / f"{name}.jsonl"
        out_path, log_path = workdir / f"{name}.out", workdir / f"{name}.err"
        argv = [
            sys.executable,
            "-m",
            "treasury.sandbox",
            "--port",
            "0",
            "--config",
            str(config_path),
            "--state",
            str(state_path),
        ]
        if faults:
            faults_path = workdir / f"{name}-faults.json"
            faults_path.write_text(json.dumps(faults))
            argv += ["--faults", str(faults_path)]
        with open(out_path, "wb") as out, open(log_path, "ab") as err:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env=_child_env({}),
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 20
            url = None
            while url is None:
                line = out_path.read_text(errors="replace")
                if "sandbox listening on " in line:
                    url = line.split("sandbox listening on ", 1)[1].split()[0]
                elif proc.poll() is not None or time.monotonic() > deadline:
                    raise HarnessError(
                        f"sandbox did not start (exit {proc.poll()}): {log_path.read_text()}"
                    )
                else:
                    await anyio.sleep(0.05)
        except BaseException:
            _kill(proc)
            raise
        return cls(proc, url, state_path, log_path, httpx.AsyncClient(base_url=url, timeout=10))

    async def set_faults(self, body: Mapping[str, object]) -> dict[str, Any]:
        reply = await self._http.post("/_sandbox/faults", json=body)
        if reply.status_code != 200:
            raise HarnessError(f"sandbox refused faults {body}: {reply.text}")
        result: dict[str, Any] = reply.json()
        return result

    async def reset_faults(self) -> None:
        await self.set_faults({"reset": True})

    def ledger(self) -> Ledger:
        return read_ledger(self.state_path)

    def __repr__(self) -> str:
        return f"SandboxProcess({self.url}, journal {self.state_path})"

    async def stop(self) -> None:
        try:
            await self._http.aclose()
        finally:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                if await _wait_exit(self.proc, 5) is None:
                    _kill(self.proc)
            _kill(self.proc)


@dataclass
class DaemonProcess:
    """One ``treasury run``; stdout and stderr go to files (read them with :meth:`logs`)."""

    proc: subprocess.Popen[bytes]
    worker_id: str | None
    out_path: Path
    err_path: Path
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def logs(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines of stderr, parsed (non-JSON lines are skipped)."""
        found = []
        for line in self.err_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    found.append(json.loads(line))
        return found

    def saw(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    def sigkill(self) -> None:
        """Crash: SIGKILL, then reap."""
        _kill(self.proc)

    async def sigterm(self, timeout: float = 10.0) -> tuple[int | None, float]:
        """Graceful stop; returns (exit code or None if still running, seconds taken)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await _wait_exit(self.proc, timeout)
        return code, time.monotonic() - t0

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until it is the sender or a standby (it logs one of them once started)."""

        async def ready() -> bool:
            if not self.alive():
                raise HarnessError(f"treasury run exited with {self.proc.poll()}:\n{self.logs()}")
            return self.saw("sender.active") or self.saw("standby")

        await wait_until(
            ready, timeout=timeout, poll=0.05, what="treasury run to start", describe=self._tail
        )

    async def _tail(self) -> str:
        return self.logs()[-4000:]


# ---- one world ---------------------------------------------------------------------------


@dataclass(repr=False)
class World:
    kind: str  # "sqlite" | "postgres"
    workdir: Path
    db_url: str
    sandbox: SandboxProcess
    engine: AsyncEngine
    env_overrides: dict[str, str]
    daemons: list[DaemonProcess] = field(default_factory=list)
    cli_outputs: list[str] = field(default_factory=list)
    _seq: int = 0

    def __repr__(self) -> str:  # short: assertion messages quote it
        return f"World({self.kind}, {self.workdir})"

    # -- environment and commands ---------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        return _child_env(
            {
                "TREASURY_DATABASE_URL": self.db_url,
                "TREASURY_BINANCE_BASE_URL": self.sandbox.url,
                "TREASURY_BINANCE_API_KEY": API_KEY,
                "TREASURY_BINANCE_API_SECRET": API_SECRET,
                **FAST_ENV,
                **self.env_overrides,
                **extra,
            }
        )

    async def cli(
        self, *args: str, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``treasury ARGS`` as an operator would; output is kept for the secret check."""
        result = await anyio.run_process(
            [sys.executable, "-m", "treasury", *args],
            env=self.env(**env),
            cwd=self.workdir,
            check=False,
        )
        self.cli_outputs.append(
            result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        )
        if check and result.returncode != 0:
            raise HarnessError(
                f"treasury {' '.join(args)} exited {result.returncode}: "
                f"{result.stdout.decode()} {result.stderr.decode()}"
            )
        return result

    async def start_daemon(
        self, worker_id: str | None = None, *, wait: bool = True, **env: str
    ) -> DaemonProcess:
        self._seq += 1
        n = self._seq
        extra = dict(env)
        if worker_id is not None:
            extra["TREASURY_WORKER_ID"] = worker_id
        out_path = self.workdir / f"daemon-{n}.out"
        err_path = self.workdir / f"daemon-{n}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "treasury", "run"],
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                env=self.env(**extra),
                start_new_session=True,
            )
        daemon = DaemonProcess(proc, worker_id, out_path, err_path)
        self.daemons.append(daemon)
        if wait:
            await daemon.wait_ready()
        return daemon

    async def restart(self, daemon: DaemonProcess, **kw: Any) -> DaemonProcess:
        """SIGKILL ``daemon`` (if alive) and start a fresh one."""
        daemon.sigkill()
        return await self.start_daemon(**kw)

    def all_logs(self) -> str:
        return "\n".join(d.logs() for d in self.daemons)

    # -- the database ----------------------------------------------------------------------

    async def sql(self, statement: str, **params: object) -> list[dict[str, Any]]:
        async with self.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return [dict(r._mapping) for r in result] if result.returns_rows else []

    async def insert_sql(
        self,
        coin: str,
        network: str,
        address: str,
        tag: str | None,
        amount: str,
        *,
        request_id: str | None = None,
    ) -> int:
        """An operator's hand-typed INSERT (amount as quoted decimal text, as documented)."""
        rows = await self.sql(
            "INSERT INTO withdrawal_intents (coin, network, address, address_tag, amount, "
            "request_id, requested_by) VALUES (:coin, :network, :address, :tag, "
            + ("CAST(CAST(:amount AS TEXT) AS NUMERIC)" if self.kind == "postgres" else ":amount")
            + ", :rid, 'e2e-sql') RETURNING id",
            coin=coin,
            network=network,
            address=address,
            tag=tag,
            amount=amount,
            rid=request_id,
        )
        return int(rows[0]["id"])

    async def enqueue_cli(
        self,
        coin: str,
        network: str,
        address: str,
        tag: str | None,
        amount: str,
        *,
        request_id: str | None = None,
    ) -> int:
        args = [
            "enqueue",
            "--coin",
            coin,
            "--network",
            network,
            "--address",
            address,
            "--amount",
            amount,
            "--as",
            "e2e",
            "--json",
        ]
        if tag:
            args += ["--tag", tag]
        if request_id:
            args += ["--request-id", request_id]
        result = await self.cli(*args)
        return int(json.loads(result.stdout)["id"])

    async def enqueue_api(
        self,
        coin: str,
        network: str,
        address: str,
        tag: str | None,
        amount: str,
        *,
        request_id: str | None = None,
    ) -> int:
        from treasury.api import Treasury

        async with Treasury.connect(self.db_url, actor="bot:e2e") as t:
            intent = await t.enqueue(
                coin=coin,
                network=network,
                address=address,
                address_tag=tag,
                amount=Decimal(amount),
                request_id=request_id,
                requested_by="e2e-bot",
            )
        return intent.id

    async def intents(self) -> list[dict[str, Any]]:
        return await self.sql("SELECT * FROM withdrawal_intents ORDER BY id")

    async def intent(self, intent_id: int) -> dict[str, Any]:
        rows = await self.sql("SELECT * FROM withdrawal_intents WHERE id = :i", i=intent_id)
        return rows[0]

    async def events(self) -> list[dict[str, Any]]:
        return await self.sql("SELECT * FROM intent_events ORDER BY id")

    async def whitelist(self) -> list[dict[str, Any]]:
        return await self.sql("SELECT * FROM whitelist_entries")

    async def statuses(self) -> dict[int, str]:
        rows = await self.sql("SELECT id, status FROM withdrawal_intents ORDER BY id")
        return {int(r["id"]): r["status"] for r in rows}

    async def sender(self) -> str | None:
        rows = await self.sql("SELECT holder FROM sender_leases WHERE account = 'default'")
        return rows[0]["holder"] if rows else None

    async def wait_status(
        self, intent_id: int, statuses: Sequence[str], *, timeout: float = 30, poll: float = 0.01
    ) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            row = await self.intent(intent_id)
            return row if row["status"] in statuses else None

        result: dict[str, Any] = await wait_until(
            check,
            timeout=timeout,
            poll=poll,
            what=f"intent {intent_id} to be {'/'.join(statuses)}",
            describe=self.describe,
        )
        return result

    async def wait_settled(
        self, ids: Sequence[int] | None = None, *, timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Until every intent (or those of ``ids``) is terminal or needs_attention."""

        async def check() -> list[dict[str, Any]] | None:
            rows = await self.intents()
            if ids is not None:
                rows = [r for r in rows if r["id"] in set(ids)]
            return rows if rows and all(r["status"] in SETTLED for r in rows) else None

        result: list[dict[str, Any]] = await wait_until(
            check,
            timeout=timeout,
            poll=0.2,
            what="every intent to settle",
            describe=self.describe,
        )
        return result

    async def describe(self) -> str:
        """Where things stand, for a failure message."""
        lines = []
        with contextlib.suppress(Exception):
            for r in await self.intents():
                lines.append(
                    f"  intent {r['id']}: {r['status']} ({r['status_reason']}) "
                    f"oid={r['withdraw_order_id']} claimed_by={r['claimed_by']} "
                    f"claimed_until={r['claimed_until']} not_before={r['not_before']}"
                )
        with contextlib.suppress(Exception):
            ledger = self.sandbox.ledger()
            lines.append(
                f"  sandbox: {len(ledger.apply_requests)} apply requests, "
                f"{len(ledger.withdrawals)} withdrawals"
            )
        for d in self.daemons:
            lines.append(
                f"  daemon pid {d.pid} worker={d.worker_id} alive={d.alive()} logs: {d.err_path}"
            )
        return "\n".join(lines)

    # -- set-up helpers ----------------------------------------------------------------

    async def sync_whitelist(self) -> None:
        """Mirror the sandbox's whitelist into the ledger (in-process; fast)."""
        from treasury.bootstrap import runtime
        from treasury.config import load_settings
        from treasury.services.whitelist_sync import sync_whitelist

        settings = load_settings(
            database_url=self.db_url,
            binance_base_url=self.sandbox.url,
            binance_api_key=API_KEY,
            binance_api_secret=API_SECRET,
            exchange_limit_multiplier=100,
        )
        from structlog.testing import capture_logs

        async with _setup_lock():  # capture_logs swaps structlog's global config
            with capture_logs() as logs:
                async with runtime(settings, worker="e2e-setup") as rt:
                    await sync_whitelist(
                        rt.exchange, rt.ledger.whitelist, account=rt.ctx.config.account
                    )
        self.cli_outputs.append(json.dumps(logs, default=str))  # checked for secrets too

    async def stop_all(self) -> None:
        for d in self.daemons:
            d.sigkill()


_LOCKS: dict[tuple[int, str], anyio.Lock] = {}


def _loop_lock(name: str) -> anyio.Lock:
    import asyncio

    key = (id(asyncio.get_running_loop()), name)
    if key not in _LOCKS:
        for stale in [k for k in _LOCKS if k[0] != key[0]]:  # locks of finished loops
            del _LOCKS[stale]
        _LOCKS[key] = anyio.Lock()
    return _LOCKS[key]


def _migrate_lock() -> anyio.Lock:
    return _loop_lock("migrate")


def _setup_lock() -> anyio.Lock:
    return _loop_lock("setup")


@contextlib.asynccontextmanager
async def world(
    kind: str,
    workdir: Path,
    *,
    processing_s: float = 1.0,
    sandbox_cfg: Mapping[str, object] | None = None,
    faults: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    whitelist: str = "inprocess",  # "inprocess" | "cli" | "none"
) -> AsyncIterator[World]:
    """A migrated database with a synced whitelist and a running sandbox; no daemon yet."""
    workdir.mkdir(parents=True, exist_ok=True)
    pg_name = None
    if kind == "sqlite":
        db_url = f"sqlite+aiosqlite:///{workdir / 'ledger.sqlite3'}"
    elif kind == "postgres":
        db_url, pg_name = await create_pg_database()
    else:
        raise ValueError(f"unknown database kind {kind!r}")
    sandbox: SandboxProcess | None = None
    engine: AsyncEngine | None = None
    w: World | None = None
    try:
        from treasury.adapters.db import migrate

        async with _migrate_lock():  # alembic's context is process-global: one at a time
            await migrate.upgrade(db_url)
        sandbox = await SandboxProcess.start(
            workdir,
            config=sandbox_cfg or sandbox_config(processing_s=processing_s),
            faults=faults,
        )
        if kind == "sqlite":  # no pooled connection lingers between two looks
            engine = create_async_engine(normalize_url(db_url), poolclass=NullPool)
        else:
            engine = create_async_engine(normalize_url(db_url), pool_size=2)
        w = World(kind, workdir, db_url, sandbox, engine, dict(env or {}))
        if whitelist == "cli":
            await w.cli("whitelist", "sync")
        elif whitelist == "inprocess":
            await w.sync_whitelist()
        yield w
    finally:
        with anyio.CancelScope(shield=True):
            if w is not None:
                await w.stop_all()
            if sandbox is not None:
                await sandbox.stop()
            if engine is not None:
                await engine.dispose()
            if pg_name is not None:
                await drop_pg_database(pg_name)
