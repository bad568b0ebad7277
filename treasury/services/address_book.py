"""When the worker may use an address-book entry: what this process saw on the exchange.

The database's ``source`` column says where an entry came from, but whoever can write SQL
can write ``source='exchange'``. So the daemon keeps, per account and in its own memory,
the destinations its latest successful sync found on the exchange's address book, and
trusts an exchange-sourced entry at once only when it is among them; any other entry
cools from its ``created_at`` (``rules.whitelist_usable_from``) and, when the policy asks
for it, waits for second persons to approve its current version
(``rules.whitelist_approvals_needed``). A restarted daemon trusts nothing until its first
sync (which runs before it sends).

``entry_verdict`` is the whole check, made inside the commit-to-send transaction: the
entry, its approvals and the operators' keys are read there, so neither a change of the
entry nor an approval can slip in between the check and the commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from treasury.domain import approval_proof as proof
from treasury.domain import rules
from treasury.domain.decisions import Hold, Pass, Verdict
from treasury.domain.intent import Intent
from treasury.ports.store import IntentUnit, WhitelistEntry

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
    _asked: set[tuple[int, int]] = field(default_factory=set)

    def approvals_needed(self, entry: WhitelistEntry, required: int) -> int:
        """``required`` (the policy's), or 0 for an entry this process saw on the exchange."""
        return rules.whitelist_approvals_needed(
            source=entry.source,
            seen_on_exchange=self.seen.saw(entry.account, entry.key),
            required=required,
        )

    async def awaiting_approval(
        self, entry: WhitelistEntry, reason: str, *, intent_id: int | None = None
    ) -> None:
        """Alert once per entry version that a send waits for its approval: the people
        who can approve would otherwise learn of it only from the intent's reason."""
        if (entry.id, entry.version) in self._asked:
            return
        self._asked.add((entry.id, entry.version))
        log.info("whitelist_approval_needed", entry_id=entry.id, version=entry.version)
        await self.alert("whitelist_approval_needed", f"whitelist {reason}", intent_id)

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


async def entry_verdict(
    unit: IntentUnit,
    trust: Trust,
    intent: Intent,
    entry: WhitelistEntry | None,
    now: datetime,
    *,
    approvals_required: int,
) -> Verdict:
    """May ``intent`` be sent to its destination now, by the address book? Read inside
    ``unit`` (the commit-to-send transaction): the intent's account's entry must exist, be
    enabled, have cooled and, unless the sync saw it on the exchange, be approved in its
    current version by ``approvals_required`` (the policy's) operators other than whoever
    added or changed it. ``entry``: the intent's entry as ``unit`` read it (None: none)."""
    verdict = rules.check_whitelist(
        intent,
        None if entry is None else entry.enabled,
        None if entry is None else await trust.usable_from(entry, intent_id=intent.id),
        now,
    )
    if entry is None or not isinstance(verdict, Pass):
        return verdict
    required = trust.approvals_needed(entry, approvals_required)
    if required == 0:
        return verdict
    added_by = await unit.entry_added_by(entry.id)
    keys = await unit.operator_keys()
    counted = proof.count_entry(
        entry,
        await unit.entry_approvals(entry),
        keys,
        makers=[m for m in (added_by, entry.changed_by) if m],
        passkeys=await unit.passkeys() if keys is not None else None,
    )
    verdict = rules.check_whitelist_approvals(entry.id, required, counted.valid)
    if isinstance(verdict, Hold):
        if counted.ignored:
            log.warning(
                "whitelist_approvals_ignored", entry_id=entry.id, ignored=list(counted.ignored)
            )
        await trust.awaiting_approval(entry, verdict.reason, intent_id=intent.id)
    return verdict
