"""What holds sends back: the kill switch and account pauses (pause, resume), and the
local whitelist mirror (whitelist add, list, remove)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from treasury.cli import output as out
from treasury.cli.common import (
    MAX_ID,
    actor_of,
    app,
    read_settings,
    validated,
    whitelist_app,
    with_ledger,
)
from treasury.domain.validation import (
    validate_account,
    validate_address,
    validate_coin,
    validate_network,
    validate_tag,
)
from treasury.ports.clock import utcnow
from treasury.ports.store import DuplicateEntry, NotFound

if TYPE_CHECKING:
    from treasury.ports.store import Ledger


def _account_option() -> Any:
    return typer.Option(None, "--account", help="only this account (default: all accounts)")


# ---- the kill switch -------------------------------------------------------------------


@app.command()
def pause(
    reason: str = typer.Option("paused by operator", help="why"),
    account: str | None = _account_option(),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Kill switch: stop all sends (or one account's) until `treasury resume`."""
    from treasury.services import admin

    actor = actor_of(as_)
    if account is not None:
        validated(lambda: validate_account(account))
    changed = with_ledger(
        lambda ledger: admin.pause(ledger, actor=actor, reason=reason, account=account)
    )
    what = f"account {account} " if account else ""
    out.console.print(f"{what}paused" if changed else f"{what}already paused")


@app.command()
def resume(
    account: str | None = _account_option(),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Release the kill switch (or one account's pause, e.g. the automatic one)."""
    from treasury.services import admin

    actor = actor_of(as_)
    if account is not None:
        validated(lambda: validate_account(account))
    changed = with_ledger(lambda ledger: admin.resume(ledger, actor=actor, account=account))
    what = f"account {account} " if account else ""
    out.console.print(f"{what}resumed" if changed else f"{what}was not paused")


# ---- the whitelist mirror ----------------------------------------------------------------


@whitelist_app.command("add")
def whitelist_add(
    coin: str = typer.Option(...),
    network: str = typer.Option(...),
    address: str = typer.Option(...),
    tag: str | None = typer.Option(None, "--tag"),
    label: str = typer.Option("", help="a name for people"),
) -> None:
    """Add a destination to the local whitelist mirror (source: manual)."""
    from datetime import timedelta

    from treasury.services.admin import Refused

    validated(
        lambda: (
            validate_coin(coin),
            validate_network(network),
            validate_address(address),
            validate_tag(tag),
        )
    )
    settings = read_settings()
    cooling = settings.manual_whitelist_cooling_s
    usable_from = utcnow() + timedelta(seconds=cooling) if cooling else None

    async def body(ledger: Ledger) -> None:
        try:
            entry = await ledger.whitelist.add(
                coin=coin,
                network=network,
                address=address,
                address_tag=tag,
                label=label,
                source="manual",
                usable_from=usable_from,
            )
        except DuplicateEntry as exc:
            raise Refused(str(exc)) from None
        extra = f", usable from {usable_from:%Y-%m-%d %H:%M:%S} UTC" if usable_from else ""
        out.console.print(f"whitelist entry {entry.id} added{extra}")

    with_ledger(body, settings)


@whitelist_app.command("list")
def whitelist_list(json_: bool = typer.Option(False, "--json")) -> None:
    """Show the local whitelist mirror."""
    entries = with_ledger(lambda ledger: ledger.whitelist.all())
    if json_:
        out.print_json([e.__dict__ for e in entries])
        return
    from rich.table import Table

    table = Table(title="whitelist")
    for col in ("id", "coin", "network", "address", "tag", "label", "source", "enabled"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(
            str(e.id),
            e.coin,
            e.network,
            e.address,
            e.address_tag or "",
            e.label,
            e.source,
            "yes" if e.enabled else "no",
        )
    out.console.print(table)


@whitelist_app.command("remove")
def whitelist_remove(
    entry_id: int = typer.Argument(..., min=1, max=MAX_ID, help="whitelist entry id"),
) -> None:
    """Remove a destination from the local mirror."""

    async def body(ledger: Ledger) -> None:
        if not await ledger.whitelist.remove(entry_id):
            raise NotFound(f"whitelist entry {entry_id}")

    with_ledger(body)
    out.console.print(f"whitelist entry {entry_id} removed")
