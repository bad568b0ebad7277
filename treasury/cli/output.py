"""How the CLI shows things: rich tables for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table

from treasury.domain.intent import EventRecord, Intent
from treasury.domain.money import format_amount
from treasury.domain.travel_rule import redacted
from treasury.logs import scrub_text

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


_PERSONAL = frozenset({"questionnaire", "travel_rule_profile"})


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_amount(value) if value != 0 else "0"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # the travel rule's answers are personal data: never printed whole
        return {
            k: redacted(v) if k in _PERSONAL and v is not None else v
            for k, v in dataclasses.asdict(value).items()
        }
    raise TypeError(f"cannot encode {type(value).__name__}")


def to_json(value: Any) -> str:
    return json.dumps(value, default=_default, indent=2, sort_keys=False)


def print_json(value: Any) -> None:
    sys.stdout.write(to_json(value) + "\n")


def intent_dict(intent: Intent) -> dict[str, Any]:
    return {
        "id": intent.id,
        "status": intent.status.value,
        "status_reason": intent.status_reason,
        "coin": intent.coin,
        "network": intent.network,
        "address": intent.address,
        "address_tag": intent.address_tag,
        "amount": intent.amount,
        "account": intent.account,
        "wallet": None if intent.wallet is None else intent.wallet.value,
        # personal data: the coded answers only (travel_rule.redacted)
        "questionnaire": None if intent.questionnaire is None else redacted(intent.questionnaire),
        "request_id": intent.request_id,
        "requested_by": intent.requested_by,
        "note": intent.note,
        "withdraw_order_id": intent.withdraw_order_id,
        "exchange_withdraw_id": intent.exchange_withdraw_id,
        "exchange_tr_id": intent.exchange_tr_id,
        "tx_id": intent.tx_id,
        "fee": intent.fee,
        "exchange_amount": intent.exchange_amount,
        "created_at": intent.created_at,
        "updated_at": intent.updated_at,
    }


def event_dict(event: EventRecord) -> dict[str, Any]:
    return dataclasses.asdict(event)


def amount_text(value: Decimal | None) -> str:
    return "" if value is None else format_amount(value)


def intents_table(intents: list[Intent], *, title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    for col in ("id", "status", "coin", "network", "amount", "address", "account", "reason"):
        table.add_column(col, overflow="fold")
    for i in intents:
        address = i.address + (f" ({i.address_tag})" if i.address_tag else "")
        table.add_row(
            str(i.id),
            i.status.value,
            i.coin,
            i.network,
            amount_text(i.amount),
            address,
            i.account,
            i.status_reason or "",
        )
    return table


def events_table(events: list[EventRecord]) -> Table:
    table = Table(title="history")
    for col in ("when (UTC)", "from", "to", "kind", "actor", "reason"):
        table.add_column(col, overflow="fold")
    for e in events:
        table.add_row(
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.from_status or "-",
            e.to_status,
            e.kind,
            e.actor,
            e.reason,
        )
    return table


def warn(message: str) -> None:
    err_console.print(f"warning: {scrub_text(message)}", markup=False)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"error: {scrub_text(message)}", markup=False)
    raise SystemExit(code)
