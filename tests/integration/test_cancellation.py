"""Shutdown cancels the daemon's tasks wherever they are, often in the middle of a database
call. A transaction must never be cut in half by that: the cancellation lands between
transactions, the connection goes back to the pool whole, and nothing is left running.

Cut in half, aiosqlite's connection is invalidated, and SQLAlchemy closes it in a task of
its own; anyio delivers the cancellation again while that close is in progress, and the
close then waits forever for a worker thread that has already stopped. The event loop
cannot close after that (a test hung in teardown about once in five full runs).
"""

from __future__ import annotations

import asyncio
import random

import anyio

from treasury.domain.validation import validate_new_intent
from treasury.services.admin import Ledger

ROUNDS = 120


def new(n: int):  # type: ignore[no-untyped-def]
    return validate_new_intent(
        amount="1", coin="USDT", network="TRX", address="TXyz", request_id=f"cancel-{n}"
    )


async def busy(ledger: Ledger, first: int) -> None:
    n = first
    while True:
        intent, _ = await ledger.intents.enqueue(new(n), actor="test")
        await ledger.intents.get(intent.id)
        n += 1


def others() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def test_a_cancelled_store_call_leaves_no_task_and_no_broken_connection(
    ledger: Ledger,
) -> None:
    rng = random.Random(7)
    before = set(others())
    for r in range(ROUNDS):
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(busy, ledger, r * 10_000)
                tg.start_soon(busy, ledger, r * 10_000 + 5_000)
                await anyio.sleep(rng.random() * 0.02)
                tg.cancel_scope.cancel()
        left = [t for t in others() if t not in before]
        assert not left, f"round {r}: tasks left running after the cancellation: {left}"
    # every connection went back whole: the store still answers
    intent, _ = await ledger.intents.enqueue(new(-1), actor="test")
    assert (await ledger.intents.get(intent.id)).id == intent.id
