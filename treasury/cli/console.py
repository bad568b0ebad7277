"""``treasury console``: the operator console's sign-in links.

    treasury console login alice --as bob --expires 10m

prints ``<base>/console/login?token=...`` once (``<base>``: ``TREASURY_CONSOLE_BASE_URL``,
else ``http://<TREASURY_API_BIND>``; the ledger keeps the token's sha256). The link works
once, until it expires; making it is audited in ``service_events``
(``console_login_created``).
"""

from __future__ import annotations

import typer

from treasury.cli import output as out
from treasury.cli.common import EXIT_REFUSED, actor_of, app, read_settings, validated, with_ledger
from treasury.domain.console import parse_ttl

console_app = typer.Typer(no_args_is_help=True, help="The operator console (treasury api).")
app.add_typer(console_app, name="console")


@console_app.command("login")
def login(
    name: str = typer.Argument(..., help="the registered operator who signs in"),
    as_: str | None = typer.Option(None, "--as", help="operator name for the audit trail"),
    expires: str = typer.Option("10m", help="how long the link works: 90s, 10m, 2h (≤ 24h)"),
) -> None:
    """Print a single-use sign-in link to the console for operator NAME."""
    from treasury.adapters.db.console import ConsoleStore
    from treasury.adapters.db.ledger import SqlLedger
    from treasury.ports.store import Ledger, NotFound

    actor = actor_of(as_)
    ttl = validated(lambda: parse_ttl(expires, field="--expires"))
    settings = read_settings()

    async def body(ledger: Ledger) -> str | tuple[str]:
        assert isinstance(ledger, SqlLedger)
        try:
            token, _ = await ConsoleStore(ledger.engine).create_login(name, ttl=ttl, actor=actor)
        except NotFound as exc:
            return str(exc)
        return (token,)

    made = with_ledger(body, settings)
    if isinstance(made, str):
        out.fail(made, EXIT_REFUSED)
    # on the console's base URL when one is set (the passkeys' origin), else the bind
    base = settings.console_base_url or f"http://{settings.api_bind}"
    # the link is the secret: stdout only, never a log line
    print(f"{base}/console/login?token={made[0]}")
