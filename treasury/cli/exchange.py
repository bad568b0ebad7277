"""Commands that talk to an exchange: run, check, whitelist sync, reconcile, sandbox, demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from treasury.cli import output as out
from treasury.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CONFIG,
    EXIT_REFUSED,
    actor_of,
    app,
    read_settings,
    run,
    whitelist_app,
    with_runtime,
)
from treasury.config import SettingsError
from treasury.logs import configure

if TYPE_CHECKING:
    from treasury.bootstrap import Runtime
    from treasury.services.preflight import Check


def print_checks(checks: list[Check]) -> bool:
    """One line per check; True when none failed. A failure ``run`` waits out says so."""
    ok = True
    for c in checks:
        mark = "ok  " if c.ok and not c.warning else ("WARN" if c.ok else "FAIL")
        ok = ok and c.ok
        waits = " (`treasury run` starts and waits for this)" if not c.ok and c.waits else ""
        out.console.print(f"[{mark}] {c.name}: {c.detail}{waits}", markup=False)
    return ok


def log_checks(checks: list[Check]) -> None:
    """``run``'s checklist: one log event per check (JSON under systemd, like every other
    line), and the text checklist too when a person is watching the terminal."""
    import sys

    import structlog

    log = structlog.get_logger("treasury.preflight")
    for c in checks:
        level = "info" if c.ok and not c.warning else ("warning" if c.ok or c.waits else "error")
        getattr(log, level)(
            "preflight.check", check=c.name, ok=c.ok, detail=c.detail, waits=not c.ok and c.waits
        )
    if sys.stdout.isatty():
        print_checks(checks)


async def preflight_checks(rt: Runtime, *, exchange_without_database: bool = True) -> list[Check]:
    """``services.preflight.run_all_checks`` over every account ``rt`` serves."""
    from treasury.adapters.db.migrate import schema_probe
    from treasury.config import account_local_entity
    from treasury.services.preflight import run_all_checks

    names = [ctx.config.account for _, ctx in rt.accounts]
    return await run_all_checks(
        [(ctx.config.account, exchange) for exchange, ctx in rt.accounts],
        schema=schema_probe(rt.ledger.engine),
        allow_unrestricted_ip=rt.settings.allow_unrestricted_ip_key,
        exchange_without_database=exchange_without_database,
        local_entities={
            name: rt.local_entities.get(name, account_local_entity(rt.settings, name))
            for name in names
        },
    )


@app.command()
def check() -> None:
    """Preflight: database, clock, API key, permissions, IP restriction, quota, status."""
    settings = read_settings()
    configure(fmt=settings.log_format, level="error")  # the command says what failed

    async def body() -> bool:
        from treasury.bootstrap import runtime

        async with runtime(settings) as rt:
            checks = await preflight_checks(rt)
            failed.extend(f"{c.name}: {c.detail}" for c in checks if not c.ok)
            ok = print_checks(checks)
            try:
                pauses = await rt.ledger.state.account_pauses()
                kill = await rt.ledger.state.pause_state()
                usable = [
                    e for e in await rt.ledger.whitelist.all(rt.ctx.config.account) if e.enabled
                ]
                unserved = await rt.ledger.intents.unserved(older_than_s=0)
                policy = await _policy_lines(rt)
            except Exception:  # the database line of the preflight already says why
                return False
        for line in policy:
            out.console.print(line, markup=False)
        waiting: dict[str, int] = {}
        for _intent_id, account in unserved:
            waiting[account] = waiting.get(account, 0) + 1
        for account, n in sorted(waiting.items()):
            out.console.print(
                f"[WARN] account {account}: {n} queued intent(s) that no running daemon serves "
                f"(no live sender lease): start one with TREASURY_ACCOUNT={account} or "
                "TREASURY_EXTRA_ACCOUNTS, or cancel them",
                markup=False,
            )
        if not usable:
            out.console.print(
                "[WARN] address book: the local mirror has no enabled entry, so every "
                "withdrawal will be rejected: run `treasury whitelist sync`",
                markup=False,
            )
        if kill.paused:
            out.console.print(
                f"[WARN] kill switch: engaged by {kill.by}: {kill.reason}", markup=False
            )
        for name, p in sorted(pauses.items()):
            out.console.print(f"[FAIL] account {name}: paused by {p.by}: {p.reason}", markup=False)
        failed.extend(f"account {name} paused" for name in sorted(pauses))
        forged = [line for line in policy if line.startswith("[FAIL] policy")]
        failed.extend("a policy version's approval" for _ in forged[:1])
        return ok and not pauses and not forged

    failed: list[str] = []
    if not run(body):
        out.fail(f"preflight failed: {'; '.join(failed) or 'see above'}", EXIT_REFUSED)


async def _policy_lines(rt: Runtime) -> list[str]:
    """The version in force, and how TREASURY_POLICY_FILE differs from it (``check``
    never applies the file: ``run`` seeds an empty ledger, ``treasury policy apply``
    changes a policy)."""
    from treasury.policy_file import PolicyError, read_policy_text
    from treasury.services.policy import file_drift, read_in_force

    reading = await read_in_force(rt.ledger.policies, rt.ledger.operators)
    current = reading.row
    lines = [
        f"[FAIL] policy: v{version} was activated but is not in force: {problem}"
        for version, problem in reading.passed_over
    ]
    lines.append(
        f"[ok  ] policy: v{current.version} in force (sha256 {current.sha256[:12]}…, "
        f"applied by {current.applied_by})"
        if current is not None
        else "[WARN] policy: the ledger has none, so no limit applies: treasury policy apply FILE"
    )
    path = rt.settings.policy_file
    if path is not None:
        try:
            drift = await file_drift(rt.ledger, read_policy_text(path), path=str(path))
        except PolicyError as exc:
            drift = f"TREASURY_POLICY_FILE: {exc}"
        if drift is not None:
            lines.append(f"[WARN] policy file: {drift}")
    return lines


@app.command("run")
def run_daemon() -> None:
    """Run the withdrawal daemon until SIGTERM/SIGINT."""
    settings = read_settings()
    if settings.policy_file is not None:
        # a setting that names a broken file is refused at once, like any other setting
        # (it seeds an empty ledger; the policy in force is the ledger's)
        from treasury.policy_file import PolicyError, load_policy

        try:
            load_policy(settings.policy_file)
        except PolicyError as exc:
            out.fail(f"configuration: TREASURY_POLICY_FILE: {exc}", EXIT_CONFIG)
    configure(fmt=settings.log_format, level=settings.log_level)

    blocking: list[Check] = []

    async def checked(rt: Runtime) -> list[Check]:
        checks = await preflight_checks(rt, exchange_without_database=False)
        blocking[:] = [c for c in checks if not c.ok and not c.waits]
        return checks

    async def body() -> bool:
        from treasury.runtime.supervisor import supervise

        return await supervise(settings, checks=checked, report=log_checks)

    if not run(body):
        why = "; ".join(f"{c.name}: {c.detail}" for c in blocking) or "see the log"
        out.fail(f"preflight failed, not starting: {why}", EXIT_REFUSED)


@whitelist_app.command("sync")
def whitelist_sync() -> None:
    """Pull each account's address book from the exchange and reconcile its entries
    (the primary account and TREASURY_EXTRA_ACCOUNTS); prints the drift."""
    settings = read_settings()
    configure(fmt=settings.log_format, level="error")  # the command says what failed

    async def body(rt: Runtime) -> None:
        from treasury.services.whitelist_sync import sync_whitelist

        for exchange, ctx in rt.accounts:
            account = ctx.config.account
            drift = await sync_whitelist(
                exchange, rt.ledger.whitelist, rt.ledger.events, account=account, seen=ctx.seen
            )
            for label, keys in (
                ("added", drift.added),
                ("disabled", drift.disabled),
                ("re-enabled", drift.reenabled),
            ):
                for key in keys:
                    out.console.print(
                        f"{account}: {label}: {' '.join(k for k in key if k)}", markup=False
                    )
            out.console.print(
                f"{account}: drift: {len(drift.added)} added, {len(drift.disabled)} disabled, "
                f"{len(drift.reenabled)} re-enabled, {drift.unchanged} unchanged"
            )

    with_runtime(body, settings)


def parse_since(text: str) -> int:
    """``90m``, ``2h``, ``7d``, ``3600s`` (or plain seconds) as milliseconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in units else "s"
    number = raw[:-1] if raw[-1:] in units else raw
    if not (number.isascii() and number.isdigit()) or len(number) > 9:
        raise ValueError(f"{text!r} is not a duration like 90m, 12h or 7d")
    seconds = int(number) * units[unit]
    if not 0 < seconds < 89 * 86400:
        raise ValueError(
            f"{text!r}: must be more than 0 and less than 89 days "
            "(Binance's history window is 90 days)"
        )
    return seconds * 1000


