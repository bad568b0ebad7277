"""When the worker may use an address-book entry: what this process saw on the exchange.

The database's ``source`` column says where an entry came from, but whoever can write SQL
can write ``source='exchange'``. So the daemon keeps, per account and in its own memory,
the destinations its latest successful sync found on the exchange's address book, and
trusts an exchange-sourced entry at once only when it is among them; any other entry
cools from its ``created_at`` (``rules.whitelist_usable_from``). A restarted daemon trusts
nothing until its first sync (which runs before it sends).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from treasury.domain import rules
from treasury.ports.store import WhitelistEntry

log = structlog.get_logger("treasury.worker")
Key = tuple[str, str, str, str]
# the worker's alert (``treasury.services.context.Alert``): kind, message, intent id
Alert = Callable[[str, str, int | None], Awaitable[None]]


async def _no_alert(_kind: str, _message: str, _intent_id: int | None) -> None:
    return None


class ExchangeSeen:
    """Per account, the destinations the latest successful sync found on the exchange."""

    def __init__(self) -> None:
        self._seen: dict[str, frozenset[Key]] = {}

    def record(self, account: str, keys: Iterable[Key]) -> None:
        self._seen[account] = frozenset(keys)

    def synced(self, account: str) -> bool:
        return account in self._seen

    def saw(self, account: str, key: Key) -> bool:
        return key in self._seen.get(account, frozenset())


@dataclass
class Trust:
    """The inputs of the cooling verdict that are not in the entry's row."""

    seen: ExchangeSeen
    cooling_s: float
    alert: Alert = _no_alert
    _warned: set[int] = field(default_factory=set)

    async def usable_from(
        self, entry: WhitelistEntry, *, intent_id: int | None = None
    ) -> datetime | None:
        seen = self.seen.saw(entry.account, entry.key)
        if entry.source == "exchange" and not seen and entry.id not in self._warned:
            self._warned.add(entry.id)
            what = " ".join(k for k in entry.key if k)
            message = (
                f"whitelist entry {entry.id} ({entry.account}: {what}) says source=exchange, "
                "but this daemon's sync has not seen it on the exchange's address book: "
                "it is treated as added by hand (it cools)"
            )
            log.warning(
                "whitelist_unverified",
                entry_id=entry.id,
                account=entry.account,
                synced=self.seen.synced(entry.account),
            )
            await self.alert("whitelist_unverified", message, intent_id)
        return rules.whitelist_usable_from(
            source=entry.source,
            created_at=entry.created_at,
            usable_from=entry.usable_from,
            seen_on_exchange=seen,
            cooling_s=self.cooling_s,
        )
