"""Running the sandbox: in the caller's event loop, in a thread, or as the CLI's process.

All three share one path: bind the socket ourselves (so port 0 reports the real port
before the first request), hand it to uvicorn's ``Server.serve()``, and wire the
``drop_after_accept`` fault to uvicorn's table of open connections. The sandbox refuses
a non-loopback address unless ``allow_remote`` is set: it holds demo credentials and an
unauthenticated admin API. Access logs are off unless asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from treasury.netaddr import is_loopback, listen_socket
from treasury.sandbox.app import build_app
from treasury.sandbox.clock import Clock
from treasury.sandbox.config import SandboxConfig
from treasury.sandbox.core import ConnectionDropper, FaultsSource, Sandbox, open_sandbox
from treasury.sandbox.faults import Faults
from treasury.sandbox.ledger import Ledger
from treasury.sandbox.state import Exchange

SHUTDOWN_TIMEOUT_S = 10.0  # uvicorn's graceful shutdown is 2 s; this bounds a stuck one


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture (the caller owns signals)."""

    async def main_loop(self) -> None:
        # uvicorn's loop polls should_exit every 0.1 s; waking it at once makes stopping
        # (and so each test that starts a sandbox) that much faster.
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            # an anyio scope, not asyncio.wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that races with its timeout, and this loop would then never end
            with anyio.move_on_after(0.1):
                await self._wake.wait()

    def request_exit(self) -> None:
        self.should_exit = True
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own shutdown, with 10 ms polls instead of fixed 0.1 s sleeps: a test
        # suite starts and stops a sandbox per test. Still graceful, and still bounded by
        # timeout_graceful_shutdown, after which handlers stuck in a delay are cancelled.
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        state = self.server_state
        deadline = time.monotonic() + (self.config.timeout_graceful_shutdown or 0)
        while (state.connections or state.tasks) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        stuck = list(state.tasks)
        for task in stuck:
            task.cancel(msg="sandbox shutdown: graceful timeout exceeded")
        if stuck:  # a cancelled handler is gone before the server reports stopped
            await asyncio.wait(stuck, timeout=1)
        for server in self.servers:
            await server.wait_closed()


@dataclass
class RunningSandbox:
    url: str
    host: str
    port: int
    sandbox: Sandbox
    _server: _Server
    _stopped: anyio.Event

    @property
    def exchange(self) -> Exchange:
        return self.sandbox.exchange

    @property
    def faults(self) -> Faults:
        return self.sandbox.faults

    @property
    def clock(self) -> Clock:
        return self.sandbox.clock

    def ledger(self) -> Ledger:
        return self.sandbox.ledger()

    def set_faults(self, body: Mapping[str, object]) -> None:
        self.sandbox.set_faults(body)

    def stop(self) -> None:
        """Ask the server to stop; the context manager's exit waits for it."""
        self._server.request_exit()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