@app.command()
def reconcile(
    account: str | None = typer.Option(None, help="only this account (default: every one)"),
    since: str | None = typer.Option(
        None, help="read history this far back (90m, 12h, 7d) instead of from the watermark"
    ),
    apply: bool = typer.Option(False, "--apply", help="carry the findings out (default: dry run)"),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
    as_: str | None = typer.Option(None, "--as", help="operator name (with --apply)"),
) -> None:
    """Compare the ledger with the exchange's withdrawal history and print the differences.

    With --apply: adopt withdrawals the ledger did not know it had sent, send
    contradicted intents to needs_attention, and pause an account whose ledger is behind.
    """
    try:
        since_ms = parse_since(since) if since is not None else None
    except ValueError as exc:
        out.fail(f"--since: {exc}", EXIT_BAD_INPUT)
    actor = actor_of(as_)
    settings = read_settings()
    configure(fmt=settings.log_format, level="error")  # the command says what failed

    async def body(rt: Runtime) -> None:
        from treasury.services.truth import sweep

        ctxs = [c for _, c in rt.accounts if account in (None, c.config.account)]
        if not ctxs:
            served = ", ".join(c.config.account for _, c in rt.accounts)
            raise SettingsError(f"account {account!r} is not configured (configured: {served})")
        results = []
        for ctx in ctxs:
            start = ctx.exchange.now_ms() - since_ms if since_ms is not None else None
            results.append(
                await sweep(ctx, since_ms=start, apply=apply, found_by=f"{actor} reconcile")
            )
        pauses = await rt.ledger.state.account_pauses()
        _print_sweeps(results, {a: p.reason for a, p in pauses.items()}, apply, json_)

    with_runtime(body, settings)


