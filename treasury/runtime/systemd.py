"""systemd's notify protocol, without a dependency: one datagram to ``$NOTIFY_SOCKET``.

Every function is a no-op returning False when not under systemd (no ``NOTIFY_SOCKET``),
and none raises: a notification that cannot be sent must not stop the daemon. The
environment is read at each call because that is how the protocol hands the socket over.

``feed_watchdog`` reports READY=1 once the watched loops have ticked (for the daemon:
after the start-up reconciliation), then pings the watchdog only while those loops keep
ticking, so a wedged process is restarted by systemd. See ``health.watchdog_max_ages``
for why only loops that never wait on the exchange are watched.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

import anyio
import structlog
from anyio.abc import TaskStatus

from treasury.runtime.health import LoopTicks, stale_loops

log = structlog.get_logger("treasury.systemd")


def _address(env: Mapping[str, str]) -> str | None:
    path = env.get("NOTIFY_SOCKET", "")
    if path.startswith("@"):
        return "\0" + path[1:]  # an abstract socket name
    if path.startswith("/"):
        return path
    return None  # unset, or a kind we do not speak (e.g. vsock:)


def notify(state: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``); True when the datagram left."""
    address = _address(os.environ if env is None else env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)  # a full receiver queue must not stall the event loop
            sock.sendto(state.encode("utf-8", "replace"), address)
    except OSError as exc:
        log.warning("systemd.notify_failed", state=state.split("=", 1)[0], error=type(exc).__name__)
        return False
    return True


def ready() -> bool:
    return notify("READY=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    return notify("STATUS=" + " ".join(text.split()))  # one line


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """How often to ping: half of ``$WATCHDOG_USEC``; None when no watchdog is asked for."""
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # meant for another process (we were started by a wrapper)
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


async def feed_watchdog(
    ticks: LoopTicks,
    *,
    max_age_s: Mapping[str, float] | None = None,
    stopping_now: Callable[[], bool] = lambda: False,
    interval_s: float | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """READY=1 once ``loops`` have ticked; WATCHDOG=1 while none is stale; STOPPING=1.

    Before READY the watchdog is pinged regardless (start-up has its own timeout).
    While stopping it is pinged too: the shutdown is bounded by its own deadline.
    Cancelled without having seen the stop, it sends STOPPING=1 on the way out.

    Args:
        ticks: the daemon's loop ticks (the ``on_tick`` hook).
        max_age_s: the loops that must stay fresh and their allowances (for the daemon:
            ``health.watchdog_max_ages``); None: those of ``ticks``.
        stopping_now: true once shutdown has begun (``daemon.stopping.is_set``).
        interval_s: ping period; None: half of ``$WATCHDOG_USEC`` (else 5 s).
    """
    task_status.started()
    if _address(os.environ) is None:
        return
    period = interval_s or watchdog_interval_s() or 5.0
    step = min(period, 0.25)  # READY/STOPPING go out promptly; pings every period
    watched = dict(ticks.max_age_s if max_age_s is None else max_age_s)
    is_ready = is_stopping = withheld = False
    next_ping = float("-inf")
    try:
        while True:
            if not is_stopping and stopping_now():
                is_stopping = True
                stopping()
                status("stopping")
            if not is_ready and not is_stopping and ticks.all_ticked(watched):
                is_ready = True
                ready()
                status("running")
            if anyio.current_time() >= next_ping:
                next_ping = anyio.current_time() + period
                withheld = _ping_if_fresh(ticks, watched, is_ready and not is_stopping, withheld)
            await anyio.sleep(step)
    finally:
        if not is_stopping:
            stopping()  # cancelled: the process is on its way out


def _ping_if_fresh(
    ticks: LoopTicks, watched: Mapping[str, float], strict: bool, withheld: bool
) -> bool:
    """Ping unless ``strict`` and a watched loop is stale; returns the new withheld flag."""
    stale = stale_loops(ticks.last, watched, now=ticks.now()) if strict else {}
    if not stale:
        watchdog()
        if withheld:
            log.info("systemd.watchdog_resumed")
            status("running")
        return False
    if not withheld:
        ages = {name: round(age) for name, age in stale.items()}
        log.error("systemd.watchdog_withheld", stale_loops=ages)
        status("stale: " + ", ".join(f"{n} {a} s" for n, a in ages.items()))
    return True
