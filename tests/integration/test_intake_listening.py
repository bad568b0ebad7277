"""While a LISTEN connection delivers NOTIFY (PostgreSQL), an idle sender polls for queued
intents every ``intake_listening_s`` instead of every ``intake_interval_s``: a hundred
idle accounts in one process no longer spend most of a core asking the database for
nothing. A new intent still leaves at once: its insert's NOTIFY wakes the sender."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
import pytest

from treasury.bootstrap import postgres_notifications
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.ports.clock import utcnow
from treasury.runtime.accounts import Notifications
from treasury.runtime.daemon import Daemon

TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"
# LISTEN/NOTIFY is PostgreSQL's; on SQLite the sender polls every intake_interval_s
on_postgres = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@asynccontextmanager
async def listening_sender(stack: Any, *, listening: bool = True) -> AsyncIterator[Daemon]:
    """The stack's daemon with a real LISTEN connection, once it is the sender, has swept
    and NOTIFYs arrive; ``listening=False`` tells it nothing listens (the control)."""
    listen_all = postgres_notifications(stack.rt.settings)
    assert listen_all is not None
    notes = Notifications(listen_all)
    daemon = Daemon(
        stack.rt.ctx,
        pace=stack.rt.exchange.apply_limiter.note_sent_at,
        listen=notes.listener(stack.rt.ctx.config.account),
        listening=(lambda: notes.live) if listening else None,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(notes.run)
        tg.start_soon(daemon.run)
        with anyio.fail_after(15):
            while not (daemon.is_sender and daemon.swept and notes.live):
                await anyio.sleep(0.05)
        try:
            yield daemon
        finally:
            daemon.stop()
            await daemon.finished.wait()
            tg.cancel_scope.cancel()


async def _idle_claims_and_pickup(stack: Any, *, listening: bool) -> tuple[int, float]:
    """Claims made over 2 s of idleness, then seconds from enqueue to ``submitted``."""
    ledger = stack.rt.ledger
    claims = 0
    claim_queued = ledger.intents.claim_queued

    async def counted(**kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await claim_queued(**kwargs)

    ledger.intents.claim_queued = counted
    async with listening_sender(stack, listening=listening):
        await anyio.sleep(0.5)  # the first intake rounds after the sweep
        before = claims
        await anyio.sleep(2)
        idle_claims = claims - before
        new = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="20")
        started = time.monotonic()
        intent, _ = await ledger.intents.enqueue(new, actor="test")
        await stack.wait_status(intent.id, Status.SUBMITTED, timeout=10)
        pickup = time.monotonic() - started
    return idle_claims, pickup


@on_postgres
@pytest.mark.parametrize("listening", [True, False], ids=["listening", "control"])
async def test_a_listening_sender_polls_rarely_and_a_notify_still_wakes_it(
    stack_factory: Any, listening: bool
) -> None:
    """The control is the same daemon told that nothing listens: it polls every 0.1 s."""
    async with stack_factory(intake_interval_s=0.1, intake_listening_s=30) as stack:
        idle_claims, pickup = await _idle_claims_and_pickup(stack, listening=listening)
    if not listening:
        assert idle_claims >= 10, idle_claims
        return
    assert idle_claims <= 1, idle_claims  # one 30 s poll at most, not twenty 0.1 s ones
    assert pickup < 3, pickup  # the NOTIFY, not the 30 s poll


async def test_notifications_go_live_and_wake_everyone_once_connected() -> None:
    """A NOTIFY sent while no connection listened is lost: on (re)connecting every
    subscriber is woken to look; the flag falls when the connection ends."""
    woken: list[str] = []
    states: list[bool] = []
    connected = anyio.Event()

    async def listen_all(on_payload: Any, on_live: Any) -> None:
        on_live(True)
        states.append(notes.live)
        on_payload("ops")
        connected.set()
        raise ConnectionError("gone")

    notes = Notifications(listen_all)
    async with anyio.create_task_group() as tg:
        tg.start_soon(notes.listener("ops"), lambda: woken.append("ops"))
        tg.start_soon(notes.listener("desk"), lambda: woken.append("desk"))
        await anyio.sleep(0.05)
        tg.start_soon(notes.run)
        with anyio.fail_after(5):
            await connected.wait()
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert states == [True]
    assert sorted(woken[:2]) == ["desk", "ops"]  # both, on going live
    assert woken[2] == "ops"  # then the NOTIFY for ops only
    assert notes.live is False  # the connection ended


@on_postgres
async def test_a_listening_sender_wakes_when_a_held_intent_comes_due(stack_factory: Any) -> None:
    """No NOTIFY announces that a hold ended: the intake sleeps until then, not for the
    whole 30 s of ``intake_listening_s``."""
    async with stack_factory(intake_interval_s=0.1, intake_listening_s=30) as stack:
        ledger = stack.rt.ledger
        account = stack.rt.ctx.config.account
        async with listening_sender(stack) as daemon:
            # paused while the intent is queued and held, so that its NOTIFY sends nothing
            await ledger.state.pause(reason="test", by="test", account=account)
            new = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="20")
            intent, _ = await ledger.intents.enqueue(new, actor="test")
            due = utcnow() + timedelta(seconds=3)
            await ledger.intents.hold(intent, reason="test", retry_at=due)
            await ledger.state.resume(account)
            await anyio.sleep(0.3)
            daemon.wake()  # as after the intake's own round: it looks again, finds it held
            await stack.wait_status(intent.id, Status.SUBMITTED, timeout=25)
            late = (utcnow() - due).total_seconds()
    assert late < 2, late  # sent when the hold ended, not 30 s into an idle poll
