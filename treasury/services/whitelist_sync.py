"""Reconcile the local whitelist mirror with the exchange's address list.

Added on the exchange → added here (source ``exchange``). Gone from the exchange →
disabled here (never silently deleted), and a drift report says so. Manual entries
are left alone unless the exchange lists the same destination, which then adopts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from treasury.ports.exchange import Exchange
from treasury.ports.store import AddressBook, EventLog

Key = tuple[str, str, str, str]


@dataclass
class Drift:
    added: list[Key] = field(default_factory=list)
    disabled: list[Key] = field(default_factory=list)
    reenabled: list[Key] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.disabled or self.reenabled)


async def sync_whitelist(
    exchange: Exchange,
    repo: AddressBook,
    events: EventLog | None = None,
    *,
    actor: str = "whitelist-sync",
) -> Drift:
    remote = {
        (a.coin, a.network, a.address, a.address_tag or ""): a
        for a in await exchange.whitelist_addresses()
        if a.white_status
    }
    local = {e.key: e for e in await repo.all()}
    drift = Drift()
    for key, addr in remote.items():
        entry = local.get(key)
        if entry is None:
            await repo.add(
                coin=addr.coin,
                network=addr.network,
                address=addr.address,
                address_tag=addr.address_tag or None,
                label=addr.name,
                source="exchange",
            )
            drift.added.append(key)
        elif not entry.enabled and entry.source == "exchange":
            await repo.set_enabled(entry.id, True, label=addr.name)
            drift.reenabled.append(key)
        else:
            drift.unchanged += 1
    for key, entry in local.items():
        if key not in remote and entry.source == "exchange" and entry.enabled:
            await repo.set_enabled(entry.id, False)
            drift.disabled.append(key)
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
                    kind, f"{what} {verb[kind]} the exchange's list", actor=actor, subject=what
                )
    return drift
