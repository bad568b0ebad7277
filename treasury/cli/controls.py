"""What holds sends back: the kill switch and account pauses (pause, resume), and the
per-account address book (whitelist add, list, disable, enable, history)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from treasury.cli import output as out
from treasury.cli.common import (
    EXIT_BAD_INPUT,
    MAX_ID,
    actor_of,
    app,
    read_settings,
    reason_of,
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
from treasury.ports.store import ConcurrentChange, DuplicateEntry

if TYPE_CHECKING:
    from treasury.config import Settings
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
    why = reason_of(reason, default="paused by operator")
    changed = with_ledger(
        lambda ledger: admin.pause(ledger, actor=actor, reason=why, account=account)
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


# ---- the address book ---------------------------------------------------------------------


def _book_account(account: str | None, settings: Settings, *, served: bool) -> str:
    """``--account``, or the primary account; with ``served``, only an account this
    treasury serves (an entry for any other would never be used)."""
    if account is None:
        return settings.account
    validated(lambda: validate_account(account))
    if served and account not in settings.account_names:
        out.fail(
            f"--account: {account!r} is not an account this treasury serves "
            f"({', '.join(settings.account_names)}; see TREASURY_EXTRA_ACCOUNTS)",
            EXIT_BAD_INPUT,
        )
    return account


def _book_account_option() -> Any:
    return typer.Option(
        None, "--account", help="the account's address book (default: TREASURY_ACCOUNT)"
    )


def _reason_option() -> Any:
    return typer.Option(..., "--reason", help="why (kept in whitelist_events)")


@whitelist_app.command("add")
def whitelist_add(
    coin: str = typer.Option(...),
    network: str = typer.Option(...),
    address: str = typer.Option(...),
    tag: str | None = typer.Option(None, "--tag"),
    label: str = typer.Option("", help="a name for people"),
    account: str | None = _book_account_option(),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
    reason: str = _reason_option(),
) -> None:
    """Add a destination to an account's address book (source: manual). It is usable
    after TREASURY_MANUAL_WHITELIST_COOLING_S (default 24 h) from now."""
    from treasury.domain import rules
    from treasury.services.admin import Refused

    validated(
        lambda: (
            validate_coin(coin),
            validate_network(network),
            validate_address(address),
            validate_tag(tag),
        )
    )
    actor = actor_of(as_)
    why = reason_of(reason)
    settings = read_settings()
    book = _book_account(account, settings, served=True)

    async def body(ledger: Ledger) -> None:
        try:
            entry = await ledger.whitelist.add(
                account=book,
                coin=coin,
                network=network,
                address=address,
                address_tag=tag,
                label=label,
                source="manual",
                actor=actor,
                reason=why,
            )
        except DuplicateEntry as exc:
            raise Refused(str(exc)) from None
        usable = rules.whitelist_usable_from(
            source=entry.source,
            created_at=entry.created_at,
            usable_from=entry.usable_from,
            seen_on_exchange=False,
            cooling_s=settings.manual_whitelist_cooling_s,
        )
        extra = f", usable from {usable:%Y-%m-%d %H:%M:%S} UTC" if usable else ""
        out.console.print(f"whitelist entry {entry.id} added to account {book}{extra}")

    with_ledger(body, settings)


@whitelist_app.command("list")
def whitelist_list(
    account: str | None = _book_account_option(),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Show an account's address book."""
    settings = read_settings()
    book = _book_account(account, settings, served=False)
    entries = with_ledger(lambda ledger: ledger.whitelist.all(book), settings)
    if json_:
        out.print_json([e.__dict__ for e in entries])
        return
    from rich.table import Table

    table = Table(title=f"whitelist of account {book}")
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


def _set_enabled(
    entry_id: int, enabled: bool, *, account: str | None, as_: str | None, reason: str
) -> None:
    from treasury.services.admin import Refused

    actor = actor_of(as_)
    why = reason_of(reason)
    settings = read_settings()
    if account is not None:
        validated(lambda: validate_account(account))

    async def body(ledger: Ledger) -> bool:
        entry = await ledger.whitelist.get(entry_id)
        if account is not None and entry.account != account:
            raise Refused(
                f"whitelist entry {entry_id} is account {entry.account}'s, not {account}'s"
            )
        try:
            changed = await ledger.whitelist.set_enabled(entry_id, enabled, actor=actor, reason=why)
        except ConcurrentChange as exc:
            raise Refused(f"{exc}; nothing was written, try again") from None
        return changed.version != entry.version

    verb = "enabled" if enabled else "disabled"
    changed = with_ledger(body, settings)
    out.console.print(
        f"whitelist entry {entry_id} {verb}"
        if changed
        else f"whitelist entry {entry_id} was already {verb}"
    )


def _entry_argument() -> Any:
    return typer.Argument(..., min=1, max=MAX_ID, help="whitelist entry id")


@whitelist_app.command("disable")
def whitelist_disable(
    entry_id: int = _entry_argument(),
    account: str | None = typer.Option(
        None, "--account", help="refuse unless the entry is this account's"
    ),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
    reason: str = _reason_option(),
) -> None:
    """Stop sends to a destination (the entry stays, with its history)."""
    _set_enabled(entry_id, False, account=account, as_=as_, reason=reason)


@whitelist_app.command("enable")
def whitelist_enable(
    entry_id: int = _entry_argument(),
    account: str | None = typer.Option(
        None, "--account", help="refuse unless the entry is this account's"
    ),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
    reason: str = _reason_option(),
) -> None:
    """Allow sends to a disabled destination again."""
    _set_enabled(entry_id, True, account=account, as_=as_, reason=reason)


@whitelist_app.command("remove", hidden=True)
def whitelist_remove(
    entry_id: int = _entry_argument(),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
    reason: str = _reason_option(),
) -> None:
    """Deprecated: `whitelist disable` (entries are never deleted)."""
    _set_enabled(entry_id, False, account=None, as_=as_, reason=reason)
    out.warn("`whitelist remove` is deprecated: it disables the entry (use `whitelist disable`)")


@whitelist_app.command("history")
def whitelist_history(
    entry_id: int | None = typer.Argument(None, min=1, max=MAX_ID, help="only this entry"),
    account: str | None = typer.Option(
        None, "--account", help="only this account (default: every account)"
    ),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Every change of the address book: who, when, why (whitelist_events)."""
    if account is not None:
        validated(lambda: validate_account(account))
    events = with_ledger(
        lambda ledger: ledger.whitelist.history(account=account, entry_id=entry_id)
    )
    if json_:
        out.print_json([e.__dict__ for e in events])
        return
    from rich.table import Table

    table = Table(title="whitelist history")
    for col in ("at", "entry", "account", "kind", "destination", "actor", "reason"):
        table.add_column(col, overflow="fold")
    for e in events:
        dest = f"{e.coin}/{e.network} {e.address}" + (
            f" tag {e.address_tag}" if e.address_tag else ""
        )
        table.add_row(
            f"{e.created_at:%Y-%m-%d %H:%M:%S}",
            str(e.entry_id),
            e.account,
            e.kind,
            dest,
            e.actor,
            e.reason,
        )
    out.console.print(table)
