"""Commands on withdrawal intents: enqueue, list, show, cancel, resolve, resend, approve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

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
    with_ledger,
)
from treasury.domain.money import format_amount
from treasury.domain.status import Status
from treasury.domain.validation import validate_coin, validate_new_intent
from treasury.ports.store import NotFound

if TYPE_CHECKING:
    from treasury.domain.intent import Intent
    from treasury.ports.store import Ledger
    from treasury.services.approvals import ApprovalResult


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
    wallet: str | None = typer.Option(
        None, help="spot or funding: the wallet to debit (default: the account's, TREASURY_WALLET)"
    ),
    note: str | None = typer.Option(None, help="free text for the audit trail"),
    questionnaire: Path | None = typer.Option(
        None,
        "--questionnaire",
        exists=True,
        dir_okay=False,
        help="JSON file: this withdrawal's own travel-rule questionnaire (replaces the "
        "address-book entry's profile)",
    ),
    as_: str | None = typer.Option(None, "--as", help="operator name for the audit trail"),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Queue a withdrawal. Prints the intent (the existing one for a known --request-id)."""
    from treasury.services import admin

    actor = actor_of(as_)
    answers = None if questionnaire is None else read_json_file(questionnaire, "--questionnaire")
    settings, entity = None, None
    if answers is not None:
        from treasury.config import SettingsError

        settings = read = read_settings()  # the account's local entity decides the form
        try:
            entity = validated(lambda: local_entity_of(read, account, None))
        except SettingsError as exc:
            out.fail(f"configuration: {exc}", EXIT_CONFIG)
    new = validated(
        lambda: validate_new_intent(
            coin=coin,
            network=network,
            address=address,
            amount=amount,
            address_tag=tag,
            account=account,
            request_id=request_id,
            requested_by=actor.removeprefix("cli:"),
            note=note,
            wallet=wallet,
            questionnaire=answers,
            local_entity=entity,
        )
    )
    settings = settings or read_settings()
    served = served_accounts(settings)  # a wrong accounts file is said before anything is written
    intent, created = with_ledger(
        lambda ledger: admin.enqueue(ledger, new, actor=actor), settings=settings
    )
    if intent.account not in served:
        out.warn(
            f"account {intent.account!r} is not configured here (TREASURY_ACCOUNT, "
            "TREASURY_EXTRA_ACCOUNTS, TREASURY_ACCOUNTS_FILE): the intent waits until a "
            "daemon that serves it runs"
        )
    if json_:
        out.print_json({**out.intent_dict(intent), "created": created})
    else:
        said = "new" if created else "already known (same request_id)"
        # what was recorded, as the ledger holds it (1e3 typed is 1000 here)
        tag = f" tag {intent.address_tag}" if intent.address_tag else ""
        what = (
            f"{format_amount(intent.amount)} {intent.coin} ({intent.network}) to "
            f"{intent.address}{tag}"
        )
        out.console.print(
            f"intent {intent.id} {said}: {what}: {intent.status.value} ({intent.status_reason})",
            markup=False,
        )


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
        coin = coin.strip().upper()  # a filter, not a new intent: usdt means USDT
        validated(lambda: validate_coin(coin))

    async def body(ledger: Ledger) -> None:
        intents = await ledger.intents.search(
            statuses=statuses, coin=coin, account=account, limit=limit
        )
        pause = await ledger.state.pause_state()
        accounts = await ledger.state.account_pauses()
        if json_:
            out.print_json(
                {
                    "paused": pause.paused,
                    "pause_reason": pause.reason or None,
                    "paused_accounts": {a: p.reason for a, p in accounts.items()},
                    "intents": [out.intent_dict(i) for i in intents],
                }
            )
            return
        if pause.paused:
            out.console.print(
                f"[bold red]PAUSED[/] since {pause.at:%Y-%m-%d %H:%M:%S} UTC by {pause.by}: "
                f"{pause.reason} — no withdrawal is sent until `treasury resume`"
            )
        for name, p in sorted(accounts.items()):
            out.console.print(
                f"[bold red]ACCOUNT {name} PAUSED[/] since "
                f"{p.at:%Y-%m-%d %H:%M:%S} UTC by {p.by}: ",
                end="",
            )
            out.console.print(p.reason, markup=False)
        out.console.print(out.intents_table(intents))

    with_ledger(body)


