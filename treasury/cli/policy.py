"""``treasury policy``: the withdrawal policy in the ledger, one version at a time.

    treasury policy apply policy.toml --as alice --reason "raise the USDT cap"   # diff, confirm
    treasury policy approve 4 --as bob      # when the version in force needs a second person
    treasury policy show [--version 3]
    treasury policy history

Every daemon, standby and ``treasury approve`` reads the version in force from the ledger;
``TREASURY_POLICY_FILE`` only seeds an empty ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from treasury.cli import output as out
from treasury.cli.common import (
    EXIT_BAD_INPUT,
    MAX_ID,
    actor_of,
    app,
    read_settings,
    reason_of,
    with_ledger,
)

if TYPE_CHECKING:
    from treasury.ports.store import Ledger, PolicyVersion
    from treasury.services.policy import Proposal

policy_app = typer.Typer(
    no_args_is_help=True, help="The withdrawal policy, versioned in the ledger."
)
app.add_typer(policy_app, name="policy")


@policy_app.command("apply")
def apply_(
    file: Path = typer.Argument(..., help="the policy, TOML (see docs/policy.example.toml)"),
    as_: str = typer.Option(..., "--as", help="your name, recorded as the applier"),
    reason: str = typer.Option(..., "--reason", help="why the policy changes (recorded)"),
    yes: bool = typer.Option(False, "--yes", help="apply without asking after the diff"),
) -> None:
    """Validate FILE, show what it changes, and make it the next version (in force, or
    pending a second person when the version in force says so)."""
    from treasury.policy_file import PolicyError, parse_policy, read_policy_text
    from treasury.services import policy as service

    actor = actor_of(as_)
    why = reason_of(reason)
    try:  # the file first: a mistake in it is named before the ledger is opened
        text = read_policy_text(file)
        parse_policy(text, source=str(file))
    except PolicyError as exc:
        out.fail(f"policy: {exc}", EXIT_BAD_INPUT)
    settings = read_settings()

    async def preview(ledger: Ledger) -> Proposal:
        return await service.propose(ledger, text, source=str(file))

    proposal = with_ledger(preview, settings)
    since = "no policy yet" if proposal.current is None else f"v{proposal.current.version}"
    out.console.print(f"changes from {since}:", markup=False)
    for line in proposal.changes:
        out.console.print(f"  {line}", markup=False)
    if proposal.needs_approval:
        out.console.print(
            "the policy in force needs a second person for changes: this version will be "
            "pending until someone else approves it",
            markup=False,
        )
    if not yes and not typer.confirm("apply?", default=False):
        out.fail("not applied", EXIT_BAD_INPUT)

    async def write(ledger: Ledger) -> PolicyVersion:
        return await service.apply(ledger, proposal, actor=actor, reason=why)

    row = with_ledger(write, settings)
    if row.status == "pending":
        out.console.print(
            f"policy v{row.version} is pending: someone other than you approves it with "
            f"`treasury policy approve {row.version} --as NAME`",
            markup=False,
        )
    else:
        out.console.print(f"policy v{row.version} is in force (sha256 {row.sha256})", markup=False)


@policy_app.command("approve")
def approve(
    version: int = typer.Argument(..., min=1, max=MAX_ID, help="the pending version"),
    as_: str | None = typer.Option(None, "--as", help="your name: never the applier's"),
    key: Path | None = typer.Option(
        None,
        "--key",
        exists=True,
        dir_okay=False,
        help="your Ed25519 private key (PEM): signs exactly the version you approve",
    ),
) -> None:
    """Put a pending version in force, as the second person (signed with --key once
    operators are registered)."""
    from treasury.cli.operators import approver_of
    from treasury.services import policy as service

    name, private = approver_of(as_, key)

    async def body(ledger: Ledger) -> PolicyVersion:
        actor, signature = None if name is None else f"cli:{name}", None
        if private is not None:
            from treasury.cli.operators import key_owner, sign
            from treasury.domain.approval_proof import policy_statement

            actor = f"cli:{await key_owner(ledger, private, name)}"
            row = await ledger.policies.get(version)
            signature = sign(private, policy_statement(row.version, row.sha256))
        assert actor is not None
        return await service.approve(ledger, version, actor=actor, signature=signature)

    row = with_ledger(body)
    signed = " (signed)" if key is not None else ""
    out.console.print(
        f"policy v{row.version} is in force: applied by {row.applied_by}, approved by "
        f"{row.approved_by}{signed}",
        markup=False,
    )


@policy_app.command("show")
def show(
    version: int | None = typer.Option(
        None, "--version", min=1, max=MAX_ID, help="this version (default: the one in force)"
    ),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Print a version of the policy (the one in force by default) and who made it."""

    async def body(ledger: Ledger) -> PolicyVersion | None:
        if version is None:
            from treasury.services.policy import in_force_version

            return await in_force_version(ledger)
        return await ledger.policies.get(version)

    row = with_ledger(body)
    if row is None:
        out.fail(
            "the ledger has no policy yet: treasury policy apply FILE (or set "
            "TREASURY_POLICY_FILE and start the daemon)",
            1,
        )
    if json_:
        out.print_json(_version_dict(row))
        return
    for key, value in _version_dict(row).items():
        if key != "document":
            out.console.print(f"# {key}: {'' if value is None else value}", markup=False)
    out.console.print(row.document, markup=False, end="")


@policy_app.command("history")
def history(
    limit: int = typer.Option(100, min=1, max=10000, help="at most this many, newest first"),
    json_: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Every version, newest first: status, who applied and approved it, and why."""
    from rich.table import Table

    rows = with_ledger(lambda ledger: ledger.policies.history(limit))
    if json_:
        out.print_json(
            [{k: v for k, v in _version_dict(r).items() if k != "document"} for r in rows]
        )
        return
    table = Table(title="policy versions")
    for col in ("version", "status", "applied (UTC)", "applied by", "approved by", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            str(r.version),
            r.status,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.applied_by,
            r.approved_by or "-",
            r.reason,
        )
    out.console.print(table)


def _version_dict(row: PolicyVersion) -> dict[str, object]:
    return {
        "version": row.version,
        "status": row.status,
        "sha256": row.sha256,
        "applied_by": row.applied_by,
        "reason": row.reason,
        "created_at": row.created_at,
        "approved_by": row.approved_by,
        "activated_at": row.activated_at,
        "document": row.document,
    }
