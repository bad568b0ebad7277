"""``treasury healthcheck``: the probe of a running daemon's ``/readyz`` (the container's
HEALTHCHECK; no curl needed in the image).

Exit 0 when the URL answers 200, 1 otherwise, whatever the reason (not ready, refused,
timed out, or no URL to probe): Docker reads 0 as healthy and 1 as unhealthy and
reserves every other code. The probe needs neither the database nor credentials: it
reads ``TREASURY_METRICS_BIND`` alone, from the same places as the settings.
"""

from __future__ import annotations

import ipaddress

import typer

from treasury.cli import output as out
from treasury.cli.common import app

EXIT_UNHEALTHY = 1
IDENTITY_HEADER = "X-Treasury-Daemon"  # the header every answer of the daemon's endpoint carries


def check(url: str, *, timeout_s: float = 3.0) -> int:
    """GET ``url``: 0 when a treasury daemon answers 200, else 1 (the reason on stdout, for
    ``docker inspect``). Standard library only, and no proxy: this runs every few seconds."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        print("the URL must be http(s)")
        return 1
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as reply:
            if reply.headers.get(IDENTITY_HEADER) is None:
                # another program answered on this port: its 200 says nothing about us
                print(
                    f"{reply.status} from a program that is not a treasury daemon (no "
                    f"{IDENTITY_HEADER} header): is the port in TREASURY_METRICS_BIND "
                    "another service's?"
                )
                return 1
            print(f"{reply.status} {reply.read(1000).decode('utf-8', 'replace')}".rstrip())
            return 0 if reply.status == 200 else 1
    except urllib.error.HTTPError as exc:
        with exc:  # it holds the connection
            print(f"{exc.code} {exc.read(1000).decode('utf-8', 'replace')}".rstrip())
        return 1
    except (OSError, ValueError) as exc:  # URLError is an OSError; timeouts too
        print(f"unreachable: {type(getattr(exc, 'reason', exc)).__name__}")
        return 1


def readyz_url(bind: str | None) -> str:
    """The ``/readyz`` URL a local client reaches for a ``TREASURY_METRICS_BIND`` value
    (``0.0.0.0`` / ``::`` listen on every interface: the probe asks loopback).

    Raises:
        ValueError: the value is malformed, ``off``, or port 0 (a port chosen at start).
    """
    from treasury.netaddr import parse_bind

    parsed = parse_bind(bind)
    if parsed is None:
        raise ValueError("the metrics endpoint is off (TREASURY_METRICS_BIND): give --url")
    host, port = parsed
    if port == 0:
        raise ValueError("TREASURY_METRICS_BIND has port 0 (any free port): give --url")
    if host != "localhost" and ipaddress.ip_address(host).is_unspecified:
        host = "::1" if ":" in host else "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz"


@app.command()
def healthcheck(
    url: str | None = typer.Option(
        None, help="what to probe (default: /readyz on TREASURY_METRICS_BIND)"
    ),
    timeout: float = typer.Option(3.0, min=0.1, max=600, help="seconds to wait for the answer"),
) -> None:
    """Probe a running daemon: exit 0 when its /readyz answers 200, else 1."""
    if url is None:
        from treasury.config import SettingsError, load_metrics_bind

        try:
            url = readyz_url(load_metrics_bind())
        except (SettingsError, ValueError) as exc:
            out.fail(f"configuration: {exc}", EXIT_UNHEALTHY)
    code = check(url, timeout_s=timeout)
    if code:
        raise typer.Exit(code)
