"""webhook add / list / remove / deliveries / run: subscriptions to the outbox
(migration 0016) and the runner that delivers them."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from treasury.cli import output as out
from treasury.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CONFIG,
    MAX_ID,
    actor_of,
    app,
    read_settings,
    reason_of,
    run,
    validated,
    with_ledger,
)
from treasury.config import SettingsError

if TYPE_CHECKING:
    from treasury.adapters.db.webhooks import SqlWebhooks
    from treasury.ports.store import Ledger

webhook_app = typer.Typer(
    no_args_is_help=True, help="Webhook subscriptions: intent status changes and alerts."
)
app.add_typer(webhook_app, name="webhook")

STATUSES = ("pending", "delivered", "failed")


def _store(ledger: Ledger) -> SqlWebhooks:
    from treasury.adapters.db.ledger import SqlLedger
    from treasury.adapters.db.webhooks import SqlWebhooks

    assert isinstance(ledger, SqlLedger)
    return SqlWebhooks(ledger.engine)


def _id(value: int, option: str) -> int:
    if not 1 <= value <= MAX_ID:
        out.fail(f"{option}: give a subscription id from 1 to {MAX_ID}", EXIT_BAD_INPUT)
    return value


@webhook_app.command("add")
def add(
    url: str = typer.Argument(..., help="https URL (http only to a loopback address)"),
    events: str = typer.Option(
        "intent.status,alert", "--events", help="topics: intent.status, alert (comma-separated)"
    ),
    reason: str = typer.Option("", "--reason", help="why (recorded)"),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Subscribe a URL; prints its signing secret once (derived, never stored)."""
    from treasury.domain import webhooks as hooks

    actor = actor_of(as_)
    checked = validated(lambda: hooks.validate_url(url))
    topics = validated(lambda: hooks.parse_events(events))
    why = reason_of(reason, default="subscribed")
    settings = read_settings()
    try:
        key = settings.require_webhook_key()
    except SettingsError as exc:
        out.fail(f"configuration: {exc}", EXIT_CONFIG)
    new_id = with_ledger(
        lambda ledger: _store(ledger).add(url=checked, topics=topics, actor=actor, reason=why),
        settings,
    )
    out.console.print(f"webhook subscription {new_id} added ({', '.join(topics)})")
    out.console.print(
        "signing secret (shown this once; derived from TREASURY_WEBHOOK_KEY, "
        f"never stored): {hooks.derive_secret(key, new_id)}"
    )


@webhook_app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="removed subscriptions too"),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
) -> None:
    """The subscriptions (never their secrets)."""
    subs = with_ledger(lambda ledger: _store(ledger).subscriptions(include_disabled=all_))
    rows = [
        {**dataclasses.asdict(s), "url": "(TREASURY_ALERT_WEBHOOK_URL)" if s.builtin else s.url}
        for s in subs
    ]
    if as_json:
        out.print_json(rows)
        return
    table = Table("id", "url", "events", "by", "created", "removed")
    for r in rows:
        removed = "" if r["disabled_at"] is None else f"{r['disabled_at']:%Y-%m-%d %H:%M} "
        if r["disabled_at"] is not None:
            removed += f"by {r['disabled_by']}: {r['disabled_reason']}"
        table.add_row(
            str(r["id"]),
            r["url"],
            ",".join(r["topics"]),
            r["created_by"],
            f"{r['created_at']:%Y-%m-%d %H:%M}",
            removed,
        )
    out.console.print(table)


@webhook_app.command("remove")
def remove(
    subscription_id: int = typer.Argument(..., help="the subscription's id"),
    reason: str = typer.Option(..., "--reason", help="why (recorded)"),
    as_: str | None = typer.Option(None, "--as", help="operator name"),
) -> None:
    """Stop a subscription; its pending deliveries end failed."""
    actor = actor_of(as_)
    sid = _id(subscription_id, "ID")
    why = reason_of(reason)
    with_ledger(lambda ledger: _store(ledger).remove(sid, actor=actor, reason=why))
    out.console.print(f"webhook subscription {sid} removed")


@webhook_app.command("deliveries")
def deliveries(
    subscription: int | None = typer.Option(None, "--subscription", help="only this one"),
    status: str | None = typer.Option(None, "--status", help="pending, delivered or failed"),
    limit: int = typer.Option(100, "--limit", min=1, max=10000, help="newest first, at most"),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
) -> None:
    """Deliveries, newest first: status, attempts, the last error and status code."""
    if status is not None and status not in STATUSES:
        out.fail(f"--status: give one of {', '.join(STATUSES)}", EXIT_BAD_INPUT)
    sub = None if subscription is None else _id(subscription, "--subscription")
    found = with_ledger(
        lambda ledger: _store(ledger).deliveries(subscription_id=sub, status=status, limit=limit)
    )
    rows: list[dict[str, Any]] = [
        {
            k: v
            for k, v in dataclasses.asdict(d).items()
            if k not in ("topic", "payload", "outbox_created_at", "url", "builtin", "id")
        }
        for d in found
    ]
    if as_json:
        out.print_json(rows)
        return
    table = Table("delivery", "sub", "status", "attempts", "code", "last error", "next / done")
    for r in rows:
        when = r["delivered_at"] if r["status"] == "delivered" else r["next_attempt_at"]
        table.add_row(
            r["delivery_id"],
            str(r["subscription_id"]),
            r["status"],
            str(r["attempts"]),
            "" if r["last_status_code"] is None else str(r["last_status_code"]),
            r["last_error"] or "",
            "" if r["status"] == "failed" else f"{when:%Y-%m-%d %H:%M:%S}",
        )
    out.console.print(table)


@webhook_app.command("run")
def run_() -> None:
    """Deliver webhooks (and the alert channel's alerts) until SIGTERM/SIGINT, apart from
    `treasury run` (which runs the same runner itself)."""
    import signal

    import anyio
    import structlog

    from treasury.cli.common import _open_ledger
    from treasury.logs import configure
    from treasury.runtime import webhooks as ops_webhooks

    settings = read_settings()
    configure(fmt=settings.log_format, level=settings.log_level)
    log = structlog.get_logger("treasury.webhooks")

    async def main() -> None:
        async with (
            _open_ledger(settings) as ledger,
            ops_webhooks.webhook_runner(settings, ledger.engine) as runner,
        ):
            await ops_webhooks.prepare(runner)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with anyio.create_task_group() as tg:
                    await tg.start(runner.run)
                    async for signum in signals:
                        log.info("shutdown.requested", signal=signal.Signals(signum).name)
                        tg.cancel_scope.cancel()
                        break
        log.info("webhooks.runner_stopped")

    run(main)
