"""``treasury api``: serve the HTTP API for bots (README, HTTP API for bots)."""

from __future__ import annotations

import typer

from treasury.cli import output as out
from treasury.cli.common import EXIT_CONFIG, app, read_settings, run


@app.command("api")
def api(
    bind: str | None = typer.Option(
        None, help="HOST:PORT to listen on (default TREASURY_API_BIND, 127.0.0.1:7465)"
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="listen on a non-loopback address (put TLS in front)"
    ),
    behind_tls_proxy: bool = typer.Option(
        False,
        "--behind-tls-proxy",
        help="with --allow-remote: a TLS proxy terminates HTTPS in front (the operator "
        "console's session cookie is Secure and needs it)",
    ),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="the console's URL as browsers open it, e.g. https://treasury.example.com "
        "(default TREASURY_CONSOLE_BASE_URL, else http://localhost:PORT): the passkeys' "
        "origin and relying party",
    ),
) -> None:
    """Serve the HTTP API. Needs the database only (no exchange key is read)."""
    from treasury.logs import configure
    from treasury.netaddr import is_loopback, parse_bind

    settings = read_settings()
    chosen = bind or settings.api_bind
    try:
        parsed = parse_bind(chosen, "API bind")
    except ValueError as exc:
        out.fail(f"--bind / TREASURY_API_BIND: {exc}", EXIT_CONFIG)
    if parsed is None:
        out.fail("--bind / TREASURY_API_BIND: give HOST:PORT", EXIT_CONFIG)
    host, port = parsed
    from treasury.netaddr import console_base_url

    try:
        base = (
            console_base_url(base_url)
            if base_url is not None
            else settings.console_base_url or f"http://localhost:{port}"
        )
    except ValueError as exc:
        out.fail(f"--base-url: {exc}", EXIT_CONFIG)
    if not is_loopback(host) and not allow_remote:
        out.fail(
            f"refusing to listen on {host}: the API speaks plain HTTP and bearer tokens "
            "would cross the network readable; put a TLS proxy in front and pass "
            "--allow-remote",
            EXIT_CONFIG,
        )
    if not is_loopback(host) and not behind_tls_proxy:
        out.fail(
            f"refusing to listen on {host}: the operator console (/console) signs people in "
            "with a session cookie that browsers send only over HTTPS off loopback, and "
            "its sign-in links must not cross the network readable; terminate TLS in a "
            "proxy in front and pass --behind-tls-proxy too",
            EXIT_CONFIG,
        )
    configure(fmt=settings.log_format, level=settings.log_level)

    async def main() -> None:
        from treasury.cli.common import _open_ledger
        from treasury.http.serve import serve

        async with _open_ledger(settings) as ledger:
            # reachable and at head; a token lookup proves the table is readable
            from treasury.adapters.db.tokens import TokenStore

            await TokenStore(ledger.engine).all()
            out.console.print(
                f"treasury api listening on http://{host}:{port}; console at {base}/console",
                markup=False,
            )
            await serve(
                ledger,
                host=host,
                port=port,
                cooling_s=settings.manual_whitelist_cooling_s,
                base_url=base,
            )

    run(main)
