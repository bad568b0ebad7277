"""sd_notify: the datagrams on a socket the test binds, no-ops outside systemd, and the
watchdog feeder's decisions."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator

import anyio
import pytest

from treasury.runtime import systemd
from treasury.runtime.health import LoopTicks


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """An abstract datagram socket standing in for systemd's, named in NOTIFY_SOCKET."""
    name = f"treasury-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    got = []
    try:
        while True:
            got.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return got


def test_messages(notify_socket: socket.socket) -> None:
    assert systemd.ready()
    assert systemd.watchdog()
    assert systemd.stopping()
    assert systemd.status("stale:\nlease  20 s")
    assert drain(notify_socket) == [
        "READY=1",
        "WATCHDOG=1",
        "STOPPING=1",
        "STATUS=stale: lease 20 s",
    ]


def test_a_socket_path() -> None:
    directory = tempfile.mkdtemp(prefix="tq-", dir="/tmp")  # AF_UNIX paths are short
    try:
        path = os.path.join(directory, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": path})
            assert sock.recv(100) == b"READY=1"
    finally:
        shutil.rmtree(directory)


def test_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready() is False
    assert systemd.watchdog() is False
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_a_vanished_socket_is_logged_not_raised() -> None:
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": "/nonexistent/treasury.sock"}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert systemd.watchdog_interval_s(env) == expected


async def test_feeder_readies_pings_withholds_and_stops(notify_socket: socket.socket) -> None:
    clock = Clock()
    ticks = LoopTicks({"lease": 10.0, "intake": 10.0}, clock=clock)
    stopping = False

    async def step() -> list[str]:
        await anyio.sleep(0.1)  # several feeder periods
        return drain(notify_socket)

    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda **kw: systemd.feed_watchdog(
                ticks,
                max_age_s={"lease": 10.0},
                stopping_now=lambda: stopping,
                interval_s=0.01,
                **kw,
            )
        )
        got = await step()
        assert "WATCHDOG=1" in got and "READY=1" not in got  # starting: alive, not ready
        ticks.tick("lease")
        got = await step()
        assert got.count("READY=1") == 1 and "STATUS=running" in got
        clock.now += 11  # the lease loop falls silent
        got = await step()
        assert "WATCHDOG=1" not in got
        assert "STATUS=stale: lease 11 s" in got
        ticks.tick("lease")
        got = await step()
        assert "WATCHDOG=1" in got  # recovered
        clock.now += 11
        stopping = True
        got = await step()
        assert "STOPPING=1" in got and "WATCHDOG=1" in got  # shutdown has its own deadline
        tg.cancel_scope.cancel()


async def test_feeder_is_prompt_despite_a_long_period(notify_socket: socket.socket) -> None:
    ticks = LoopTicks({"lease": 10.0})
    async with anyio.create_task_group() as tg:
        await tg.start(lambda **kw: systemd.feed_watchdog(ticks, interval_s=30, **kw))
        ticks.tick("lease")
        await anyio.sleep(0.6)
        assert sorted(drain(notify_socket)) == ["READY=1", "STATUS=running", "WATCHDOG=1"]
        tg.cancel_scope.cancel()
    assert drain(notify_socket) == ["STOPPING=1"]  # cancelled: the process is leaving


async def test_feeder_returns_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with anyio.fail_after(1):
        await systemd.feed_watchdog(LoopTicks({"lease": 1.0}))