@contextlib.asynccontextmanager
async def running_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    config: SandboxConfig | None = None,
    config_path: str | Path | None = None,
    state_path: str | Path | None = None,
    faults: FaultsSource = None,
    clock: Clock | None = None,
    allow_remote: bool = False,
    access_log: bool = False,
) -> AsyncIterator[RunningSandbox]:
    """Serve the sandbox in the current event loop (asyncio) until the block exits.

    Raises:
        ValueError: ``host`` is not loopback and ``allow_remote`` is false.
        ConfigError: invalid config or faults. JournalInUse: state file held elsewhere.
        OSError: the address cannot be bound.
    """
    sock = _bind(host, port, allow_remote)
    try:
        sandbox = open_sandbox(
            config, config_path=config_path, state_path=state_path, faults=faults, clock=clock
        )
    except BaseException:
        sock.close()
        raise
    server = _Server(
        uvicorn.Config(
            build_app(sandbox),
            lifespan="off",
            http="h11",
            log_config=LOGGING_CONFIG if access_log else None,
            log_level="info" if access_log else "warning",
            access_log=access_log,
            timeout_graceful_shutdown=2,
            backlog=4096,
        )
    )
    sandbox.drop_connection = _dropper(server)
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    stopped = anyio.Event()
    handle = RunningSandbox(
        f"http://{url_host}:{bound_port}", host, bound_port, sandbox, server, stopped
    )

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            stopped.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            try:
                # uvicorn exposes readiness only as a flag, so poll it briefly
                while not server.started and not stopped.is_set():  # noqa: ASYNC110
                    await anyio.sleep(0.005)
                if not server.started:
                    raise RuntimeError("the sandbox server did not start")
                yield handle
            finally:
                # Structured shutdown: ask uvicorn to stop (graceful, bounded by its
                # timeout), wait for it shielded from the caller's cancellation, and
                # cancel it if it is stuck beyond that: the group never ends with the
                # server still running, and never hangs its caller.
                server.request_exit()
                with anyio.move_on_after(SHUTDOWN_TIMEOUT_S, shield=True):
                    await stopped.wait()
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # one failure (the caller's, or the server's) surfaces as itself
        if len(group.exceptions) != 1:
            raise
        inner, context = group.exceptions[0], group.exceptions[0].__context__
        try:
            raise inner
        finally:
            inner.__context__ = context  # not "during handling of the group"
    finally:
        sock.close()
        sandbox.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    config_path: str | Path | None = None,
    state_path: str | Path | None = None,
    faults: FaultsSource = None,
    *,
    allow_remote: bool = False,
    access_log: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (for the CLI); ``on_ready`` gets the URL once listening."""

    async def main() -> None:
        async with running_sandbox(
            host=host,
            port=port,
            config_path=config_path,
            state_path=state_path,
            faults=faults,
            allow_remote=allow_remote,
            access_log=access_log,
        ) as running:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, running.stop)
            if on_ready is not None:
                on_ready(running.url)
            await running.wait_stopped()

    asyncio.run(main())


class SandboxTask:
    """The sandbox in a task of its own on the current loop.

    For a fixture whose set-up and tear-down run in different tasks (pytest-asyncio's
    do): a task group cannot be entered in one task and left in another, so this task
    owns ``running_sandbox``'s group from start to end, and ``stop()`` waits for it.
    ``sb = await SandboxTask.start(config=...)``; ``sb.running.url``; ``await sb.stop()``.
    """

    def __init__(
        self, task: asyncio.Task[None], running: RunningSandbox, stop: anyio.Event
    ) -> None:
        self._task = task
        self.running = running
        self._stop = stop

    @classmethod
    async def start(cls, **kwargs: Any) -> SandboxTask:
        ready, stop = anyio.Event(), anyio.Event()
        box: list[RunningSandbox] = []

        async def own() -> None:
            async with running_sandbox(**kwargs) as running:
                box.append(running)
                ready.set()
                await stop.wait()

        task = asyncio.get_running_loop().create_task(own(), name="treasury-sandbox")
        while not ready.is_set() and not task.done():  # noqa: ASYNC110
            await anyio.sleep(0.005)
        if not box:
            await task  # its error (bind, config, ...) is the caller's
            raise RuntimeError("the sandbox task ended before it started")
        return cls(task, box[0], stop)

    async def stop(self) -> None:
        """Stop the server and wait for its task (bounded: ``running_sandbox`` is)."""
        self._stop.set()
        with anyio.CancelScope(shield=True):
            await self._task


class SandboxThread:
    """The sandbox on a free port in a background thread, for synchronous tests.

    ``with SandboxThread(config=...) as sb: httpx.get(sb.url + "/api/v3/time")``
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running: RunningSandbox | None = None
        self._error: BaseException | None = None

    @property
    def running(self) -> RunningSandbox:
        if self._running is None:
            raise RuntimeError("the sandbox thread is not running")
        return self._running

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def sandbox(self) -> Sandbox:
        return self.running.sandbox

    def ledger(self) -> Ledger:
        return self.running.ledger()

    def start(self, timeout: float = 10.0) -> SandboxThread:
        self._thread = threading.Thread(target=self._run, name="treasury-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the sandbox thread did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._running = None

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_sandbox(**self._kwargs) as running:
            self._running = running
            self._ready.set()
            await self._stop.wait()


def _bind(host: str, port: int, allow_remote: bool) -> socket.socket:
    if not allow_remote and not is_loopback(host):
        raise ValueError(f"refusing to listen on non-loopback {host!r}; pass allow_remote to do so")
    return listen_socket(host, port, backlog=4096)


def _dropper(server: uvicorn.Server) -> ConnectionDropper:
    def drop(client: object) -> bool:
        if not isinstance(client, tuple | list):
            return False
        target = tuple(client)
        for connection in list(server.server_state.connections):
            if getattr(connection, "client", None) == target:
                connection.transport.abort()
                return True
        return False

    return drop
