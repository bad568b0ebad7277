"""The ops endpoint on a real socket (uvicorn in this event loop), ``treasury healthcheck``
against it, and alerts delivered (through the outbox and the webhook runner) to real,
dead and hanging receivers."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from treasury.adapters.alerts import AlertWebhook, outbox_alert
from treasury.adapters.db.ledger import SqlLedger
from treasury.adapters.db.webhooks import SqlWebhooks
from treasury.adapters.webhook_http import HttpPoster
from treasury.runtime.health import LoopTicks, Readiness, build_app, serve
from treasury.runtime.metrics import Metrics
from treasury.services.webhooks import WebhookRunner


class Results:
    """An ``on_result`` hook that can be awaited until it has seen ``n`` results."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._changed = anyio.Event()

    def __call__(self, result: str) -> None:
        self.seen.append(result)
        self._changed.set()

    async def wait_for(self, n: int) -> None:
        with anyio.fail_after(10):
            while len(self.seen) < n:
                self._changed = anyio.Event()
                await self._changed.wait()


class Db:
    def __init__(self) -> None:
        self.up = True

    async def __call__(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("database down")


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        url = await tg.start(lambda **kw: serve(app, bind="127.0.0.1:0", **kw))
        try:
            yield url
        finally:
            tg.cancel_scope.cancel()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def health_check(
    url: str | None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str]:
    """``treasury healthcheck`` in a process of its own: (exit code, stdout + stderr)."""
    args = ["--url", url] if url is not None else []
    done = await anyio.run_process(
        [sys.executable, "-m", "treasury", "healthcheck", *args, "--timeout", "3"],
        check=False,
        env=env,
        cwd=cwd,
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


# ---- the ops endpoint --------------------------------------------------------------


async def test_serves_health_readiness_and_metrics_then_stops() -> None:
    db, metrics = Db(), Metrics()
    ticks = LoopTicks({"lease": 60.0})
    ticks.tick("lease")
    app = build_app(Readiness(ticks=ticks, database=db), metrics.registry)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        assert url.startswith("http://127.0.0.1:")
        # uvicorn did not take the daemon's signals
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        metrics.sent("accepted")
        assert 'treasury_sends_total{outcome="accepted"} 1.0' in (await http.get("/metrics")).text

        code, out = await health_check(f"{url}/readyz")
        assert code == 0 and out.startswith('200 {"ready":true')
        db.up = False
        reply = await http.get("/readyz")
        assert reply.status_code == 503 and reply.json()["failed"] == ["database"]
        code, out = await health_check(f"{url}/readyz")
        assert code == 1 and out.startswith("503") and "database" in out
    # stopped: the port is closed, and the check says so
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/healthz")
    code, out = await health_check(f"{url}/readyz")
    assert code == 1 and out.startswith("unreachable")


async def test_the_health_check_tells_a_treasury_daemon_from_another_program_on_the_port() -> None:
    """Another exporter on the port answers 200 to anything: the probe must not read that
    as a healthy daemon. Every answer of ours carries the identifying header."""

    async def anything(_request: Request) -> Response:
        return JSONResponse({"ready": True})

    foreign = Starlette(routes=[Route("/readyz", anything)])
    async with serving(foreign) as url:
        code, out = await health_check(f"{url}/readyz")
    assert code == 1, out
    assert "not a treasury daemon" in out and "TREASURY_METRICS_BIND" in out

    ticks = LoopTicks({"lease": 60.0})
    ticks.tick("lease")
    async with serving(build_app(Readiness(ticks=ticks))) as url, httpx.AsyncClient() as http:
        for path in ("/healthz", "/readyz", "/metrics"):
            reply = await http.get(f"{url}{path}")
            assert reply.headers.get("X-Treasury-Daemon"), path


async def test_the_health_check_probes_the_metrics_bind_without_other_settings(
    tmp_path: Path,
) -> None:
    """No --url: /readyz on TREASURY_METRICS_BIND. No credentials, and settings the daemon
    would refuse, do not matter to the probe."""
    ticks = LoopTicks({"lease": 60.0})
    ticks.tick("lease")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREASURY_")}
    env |= {"TREASURY_DATABASE_URL": "not a url", "TREASURY_WITHDRAW_RATE": "fast"}
    async with serving(build_app(Readiness(ticks=ticks))) as url:
        port = url.rsplit(":", 1)[1]
        for bind in (f"127.0.0.1:{port}", port, f"0.0.0.0:{port}"):
            code, out = await health_check(
                None, env | {"TREASURY_METRICS_BIND": bind}, cwd=tmp_path
            )
            assert code == 0 and out.startswith('200 {"ready":true'), (bind, out)
    code, out = await health_check(
        None, env | {"TREASURY_METRICS_BIND": f"127.0.0.1:{port}"}, cwd=tmp_path
    )
    assert code == 1 and out.startswith("unreachable")
    # nothing to probe: unhealthy (1, never Docker's reserved 2), with the reason
    for bind, why in (("off", "is off"), ("example.com:9464", "IP address")):
        code, out = await health_check(None, env | {"TREASURY_METRICS_BIND": bind}, cwd=tmp_path)
        assert code == 1 and out.startswith("error: configuration:") and why in out, out


async def test_stops_promptly_with_a_client_connected() -> None:
    app = build_app(Readiness(ticks=LoopTicks({})))
    async with httpx.AsyncClient() as http:
        async with serving(app) as url:
            assert (await http.get(f"{url}/healthz")).status_code == 200  # keep-alive open
            started = time.monotonic()
        assert time.monotonic() - started < 3


async def test_a_host_name_is_refused() -> None:
    with pytest.raises(ValueError, match="IP address"):
        await serve(build_app(Readiness(ticks=LoopTicks({}))), bind="example.com:9464")


# ---- alerts to real receivers --------------------------------------------------------


class Hook:
    """A webhook receiver: records bodies; can be told to fail or to hang."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.hits = 0
        self.third_hit = anyio.Event()
        self.hang = False
        self.release = anyio.Event()
        self.got = anyio.Event()

    async def endpoint(self, request: Request) -> Response:
        self.hits += 1
        if self.hits == 3:
            self.third_hit.set()
        if self.hang:
            await self.release.wait()
            return Response(status_code=504)
        self.bodies.append(json.loads(await request.body()))
        self.got.set()
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.endpoint, methods=["POST"])])


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def alert_runner(
    ledger: SqlLedger, url: str, fmt: str = "json", *, timeout_s: float = 5.0, **kw: Any
) -> AsyncIterator[tuple[WebhookRunner, Clock]]:
    """The runner as ``treasury run`` builds it, for the alert channel at ``url``."""
    async with httpx.AsyncClient(timeout=timeout_s) as http:
        yield _runner(ledger, http, url, fmt, timeout_s=timeout_s, **kw)


def _runner(
    ledger: SqlLedger,
    http: httpx.AsyncClient,
    url: str,
    fmt: str,
    *,
    timeout_s: float,
    **kw: Any,
) -> tuple[WebhookRunner, Clock]:
    clock = Clock()
    channel = AlertWebhook(url, fmt, http=http, telegram_chat_id="-77", timeout_s=timeout_s)  # type: ignore[arg-type]
    runner = WebhookRunner(
        SqlWebhooks(ledger.engine),
        HttpPoster(http),
        key=None,
        alerts=channel,
        timeout_s=timeout_s,
        clock=clock,
        **kw,
    )
    return runner, clock


@pytest.mark.parametrize("fmt", ["json", "slack", "telegram"])
async def test_alerts_reach_a_real_receiver(fmt: str, ledger: SqlLedger) -> None:
    hook = Hook()
    async with serving(hook.app()) as url, alert_runner(ledger, f"{url}/hook", fmt) as (runner, _):
        await runner.prepare()
        alert = outbox_alert(SqlWebhooks(ledger.engine).write_alert)
        await alert("unexpected_withdrawal", "withdrawal W1 was not sent by treasury", None)
        with anyio.fail_after(5):
            while not hook.got.is_set():
                await runner.step()
    body = hook.bodies[0]
    text = "[treasury] unexpected_withdrawal: withdrawal W1 was not sent by treasury"
    expected: dict[str, dict[str, Any]] = {
        "json": {
            "kind": "unexpected_withdrawal",
            "intent_id": None,
            "service": "treasury",
            "message": "withdrawal W1 was not sent by treasury",
            "at": body.get("at"),
        },
        "slack": {"text": text},
        "telegram": {"chat_id": "-77", "text": text},
    }
    assert body == expected[fmt]


async def test_a_dead_receiver_does_not_slow_the_caller_and_is_retried(ledger: SqlLedger) -> None:
    results = Results()
    dead = f"http://127.0.0.1:{closed_port()}/hook"
    async with alert_runner(ledger, dead, on_alert_result=results) as (runner, clock):
        await runner.prepare()
        logs = await _raise_twenty_and_try_twice(runner, clock, ledger)
    assert results.seen == ["retry"] * 40  # retried, not given up
    retries = [e for e in logs if e["event"] == "webhooks.retry"]
    assert len(retries) == 20 * 2 and retries[0]["error"] == "ConnectError"
    assert {r["attempts"] for r in retries} == {1, 2}


async def _raise_twenty_and_try_twice(
    runner: WebhookRunner, clock: Clock, ledger: SqlLedger
) -> list[Any]:
    alert = outbox_alert(SqlWebhooks(ledger.engine).write_alert)
    with capture_logs() as logs:
        started = time.perf_counter()
        for i in range(20):
            await alert("failed", f"intent {i}", i)
        assert time.perf_counter() - started < 5  # twenty short INSERTs, no network
        await runner.step()
        clock.now += timedelta(hours=2)
        await runner.step()
    return logs


async def test_a_hanging_receiver_does_not_slow_the_caller_and_is_retried(
    ledger: SqlLedger,
) -> None:
    hook = Hook()
    hook.hang = True
    results = Results()
    async with (
        serving(hook.app()) as url,
        alert_runner(ledger, f"{url}/hook", timeout_s=0.3, on_alert_result=results) as (
            runner,
            clock,
        ),
    ):
        await runner.prepare()
        alert = outbox_alert(SqlWebhooks(ledger.engine).write_alert)
        await alert("failed", "first", 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.step)  # the first alert's attempt, stuck
            await anyio.sleep(0.1)
            started = time.perf_counter()
            await alert("failed", "second", 2)
            assert time.perf_counter() - started < 2
        hook.hang = False
        clock.now += timedelta(hours=2)
        with anyio.fail_after(10):
            while results.seen.count("delivered") < 2:
                await runner.step()
        hook.release.set()
    assert results.seen == ["retry", "delivered", "delivered"]
    assert sorted(b["intent_id"] for b in hook.bodies) == [1, 2]
