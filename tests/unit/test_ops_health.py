"""Readiness rules, bind parsing and the ASGI app (in process; the real server is in
tests/integration/test_ops_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from treasury.cli.health import readyz_url
from treasury.config import load_metrics_bind
from treasury.netaddr import parse_bind
from treasury.runtime.health import (
    LoopTicks,
    Readiness,
    build_app,
    database_ping,
    loop_max_ages,
    stale_loops,
    watchdog_max_ages,
)
from treasury.runtime.metrics import Metrics
from treasury.services.context import WorkerConfig


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Db:
    def __init__(self) -> None:
        self.mode = "ok"

    async def __call__(self) -> None:
        if self.mode == "down":
            raise ConnectionRefusedError("no database")
        if self.mode == "hang":
            await anyio.sleep(60)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("127.0.0.1", 7464)),
        ("", ("127.0.0.1", 7464)),
        ("9100", ("127.0.0.1", 9100)),
        (":9100", ("127.0.0.1", 9100)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("localhost:7464", ("localhost", 7464)),
        ("[::1]:7464", ("::1", 7464)),
        # explicit: allowed (and logged when served); nothing binds in this test
        ("0.0.0.0:7464", ("0.0.0.0", 7464)),  # noqa: S104
        ("off", None),
    ],
)
def test_parse_bind(value: str | None, expected: tuple[str, int] | None) -> None:
    assert parse_bind(value) == expected


@pytest.mark.parametrize("value", ["metrics.internal:7464", "127.0.0.1:http", "1.2.3.4:70000"])
def test_parse_bind_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="metrics bind"):
        parse_bind(value)


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        (None, "http://127.0.0.1:7464/readyz"),
        ("7464", "http://127.0.0.1:7464/readyz"),
        ("0.0.0.0:7464", "http://127.0.0.1:7464/readyz"),  # every interface: ask loopback
        ("[::]:7464", "http://[::1]:7464/readyz"),
        ("[::1]:9000", "http://[::1]:9000/readyz"),
        ("localhost:7464", "http://localhost:7464/readyz"),
        ("10.1.2.3:7464", "http://10.1.2.3:7464/readyz"),
    ],
)
def test_the_health_check_url_follows_the_bind(bind: str | None, url: str) -> None:
    assert readyz_url(bind) == url


@pytest.mark.parametrize(
    ("bind", "why"),
    [
        ("off", "is off"),
        ("127.0.0.1:0", "port 0"),
        ("metrics.internal:7464", "IP address"),
    ],
)
def test_no_health_check_url_without_a_fixed_bind(bind: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        readyz_url(bind)


def test_the_health_check_reads_the_bind_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Settings the daemon would refuse (and no credentials) do not stop the probe."""
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv("TREASURY_DATABASE_URL", "not a url")
    monkeypatch.setenv("TREASURY_WITHDRAW_RATE", "fast")
    monkeypatch.delenv("TREASURY_METRICS_BIND", raising=False)
    assert load_metrics_bind() == "127.0.0.1:7464"
    (tmp_path / ".env").write_text("TREASURY_METRICS_BIND=0.0.0.0:9999\n")
    assert load_metrics_bind() == "0.0.0.0:9999"
    monkeypatch.setenv("TREASURY_METRICS_BIND", "off")
    assert load_metrics_bind() == "off"


def test_stale_loops() -> None:
    last = {"a": 90.0, "b": 50.0}
    assert stale_loops(last, {"a": 20, "b": 20, "c": 5}, now=100.0) == {
        "b": 50.0,
        "c": float("inf"),
    }
    assert stale_loops(last, {"a": 20, "b": 20}, now=100.0, names=["a"]) == {}


def test_loop_ticks_count_from_creation() -> None:
    clock = Clock()
    ticks = LoopTicks({"lease": 10.0, "intake": 30.0}, clock=clock)
    assert ticks.stale() == {} and not ticks.all_ticked()
    clock.now += 20
    assert ticks.stale() == {"lease": 20.0}
    ticks.tick("lease")
    ticks.tick("intake")
    assert ticks.stale() == {} and ticks.all_ticked()


def test_max_ages_cover_the_daemon_loops() -> None:
    cfg = WorkerConfig()
    ages = loop_max_ages(cfg)
    assert set(ages) == {"lease", "intake", "reconcile", "settle"}
    assert ages["lease"] == cfg.lease_ttl_s
    assert ages["settle"] > 60 and ages["intake"] > cfg.claim_batch / cfg.withdraw_rate
    assert set(watchdog_max_ages(cfg)) == {"lease"}


