"""Two ``treasury run`` on one PostgreSQL database: one sends, one stands by, then takes over."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import DESTINATIONS, SAMPLE_AMOUNTS, wait_until, world
from invariants import Snapshot, assert_invariants, withdrawals_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
RATE = 5.0  # slow enough that the kill lands mid-stream (30 intents take ~6 s)


async def test_standby_takes_over_after_sigkill_without_duplicates(
    postgres: str, tmp_path: Path
) -> None:
    async with world(postgres, tmp_path, env={"TREASURY_WITHDRAW_RATE": str(RATE)}) as w:
        a = await w.start_daemon("e2e-A")
        assert a.saw("sender.active")
        b = await w.start_daemon("e2e-B")
        assert b.saw("standby") and not b.saw("sender.active")
        assert await w.sender() == "e2e-A"

        ids = []
        for n in range(30):
            coin, network, address, tag = DESTINATIONS[n % len(DESTINATIONS)]
            amounts = SAMPLE_AMOUNTS[coin]
            ids.append(await w.insert_sql(coin, network, address, tag, amounts[n % len(amounts)]))

        async def some_sent() -> bool:
            return len(w.sandbox.ledger().apply_requests) >= 10

        await wait_until(some_sent, timeout=30, poll=0.01, what="10 sends", describe=w.describe)
        # both running so far: only A sent, and nothing twice
        before = w.sandbox.ledger()
        assert not before.duplicates_by_withdraw_order_id()
        assert not b.saw("send.committed"), "the standby sent while A held the lease"
        a.sigkill()
        killed_at = time.monotonic()
        sent_before = len(before.apply_requests)
        assert sent_before < 30, "the kill came after everything was sent"

        async def b_active() -> bool:
            return b.saw("sender.active")

        await wait_until(
            b_active, timeout=15, poll=0.05, what="B to become the sender", describe=w.describe
        )
        took_over = time.monotonic() - killed_at
        assert took_over < 8, f"standby took {took_over:.1f} s to take over (lease TTL 2 s)"
        assert await w.sender() == "e2e-B"

        rows = await w.wait_settled(ids, timeout=60)
        snap = await Snapshot.take(w)
        assert {r["status"] for r in rows} == {"completed"}, [
            (r["id"], r["status"], r["status_reason"]) for r in rows if r["status"] != "completed"
        ]
        for r in rows:
            assert len(withdrawals_of(snap, r)) == 1, r["id"]
        assert len(snap.ledger.withdrawals) == 30
        assert b.saw("send.committed"), "B finished nothing"
        assert_invariants(snap, rate=RATE)

        code, took = await b.sigterm(10)
        assert code == 0 and took < 10, (code, took)