@app.command()
def show(
    ref: str = typer.Argument(..., metavar="INTENT", help="intent id, or its request_id"),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show one intent and its full event history."""

    async def body(ledger: Ledger) -> None:
        intent = await _find(ledger, ref)
        events = await ledger.intents.events(intent.id)
        if json_:
            out.print_json(
                {**out.intent_dict(intent), "events": [out.event_dict(e) for e in events]}
            )
            return
        for key, value in out.intent_dict(intent).items():
            shown = out.amount_text(value) if key in ("amount", "fee", "exchange_amount") else value
            if isinstance(value, dict):  # the questionnaire, redacted: as JSON, keys sorted
                shown = json.dumps(value, sort_keys=True, ensure_ascii=False)
            if key == "wallet" and value is None:
                shown = (
                    "(the account's default, fixed when sent)"
                    if intent.withdraw_order_id is None
                    else "(not recorded: sent before wallets were tracked)"
                )
            out.console.print(f"{key:>22}: {'' if shown is None else shown}", markup=False)
        out.console.print(out.events_table(events))

    with_ledger(body)


async def _find(ledger: Ledger, ref: str) -> Intent:
    """An intent by id (digits), else by request_id, as the bots' API finds them."""
    ref = ref.strip()
    if ref.isascii() and ref.isdigit() and 1 <= int(ref) <= MAX_ID:
        try:
            return await ledger.intents.get(int(ref))
        except NotFound:
            pass  # a request_id may be all digits too
    try:
        return await ledger.intents.get_by_request_id(ref)
    except NotFound:
        what = f"{ref} (as an id or a request_id)" if ref.isdigit() else f"with request_id {ref!r}"
        raise NotFound(f"intent {what}") from None


@app.command()
def cancel(
    intent_id: int = typer.Argument(..., min=1, max=MAX_ID, help="intent id"),
    reason: str = typer.Option("cancelled by operator", help="why"),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Cancel an intent that has not been submitted yet."""
    from treasury.services import admin

    actor = actor_of(as_)
    why = reason_of(reason, default="cancelled by operator")
    intent = with_ledger(lambda ledger: admin.cancel(ledger, intent_id, actor=actor, reason=why))
    out.console.print(f"intent {intent.id} cancelled")


@app.command()
def resolve(
    intent_id: int = typer.Argument(
        ..., min=1, max=MAX_ID, help="intent id (status needs_attention)"
    ),
    outcome: str = typer.Option(..., help="completed | failed | submitted | requeue | cancelled"),
    reason: str = typer.Option(..., help="what you checked and why you decide this"),
    exchange_id: str | None = typer.Option(None, help="the exchange's withdrawal id"),
    tx_id: str | None = typer.Option(None, help="on-chain transaction id"),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Settle an intent in needs_attention by a person's decision."""
    from treasury.services import admin

    actor = actor_of(as_)
    why = reason_of(reason)
    intent = with_ledger(
        lambda ledger: admin.resolve(
            ledger,
            intent_id,
            outcome=outcome,
            actor=actor,
            reason=why,
            exchange_id=exchange_id,
            tx_id=tx_id,
        )
    )
    out.console.print(f"intent {intent.id} is now {intent.status.value}")


@app.command()
def resend(
    intent_id: int = typer.Argument(
        ..., min=1, max=MAX_ID, help="intent id (needs_attention, proven absent)"
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
    from treasury.services import admin

    actor = actor_of(as_)
    why = reason_of(reason)
    intent = with_ledger(lambda ledger: admin.resend(ledger, intent_id, actor=actor, reason=why))
    out.console.print(
        f"intent {intent.id} is queued again; it will be sent as "
        f"{intent.withdraw_order_id} after one more look-up"
    )


@app.command()
def approve(
    intent_id: int = typer.Argument(..., help="intent id (status awaiting_approval)"),
    as_: str | None = typer.Option(
        None, "--as", help="your name: recorded, and never the requester (with --key: optional)"
    ),
    key: Path | None = typer.Option(
        None,
        "--key",
        exists=True,
        dir_okay=False,
        help="your Ed25519 private key (PEM): signs exactly what you approve",
    ),
) -> None:
    """Approve an intent that policy holds for approval (signed with --key once operators
    are registered: treasury operator add). The quorum is the ledger's policy in force."""
    from treasury.cli.operators import approver_of
    from treasury.services.approvals import approve as record

    name, private = approver_of(as_, key)
    settings = read_settings()

    async def body(ledger: Ledger) -> ApprovalResult:
        approver, signature = name, None
        if private is not None:
            approver, signature = await _sign(ledger, intent_id, private, name)
        assert approver is not None
        return await record(ledger, intent_id, approver=approver, signature=signature)

    result = with_ledger(body, settings)
    state = (
        "released to the worker"
        if result.released
        else f"{result.required - len(result.approvers)} more approval(s) needed"
    )
    out.console.print(
        f"intent {intent_id}: approved by {', '.join(result.approvers)}; {state} "
        f"(policy v{result.policy_version})"
    )


async def _sign(
    ledger: Ledger, intent_id: int, private: object, name: str | None
) -> tuple[str, str]:
    """(the operator whose key this is, their signature over the intent's statement)."""
    from treasury.cli.operators import key_owner, sign
    from treasury.domain.approval_proof import statement

    operator = await key_owner(ledger, private, name)
    intent = await ledger.intents.get(intent_id)
    return operator, sign(private, statement(intent))
