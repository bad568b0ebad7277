"""One definition of "loopback", for every place that must refuse a remote address."""

from __future__ import annotations

import ipaddress
import socket


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1); names are not
    resolved, so ``localhost.example`` is not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def listen_socket(host: str, port: int, *, backlog: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every keep-alive response waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


DEFAULT_HOST = "127.0.0.1"  # TREASURY_METRICS_BIND's defaults
DEFAULT_PORT = 7464


def parse_bind(value: str | None, what: str = "metrics bind") -> tuple[str, int] | None:
    """``TREASURY_METRICS_BIND`` (or the API's bind, named by ``what``) -> (host, port);
    None when it says ``off``.

    Raises:
        ValueError: not ``[HOST:]PORT`` with HOST an IP literal or ``localhost``.
    """
    value = (value or "").strip()
    if value.lower() in ("off", "none", "disabled"):
        return None
    if not value:
        return DEFAULT_HOST, DEFAULT_PORT
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = "", value
    host = host.removeprefix("[").removesuffix("]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{what} {value!r}: port must be a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} {value!r}: port out of range")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"{what} {value!r}: give an IP address (or localhost), not a host name"
            ) from None
    return host, port
