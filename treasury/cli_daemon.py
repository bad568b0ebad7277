"""Commands that talk to an exchange: run, check, whitelist sync, sandbox, demo."""

from __future__ import annotations

from pathlib import Path

import typer

from treasury import cli_output as out
from treasury.cli import EXIT_REFUSED, app, open_ledger, run, whitelist_app
from treasury.cli import _settings as load_cli_settings
from treasury.config import Settings, SettingsError
from treasury.logs import configure


def _print_checks(checks: list[object]) -> bool:
    ok = True
    for c in checks:
        mark = "ok  " if c.ok and not c.warning else ("WARN" if c.ok else "FAIL")  # type: ignore[attr-defined]
        ok = ok and c.ok  # type: ignore[attr-defined]
        out.console.print(f"[{mark}] {c.name}: {c.detail}", markup=False)  # type: ignore[attr-defined]
    return ok


async def preflight(settings: Settings, exchange: object) -> bool:
    from treasury.services.preflight import run_checks

    checks = await run_checks(
        exchange,  # type: ignore[arg-type]
        database_url=settings.database_url,
        allow_unrestricted_ip=settings.allow_unrestricted_ip_key,
    )
    return _print_checks(list(checks))


@app.command()
def check() -> None:
    """Preflight: database, clock, API key, permissions, IP restriction, quota, status."""
    settings = load_cli_settings()
    configure(fmt=settings.log_format, level="warning")

    async def body() -> bool:
        from treasury.bootstrap import runtime

        async with runtime(settings) as rt:
            return await preflight(settings, rt.exchange)

    if not run(body):
        out.fail("preflight failed", EXIT_REFUSED)


@app.command("run")
def run_daemon() -> None:
    """Run the withdrawal daemon until SIGTERM/SIGINT."""
    settings = load_cli_settings()
    configure(fmt=settings.log_format, level=settings.log_level)

    async def body() -> bool:
        from treasury.runtime.supervisor import supervise

        return await supervise(settings, preflight=preflight)

    if not run(body):
        out.fail("preflight failed: not starting", EXIT_REFUSED)


@whitelist_app.command("sync")
def whitelist_sync() -> None:
    """Pull the exchange's whitelist and reconcile the local mirror; prints the drift."""
    settings = load_cli_settings()
    configure(fmt=settings.log_format, level="warning")

    async def body() -> None:
        from treasury.bootstrap import runtime
        from treasury.services.whitelist_sync import sync_whitelist

        async with open_ledger(settings), runtime(settings) as rt:
            drift = await sync_whitelist(rt.exchange, rt.ledger.whitelist, rt.ledger.events,
                                         actor="cli:whitelist-sync")
        for label, keys in (("added", drift.added), ("disabled", drift.disabled),
                            ("re-enabled", drift.reenabled)):
            for key in keys:
                out.console.print(f"{label}: {' '.join(k for k in key if k)}", markup=False)
        out.console.print(
            f"drift: {len(drift.added)} added, {len(drift.disabled)} disabled, "
            f"{len(drift.reenabled)} re-enabled, {drift.unchanged} unchanged"
        )

    run(body)


@app.command()
def sandbox(
    host: str = typer.Option("127.0.0.1", help="loopback address to bind"),
    port: int = typer.Option(8080, help="port (0: any free port)"),
    config: Path | None = typer.Option(None, help="sandbox config JSON (default: built in)"),
    state: Path | None = typer.Option(None, help="journal file: state survives restarts"),
    faults: str | None = typer.Option(None, help="faults as JSON, or a path to a JSON file"),
    allow_remote: bool = typer.Option(False, help="allow a non-loopback address"),
) -> None:
    """Run the local Binance capital API sandbox (see README: sandbox)."""
    from treasury.sandbox.server import serve

    def ready(url: str) -> None:
        out.console.print(f"sandbox listening on {url}", markup=False)

    try:
        serve(host=host, port=port, config_path=config, state_path=state, faults=faults,
              allow_remote=allow_remote, on_ready=ready)
    except (ValueError, OSError) as exc:
        out.fail(str(exc), 2)


@app.command()
def demo(
    keep: Path | None = typer.Option(None, help="keep the demo database and journal here"),
) -> None:
    """Everything on this machine: sandbox + daemon + SQLite, a handful of intents, live."""
    from treasury.demo import run_demo

    run_demo(keep)


@app.command()
def approve(
    intent_id: int = typer.Argument(..., help="intent id (status awaiting_approval)"),
    as_: str = typer.Option(..., "--as", help="your name: recorded, and never the requester"),
) -> None:
    """Approve an intent that policy holds for approval."""
    from treasury.cli import _actor
    from treasury.domain.policy import Policy

    name = _actor(as_).removeprefix("cli:")
    settings = load_cli_settings()

    async def body() -> None:
        from treasury.policy_file import PolicyError, load_policy
        from treasury.services.approvals import approve as record

        try:
            policy = load_policy(settings.policy_file) if settings.policy_file else Policy()
        except PolicyError as exc:
            raise SettingsError(str(exc)) from None
        async with open_ledger(settings) as ledger:
            result = await record(ledger, intent_id, approver=name, policy=policy)
        state = ("released to the worker" if result.released
                 else f"{result.required - len(result.approvers)} more approval(s) needed")
        out.console.print(
            f"intent {intent_id}: approved by {', '.join(result.approvers)}; {state}"
        )

    run(body)