async def readiness_fixture() -> tuple[Readiness, Db, Clock, Metrics]:
    clock, db = Clock(), Db()
    metrics = Metrics(monotonic=clock)
    ticks = LoopTicks({"lease": 15.0, "intake": 60.0}, clock=clock)
    ready = Readiness(
        ticks=ticks,
        database=db,
        exchange_age_s=metrics.exchange_age_s,
        exchange_max_age_s=120.0,
        timeout_s=0.2,
    )
    metrics.on_call("/api/v3/account", "ok", 0.1)
    ticks.tick("lease")
    ticks.tick("intake")
    return ready, db, clock, metrics


async def test_ready_when_all_is_well() -> None:
    ready, _, _, _ = await readiness_fixture()
    report = await ready.check()
    assert report.ready and report.failed == []
    assert set(report.checks) == {"database", "exchange", "loop:lease", "loop:intake"}


@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_not_ready_when_the_database_does_not_answer(mode: str) -> None:
    ready, db, _, _ = await readiness_fixture()
    db.mode = mode
    with anyio.fail_after(2):
        report = await ready.check()
    assert not report.ready and report.failed == ["database"]
    assert report.checks["database"] == (
        "failed: ConnectionRefusedError" if mode == "down" else "failed: timeout"
    )


async def test_not_ready_when_a_loop_is_stale_or_the_exchange_is_silent() -> None:
    ready, _, clock, metrics = await readiness_fixture()
    clock.now += 30  # lease allowance 15 s; intake 60 s
    report = await ready.check()
    assert report.failed == ["loop:lease"]
    assert report.checks["loop:intake"].startswith("ok")
    clock.now += 100  # exchange allowance 120 s
    report = await ready.check()
    assert report.failed == ["exchange", "loop:lease", "loop:intake"]
    metrics.on_call("/api/v3/account", "ok", 0.1)
    ready.ticks.tick("lease")
    ready.ticks.tick("intake")
    assert (await ready.check()).ready


async def test_the_database_ping_runs_select_1(tmp_path: object) -> None:
    from treasury.adapters.db.engine import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ping.sqlite3")
    try:
        await database_ping(engine)()
    finally:
        await engine.dispose()


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, Db, Clock, Metrics]]:
    ready, db, clock, metrics = await readiness_fixture()
    app = build_app(ready, metrics.registry)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ops"
    ) as http:
        yield http, db, clock, metrics


async def test_endpoints(client: tuple[httpx.AsyncClient, Db, Clock, Metrics]) -> None:
    http, db, _, metrics = client
    assert (await http.get("/healthz")).status_code == 200
    reply = await http.get("/readyz")
    assert reply.status_code == 200 and reply.json()["ready"] is True
    metrics.set_paused(True)
    reply = await http.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert "treasury_paused 1.0" in reply.text
    db.mode = "down"
    reply = await http.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["failed"] == ["database"]
    assert (await http.get("/healthz")).status_code == 200  # alive, though not ready
    assert (await http.post("/healthz")).status_code == 405


async def test_an_account_paused_by_reconciliation_is_not_ready() -> None:
    clock, db = Clock(), Db()
    metrics = Metrics(monotonic=clock)
    metrics.on_call("/api/v3/account", "ok", 0.1)
    paused = {"desk2": "the ledger disagrees with the exchange: withdrawal w9"}

    async def pauses() -> dict[str, str]:
        return paused

    ready = Readiness(
        ticks=LoopTicks({}, clock=clock),
        database=db,
        exchange_age_s=metrics.exchange_age_s,
        paused_accounts=pauses,
    )
    report = await ready.check()
    assert not report.ready and report.failed == ["paused:desk2"]
    assert "w9" in report.checks["paused:desk2"]
    paused.clear()
    assert (await ready.check()).ready


async def test_a_daemon_waiting_for_the_exchange_is_not_ready_and_says_why() -> None:
    clock, db = Clock(), Db()
    ticks = LoopTicks({"lease": 15.0}, clock=clock)
    reason: list[str | None] = ["waiting for the exchange: system status: maintenance (x)"]
    ready = Readiness(ticks=ticks, database=db, timeout_s=0.2, waiting=lambda: reason[0])
    clock.now += 3600  # the loops have not started: their silence is not the reason
    report = await ready.check()
    assert not report.ready and report.failed == ["preflight"]
    assert report.checks["preflight"] == f"failed: {reason[0]}"
    reason[0] = None
    ticks.restart()  # the loops start now
    ticks.tick("lease")
    report = await ready.check()
    assert report.ready and "preflight" not in report.checks
