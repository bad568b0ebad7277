"""What holds sends back: the kill switch and account pauses (pause, resume), and the
per-account address book (whitelist add, list, disable, enable, approve, history)."""

from __future__ import annotations

import heapq
import operator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from treasury.cli import output as out
from treasury.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CONFIG,
    MAX_ID,
    actor_of,
    app,
    local_entity_of,
    read_json_file,
    read_settings,
    reason_of,
    served_accounts,
    validated,
    whitelist_app,
    with_ledger,
)
from treasury.domain.errors import InvalidField
from treasury.domain.validation import (
    validate_account,
    validate_address,
    validate_coin,
    validate_network,
    validate_tag,
)
from treasury.ports.store import ConcurrentChange, DuplicateEntry, NotFound

if TYPE_CHECKING:
    from treasury.config import Settings
    from treasury.domain.travel_rule import Profile
    from treasury.ports.store import Ledger, WhitelistEntry
    from treasury.services.whitelist_approvals import Standing


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
    names = served_accounts(settings) if served else ()
    if served and account not in names:
        out.fail(
            f"--account: {account!r} is not an account this treasury serves "
            f"({', '.join(names)}; see TREASURY_EXTRA_ACCOUNTS and TREASURY_ACCOUNTS_FILE)",
            EXIT_BAD_INPUT,
        )
    return account


def _book_account_option() -> Any:
    return typer.Option(
        None, "--account", help="the account's address book (default: TREASURY_ACCOUNT)"
    )


def _reason_option() -> Any:
    return typer.Option(..., "--reason", help="why (kept in whitelist_events)")


def _profile_option() -> Any:
    return typer.Option(
        None,
        "--travel-rule-profile",
        exists=True,
        dir_okay=False,
        help="JSON file: the travel-rule questionnaire's answers for this destination",
    )


def _entity_option() -> Any:
    return typer.Option(
        None,
        "--entity",
        help="JP or EU: the questionnaire the profile answers (default: the account's "
        "TREASURY_LOCAL_ENTITY / TREASURY_ACCOUNT_<NAME>_LOCAL_ENTITY)",
    )


def _profile_of(settings: Settings, book: str, entity: str | None, path: Path) -> Profile:
    """The profile in ``path`` for ``book``'s local entity, validated; exit 2 naming the
    field at fault (nothing is written)."""
    from treasury.config import SettingsError
    from treasury.domain.errors import InvalidField
    from treasury.domain.travel_rule import make_profile

    data = read_json_file(path, "--travel-rule-profile")
    try:
        chosen = validated(lambda: local_entity_of(settings, book, entity))
    except SettingsError as exc:
        out.fail(f"configuration: {exc}", EXIT_CONFIG)
    if chosen is None:
        out.fail(
            f"--entity: account {book} is under no local entity (TREASURY_LOCAL_ENTITY, "
            "TREASURY_ACCOUNT_<NAME>_LOCAL_ENTITY): say which questionnaire the profile "
            "answers, --entity JP or --entity EU",
            EXIT_BAD_INPUT,
        )
    try:
        return make_profile(chosen, data)
    except InvalidField as exc:
        out.fail(str(exc), EXIT_BAD_INPUT)


def _shown_entry(entry: WhitelistEntry) -> dict[str, Any]:
    """An entry for the screen or --json: its travel-rule profile redacted (the names,
    city and VASP identifier are personal data)."""
    from treasury.domain.travel_rule import redacted

    shown = dict(entry.__dict__)
    profile = shown.pop("travel_rule_profile")
    shown["travel_rule_profile"] = None if profile is None else redacted(profile)
    return shown


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
    travel_rule_profile: Path | None = _profile_option(),
    entity: str | None = _entity_option(),
) -> None:
    """Add a destination to an account's address book (source: manual). It is usable
    after TREASURY_MANUAL_WHITELIST_COOLING_S (default 24 h) from now. Under a local
    entity, --travel-rule-profile gives it the beneficiary's questionnaire answers."""
    from treasury.domain import rules
    from treasury.domain.travel_rule import profile_change_note
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
    profile = (
        None
        if travel_rule_profile is None
        else _profile_of(settings, book, entity, travel_rule_profile)
    )

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
                reason=why if profile is None else f"{why} ({profile_change_note(profile)})",
                travel_rule_profile=None if profile is None else profile.to_json(),
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
        if profile is not None:
            extra += f", with a {profile.entity.value} travel-rule profile"
        out.console.print(f"whitelist entry {entry.id} added to account {book}{extra}")

    with_ledger(body, settings)


