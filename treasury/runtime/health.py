"""The operations endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on one small port.

It runs in the daemon's own event loop (uvicorn's ``Server.serve()`` on a socket we bind
ourselves), so a wedged loop also wedges the endpoint, which is what a probe should see.
uvicorn would install its own SIGTERM/SIGINT handlers and steal them from the daemon;
here it installs none. Cancelling ``serve`` closes the server within a bounded time.

The bind address (``TREASURY_METRICS_BIND``) defaults to ``127.0.0.1:7464``. A bare port
(``7464`` or ``:7464``) also means loopback: nothing here is ever exposed beyond the
machine unless the operator writes a non-loopback IP literal (``0.0.0.0:7464``, say, in a
container whose port is published on the host's loopback). Host names other than
``localhost`` are refused, so DNS never decides where this listens. ``off`` disables it.

The default port, 7464, lies outside the Prometheus exporter range (9100-9999, every
port of which is allocated to some exporter) and is not OpenTelemetry's exporter port
(9464), which the first releases used. Every answer carries the ``X-Treasury-Daemon``
header, so a probe that reached another program on the port can tell.

The container's health check probes ``/readyz`` from outside the daemon: ``treasury
healthcheck`` (``treasury/cli/health.py``).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Generator, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from treasury.netaddr import is_loopback, listen_socket, parse_bind

if TYPE_CHECKING:  # the rest is imported where used: `treasury healthcheck` starts fast
    import uvicorn
    from prometheus_client.registry import CollectorRegistry
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.applications import Starlette

    from treasury.services.context import WorkerConfig


# ---- loop ticks ----------------------------------------------------------------------


def stale_loops(
    last: Mapping[str, float],
    max_age_s: Mapping[str, float],
    *,
    now: float,
    names: Iterable[str] | None = None,
) -> dict[str, float]:
    """Loops whose last tick is older than allowed: name -> age in seconds."""
    stale = {}
    for name in max_age_s if names is None else names:
        age = now - last.get(name, float("-inf"))
        if age > max_age_s.get(name, float("inf")):
            stale[name] = age
    return stale


class LoopTicks:
    """When each loop last ticked (monotonic seconds), and how old that may get.

    ``tick`` is the daemon's ``on_tick`` hook. A loop that has not ticked yet counts
    from the moment this object was made, so start-up gets each loop's full allowance.
    """

    def __init__(
        self, max_age_s: Mapping[str, float], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age_s = dict(max_age_s)
        self._clock = clock
        born = clock()
        self.last: dict[str, float] = dict.fromkeys(self.max_age_s, born)
        self.ticked: set[str] = set()

    def tick(self, name: str) -> None:
        self.last[name] = self._clock()
        self.ticked.add(name)

    def restart(self) -> None:
        """The loops start now (after a wait for the exchange): full allowances again."""
        now = self._clock()
        self.last = dict.fromkeys(self.max_age_s, now)
        self.ticked.clear()

    def now(self) -> float:
        return self._clock()

    def stale(self, names: Iterable[str] | None = None) -> dict[str, float]:
        return stale_loops(self.last, self.max_age_s, now=self._clock(), names=names)

    def all_ticked(self, names: Collection[str] | None = None) -> bool:
        return set(self.max_age_s if names is None else names) <= self.ticked


def loop_max_ages(cfg: WorkerConfig) -> dict[str, float]:
    """How long each daemon loop may stay silent before the process is not ready.

    Generous on purpose: a loop that is merely busy (a paced batch of sends, a history
    poll waiting for weight) must not flap readiness.
    """
    from treasury.services import settle

    idle_settle = settle.poll_interval_s(cfg, youngest_age_s=None)
    return {
        "lease": max(cfg.lease_ttl_s, 5.0),  # past this the lease itself has run out
        "intake": 60.0
        + max(cfg.intake_interval_s, cfg.intake_listening_s)
        + cfg.claim_batch * (1 / cfg.withdraw_rate + 5),
        "reconcile": 3 * cfg.reconcile_interval_s + 300.0,
        "settle": 2 * idle_settle + 300.0,
    }


def watchdog_max_ages(cfg: WorkerConfig) -> dict[str, float]:
    """The systemd watchdog's allowances: only loops whose silence means a wedged process.

    The loops that call the exchange are left out on purpose: during an IP ban or a long
    paced batch they wait legitimately, and a restart would only hit the exchange sooner.
    The lease loop touches only the database; silent for two lease terms, it is stuck.
    """
    return {"lease": max(2 * cfg.lease_ttl_s, 10.0)}


# ---- readiness -----------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    ready: bool
    failed: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        return {"ready": self.ready, "failed": self.failed, "checks": self.checks}


def database_ping(engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    """A readiness check: the database answers ``SELECT 1``."""

    from sqlalchemy import text

    from treasury.adapters.db.engine import connection

    # On SQLite the ping cannot wait for anything, so it is shielded like every other
    # call (a cut aiosqlite call can hang the event loop's close); on PostgreSQL a server
    # that does not answer must fail the check at its timeout, and asyncpg is cut safely.
    shielded = engine.dialect.name == "sqlite"

    async def ping() -> None:
        async with connection(engine) if shielded else engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return ping


class Readiness:
    """Ready = the database answers, the exchange answered lately, every loop ticks.

    Args:
        ticks: the loops' last ticks and allowances.
        database: awaitable check that raises when the database does not answer.
        exchange_age_s: seconds since the exchange last answered (``Metrics.exchange_age_s``).
        exchange_max_age_s: older than this and the exchange check fails.
        timeout_s: each awaited check gets this long.
        paused_accounts: the accounts paused on their own, with the reason
            (``ServiceState.account_pauses``): each is a failed check ``paused:<account>``
            (the account sends nothing until a person resumes it).
        waiting: why the daemon has not started its loops yet (a preflight waiting out
            the exchange), or None: a failed check ``preflight``; the loops are not
            judged before they start.
    """

    def __init__(
        self,
        *,
        ticks: LoopTicks,
        database: Callable[[], Awaitable[None]] | None = None,
        exchange_age_s: Callable[[], float] | None = None,
        exchange_max_age_s: float = 180.0,
        timeout_s: float = 2.0,
        paused_accounts: Callable[[], Awaitable[Mapping[str, str]]] | None = None,
        waiting: Callable[[], str | None] | None = None,
    ) -> None:
        self.ticks = ticks
        self._waiting = waiting
        self._paused_accounts = paused_accounts
        self._database = database
        self._exchange_age_s = exchange_age_s
        self._exchange_max_age_s = exchange_max_age_s
        self._timeout_s = timeout_s

    async def check(self) -> Report:
        failed: list[str] = []
        checks: dict[str, str] = {}
        if self._database is not None:
            try:
                with anyio.fail_after(self._timeout_s):
                    await self._database()
                checks["database"] = "ok"
            except Exception as exc:  # any driver error means "not answering"
                failed.append("database")
                kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                checks["database"] = f"failed: {kind}"
        if self._exchange_age_s is not None:
            age = self._exchange_age_s()
            if age <= self._exchange_max_age_s:
                checks["exchange"] = f"ok: answered {age:.1f} s ago"
            else:
                failed.append("exchange")
                checks["exchange"] = (
                    "failed: no answer yet"
                    if age == float("inf")
                    else f"failed: last answer {age:.0f} s ago (max {self._exchange_max_age_s:g})"
                )
        if self._paused_accounts is not None and checks.get("database") == "ok":
            with contextlib.suppress(Exception):  # the database check reports its trouble
                with anyio.fail_after(self._timeout_s):
                    paused = await self._paused_accounts()
                for account, reason in sorted(paused.items()):
                    failed.append(f"paused:{account}")
                    checks[f"paused:{account}"] = f"failed: {reason}"
        waiting = self._waiting() if self._waiting is not None else None
        if waiting is not None:
            failed.append("preflight")
            checks["preflight"] = f"failed: {waiting}"
            return Report(ready=False, failed=failed, checks=checks)
        stale = self.ticks.stale()
        now = self.ticks.now()
        for name, limit in self.ticks.max_age_s.items():
            key = f"loop:{name}"
            if name in stale:
                failed.append(key)
                checks[key] = f"failed: silent for {stale[name]:.0f} s (max {limit:g})"
            else:
                checks[key] = f"ok: ticked {now - self.ticks.last[name]:.1f} s ago"
        return Report(ready=not failed, failed=failed, checks=checks)


# ---- the app and the server ------------------------------------------------------------


IDENTITY_HEADER = "X-Treasury-Daemon"  # on every answer: this port is a treasury daemon's


def build_app(readiness: Readiness, registry: CollectorRegistry | None = None) -> Starlette:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    async def metrics(_request: Request) -> Response:
        if registry is None:
            return PlainTextResponse("no metrics\n", status_code=404)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_request: Request) -> Response:
        report = await readiness.check()
        return JSONResponse(report.body(), status_code=200 if report.ready else 503)

    identity = {IDENTITY_HEADER: _version()}

    def identified(handler: Callable[[Request], Awaitable[Response]]) -> Any:
        async def answer(request: Request) -> Response:
            response = await handler(request)
            response.headers.update(identity)
            return response

        return answer

    return Starlette(
        routes=[
            Route("/metrics", identified(metrics), methods=["GET"]),
            Route("/healthz", identified(healthz), methods=["GET"]),
            Route("/readyz", identified(readyz), methods=["GET"]),
        ]
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("treasury")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _listen(host: str, port: int) -> socket.socket:
    return listen_socket(host, port, backlog=64)


def listen(bind: str | None) -> socket.socket:
    """The listening socket for ``bind``, bound now (a daemon binds it before it does
    anything else, so a port in use stops it before it touches the exchange).

    Raises:
        ValueError: a malformed bind address, or ``off``.
        OSError: the address cannot be bound.
    """
    parsed = parse_bind(bind)
    if parsed is None:
        raise ValueError("the metrics endpoint is off; do not start it")
    return _listen(*parsed)


async def serve(
    app: Starlette,
    *,
    bind: str | None = None,
    sock: socket.socket | None = None,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``bind`` (or on ``sock``, already listening) until cancelled;
    ``task_status`` gets the base URL. The socket is closed when it ends.

    Raises:
        ValueError: a malformed bind address, or ``off``.
        OSError: the address cannot be bound.
    """
    if sock is None:
        sock = listen(bind)
    host, bound = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    if not is_loopback(host):
        import structlog

        structlog.get_logger("treasury.health").warning("health.listening_beyond_loopback", url=url)
    server = _server(app, on_started=lambda: task_status.started(url))
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()


def _server(app: Starlette, *, on_started: Callable[[], None]) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn minus its signal handlers, stopping (bounded) when cancelled."""

        _sockets: list[socket.socket] = []  # noqa: RUF012  (set per instance in startup)

        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield  # the daemon owns SIGTERM/SIGINT

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self._sockets = sockets or []
            await super().startup(sockets=sockets)
            if self.started:
                on_started()

        async def main_loop(self) -> None:
            try:
                await super().main_loop()
            except anyio.get_cancelled_exc_class():
                self.should_exit = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(3):
                    await self.shutdown(sockets=self._sockets)
                raise

    return Server(
        uvicorn.Config(
            app,
            lifespan="off",
            http="h11",
            ws="none",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            server_header=False,
        )
    )
