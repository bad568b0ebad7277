"""The ops endpoint on a real socket (uvicorn in this event loop), ``treasury healthcheck``
against it, and alerts delivered to real, dead and hanging receivers."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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

from treasury.adapters.alerts import WebhookAlerts
from treasury.runtime.health import LoopTicks, Readiness, build_app, serve
from treasury.runtime.metrics import Metrics


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


@pytest.mark.parametrize("fmt", ["json", "slack", "telegram"])
async def test_alerts_reach_a_real_receiver(fmt: str) -> None:
    hook = Hook()
    async with serving(hook.app()) as url, anyio.create_task_group() as tg:
        alerts = WebhookAlerts(f"{url}/hook", fmt, telegram_chat_id="-77")  # type: ignore[arg-type]
        await tg.start(alerts.run)
        await alerts("unexpected_withdrawal", "withdrawal W1 was not sent by treasury", None)
        with anyio.fail_after(5):
            await hook.got.wait()
        tg.cancel_scope.cancel()
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


async def test_a_dead_receiver_does_not_slow_the_caller_and_is_retried() -> None:
    results = Results()
    alerts = WebhookAlerts(
        f"http://127.0.0.1:{closed_port()}/hook",
        retries=3,
        backoff_s=0.01,
        max_backoff_s=0.02,
        on_result=results,
    )
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            await tg.start(alerts.run)
            started = time.perf_counter()
            for i in range(20):
                await alerts("failed", f"intent {i}", i)
            assert time.perf_counter() - started < 0.05
            await results.wait_for(20)
            tg.cancel_scope.cancel()
    assert results.seen == ["failed"] * 20
    retries = [e for e in logs if e["event"] == "alert.retry"]
    assert len(retries) == 20 * 3 and retries[0]["error"] == "ConnectError"


async def test_a_hanging_receiver_does_not_slow_the_caller_and_is_retried() -> None:
    hook = Hook()
    hook.hang = True
    async with serving(hook.app()) as url, anyio.create_task_group() as tg:
        results = Results()
        alerts = WebhookAlerts(
            f"{url}/hook",
            timeout_s=0.2,
            retries=2,
            backoff_s=0.01,
            max_backoff_s=0.02,
            on_result=results,
        )
        await tg.start(alerts.run)
        await alerts("failed", "first", 1)
        await anyio.sleep(0.05)  # delivery is under way, and stuck
        started = time.perf_counter()
        await alerts("failed", "second", 2)
        assert time.perf_counter() - started < 0.05
        with anyio.fail_after(10):
            await hook.third_hit.wait()  # the first alert, tried three times
        hook.hang = False
        await results.wait_for(2)
        hook.release.set()
        tg.cancel_scope.cancel()
    assert results.seen == ["failed", "delivered"]
    assert [b["intent_id"] for b in hook.bodies] == [2]
