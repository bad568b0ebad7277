"""When an address-book entry may first be used: the pure verdict, and the worker's
``Trust`` that feeds it (what this process saw on the exchange, alerts once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from treasury.domain.rules import whitelist_usable_from
from treasury.ports.store import WhitelistEntry
from treasury.services.address_book import ExchangeSeen, Trust

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = 86400.0


def usable(**kw: object) -> datetime | None:
    facts: dict[str, object] = {
        "source": "manual",
        "created_at": T0,
        "usable_from": None,
        "seen_on_exchange": False,
        "cooling_s": DAY,
    }
    return whitelist_usable_from(**(facts | kw))  # type: ignore[arg-type]


def test_a_manual_entry_cools_from_its_created_at() -> None:
    assert usable() == T0 + timedelta(days=1)
    assert usable(cooling_s=0) is None


def test_an_earlier_usable_from_cannot_shorten_the_cooling_a_later_one_counts() -> None:
    assert usable(usable_from=T0 - timedelta(days=365)) == T0 + timedelta(days=1)
    assert usable(usable_from=T0 + timedelta(days=3)) == T0 + timedelta(days=3)


def test_an_exchange_row_is_trusted_only_when_seen_on_the_exchange() -> None:
    assert usable(source="exchange", seen_on_exchange=True) is None
    assert usable(source="exchange", seen_on_exchange=False) == T0 + timedelta(days=1)
    # seeing a manual entry's destination on the exchange does not change its cooling
    assert usable(source="manual", seen_on_exchange=True) == T0 + timedelta(days=1)


def entry(source: str, account: str = "default", entry_id: int = 1) -> WhitelistEntry:
    return WhitelistEntry(
        id=entry_id,
        account=account,
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        label="",
        source=source,
        enabled=True,
        usable_from=None,
        created_at=T0,
        updated_at=T0,
        version=1,
        changed_by=None,
        change_reason=None,
    )


async def test_trust_uses_what_this_process_saw_per_account_and_alerts_once() -> None:
    alerts: list[tuple[str, str, int | None]] = []

    async def alert(kind: str, message: str, intent_id: int | None) -> None:
        alerts.append((kind, message, intent_id))

    seen = ExchangeSeen()
    trust = Trust(seen, DAY, alert)
    forged = entry("exchange")
    assert not seen.synced("default")
    assert await trust.usable_from(forged, intent_id=7) == T0 + timedelta(days=1)
    assert await trust.usable_from(forged, intent_id=8) == T0 + timedelta(days=1)
    assert [(k, i) for k, _m, i in alerts] == [("whitelist_unverified", 7)]
    seen.record("sub1", [forged.key])  # another account's list does not vouch for it
    assert await trust.usable_from(forged) == T0 + timedelta(days=1)
    seen.record("default", [forged.key])
    assert seen.synced("default") and await trust.usable_from(forged) is None
    assert len(alerts) == 1
    assert await trust.usable_from(entry("manual")) == T0 + timedelta(days=1)


async def test_a_sync_racing_another_daemons_sync_still_completes() -> None:
    """Two daemons (active and standby) sync at start: the one that finds an entry added
    by the other between its read and its insert does not fail (and still records what it
    saw, so it trusts the entry)."""
    from treasury.domain.exchange import WhitelistAddress
    from treasury.services.whitelist_sync import sync_whitelist
    from treasury.testing import FakeExchange, MemoryLedger

    ledger = MemoryLedger()
    exchange = FakeExchange()
    exchange.whitelist = [
        WhitelistAddress(
            coin="USDT", network="TRX", address="TXyz", address_tag=None, name="", white_status=True
        )
    ]
    await sync_whitelist(exchange, ledger.whitelist, account="default")  # the other daemon

    async def stale(account: str | None = None) -> list[WhitelistEntry]:
        return []  # read before the other daemon's insert

    ledger.whitelist.all = stale  # type: ignore[method-assign]
    seen = ExchangeSeen()
    drift = await sync_whitelist(exchange, ledger.whitelist, account="default", seen=seen)
    assert drift.added == [] and drift.unchanged == 1
    assert seen.saw("default", ("USDT", "TRX", "TXyz", ""))
