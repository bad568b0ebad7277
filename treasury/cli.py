"""The ``treasury`` command: operators' admin CLI and the daemon's entry point.

Every command refuses bad input with one line naming the problem and a non-zero
exit, and writes nothing in that case.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import typer
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from treasury import cli_output as out
from treasury.adapters.db import migrate as migrations
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.repository import IdempotencyConflict, NotFound
from treasury.config import Settings, SettingsError, load_settings
from treasury.domain.errors import DomainError, InvalidField
from treasury.domain.status import Status
from treasury.domain.validation import (
    validate_account,
    validate_address,
    validate_coin,
    validate_network,
    validate_new_intent,
    validate_tag,
)
from treasury.services import admin
from treasury.services.admin import Ledger, Refused

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Exactly-once Binance withdrawals from a SQL queue.",
    pretty_exceptions_enable=False,
)
whitelist_app = typer.Typer(
    no_args_is_help=True, help="The local mirror of the exchange whitelist."
)
app.add_typer(whitelist_app, name="whitelist")

T = TypeVar("T")
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_CONFIG = 3


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        out.fail(f"configuration: {exc}", EXIT_CONFIG)


def _actor(name: str | None) -> str:
    who = name or os.environ.get("TREASURY_OPERATOR") or getpass.getuser()
    who = who.strip()
    if not who or len(who) > 100 or any(c.isspace() for c in who):
        out.fail("--as: give an operator name without spaces", EXIT_BAD_INPUT)
    return f"cli:{who}"


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body, turning known errors into one clear line."""
    try:
        return anyio.run(fn)
    except InvalidField as exc:
        out.fail(str(exc), EXIT_BAD_INPUT)
    except (Refused, NotFound, IdempotencyConflict) as exc:
        out.fail(str(exc), EXIT_REFUSED)
    except DomainError as exc:
        out.fail(str(exc), EXIT_REFUSED)
    except SettingsError as exc:
        out.fail(f"configuration: {exc}", EXIT_CONFIG)
    except IntegrityError as exc:
        out.fail(f"the database refused the change: {_db_message(exc)}", EXIT_REFUSED)
    except (OperationalError, DBAPIError, OSError) as exc:
        out.fail(f"database unavailable: {_db_message(exc)}", EXIT_CONFIG)


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).splitlines()[0][:300]


@asynccontextmanager
async def open_ledger(settings: Settings, *, need_schema: bool = True) -> AsyncIterator[Ledger]:
    engine = create_engine(settings.database_url)
    try:
        if need_schema:
            current = await migrations.current_revision(settings.database_url)
            head = migrations.head_revision()
            if current != head:
                state = "empty" if current is None else f"at revision {current}"
                raise SettingsError(
                    f"the database is {state}, the code expects {head}: run `treasury migrate`"
                )
        yield Ledger.over(engine)
    finally:
        await engine.dispose()


# ---- schema ------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (safe to run repeatedly)."""
    settings = _settings()

    async def body() -> None:
        before = await migrations.current_revision(settings.database_url)
        await migrations.upgrade(settings.database_url)
        after = await migrations.current_revision(settings.database_url)
        if before == after:
            out.console.print(f"database already at {after}")
        else:
            out.console.print(f"database migrated from {before or 'empty'} to {after}")

    run(body)


# ---- intents -----------------------------------------------------------------------