@whitelist_app.command("list")
def whitelist_list(
    account: str | None = _book_account_option(),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Show an account's address book: each entry's approvals and what it waits for."""
    from treasury.ports.clock import utcnow
    from treasury.services.whitelist_approvals import standings

    settings = read_settings()
    book = _book_account(account, settings, served=False)

    async def body(ledger: Ledger) -> list[Standing]:
        return await standings(
            ledger,
            await ledger.whitelist.all(book),
            required=await _book_approvals_required(ledger),
            cooling_s=settings.manual_whitelist_cooling_s,
            account=book,
        )

    rows = with_ledger(body, settings)
    now = utcnow()
    if json_:
        out.print_json(
            [
                _shown_entry(s.entry)
                | {
                    "approvals_required": s.required,
                    "approved_by": list(s.approved),
                    "waiting_for": s.waiting_for(now),
                }
                for s in rows
            ]
        )
        return
    from rich.table import Table

    table = Table(title=f"whitelist of account {book}")
    columns = ("id", "coin", "network", "address", "tag", "label", "source", "enabled")
    # the travel-rule column only where an entry has a profile: an 80-column terminal
    # would otherwise fold every address
    profiles = any(s.entry.travel_rule_profile is not None for s in rows)
    extra = ("travel rule",) if profiles else ()
    for col in (*columns, "approvals", "waiting for", *extra):
        table.add_column(col, overflow="fold")
    for s in rows:
        e = s.entry
        table.add_row(
            str(e.id),
            e.coin,
            e.network,
            e.address,
            e.address_tag or "",
            e.label,
            e.source,
            "yes" if e.enabled else "no",
            s.approvals,
            s.waiting_for(now),
            *((_profile_summary(e),) if profiles else ()),
        )
    out.console.print(table)


def _profile_summary(entry: WhitelistEntry) -> str:
    """The travel-rule column: the entity and whether first or third party, no names."""
    from treasury.domain.travel_rule import redacted

    if entry.travel_rule_profile is None:
        return ""
    shown = redacted(entry.travel_rule_profile)
    if not isinstance(shown, dict) or not isinstance(shown.get("questionnaire"), dict):
        return "unreadable"
    owner = shown["questionnaire"].get("isAddressOwner")
    party = {1: "first party", 2: "third party"}.get(owner, "?") if isinstance(owner, int) else "?"
    return f"{shown.get('entity')}, {party}"


@whitelist_app.command("show")
def whitelist_show(
    entry_id: int = typer.Argument(..., min=1, max=MAX_ID, help="whitelist entry id"),
) -> None:
    """One address-book entry as JSON, its travel-rule profile redacted (names, city and
    VASP identifier masked)."""
    entry = with_ledger(lambda ledger: ledger.whitelist.get(entry_id))
    out.print_json(_shown_entry(entry))


@whitelist_app.command("profile")
def whitelist_profile(
    entry_id: int = typer.Argument(..., min=1, max=MAX_ID, help="whitelist entry id"),
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="JSON file: the travel-rule questionnaire's answers"
    ),
    entity: str | None = _entity_option(),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
    reason: str = _reason_option(),
) -> None:
    """Set or replace an entry's travel-rule profile. It is a change of the entry: a new
    version, an `edit` in its history (with the profile's sha256, never its contents),
    and, where the policy asks for second persons, approving again before it is used."""
    from treasury.domain.travel_rule import profile_change_note
    from treasury.services.admin import Refused

    actor = actor_of(as_)
    why = reason_of(reason)
    settings = read_settings()
    data = read_json_file(file, "FILE")
    given = None if entity is None else validated(lambda: _entity_name(entity))

    async def body(ledger: Ledger) -> tuple[WhitelistEntry, str]:
        from treasury.domain.travel_rule import make_profile

        entry = await ledger.whitelist.get(entry_id)
        chosen = local_entity_of(settings, entry.account, given)
        if chosen is None:
            raise InvalidField(
                "--entity",
                f"account {entry.account} is under no local entity (TREASURY_LOCAL_ENTITY, "
                "TREASURY_ACCOUNT_<NAME>_LOCAL_ENTITY): say which questionnaire the profile "
                "answers, --entity JP or --entity EU",
            )
        profile = make_profile(chosen, data)  # InvalidField: exit 2, nothing written
        if profile.to_json() == entry.travel_rule_profile:
            return entry, "already has this profile"
        try:
            changed = await ledger.whitelist.set_profile(
                entry_id,
                profile.to_json(),
                version=entry.version,
                actor=actor,
                reason=f"{why} ({profile_change_note(profile)})",
            )
        except ConcurrentChange as exc:
            raise Refused(f"{exc}; nothing was written, try again") from None
        return changed, f"now has a {profile.entity.value} travel-rule profile"

    changed, said = with_ledger(body, settings)
    out.console.print(
        f"whitelist entry {entry_id} (version {changed.version}) {said}", markup=False
    )


def _entity_name(value: str) -> str:
    from treasury.domain.travel_rule import parse_entity

    return parse_entity(value, field_name="--entity").value


async def _book_approvals_required(ledger: Ledger) -> int:
    """The ``address_book_approvals_required`` of the policy in force in the ledger (the
    version the daemon reads; 0 while there is none)."""
    from treasury.services.policy import in_force

    snapshot = await in_force(ledger)
    return 0 if snapshot is None else snapshot.address_book_approvals_required


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


@whitelist_app.command("approve")
def whitelist_approve(
    entry_id: int = _entry_argument(),
    as_: str | None = typer.Option(
        None, "--as", help="your name: never the entry's adder (with --key: optional)"
    ),
    key: Path | None = typer.Option(
        None,
        "--key",
        exists=True,
        dir_okay=False,
        help="your Ed25519 private key (PEM): signs exactly the entry you approve",
    ),
    reason: str | None = typer.Option(None, "--reason", help="why (kept with the approval)"),
) -> None:
    """Approve an address-book entry as a second person (signed with --key once
    operators are registered). An approval is of the entry as it is now: a later change
    of the entry needs approving again."""
    from treasury.cli.operators import approver_of
    from treasury.services.whitelist_approvals import approve

    name, private = approver_of(as_, key)
    why = None if reason is None else reason_of(reason)
    settings = read_settings()

    async def body(ledger: Ledger) -> Standing:
        approver, signature = name, None
        required = await _book_approvals_required(ledger)
        if private is not None:
            from treasury.cli.operators import key_owner, sign
            from treasury.domain.approval_proof import entry_statement
            from treasury.services.admin import Refused

            approver = await key_owner(ledger, private, name)
            try:
                entry = await ledger.whitelist.get(entry_id)
            except NotFound:
                raise Refused(f"whitelist entry {entry_id} not found") from None
            signature = sign(private, entry_statement(entry))
        assert approver is not None
        return await approve(
            ledger,
            entry_id,
            approver=approver,
            signature=signature,
            reason=why,
            required=required,
            cooling_s=settings.manual_whitelist_cooling_s,
        )

    standing = with_ledger(body, settings)
    from treasury.ports.clock import utcnow

    e = standing.entry
    waits = standing.waiting_for(utcnow())
    state = f"waiting for: {waits}" if waits else "usable"
    if not standing.required:
        state += " (the policy requires no approval for it)"
    count = f" ({standing.approvals})" if standing.required else ""
    out.console.print(
        f"whitelist entry {e.id} (version {e.version}): approved by "
        f"{', '.join(standing.approved)}{count}; {state}",
        markup=False,
    )


@whitelist_app.command("history")
def whitelist_history(
    entry_id: int | None = typer.Argument(None, min=1, max=MAX_ID, help="only this entry"),
    account: str | None = typer.Option(
        None, "--account", help="only this account (default: every account)"
    ),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Every change and approval of the address book: who, when, why (whitelist_events,
    whitelist_approvals)."""
    if account is not None:
        validated(lambda: validate_account(account))

    async def body(ledger: Ledger) -> list[dict[str, Any]]:
        events = await ledger.whitelist.history(account=account, entry_id=entry_id)
        approvals = await ledger.whitelist.approvals(account=account, entry_id=entry_id)
        entries = {e.id: e for e in await ledger.whitelist.all(account)}
        approved = []
        for a in approvals:
            e = entries[a.entry_id]
            approved.append(
                {
                    "id": a.id,
                    "entry_id": a.entry_id,
                    "account": e.account,
                    "coin": e.coin,
                    "network": e.network,
                    "address": e.address,
                    "address_tag": e.address_tag,
                    "kind": "approve",
                    "actor": a.approver,
                    "reason": a.reason or "",
                    "version": a.entry_version,
                    "created_at": a.created_at,
                    "signed": a.signature is not None,
                }
            )
        # each list in its own order (by id), the two interleaved by time
        at = operator.itemgetter("created_at")
        return list(heapq.merge([e.__dict__ for e in events], approved, key=at))

    rows = with_ledger(body)
    if json_:
        out.print_json(rows)
        return
    from rich.table import Table

    table = Table(title="whitelist history")
    for col in ("at", "entry", "account", "kind", "destination", "actor", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        dest = f"{r['coin']}/{r['network']} {r['address']}" + (
            f" tag {r['address_tag']}" if r["address_tag"] else ""
        )
        table.add_row(
            f"{r['created_at']:%Y-%m-%d %H:%M:%S}",
            str(r["entry_id"]),
            r["account"],
            r["kind"] + {True: " (signed)", False: " (by name)", None: ""}[r.get("signed")],
            dest,
            r["actor"],
            r["reason"],
        )
    out.console.print(table)
