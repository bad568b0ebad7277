"""``treasury token``: the HTTP API's clients and their bearer tokens.

    treasury token create pay-bot --scopes enqueue,read --as alice --reason "payouts"
    treasury token list
    treasury token revoke pay-bot --reason "key leaked" --as alice

``create`` prints the token once; the ledger keeps its sha256 only. Both changes are
audited in ``service_events``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from treasury.cli import output as out
from treasury.cli.common import EXIT_REFUSED, actor_of, app, reason_of, validated, with_ledger
from treasury.domain.api_token import ApiClient, parse_accounts, parse_scopes, validate_name

if TYPE_CHECKING:
    from treasury.adapters.db.tokens import TokenStore
    from treasury.ports.store import Ledger

token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens of the HTTP API's clients.")
app.add_typer(token_app, name="token")


def _store(ledger: Ledger) -> TokenStore:
    from treasury.adapters.db.ledger import SqlLedger
    from treasury.adapters.db.tokens import TokenStore

    assert isinstance(ledger, SqlLedger)
    return TokenStore(ledger.engine)


def client_dict(client: ApiClient) -> dict[str, object]:
    return {
        "name": client.name,
        "scopes": sorted(client.scopes),
        "accounts": None if client.accounts is None else sorted(client.accounts),
        "created_by": client.created_by,
        "created_at": client.created_at,
        "revoked_by": client.revoked_by,
        "revoked_at": client.revoked_at,
        "revoked_reason": client.revoked_reason,
    }


@token_app.command("create")
def create(
    name: str = typer.Argument(..., help="the client's name (requested_by api:NAME)"),
    scopes: str = typer.Option(..., help="comma-separated: enqueue, read, cancel"),
    accounts: str | None = typer.Option(
        None, help="comma-separated accounts the client may see and use (default: all)"
    ),
    reason: str = typer.Option("", help="why (kept in the audit trail)"),
    as_: str | None = typer.Option(None, "--as", help="operator name for the audit trail"),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Create a client and print its token, once (only its sha256 is stored)."""
    from treasury.ports.store import DuplicateEntry

    actor = actor_of(as_)
    validated(lambda: validate_name(name))
    wanted = validated(lambda: parse_scopes(scopes))
    where = validated(lambda: parse_accounts(accounts))
    why = reason_of(reason, default="API client created")

    async def body(ledger: Ledger) -> tuple[str, ApiClient] | str:
        try:
            return await _store(ledger).create(
                name, scopes=wanted, accounts=where, actor=actor, reason=why
            )
        except DuplicateEntry as exc:
            return str(exc)

    made = with_ledger(body)
    if isinstance(made, str):
        out.fail(made, EXIT_REFUSED)
    token, client = made
    if json_:
        out.print_json({**client_dict(client), "token": token})
        return
    out.console.print(
        f"API client {client.name} created (scopes {','.join(sorted(client.scopes))}). "
        "Its token, shown only now:",
        markup=False,
    )
    out.console.print(token, markup=False, soft_wrap=True)


@token_app.command("list")
def list_(json_: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """The API's clients (never their tokens)."""

    async def body(ledger: Ledger) -> list[ApiClient]:
        return await _store(ledger).all()

    clients = with_ledger(body)
    if json_:
        out.print_json([client_dict(c) for c in clients])
        return
    for c in clients:
        state = (
            f"revoked {c.revoked_at:%Y-%m-%d %H:%M} by {c.revoked_by}" if c.revoked_at else "active"
        )
        where = "all accounts" if c.accounts is None else ",".join(sorted(c.accounts))
        out.console.print(
            f"{c.name}: {','.join(sorted(c.scopes))} on {where}; created by {c.created_by}; "
            f"{state}",
            markup=False,
        )
    if not clients:
        out.console.print("no API clients (treasury token create)")


@token_app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="the client's name"),
    reason: str = typer.Option(..., help="why (kept in the audit trail)"),
    as_: str | None = typer.Option(None, "--as", help="operator name for the audit trail"),
) -> None:
    """Revoke a client's token at once (its name is never reused)."""
    actor = actor_of(as_)
    why = reason_of(reason)

    async def body(ledger: Ledger) -> ApiClient:
        return await _store(ledger).revoke(name, actor=actor, reason=why)

    client = with_ledger(body)
    out.console.print(f"API client {client.name} revoked", markup=False)
