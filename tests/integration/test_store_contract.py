"""One contract for the ledger's stores, run against memory, SQLite and PostgreSQL alike.

What the services rely on, stated once: ``treasury.testing.MemoryLedger`` must behave as
the SQL adapter does, or the services' fast tests on the fakes prove nothing. Time: the
memory ledger runs on a ``ManualClock`` that ``pass_time`` moves; on SQL it really passes
(short TTLs), since PostgreSQL judges leases by its own clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import pytest

from treasury.domain.errors import IllegalTransition
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.ids import NAMESPACE_RE
from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.domain.validation import NewIntent, validate_new_intent
from treasury.ports.clock import utcnow
from treasury.ports.store import (
    Change,
    ConcurrentChange,
    DuplicateEntry,
    IdempotencyConflict,
    Ledger,
    NotFound,
)
from treasury.testing import ManualClock, MemoryLedger

S = Status
# Every test takes ``store``; ``db_url`` (an empty database per test) is tests/conftest.py's.
pytestmark = pytest.mark.parametrize(
    ("backend", "db_url"),
    [
        pytest.param("memory", "sqlite", id="memory"),  # db_url is unused there (a path only)
        pytest.param("sqlite", "sqlite", id="sqlite"),
        pytest.param("postgres", "postgres", id="postgres", marks=pytest.mark.postgres),
    ],
    indirect=True,
)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Store:
    ledger: Ledger
    clock: ManualClock | None  # memory only

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else utcnow()

    async def pass_time(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await anyio.sleep(seconds)


@pytest.fixture
async def store(backend: str, db_url: str) -> AsyncIterator[Store]:
    if backend == "memory":
        clock = ManualClock(datetime.now(UTC))
        yield Store(MemoryLedger(clock=clock), clock)
        return
    from treasury.adapters.db import migrate
    from treasury.adapters.db.engine import create_engine
    from treasury.adapters.db.ledger import SqlLedger

    await migrate.upgrade(db_url)  # what conftest's migrated_url does
    engine = create_engine(db_url)
    try:
        yield Store(SqlLedger.over(engine), None)
    finally:
        await engine.dispose()


def new(amount: str = "10", *, request_id: str | None = None, **kw: Any) -> NewIntent:
    fields = {"coin": "USDT", "network": "TRX", "address": "TXyz", **kw}
    return validate_new_intent(amount=amount, request_id=request_id, **fields)


async def enqueue(store: Store, amount: str = "10", **kw: Any) -> Intent:
    intent, created = await store.ledger.intents.enqueue(new(amount, **kw), actor="test")
    assert created
    return intent


async def submitting(store: Store, intent: Intent, oid: str | None = None, **fields: Any) -> Intent:
    return await store.ledger.intents.transition(
        intent.id,
        S.SUBMITTING,
        reason="committed",
        actor="test",
        fields={
            "withdraw_order_id": oid or f"trs-test-{intent.id}",
            "send_timestamp_ms": 1_000 + intent.id,
            "send_recv_window_ms": 5000,
            "submitted_at": store.now(),
            **fields,
        },
    )


def record(oid: str, wid: str = "w-1", amount: str = "9") -> WithdrawalRecord:
    return WithdrawalRecord(
        id=wid,
        withdraw_order_id=oid,
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        amount=Decimal(amount),
        fee=Decimal(1),
        status=6,
        tx_id="0xabc",
        apply_time=datetime(2030, 1, 1, tzinfo=UTC),
        complete_time=None,
    )


# ---- enqueue ---------------------------------------------------------------------------


async def test_enqueue_is_idempotent_by_request_id_and_refuses_a_conflict(store: Store) -> None:
    intents = store.ledger.intents
    first, created = await intents.enqueue(
        new("0.000000000000000001", request_id="r-1"), actor="api:bot"
    )
    assert created and first.status is S.QUEUED and first.version == 0
    assert first.status_reason == "waiting for the worker"
    assert first.amount == Decimal("0.000000000000000001") and isinstance(first.amount, Decimal)
    again, created = await intents.enqueue(
        new("0.000000000000000001", request_id="r-1"), actor="api:bot"
    )
    assert not created and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        await intents.enqueue(new("2", request_id="r-1"), actor="api:bot")
    with pytest.raises(IdempotencyConflict):
        await intents.enqueue(
            new("0.000000000000000001", request_id="r-1", account="other"), actor="api:bot"
        )
    (event,) = await intents.events(first.id)  # the creation only: nothing else written
    assert (event.from_status, event.to_status, event.reason, event.actor) == (
        None,
        "queued",
        "enqueued",
        "api:bot",
    )
    a, b = await enqueue(store), await enqueue(store)  # no request_id: never deduplicated
    assert a.id != b.id
    assert await intents.count_by_status() == {"queued": 3}
    assert (await intents.get_by_request_id("r-1")).id == first.id
    with pytest.raises(NotFound):
        await intents.get_by_request_id("r-404")


# ---- transitions -----------------------------------------------------------------------


async def test_transition_is_a_compare_and_set_that_appends_its_event(store: Store) -> None:
    intents = store.ledger.intents
    intent = await enqueue(store)
    moved = await intents.transition(
        intent.id,
        S.SUBMITTING,
        reason="committed",
        actor="worker",
        expect=(S.QUEUED,),
        expect_version=0,
        fields={"withdraw_order_id": "trs-test-1", "send_timestamp_ms": 7},
    )
    assert (moved.status, moved.version, moved.withdraw_order_id, moved.send_timestamp_ms) == (
        S.SUBMITTING,
        1,
        "trs-test-1",
        7,
    )
    assert moved.status_reason == "committed" and moved.settled_at is None
    event = (await intents.events(intent.id))[-1]
    assert (event.from_status, event.to_status, event.reason, event.actor, event.kind) == (
        "queued",
        "submitting",
        "committed",
        "worker",
        "status",
    )
    for stale in ({"expect_version": 0}, {"expect": (S.QUEUED,)}):
        with pytest.raises(ConcurrentChange):
            await intents.transition(intent.id, S.SUBMITTED, reason="late", actor="worker", **stale)  # type: ignore[arg-type]
    assert (await intents.get(intent.id)).version == 1
    assert len(await intents.events(intent.id)) == 2
    done = await intents.transition(
        intent.id,
        S.SUBMITTED,
        reason="accepted",
        actor="worker",
        expect=(S.SUBMITTING,),
        expect_version=1,
    )
    done = await intents.transition(
        intent.id,
        S.COMPLETED,
        reason="on chain",
        actor="worker",
        fields={"fee": Decimal("1.5"), "tx_id": "0x1"},
    )
    assert done.status is S.COMPLETED and done.settled_at is not None and done.version == 3
    assert done.fee == Decimal("1.5")
    with pytest.raises(NotFound):
        await intents.transition(9999, S.CANCELLED, reason="x", actor="test")


async def test_an_illegal_transition_writes_nothing(store: Store) -> None:
    intents = store.ledger.intents
    intent = await enqueue(store)
    with pytest.raises(IllegalTransition):
        await intents.transition(intent.id, S.QUEUED, reason="again", actor="test")
    with pytest.raises(ValueError, match="reason"):
        await intents.transition(intent.id, S.CANCELLED, reason=" ", actor="test")
    await intents.transition(intent.id, S.CANCELLED, reason="operator", actor="test")
    with pytest.raises(IllegalTransition):
        await intents.transition(intent.id, S.QUEUED, reason="revive", actor="test")
    after = await intents.get(intent.id)
    assert (after.status, after.version) == (S.CANCELLED, 1)
    assert [e.to_status for e in await intents.events(intent.id)] == ["queued", "cancelled"]


async def test_transition_many_skips_only_the_change_that_met_a_concurrent_one(
    store: Store,
) -> None:
    intents = store.ledger.intents
    a, b, c = [await submitting(store, await enqueue(store)) for _ in range(3)]
    await intents.transition(b.id, S.SUBMITTED, reason="by someone else", actor="other")
    changes = [
        Change(
            intent_id=i.id,
            to=S.SUBMITTED,
            reason="batch",
            actor="worker",
            expect=(S.SUBMITTING,),
            expect_version=i.version,
            fields={"exchange_withdraw_id": f"w-{i.id}"},
        )
        for i in (a, b, c)
    ]
    first, second, third = await intents.transition_many(changes)
    assert isinstance(first, Intent) and first.exchange_withdraw_id == f"w-{a.id}"
    assert isinstance(second, ConcurrentChange)
    assert isinstance(third, Intent) and third.status is S.SUBMITTED
    assert (await intents.get(b.id)).exchange_withdraw_id is None
    assert [e.reason for e in await intents.events(b.id)][-1] == "by someone else"
    # anything but a concurrent change aborts the whole batch: nothing of it lands
    illegal = [
        Change(intent_id=a.id, to=S.COMPLETED, reason="done", actor="worker"),
        Change(intent_id=c.id, to=S.QUEUED, reason="illegal", actor="worker"),
    ]
    with pytest.raises(IllegalTransition):
        await intents.transition_many(illegal)
    assert (await intents.get(a.id)).status is S.SUBMITTED
    assert await intents.transition_many([]) == []


async def test_a_change_that_names_its_version_writes_nothing_when_it_misses(
    store: Store,
) -> None:
    """With one expected status and a version the SQL store does not read the row first
    (issue 19): a miss must still be a ConcurrentChange (or NotFound) with no event."""
    intents = store.ledger.intents
    intent = await submitting(store, await enqueue(store))
    trail = await intents.events(intent.id)
    misses: list[tuple[Status, int]] = [
        (S.SUBMITTING, intent.version - 1),
        (S.QUEUED, intent.version),
    ]
    for expect, version in misses:
        to = S.SUBMITTED if expect is S.SUBMITTING else S.CANCELLED
        with pytest.raises(ConcurrentChange, match=r"changed meanwhile|is submitting"):
            await intents.transition(
                intent.id,
                to,
                reason="late",
                actor="worker",
                expect=(expect,),
                expect_version=version,
            )
    with pytest.raises(NotFound):
        await intents.transition(
            9999, S.CANCELLED, reason="x", actor="test", expect=(S.QUEUED,), expect_version=0
        )
    stale, fresh = await intents.transition_many(
        [
            Change(
                intent_id=intent.id,
                to=S.SUBMITTED,
                reason="stale",
                actor="worker",
                expect=(S.SUBMITTING,),
                expect_version=version,
            )
            for version in (intent.version - 1, intent.version)
        ]
    )
    assert isinstance(stale, ConcurrentChange) and isinstance(fresh, Intent)
    assert (fresh.status, fresh.version) == (S.SUBMITTED, intent.version + 1)
    after = await intents.events(intent.id)
    assert after[: len(trail)] == trail and len(after) == len(trail) + 1
    assert (after[-1].from_status, after[-1].to_status) == ("submitting", "submitted")


async def test_update_fields_is_a_compare_and_set_on_status_and_version(store: Store) -> None:
    intents = store.ledger.intents
    intent = await submitting(store, await enqueue(store))
    checked = await intents.update_fields(
        intent.id,
        expect_status=S.SUBMITTING,
        expect_version=intent.version,
        fields={"absent_checks": 1, "last_checked_at": store.now()},
    )
    assert (checked.status, checked.version, checked.absent_checks) == (
        S.SUBMITTING,
        intent.version + 1,
        1,
    )
    assert checked.last_checked_at is not None
    with pytest.raises(ConcurrentChange):  # a decision taken on the older read
        await intents.update_fields(
            intent.id,
            expect_status=S.SUBMITTING,
            expect_version=intent.version,
            fields={"absent_checks": 5},
        )
    with pytest.raises(ConcurrentChange):
        await intents.update_fields(intent.id, expect_status=S.QUEUED, fields={"absent_checks": 5})
    with pytest.raises(ConcurrentChange):  # not NotFound: the UPDATE simply matches nothing
        await intents.update_fields(9999, expect_status=S.QUEUED, fields={"absent_checks": 5})
    unversioned = await intents.update_fields(
        intent.id, expect_status=S.SUBMITTING, fields={"absent_checks": 2}
    )
    assert (unversioned.version, unversioned.absent_checks) == (checked.version, 2)
    assert len(await intents.events(intent.id)) == 2  # no event for fields


# ---- the worker's queue ----------------------------------------------------------------


async def test_hold_keeps_it_queued_and_records_an_event_only_when_the_reason_changes(
    store: Store,
) -> None:
    intents = store.ledger.intents
    intent = await enqueue(store)
    retry = store.now() + timedelta(minutes=5)
    held = await intents.hold(intent, reason="low balance", retry_at=retry)
    assert (held.status, held.version, held.status_reason) == (S.QUEUED, 0, "low balance")
    assert held.not_before == retry and held.held_since is not None
    again = await intents.hold(held, reason="low balance", retry_at=retry + timedelta(1))
    assert again.held_since == held.held_since and again.not_before == retry + timedelta(1)
    await intents.hold(again, reason="maintenance", retry_at=retry)
    notes = [(e.kind, e.reason) for e in await intents.events(intent.id)][1:]
    assert notes == [("hold", "held: low balance"), ("hold", "held: maintenance")]
    await intents.transition(intent.id, S.CANCELLED, reason="operator", actor="test")
    with pytest.raises(ConcurrentChange):
        await intents.hold(again, reason="x", retry_at=retry)


async def test_claim_queued_takes_due_unclaimed_intents_of_one_account(store: Store) -> None:
    intents = store.ledger.intents
    now = store.now()
    a1, a2, a3 = [await enqueue(store) for _ in range(3)]
    await enqueue(store, account="other")
    await intents.hold(a2, reason="later", retry_at=now + timedelta(minutes=1))
    lease = now + timedelta(seconds=30)

    async def claim(worker: str, at: datetime, limit: int = 10) -> list[int]:
        got = await intents.claim_queued(
            account="default", worker=worker, now=at, lease_until=lease, limit=limit
        )
        return [i.id for i in got]

    assert await claim("w1", now, limit=1) == [a1.id]
    assert await claim("w1", now) == [a1.id, a3.id]  # its own claims again, the held one not
    assert await claim("w2", now) == []
    assert await claim("w2", now + timedelta(seconds=31)) == [a1.id, a3.id]  # w1's lapsed
    assert await claim("w3", now + timedelta(minutes=2)) == [a1.id, a2.id, a3.id]  # all due
    assert [i.id for i in await intents.in_status(S.QUEUED, account="default")] == [
        a1.id,
        a2.id,
        a3.id,
    ]


async def test_next_due_is_the_earliest_hold_or_foreign_claim_to_end(store: Store) -> None:
    """What a listening intake sleeps until: no NOTIFY announces a hold coming due."""
    intents = store.ledger.intents
    now = store.now()

    async def due(worker: str = "w1", at: datetime = now) -> datetime | None:
        return await intents.next_due(account="default", worker=worker, now=at)

    assert await due() is None  # nothing queued
    a, b = await enqueue(store), await enqueue(store)
    await enqueue(store, account="other")
    assert await due() is None  # queued and due now: the claim takes them, no time to wait for
    in_5 = now + timedelta(minutes=5)
    await intents.hold(a, reason="low balance", retry_at=in_5)
    assert await due() == in_5
    claimed = await intents.claim_queued(
        account="default", worker="w2", now=now, lease_until=now + timedelta(minutes=1), limit=10
    )
    assert [i.id for i in claimed] == [b.id]
    assert await due("w1") == now + timedelta(minutes=1)  # w2's claim ends first
    assert await due("w2") == in_5  # its own claim is no wait for w2
    assert await due("w1", in_5 + timedelta(seconds=1)) is None  # all of it in the past
    await intents.transition(a.id, S.CANCELLED, reason="operator", actor="test")
    assert await due("w2") is None  # only queued intents count


async def test_claims_are_released_by_a_new_sender_by_release_and_by_any_transition(
    store: Store,
) -> None:
    intents = store.ledger.intents
    now = store.now()
    lease = now + timedelta(minutes=5)
    a, b, c = [await enqueue(store) for _ in range(3)]
    claimed = await intents.claim_queued(
        account="default", worker="old", now=now, lease_until=lease, limit=10
    )
    assert len(claimed) == 3
    assert await intents.release_claims(account="default", keep="old") == 0
    assert await intents.release_claims(account="elsewhere", keep="new") == 0
    await intents.release(claimed[0])
    assert await intents.release_claims(account="default", keep="new") == 2
    assert await intents.release_claims(account="default", keep="new") == 0
    retaken = await intents.claim_queued(
        account="default", worker="new", now=now, lease_until=lease, limit=10
    )
    assert [i.id for i in retaken] == [a.id, b.id, c.id]
    await intents.transition(b.id, S.AWAITING_APPROVAL, reason="policy", actor="new")
    await intents.transition(b.id, S.QUEUED, reason="approved", actor="cli:ann")
    third = await intents.claim_queued(
        account="default", worker="third", now=now, lease_until=lease, limit=10
    )
    assert [i.id for i in third] == [b.id]


async def test_reads_by_status_order_id_id_and_request(store: Store) -> None:
    intents = store.ledger.intents
    assert NAMESPACE_RE.match(await intents.namespace())
    assert await intents.earliest_created_ms("default") is None
    assert await intents.last_send_ms("default") is None
    a = await submitting(store, await enqueue(store), oid="oid-a")
    b = await submitting(store, await enqueue(store, coin="BTC", network="BTC"), oid="oid-b")
    c = await enqueue(store, account="acct2")
    assert {
        k: v.id for k, v in (await intents.get_by_order_ids(["oid-a", "oid-b", "oid-x"])).items()
    } == {"oid-a": a.id, "oid-b": b.id}
    assert await intents.get_by_order_ids([]) == {}
    assert set(await intents.get_many([a.id, c.id, 9999])) == {a.id, c.id}
    assert await intents.get_many([]) == {}
    assert [i.id for i in await intents.in_status(S.SUBMITTING)] == [a.id, b.id]
    assert [i.id for i in await intents.in_status(S.SUBMITTING, limit=1)] == [a.id]
    assert await intents.in_status(S.SUBMITTING, account="acct2") == []
    assert [i.id for i in await intents.search()] == [c.id, b.id, a.id]
    assert [i.id for i in await intents.search(statuses=[S.SUBMITTING], coin="BTC")] == [b.id]
    assert [i.id for i in await intents.search(account="acct2")] == [c.id]
    assert await intents.count_by_status() == {"submitting": 2, "queued": 1}
    assert await intents.last_send_ms("default") == b.send_timestamp_ms
    earliest = await intents.earliest_created_ms("default")
    assert earliest == int(a.created_at.timestamp() * 1000)
    with pytest.raises(NotFound):
        await intents.get(9999)


async def test_unserved_finds_old_queued_intents_no_live_lease_covers(store: Store) -> None:
    intents = store.ledger.intents
    prefix = "no running daemon serves account"
    ghost = await enqueue(store, account="ghost")
    served = await enqueue(store, account="live")
    assert await store.ledger.state.acquire_lease("live", "w", 60)
    assert await intents.unserved(older_than_s=3600, skip_reason_prefix=prefix) == []
    await store.pass_time(0.05)
    assert await intents.unserved(older_than_s=0.01, skip_reason_prefix=prefix) == [
        (ghost.id, "ghost")
    ]
    assert await intents.set_reason(ghost.id, f"{prefix} 'ghost'")
    assert await intents.unserved(older_than_s=0.01, skip_reason_prefix=prefix) == []
    # without a prefix (what `check` asks): every one, flagged or not
    assert await intents.unserved(older_than_s=0.01) == [(ghost.id, "ghost")]
    flagged = await intents.get(ghost.id)
    assert (flagged.status, flagged.status_reason, flagged.version) == (
        S.QUEUED,
        f"{prefix} 'ghost'",
        0,
    )
    assert [(e.kind, e.actor) for e in await intents.events(ghost.id)][-1] == ("hold", "worker")
    await intents.transition(served.id, S.CANCELLED, reason="x", actor="test")
    assert not await intents.set_reason(served.id, "too late")
    assert not await intents.set_reason(9999, "nobody")


async def test_record_note_appends_an_event_without_a_status_change(store: Store) -> None:
    intents = store.ledger.intents
    intent = await enqueue(store)
    await intents.record_note(intent.id, reason="looked", actor="worker", kind="reconcile")
    last = (await intents.events(intent.id))[-1]
    assert (last.from_status, last.to_status, last.kind) == ("queued", "queued", "reconcile")
    assert (await intents.get(intent.id)).version == 0
    with pytest.raises(NotFound):
        await intents.record_note(9999, reason="x", actor="worker", kind="note")


# ---- service-wide state ----------------------------------------------------------------


async def test_the_kill_switch_and_account_pauses(store: Store) -> None:
    state = store.ledger.state
    assert not (await state.pause_state()).paused
    assert await state.pause(reason="acct stop", by="worker", account="a")
    assert not await state.pause(reason="again", by="worker", account="a")
    assert not (await state.pause_state()).paused  # an account's pause is not the switch
    mine = await state.pause_state("a")
    assert (mine.paused, mine.reason, mine.by) == (True, "acct stop", "worker")
    assert mine.at is not None
    assert not (await state.pause_state("b")).paused
    assert await state.pause(reason="all stop", by="ops")
    assert (await state.pause_state("b")).reason == "all stop"
    assert (await state.pause_state("a")).reason == "all stop"  # the switch speaks first
    assert set(await state.account_pauses()) == {"a"}
    assert await state.resume()
    assert not await state.resume()
    assert (await state.pause_state("a")).reason == "acct stop"
    assert await state.resume("a")
    assert not (await state.pause_state("a")).paused
    assert await state.account_pauses() == {}


async def test_the_sweep_watermark_per_account(store: Store) -> None:
    state = store.ledger.state
    assert await state.watermark("a") is None
    await state.set_watermark("a", 1_700_000_000_000, by="sweep")
    await state.set_watermark("a", 1_700_000_000_500, by="sweep")
    await state.set_watermark("b", 5, by="sweep")
    assert (await state.watermark("a"), await state.watermark("b")) == (1_700_000_000_500, 5)


async def test_the_sender_lease_is_taken_renewed_refused_and_taken_after_expiry(
    store: Store,
) -> None:
    state = store.ledger.state
    assert await state.acquire_lease("a", "w1", 60)
    assert await state.acquire_lease("a", "w1", 60)  # renewal
    assert not await state.acquire_lease("a", "w2", 60)
    assert await state.acquire_lease("b", "w2", 60)  # leases are per account
    await state.release_lease("a", "w2")  # not its lease: nothing happens
    assert not await state.acquire_lease("a", "w2", 60)
    await state.release_lease("a", "w1")
    assert await state.acquire_lease("a", "w2", 60)
    # a lease that ran out is anyone's (only "long enough" matters here: no race to lose)
    assert await state.acquire_lease("c", "w1", 0.2)
    await store.pass_time(0.35)
    assert await state.acquire_lease("c", "w2", 60)
    assert not await state.acquire_lease("c", "w1", 60)


async def test_the_address_book(store: Store) -> None:
    book = store.ledger.whitelist
    entry = await book.add(**destination(label="cold", source="exchange"))
    assert (entry.enabled, entry.label, entry.source, entry.key) == (
        True,
        "cold",
        "exchange",
        ("USDT", "TRX", "TXyz", ""),
    )
    with pytest.raises(DuplicateEntry):
        await book.add(**destination())
    tagged = await book.add(**destination(address_tag="7"))
    other = await book.add(
        **destination(
            coin="BTC", network="BTC", address="bc1q", usable_from=store.now() + timedelta(hours=1)
        )
    )
    assert (await book.find("USDT", "TRX", "TXyz", None, account="default")) == entry
    assert (await book.find("USDT", "TRX", "TXyz", "7", account="default")) == tagged
    assert await book.find("USDT", "TRX", "nope", None, account="default") is None
    assert [e.id for e in await book.all()] == [other.id, entry.id, tagged.id]
    await book.set_enabled(entry.id, False, actor="sync:default", reason="gone", label="retired")
    off = await book.find("USDT", "TRX", "TXyz", None, account="default")
    assert off is not None and (off.enabled, off.label) == (False, "retired")
    # created_at is the database's clock (the cooling period runs from it)
    assert abs((entry.created_at - store.now()).total_seconds()) < 60


async def test_service_events_and_record_once(store: Store) -> None:
    events = store.ledger.events
    await events.record("paused", "because", actor="worker", subject="a")
    assert await events.record_once("unexpected_withdrawal", "w-1", "first", actor="worker")
    assert not await events.record_once("unexpected_withdrawal", "w-1", "second", actor="x")
    assert await events.record_once("unexpected_withdrawal", "w-2", "other", actor="worker")
    recent = await events.recent("unexpected_withdrawal")
    assert [(e.subject, e.detail) for e in recent] == [("w-2", "other"), ("w-1", "first")]
    assert [e.kind for e in await events.recent(limit=1)] == ["unexpected_withdrawal"]
    assert len(await events.recent()) == 3


async def test_unmatched_withdrawals_are_kept_once_and_burn_their_order_ids(store: Store) -> None:
    ledger = store.ledger
    intent = await enqueue(store)
    other = await enqueue(store)
    r = record("trs-test-old", wid="w-77")
    assert await ledger.unmatched.record(
        account="default", record=r, intent_id=intent.id, reason="restored", found_by="sweep"
    )
    assert not await ledger.unmatched.record(
        account="default", record=r, intent_id=intent.id, reason="again", found_by="sweep"
    )
    assert await ledger.unmatched.record(
        account="other", record=r, intent_id=None, reason="elsewhere", found_by="sweep"
    )
    assert await ledger.unmatched.on_file("default", ["w-77", "w-78"]) == {"w-77"}
    assert await ledger.unmatched.on_file("default", []) == set()
    (kept,) = await ledger.unmatched.list("default")
    assert (kept.withdraw_order_id, kept.intent_id, kept.amount, kept.reason) == (
        "trs-test-old",
        intent.id,
        Decimal(9),
        "restored",
    )
    assert len(await ledger.unmatched.list()) == 2
    async with ledger.units.open(intent.id) as unit:
        assert await unit.burned_order_ids() == {"trs-test-old"}
    async with ledger.units.open(other.id) as unit:
        assert await unit.burned_order_ids() == set()


# ---- the unit of work ------------------------------------------------------------------


async def test_a_unit_reads_decides_and_commits_together(store: Store) -> None:
    ledger = store.ledger
    now = store.now()
    intent = await enqueue(store, "10", requested_by="alice")
    sent = await submitting(store, await enqueue(store, "4"))
    await submitting(store, await enqueue(store, "5", address="TOther"))
    await submitting(store, await enqueue(store, "100", coin="BTC", network="BTC"))
    await ledger.whitelist.add(**destination())
    assert await ledger.state.acquire_lease("default", "w1", 60)
    async with ledger.units.open(intent.id, serialize_account="default") as unit:
        assert unit.intent.id == intent.id and unit.intent.version == 0
        assert await unit.send_refusal("w1") is None
        assert await unit.send_refusal("w2") == "this worker is not the account's sender"
        entry = await unit.address_book_entry()
        assert entry is not None and entry.enabled
        assert await unit.usage_24h(now) == (Decimal(9), Decimal(4))
        assert await unit.usage_24h(now + timedelta(days=2)) == (Decimal(0), Decimal(0))
        assert await unit.approvers() == ()
        assert await unit.add_approval("bob")
        assert not await unit.add_approval("bob")
        assert await unit.approvers() == ("bob",)
        await unit.note(reason="approved by bob", actor="cli:bob", kind="approval")
        moved = await unit.transition(
            S.SUBMITTING,
            reason="committed",
            actor="w1",
            fields={"withdraw_order_id": "trs-test-9", "submitted_at": now},
        )
        assert unit.intent == moved and moved.version == 1
    after = await ledger.intents.get(intent.id)
    assert (after.status, after.withdraw_order_id) == (S.SUBMITTING, "trs-test-9")
    assert [(e.kind, e.to_status) for e in await ledger.intents.events(intent.id)] == [
        ("status", "queued"),
        ("approval", "queued"),
        ("status", "submitting"),
    ]
    async with ledger.units.open(intent.id) as unit:
        assert await unit.approvers() == ("bob",)
    async with ledger.units.open(sent.id) as unit:  # the one just committed counts now
        assert await unit.usage_24h(now) == (Decimal(15), Decimal(10))


async def test_a_unit_that_raises_writes_nothing(store: Store) -> None:
    ledger = store.ledger
    intent = await enqueue(store, "10")

    async def decide_then_refuse() -> None:
        async with ledger.units.open(intent.id, serialize_account="default") as unit:
            assert await unit.add_approval("bob")
            await unit.note(reason="noted", actor="w1", kind="approval")
            await unit.transition(
                S.SUBMITTING,
                reason="committed",
                actor="w1",
                fields={"withdraw_order_id": "trs-test-1"},
            )
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await decide_then_refuse()
    after = await ledger.intents.get(intent.id)
    assert (after.status, after.version, after.withdraw_order_id) == (S.QUEUED, 0, None)
    assert len(await ledger.intents.events(intent.id)) == 1
    async with ledger.units.open(intent.id) as unit:
        assert await unit.approvers() == ()
    with pytest.raises(NotFound):
        async with ledger.units.open(9999):
            pass


async def test_a_paused_account_refuses_to_commit(store: Store) -> None:
    ledger = store.ledger
    intent = await enqueue(store)
    assert await ledger.state.acquire_lease("default", "w1", 60)
    assert await ledger.state.pause(reason="stop", by="ops", account="default")
    async with ledger.units.open(intent.id) as unit:
        assert await unit.send_refusal("w1") == "paused"
    assert await ledger.state.resume("default")
    assert await ledger.state.pause(reason="stop", by="ops")
    async with ledger.units.open(intent.id) as unit:
        assert await unit.send_refusal("w1") == "paused"


# ---- what the tables refuse ------------------------------------------------------------


async def test_what_the_tables_refuse_is_refused_and_writes_nothing(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError, StatementError

    from treasury.testing import ConstraintViolation

    intents = store.ledger.intents
    sent = await submitting(store, await enqueue(store), oid="oid-1")
    other = await enqueue(store)
    refusals: list[tuple[int, S, dict[str, Any]]] = [
        (sent.id, S.SUBMITTED, {"amount": Decimal(5)}),  # fixed once inserted
        (sent.id, S.SUBMITTED, {"address": "TElse"}),
        (sent.id, S.SUBMITTED, {"withdraw_order_id": "oid-2"}),  # fixed once set
        (sent.id, S.SUBMITTED, {"exchange_amount": Decimal(-1)}),  # amounts are >= 0
        (other.id, S.SUBMITTING, {"withdraw_order_id": "oid-1"}),  # order ids are unique
    ]
    for intent_id, to, fields in refusals:
        with pytest.raises((ConstraintViolation, IntegrityError)):
            await intents.transition(intent_id, to, reason="x", actor="test", fields=fields)
    with pytest.raises((TypeError, StatementError)):  # an amount that is not a Decimal
        await intents.transition(
            sent.id, S.SUBMITTED, reason="x", actor="test", fields={"fee": 1.5}
        )
    for before in (sent, other):
        after = await intents.get(before.id)
        assert (after.status, after.version, after.withdraw_order_id, after.amount) == (
            before.status,
            before.version,
            before.withdraw_order_id,
            before.amount,
        )
    assert len(await intents.events(sent.id)) == 2 and len(await intents.events(other.id)) == 1


async def test_a_write_racing_a_unit_waits_for_it_then_meets_its_result(store: Store) -> None:
    ledger = store.ledger
    intent = await enqueue(store)
    outcome: list[object] = []

    async def cancel_it() -> None:
        try:
            outcome.append(
                await ledger.intents.transition(
                    intent.id,
                    S.CANCELLED,
                    reason="operator",
                    actor="cli",
                    expect=(S.QUEUED,),
                    expect_version=0,
                )
            )
        except ConcurrentChange as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg, ledger.units.open(intent.id) as unit:
        tg.start_soon(cancel_it)
        await anyio.sleep(0.1)  # the cancel has started and is waiting for the unit
        assert outcome == []
        await unit.transition(
            S.SUBMITTING, reason="committed", actor="w1", fields={"withdraw_order_id": "trs-test-1"}
        )
    (result,) = outcome
    assert isinstance(result, ConcurrentChange)
    assert (await ledger.intents.get(intent.id)).status is S.SUBMITTING


# ---- the wallet ---------------------------------------------------------------------------


async def test_the_wallet_is_stored_set_at_the_commit_and_fixed_once_set(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    from treasury.domain.wallet import Wallet
    from treasury.testing import ConstraintViolation

    intents = store.ledger.intents
    named = await enqueue(store, wallet="funding")
    open_ = await enqueue(store)
    assert (named.wallet, open_.wallet) == (Wallet.FUNDING, None)
    assert (await intents.get(named.id)).wallet is Wallet.FUNDING
    sent = await submitting(store, open_, wallet=Wallet.SPOT)  # the account default, fixed
    assert sent.wallet is Wallet.SPOT and (await intents.get(open_.id)).wallet is Wallet.SPOT
    for intent_id, to in ((sent.id, S.SUBMITTED), (named.id, S.SUBMITTING)):
        with pytest.raises((ConstraintViolation, IntegrityError)):
            await intents.transition(
                intent_id, to, reason="x", actor="test", fields={"wallet": Wallet.FUNDING
                if intent_id == sent.id else Wallet.SPOT}
            )  # fmt: skip
    assert (await intents.get(sent.id)).wallet is Wallet.SPOT
    assert (await intents.get(named.id)).wallet is Wallet.FUNDING


# ---- the address book --------------------------------------------------------------------


def destination(account: str = "default", address: str = "TXyz", **kw: Any) -> dict[str, Any]:
    return {
        "account": account,
        "coin": "USDT",
        "network": "TRX",
        "address": address,
        "address_tag": None,
        "actor": "cli:alice",
        "reason": "our cold wallet",
        **kw,
    }


async def test_every_address_book_change_is_an_event_with_actor_and_reason(
    store: Store,
) -> None:
    book = store.ledger.whitelist
    entry = await book.add(**destination(label="cold"))
    assert (entry.account, entry.version, entry.enabled) == ("default", 1, True)
    assert (entry.changed_by, entry.change_reason) == ("cli:alice", "our cold wallet")
    assert entry.source == "manual"
    off = await book.set_enabled(entry.id, False, actor="cli:bob", reason="compromised?")
    assert (off.enabled, off.version, off.changed_by) == (False, 2, "cli:bob")
    same = await book.set_enabled(entry.id, False, actor="cli:bob", reason="again")
    assert same.version == 2  # no change, no event
    on = await book.set_enabled(entry.id, True, actor="cli:carol", reason="checked: ours")
    edited = await book.set_enabled(
        entry.id, True, actor="sync:default", reason="renamed", label="c2"
    )
    assert (on.version, edited.version, edited.label) == (3, 4, "c2")
    assert await book.get(entry.id) == edited
    history = await book.history(entry_id=entry.id)
    assert [(e.kind, e.actor, e.reason, e.version) for e in history] == [
        ("add", "cli:alice", "our cold wallet", 1),
        ("disable", "cli:bob", "compromised?", 2),
        ("enable", "cli:carol", "checked: ours", 3),
        ("edit", "sync:default", "renamed", 4),
    ]
    assert {(e.entry_id, e.account, e.coin, e.network, e.address) for e in history} == {
        (entry.id, "default", "USDT", "TRX", "TXyz")
    }
    assert all(e.created_at is not None for e in history)


async def test_a_travel_rule_profile_is_a_new_version_and_an_edit(store: Store) -> None:
    book = store.ledger.whitelist
    entry = await book.add(**destination(), travel_rule_profile='{"entity":"EU"}')
    assert (entry.version, entry.travel_rule_profile) == (1, '{"entity":"EU"}')
    changed = await book.set_profile(
        entry.id, '{"entity":"JP"}', version=1, actor="cli:bob", reason="sha256:ab"
    )
    assert (changed.version, changed.travel_rule_profile) == (2, '{"entity":"JP"}')
    assert await book.get(entry.id) == changed
    with pytest.raises(ConcurrentChange):
        await book.set_profile(entry.id, None, version=1, actor="cli:bob", reason="stale")
    with pytest.raises(NotFound):
        await book.set_profile(999, None, version=1, actor="cli:bob", reason="none")
    with pytest.raises(ValueError, match="reason"):
        await book.set_profile(entry.id, None, version=2, actor="cli:bob", reason=" ")
    history = await book.history(entry_id=entry.id)
    assert [(e.kind, e.actor, e.reason, e.version) for e in history] == [
        ("add", "cli:alice", "our cold wallet", 1),
        ("edit", "cli:bob", "sha256:ab", 2),
    ]
    assert (await book.get(entry.id)).version == 2


async def test_an_intent_questionnaire_is_stored_and_part_of_its_request(store: Store) -> None:
    fields: dict[str, Any] = dict(coin="USDT", network="TRX", address="T1", amount="1")
    new = validate_new_intent(**fields, request_id="q-1", questionnaire={"a": 1})
    intent, created = await store.ledger.intents.enqueue(new, actor="t")
    assert created and intent.questionnaire == '{"a":1}'
    assert (await store.ledger.intents.get(intent.id)).questionnaire == '{"a":1}'
    again, created = await store.ledger.intents.enqueue(new, actor="t")
    assert not created and again.id == intent.id
    other = validate_new_intent(**fields, request_id="q-1", questionnaire={"a": 2})
    with pytest.raises(IdempotencyConflict, match="questionnaire"):
        await store.ledger.intents.enqueue(other, actor="t")


async def test_an_address_book_change_without_actor_or_reason_writes_nothing(
    store: Store,
) -> None:
    book = store.ledger.whitelist
    for missing in ({"actor": " "}, {"reason": ""}):
        with pytest.raises(ValueError, match="actor" if "actor" in missing else "reason"):
            await book.add(**destination(**missing))
    assert await book.all() == [] and await book.history() == []
    entry = await book.add(**destination())
    with pytest.raises(ValueError, match="reason"):
        await book.set_enabled(entry.id, False, actor="cli:bob", reason="  ")
    assert (await book.get(entry.id)).enabled
    assert len(await book.history()) == 1
    with pytest.raises(NotFound):
        await book.get(entry.id + 100)
    with pytest.raises(NotFound):
        await book.set_enabled(entry.id + 100, False, actor="cli:bob", reason="gone")


async def test_address_book_entries_are_per_account(store: Store) -> None:
    ledger = store.ledger
    book = ledger.whitelist
    a = await book.add(**destination("default"))
    with pytest.raises(DuplicateEntry):
        await book.add(**destination("default"))
    assert await book.find("USDT", "TRX", "TXyz", None, account="sub1") is None
    b = await book.add(**destination("sub1"))  # the same destination, another account
    assert a.id != b.id
    assert (await book.find("USDT", "TRX", "TXyz", None, account="sub1")) == b
    assert (await book.find("USDT", "TRX", "TXyz", None, account="default")) == a
    assert [e.id for e in await book.all("sub1")] == [b.id]
    assert {e.id for e in await book.all()} == {a.id, b.id}
    assert [e.entry_id for e in await book.history(account="sub1")] == [b.id]
    await book.set_enabled(a.id, False, actor="cli:bob", reason="not for default")
    # the unit of work sees the intent's own account's entry only
    only_b = await enqueue(store, "10", account="sub1")
    async with ledger.units.open(only_b.id) as unit:
        seen = await unit.address_book_entry()
    assert seen is not None and seen.id == b.id and seen.enabled
    neither = await enqueue(store, "10", account="sub2")
    async with ledger.units.open(neither.id) as unit:
        assert await unit.address_book_entry() is None


async def test_address_book_approvals_are_of_one_version(store: Store) -> None:
    ledger = store.ledger
    book = ledger.whitelist
    entry = await book.add(**destination())
    await book.add_approval(entry.id, version=1, approver="bob", signature="c2ln", reason="ok")
    await book.add_approval(entry.id, version=1, approver="bob", signature=None, reason=None)
    with pytest.raises(ConcurrentChange):  # the entry is not at version 2
        await book.add_approval(entry.id, version=2, approver="carol", signature=None, reason=None)
    with pytest.raises(NotFound):
        await book.add_approval(entry.id + 9, version=1, approver="x", signature=None, reason=None)
    other = await book.add(**destination("sub1"))
    v2 = await book.set_enabled(entry.id, False, actor="cli:dave", reason="check")
    await book.add_approval(other.id, version=1, approver="carol", signature=None, reason=None)
    recorded = await book.approvals(entry_id=entry.id)
    assert [(a.approver, a.entry_version, a.signature, a.reason) for a in recorded] == [
        ("bob", 1, "c2ln", "ok"),
        ("bob", 1, None, None),
    ]
    assert all(abs((a.created_at - store.now()).total_seconds()) < 60 for a in recorded)
    assert [a.entry_id for a in await book.approvals(account="sub1")] == [other.id]
    assert len(await book.approvals()) == 3
    # the unit of work reads the approvals of the entry's current version, and its adder
    intent = await enqueue(store, "10")
    async with ledger.units.open(intent.id) as unit:
        current = await unit.address_book_entry()
        assert current == v2
        assert await unit.entry_approvals(v2) == ()
        assert [a.approver for a in await unit.entry_approvals(entry)] == ["bob", "bob"]
        assert await unit.entry_added_by(entry.id) == "cli:alice"
        assert await unit.entry_added_by(entry.id + 9) is None
