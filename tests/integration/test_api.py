"""The bots' API (``treasury.api.Treasury``) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from decimal import Decimal

import anyio
import pytest
from sqlalchemy import func, select

from treasury.adapters.db.repository import IdempotencyConflict, NotFound
from treasury.adapters.db.tables import intent_events, withdrawal_intents
from treasury.api import Treasury
from treasury.domain.errors import InvalidField
from treasury.domain.status import Status
from treasury.services import admin
from treasury.services.admin import Ledger

DEST = {"coin": "USDT", "network": "TRX", "address": "TXyzAbc123"}


async def counts(ledger: Ledger) -> tuple[int, int]:
    async with ledger.engine.connect() as conn:
        intents = await conn.scalar(select(func.count()).select_from(withdrawal_intents))
        events = await conn.scalar(select(func.count()).select_from(intent_events))
    return int(intents or 0), int(events or 0)


async def test_enqueue_is_idempotent_by_request_id(migrated_url: str, ledger: Ledger) -> None:
    async with Treasury.connect(migrated_url, actor="api:rebalancer") as t:
        first = await t.enqueue(**DEST, amount=Decimal("250.10"), request_id="rebalance-7")
        again = await t.enqueue(**DEST, amount="250.1", request_id="rebalance-7")
        assert again.id == first.id
        assert again.status is Status.QUEUED
        assert first.amount == Decimal("250.10") and isinstance(first.amount, Decimal)
        assert await counts(ledger) == (1, 1)

        before = await counts(ledger)
        for change in (
            {"amount": "250.11"},
            {"address": "TOther999"},
            {"network": "ETH"},
            {"address_tag": "1"},
            {"account": "desk-2"},
        ):
            fields: dict[str, object] = {**DEST, "amount": "250.10", **change}
            with pytest.raises(IdempotencyConflict, match="rebalance-7"):
                await t.enqueue(**fields, request_id="rebalance-7")  # type: ignore[arg-type]
        assert await counts(ledger) == before

        # without a request_id every call is a new intent
        a = await t.enqueue(**DEST, amount=1)
        b = await t.enqueue(**DEST, amount=1)
        assert a.id != b.id


async def test_get_by_id_and_by_request_id(migrated_url: str) -> None:
    async with Treasury.connect(migrated_url) as t:
        made = await t.enqueue(
            **DEST,
            amount="0.000000000000000001",
            request_id="r-1",
            requested_by="bot-7",
            note="test",
        )
        by_id = await t.get(made.id)
        by_request = await t.get("r-1")
        assert by_id == by_request
        assert by_id.amount == Decimal("0.000000000000000001")
        assert (by_id.requested_by, by_id.note, by_id.request_id) == ("bot-7", "test", "r-1")
        history = await t.history("r-1")
        assert [(e.from_status, e.to_status, e.actor) for e in history] == [(None, "queued", "api")]
        with pytest.raises(NotFound, match="intent 999999 not found"):
            await t.get(999999)
        with pytest.raises(NotFound, match="request_id 'nope'"):
            await t.get("nope")
        with pytest.raises(NotFound):
            await t.history("nope")


@pytest.mark.parametrize(
    ("amount", "field"),
    [
        (0.1, "amount"),
        (True, "amount"),
        (Decimal("NaN"), "amount"),
        ("0", "amount"),
        (Decimal("-1"), "amount"),
        ("1e400", "amount"),
    ],
    ids=["float", "bool", "nan", "zero", "negative", "huge"],
)
async def test_bad_amount_is_refused_and_nothing_written(
    migrated_url: str, ledger: Ledger, amount: object, field: str
) -> None:
    async with Treasury.connect(migrated_url) as t:
        with pytest.raises(InvalidField) as info:
            await t.enqueue(**DEST, amount=amount)  # type: ignore[arg-type]
    assert info.value.field == field
    assert await counts(ledger) == (0, 0)


async def test_float_amount_names_the_reason(migrated_url: str) -> None:
    async with Treasury.connect(migrated_url) as t:
        with pytest.raises(InvalidField, match="not a binary float"):
            await t.enqueue(**DEST, amount=12.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"coin": "usdt"},
        {"network": "t rx"},
        {"address": ""},
        {"address_tag": "a b"},
        {"account": "bad account"},
    ],
)
async def test_bad_fields_are_refused(
    migrated_url: str, ledger: Ledger, change: dict[str, str]
) -> None:
    async with Treasury.connect(migrated_url) as t:
        with pytest.raises(InvalidField) as info:
            await t.enqueue(**{**DEST, **change}, amount="1")  # type: ignore[arg-type]
    assert info.value.field == next(iter(change))
    assert await counts(ledger) == (0, 0)


async def test_wait_until_settled_returns_once_cancelled_elsewhere(
    migrated_url: str, ledger: Ledger
) -> None:
    async with Treasury.connect(migrated_url) as t:
        intent = await t.enqueue(**DEST, amount="5", request_id="wait-1")

        async def operator_cancels() -> None:
            await anyio.sleep(0.4)
            await admin.cancel(ledger, intent.id, actor="cli:bob", reason="not needed")

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(operator_cancels)
            final = await t.wait_until_settled("wait-1", timeout_s=10, poll_s=0.05)
        waited = time.monotonic() - started
    assert final.id == intent.id
    assert final.status is Status.CANCELLED
    assert final.status_reason == "not needed"
    assert 0.35 <= waited < 5


async def test_wait_until_settled_returns_on_needs_attention(
    migrated_url: str, ledger: Ledger
) -> None:
    async with Treasury.connect(migrated_url) as t:
        intent = await t.enqueue(**DEST, amount="5")
        await ledger.intents.transition(intent.id, Status.SUBMITTING, reason="test", actor="w")

        async def outcome_unknown() -> None:
            await anyio.sleep(0.2)
            await ledger.intents.transition(
                intent.id, Status.NEEDS_ATTENTION, reason="outcome unknown", actor="w"
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(outcome_unknown)
            final = await t.wait_until_settled(intent.id, timeout_s=10, poll_s=0.05)
    assert final.status is Status.NEEDS_ATTENTION


async def test_wait_until_settled_returns_at_once_when_already_final(
    migrated_url: str, ledger: Ledger
) -> None:
    async with Treasury.connect(migrated_url) as t:
        intent = await t.enqueue(**DEST, amount="5")
        await admin.cancel(ledger, intent.id, actor="cli:bob", reason="r")
        with anyio.fail_after(2):
            final = await t.wait_until_settled(intent.id, timeout_s=5, poll_s=10)
    assert final.status is Status.CANCELLED


@pytest.mark.parametrize("status", [Status.QUEUED, Status.SUBMITTING, Status.SUBMITTED])
async def test_wait_until_settled_times_out_while_in_flight(
    migrated_url: str, ledger: Ledger, status: Status
) -> None:
    async with Treasury.connect(migrated_url) as t:
        intent = await t.enqueue(**DEST, amount="5")
        if status is not Status.QUEUED:
            await ledger.intents.transition(intent.id, Status.SUBMITTING, reason="t", actor="w")
        if status is Status.SUBMITTED:
            await ledger.intents.transition(intent.id, Status.SUBMITTED, reason="t", actor="w")
        started = time.monotonic()
        with pytest.raises(TimeoutError) as timed_out:
            await t.wait_until_settled(intent.id, timeout_s=0.3, poll_s=0.05)
        assert str(timed_out.value) == (
            f"intent {intent.id} not settled after 0.3 s (status {status.value}); it goes on"
        )
        assert time.monotonic() - started < 3
        assert (await t.get(intent.id)).status is status  # the intent goes on


async def test_wait_until_settled_for_an_unknown_intent_raises_not_found(
    migrated_url: str,
) -> None:
    async with Treasury.connect(migrated_url) as t:
        with pytest.raises(NotFound):
            await t.wait_until_settled(424242, timeout_s=1, poll_s=0.05)


async def test_connect_defaults_to_the_configured_database(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREASURY_DATABASE_URL", migrated_url)
    async with Treasury.connect() as t:
        made = await t.enqueue(**DEST, amount="3", request_id="env-1")
    async with Treasury.connect(migrated_url) as t:
        assert (await t.get("env-1")).id == made.id


def test_the_sync_facade_enqueues_reads_and_raises_the_same_errors(migrated_url: str) -> None:
    """A script without an event loop: the same calls without await, the same errors, and
    nothing left running when the block ends."""
    import threading

    from treasury.api import SyncTreasury

    threads_before = set(threading.enumerate())
    with SyncTreasury.connect(migrated_url, actor="script:payroll") as t:
        made = t.enqueue(**DEST, amount="12.5", request_id="payroll-1")
        assert t.enqueue(**DEST, amount=Decimal("12.50"), request_id="payroll-1").id == made.id
        got = t.get("payroll-1")
        assert (got.id, got.amount, got.status) == (made.id, Decimal("12.5"), Status.QUEUED)
        assert [e.actor for e in t.history(made.id)] == ["script:payroll"]
        with pytest.raises(IdempotencyConflict, match="amount"):
            t.enqueue(**DEST, amount="13", request_id="payroll-1")
        with pytest.raises(InvalidField, match="amount"):
            t.enqueue(**DEST, amount="-1")
        with pytest.raises(NotFound):
            t.get(10_000)
        with pytest.raises(TimeoutError, match=f"intent {made.id} not settled"):
            t.wait_until_settled(made.id, timeout_s=0.2, poll_s=0.05)
    # the portal's thread is gone (other tests' threads may come and go meanwhile)
    assert set(threading.enumerate()) - threads_before == set()


async def test_a_bots_intents_name_it_as_requester_so_it_cannot_approve_them(
    migrated_url: str, ledger: Ledger
) -> None:
    from treasury.services import approvals
    from treasury.services.admin import Refused
    from treasury.services.policy import apply_text

    async with Treasury.connect(migrated_url, actor="api:rebalancer") as t:
        intent = await t.enqueue(**DEST, amount="500")
    assert intent.requested_by == "api:rebalancer"
    await ledger.intents.transition(
        intent.id, Status.AWAITING_APPROVAL, reason="needs approval", actor="test"
    )
    await apply_text(ledger, '[default]\napproval_threshold = "1"\n', actor="t", reason="t")
    with pytest.raises(Refused, match="requested"):
        await approvals.approve(ledger, intent.id, approver="api:rebalancer")
    assert (await ledger.intents.get(intent.id)).status is Status.AWAITING_APPROVAL
