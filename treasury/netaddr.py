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


def console_base_url(value: str) -> str:
    """The operator console's base URL (``treasury api --base-url``,
    ``TREASURY_CONSOLE_BASE_URL``), normalised to its origin ``scheme://host[:port]``.

    WebAuthn binds a passkey to a host name (the relying party id) and every assertion to
    the origin, so the console must be opened at exactly this URL. ``http`` only on a
    loopback host, else ``https``; a host name, not an IP address (WebAuthn refuses an IP
    as relying party id: use ``localhost`` rather than ``127.0.0.1``); no user info, path,
    query nor fragment.

    Raises:
        ValueError: naming what is wrong (the value is not secret).
    """
    from urllib.parse import urlsplit

    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"console base URL {text!r}: not a URL (bad port?)") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"console base URL {text!r}: give https://HOST[:PORT]")
    if parts.username or parts.password:
        raise ValueError(f"console base URL {text!r}: no user info")
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith("?"):
        raise ValueError(f"console base URL {text!r}: no path, query or fragment")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(
            f"console base URL {text!r}: plain http only on a loopback host (localhost); "
            "use https:// behind a TLS proxy"
        )
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        pass
    else:
        raise ValueError(
            f"console base URL {text!r}: WebAuthn refuses an IP address as relying party: "
            "use a host name (http://localhost:PORT on this machine)"
        )
    return f"{parts.scheme}://{host}" + ("" if port is None else f":{port}")


def default_console_base_url(api_bind: str) -> str:
    """``http://localhost:<port of the API's bind>``."""
    parsed = parse_bind(api_bind, "API bind")
    port = 7465 if parsed is None else parsed[1]
    return f"http://localhost:{port}"