def _print_sweeps(results: list[Any], pauses: dict[str, str], applied: bool, json_: bool) -> None:
    from datetime import UTC, datetime

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    if json_:
        out.print_json(
            {
                "applied": applied,
                "accounts": [
                    {
                        "account": r.account,
                        "start": when(r.start_ms),
                        "end": when(r.end_ms),
                        "records": r.records,
                        "pages": r.pages,
                        "paused": pauses.get(r.account),
                        "findings": [f.__dict__ for f in r.findings],
                    }
                    for r in results
                ],
            }
        )
        return
    for r in results:
        out.console.print(
            f"account {r.account}: {r.records} withdrawal(s) read in {r.pages} page(s), "
            f"{when(r.start_ms)} to {when(r.end_ms)}: {len(r.findings)} difference(s)"
            + (", carried out" if applied and r.findings else ""),
            markup=False,
        )
        for f in r.findings:
            who = f"intent {f.intent_id}" if f.intent_id is not None else "no intent"
            out.console.print(
                f"  {f.kind:<12} {who:<14} {f.exchange_withdraw_id} "
                f"{f.withdraw_order_id}: {f.detail}",
                markup=False,
            )
        if r.account in pauses:
            out.console.print(f"  account {r.account} is PAUSED: {pauses[r.account]}", markup=False)
    if not applied and any(r.findings for r in results):
        out.console.print(
            "dry run: nothing changed; `treasury reconcile --apply` carries these out"
        )


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
        serve(
            host=host,
            port=port,
            config_path=config,
            state_path=state,
            faults=faults,
            allow_remote=allow_remote,
            on_ready=ready,
        )
    except (ValueError, OSError) as exc:
        out.fail(str(exc), EXIT_BAD_INPUT)


@app.command()
def demo(
    keep: Path | None = typer.Option(None, help="keep the demo database and journal here"),
) -> None:
    """Everything on this machine: sandbox + daemon + SQLite, a handful of intents, live."""
    from treasury.demo import run_demo

    run_demo(keep)