@app.command()
def enqueue(
    coin: str = typer.Option(..., help="asset symbol, e.g. USDT"),
    network: str = typer.Option(..., help="network as the exchange names it, e.g. TRX"),
    address: str = typer.Option(..., help="destination address"),
    amount: str = typer.Option(..., help="exact decimal amount, e.g. 125.50"),
    tag: str | None = typer.Option(None, "--tag", help="memo / address tag, if needed"),
    request_id: str | None = typer.Option(
        None, help="idempotency key: the same key twice gives one intent"
    ),
    account: str = typer.Option("default", help="exchange account that sends it"),
    note: str | None = typer.Option(None, help="free text for the audit trail"),
    as_: str | None = typer.Option(None, "--as", help="operator name for the audit trail"),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Queue a withdrawal. Prints the intent (the existing one for a known --request-id)."""
    actor = _actor(as_)
    new = _validate(lambda: validate_new_intent(
        coin=coin, network=network, address=address, amount=amount, address_tag=tag,
        account=account, request_id=request_id, requested_by=actor.removeprefix("cli:"),
        note=note,
    ))
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            intent, created = await admin.enqueue(ledger, new, actor=actor)
        if json_:
            out.print_json({**out.intent_dict(intent), "created": created})
        else:
            verb = "queued" if created else "already known (same request_id)"
            out.console.print(f"intent {intent.id} {verb}: {intent.status.value}")

    run(body)


def _validate(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except InvalidField as exc:
        out.fail(str(exc), EXIT_BAD_INPUT)


def _statuses(values: list[str]) -> list[Status]:
    result = []
    for v in values:
        try:
            result.append(Status(v))
        except ValueError:
            known = ", ".join(s.value for s in Status)
            out.fail(f"--status: {v!r} is not a status ({known})", EXIT_BAD_INPUT)
    return result


@app.command("list")
def list_(
    status: list[str] = typer.Option([], "--status", help="filter (repeatable)"),
    coin: str | None = typer.Option(None, help="filter by coin"),
    account: str | None = typer.Option(None, help="filter by account"),
    limit: int = typer.Option(50, min=1, max=10000, help="at most this many, newest first"),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List intents, newest first."""
    statuses = _statuses(status)
    if coin is not None:
        _validate(lambda: validate_coin(coin))
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            intents = await ledger.intents.search(
                statuses=statuses, coin=coin, account=account, limit=limit
            )
            pause = await ledger.state.pause_state()
            accounts = await ledger.state.account_pauses()
        if json_:
            out.print_json({
                "paused": pause.paused,
                "pause_reason": pause.reason or None,
                "paused_accounts": {a: p.reason for a, p in accounts.items()},
                "intents": [out.intent_dict(i) for i in intents],
            })
            return
        if pause.paused:
            out.console.print(
                f"[bold red]PAUSED[/] since {pause.at:%Y-%m-%d %H:%M:%S} UTC by {pause.by}: "
                f"{pause.reason} — no withdrawal is sent until `treasury resume`"
            )
        for name, p in sorted(accounts.items()):
            out.console.print(f"[bold red]ACCOUNT {name} PAUSED[/] since "
                              f"{p.at:%Y-%m-%d %H:%M:%S} UTC by {p.by}: ", end="")
            out.console.print(p.reason, markup=False)
        out.console.print(out.intents_table(intents))

    run(body)


@app.command()
def show(
    intent_id: int = typer.Argument(..., min=1, max=2**31 - 1, help="intent id"),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show one intent and its full event history."""
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            intent = await ledger.intents.get(intent_id)
            events = await ledger.intents.events(intent_id)
        if json_:
            out.print_json({**out.intent_dict(intent),
                            "events": [out.event_dict(e) for e in events]})
            return
        for key, value in out.intent_dict(intent).items():
            shown = (out.amount_text(value) if key in ("amount", "fee", "exchange_amount")
                     else value)
            out.console.print(f"{key:>22}: {'' if shown is None else shown}", markup=False)
        out.console.print(out.events_table(events))

    run(body)


@app.command()
def cancel(
    intent_id: int = typer.Argument(..., min=1, max=2**31 - 1, help="intent id"),
    reason: str = typer.Option("cancelled by operator", help="why"),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Cancel an intent that has not been submitted yet."""
    actor = _actor(as_)
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            intent = await admin.cancel(ledger, intent_id, actor=actor, reason=reason)
        out.console.print(f"intent {intent.id} cancelled")

    run(body)


@app.command()
def resolve(
    intent_id: int = typer.Argument(
        ..., min=1, max=2**31 - 1, help="intent id (status needs_attention)"
    ),
    outcome: str = typer.Option(
        ..., help="completed | failed | submitted | requeue | cancelled"
    ),
    reason: str = typer.Option(..., help="what you checked and why you decide this"),
    exchange_id: str | None = typer.Option(None, help="the exchange's withdrawal id"),
    tx_id: str | None = typer.Option(None, help="on-chain transaction id"),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Settle an intent in needs_attention by a person's decision."""
    actor = _actor(as_)
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            intent = await admin.resolve(
                ledger, intent_id, outcome=outcome, actor=actor, reason=reason,
                exchange_id=exchange_id, tx_id=tx_id,
            )
        out.console.print(f"intent {intent.id} is now {intent.status.value}")

    run(body)


def _account_option() -> Any:
    return typer.Option(None, "--account", help="only this account (default: all accounts)")


@app.command()
def pause(
    reason: str = typer.Option("paused by operator", help="why"),
    account: str | None = _account_option(),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Kill switch: stop all sends (or one account's) until `treasury resume`."""
    actor = _actor(as_)
    if account is not None:
        _validate(lambda: validate_account(account))
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            changed = await admin.pause(ledger, actor=actor, reason=reason, account=account)
        what = f"account {account} " if account else ""
        out.console.print(f"{what}paused" if changed else f"{what}already paused")

    run(body)


@app.command()
def resume(
    account: str | None = _account_option(),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Release the kill switch (or one account's pause, e.g. the automatic one)."""
    actor = _actor(as_)
    if account is not None:
        _validate(lambda: validate_account(account))
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            changed = await admin.resume(ledger, actor=actor, account=account)
        what = f"account {account} " if account else ""
        out.console.print(f"{what}resumed" if changed else f"{what}was not paused")

    run(body)


@app.command()
def resend(
    intent_id: int = typer.Argument(
        ..., min=1, max=2**31 - 1, help="intent id (needs_attention, proven absent)"
    ),
    reason: str = typer.Option(
        "checked the exchange's withdrawal history: not there", help="what you checked"
    ),
    as_: str = typer.Option(..., "--as", help="your name, recorded with the decision"),
) -> None:
    """Send again an intent whose withdrawal the exchange provably never created.

    For intents that TREASURY_RESEND=manual sent to a person. The worker looks the order
    id up once more just before it sends.
    """
    actor = _actor(as_)
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            intent = await admin.resend(ledger, intent_id, actor=actor, reason=reason)
        out.console.print(f"intent {intent.id} is queued again; it will be sent as "
                          f"{intent.withdraw_order_id} after one more look-up")

    run(body)


# ---- whitelist ---------------------------------------------------------------------


@whitelist_app.command("add")
def whitelist_add(
    coin: str = typer.Option(...),
    network: str = typer.Option(...),
    address: str = typer.Option(...),
    tag: str | None = typer.Option(None, "--tag"),
    label: str = typer.Option("", help="a name for people"),
) -> None:
    """Add a destination to the local whitelist mirror (source: manual)."""
    _validate(lambda: (validate_coin(coin), validate_network(network),
                       validate_address(address), validate_tag(tag)))
    settings = _settings()

    async def body() -> None:
        from datetime import timedelta

        from treasury.adapters.db.repository import utcnow
        from treasury.adapters.db.whitelist import DuplicateEntry

        cooling = settings.manual_whitelist_cooling_s
        usable_from = utcnow() + timedelta(seconds=cooling) if cooling else None
        async with open_ledger(settings) as ledger:
            try:
                entry = await ledger.whitelist.add(
                    coin=coin, network=network, address=address, address_tag=tag,
                    label=label, source="manual", usable_from=usable_from,
                )
            except DuplicateEntry as exc:
                raise Refused(str(exc)) from None
        extra = f", usable from {usable_from:%Y-%m-%d %H:%M:%S} UTC" if usable_from else ""
        out.console.print(f"whitelist entry {entry.id} added{extra}")

    run(body)


@whitelist_app.command("list")
def whitelist_list(json_: bool = typer.Option(False, "--json")) -> None:
    """Show the local whitelist mirror."""
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            entries = await ledger.whitelist.all()
        if json_:
            out.print_json([e.__dict__ for e in entries])
            return
        from rich.table import Table

        table = Table(title="whitelist")
        for col in ("id", "coin", "network", "address", "tag", "label", "source", "enabled"):
            table.add_column(col, overflow="fold")
        for e in entries:
            table.add_row(str(e.id), e.coin, e.network, e.address, e.address_tag or "",
                          e.label, e.source, "yes" if e.enabled else "no")
        out.console.print(table)

    run(body)


@whitelist_app.command("remove")
def whitelist_remove(
    entry_id: int = typer.Argument(..., min=1, max=2**31 - 1, help="whitelist entry id"),
) -> None:
    """Remove a destination from the local mirror."""
    settings = _settings()

    async def body() -> None:
        async with open_ledger(settings) as ledger:
            if not await ledger.whitelist.remove(entry_id):
                raise NotFound(f"whitelist entry {entry_id}")
        out.console.print(f"whitelist entry {entry_id} removed")

    run(body)


def main() -> Any:
    from treasury import cli_daemon  # noqa: F401  (registers run/check/sandbox/demo)

    return app()
