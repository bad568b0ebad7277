"""Reconcile one account's address book with the exchange's address list.

Added on the exchange → added here (source ``exchange``). Gone from the exchange →
disabled here (never deleted), and a drift report says so. Manual entries are left
alone. Every change goes through the audited path (actor ``sync:<account>`` unless
given, a reason saying what the exchange showed), so it is in ``whitelist_events``;
the set of destinations found is remembered in ``seen`` (this process's own record of
what the exchange lists, which decides whether an exchange-sourced entry is trusted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from treasury.ports.exchange import Exchange
from treasury.ports.store import AddressBook, DuplicateEntry, EventLog
from treasury.services.address_book import ExchangeSeen

Key = tuple[str, str, str, str]
ON_EXCHANGE = "on the exchange's address book"
BACK_ON_EXCHANGE = "back on the exchange's address book"
OFF_EXCHANGE = "no longer on the exchange's address book"


@dataclass
class Drift:
    added: list[Key] = field(default_factory=list)
    disabled: list[Key] = field(default_factory=list)
    reenabled: list[Key] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.disabled or self.reenabled)


def sync_actor(account: str) -> str:
    return f"sync:{account}"


async def sync_whitelist(
    exchange: Exchange,
    repo: AddressBook,
    events: EventLog | None = None,
    *,
    account: str,
    seen: ExchangeSeen | None = None,
    actor: str | None = None,
) -> Drift:
    """``exchange`` is ``account``'s client; only that account's entries change."""
    actor = actor or sync_actor(account)
    remote = {
        (a.coin, a.network, a.address, a.address_tag or ""): a
        for a in await exchange.whitelist_addresses()
        if a.white_status
    }
    local = {e.key: e for e in await repo.all(account)}
    drift = Drift()
    for key, addr in remote.items():
        entry = local.get(key)
        if entry is None:
            try:
                await repo.add(
                    account=account,
                    coin=addr.coin,
                    network=addr.network,
                    address=addr.address,
                    address_tag=addr.address_tag or None,
                    label=addr.name,
                    source="exchange",
                    actor=actor,
                    reason=ON_EXCHANGE,
                )
            except DuplicateEntry:  # another daemon's sync (a standby's) added it just now
                drift.unchanged += 1
                continue
            drift.added.append(key)
        elif not entry.enabled and entry.source == "exchange":
            await repo.set_enabled(
                entry.id, True, actor=actor, reason=BACK_ON_EXCHANGE, label=addr.name
            )
            drift.reenabled.append(key)
        else:
            drift.unchanged += 1
    for key, entry in local.items():
        if key not in remote and entry.source == "exchange" and entry.enabled:
            await repo.set_enabled(entry.id, False, actor=actor, reason=OFF_EXCHANGE)
            drift.disabled.append(key)
    if seen is not None:
        seen.record(account, remote)  # only once every change above is written
    if events is not None:
        for kind, keys in (
            ("whitelist_added", drift.added),
            ("whitelist_disabled", drift.disabled),
            ("whitelist_reenabled", drift.reenabled),
        ):
            for key in keys:
                what = " ".join(k for k in key if k)
                verb = {
                    "whitelist_added": "added from",
                    "whitelist_disabled": "disabled: no longer on",
                    "whitelist_reenabled": "re-enabled: back on",
                }
                await events.record(
                    kind,
                    f"{account}: {what} {verb[kind]} the exchange's list",
                    actor=actor,
                    subject=what,
                )
    return drift
