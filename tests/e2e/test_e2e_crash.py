"""SIGKILL ``treasury run`` at each step of an intent's life, restart it, check the ledger.

Each scenario is its own world (database, sandbox, daemons); the scenarios of one
database run side by side to keep the wall time down. The restarted daemon gets a new
worker id, as a restarted process does by default (hostname:pid:random).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import (
    USDT_BSC,
    USDT_ETH,
    USDT_TRX,
    USDT_TRX_2,
    USDT_TRX_3,
    XRP_1,
    World,
    run_concurrently,
    wait_until,
    world,
)
from invariants import Snapshot, assert_invariants, withdrawals_of

pytestmark = pytest.mark.slow
SETTLE_AFTER_RESTART_S = 40  # reconciliation of a never-answered send needs ~13 s


def _reasons(snap: Snapshot, intent_id: int) -> list[str]:
    return [e["reason"] for e in snap.events if e["intent_id"] == intent_id]


async def _one_each(w: World, ids: list[int]) -> Snapshot:
    rows = await w.wait_settled(ids, timeout=SETTLE_AFTER_RESTART_S)
    snap = await Snapshot.take(w)
    for r in rows:
        assert r["status"] == "completed", (r["id"], r["status"], r["status_reason"])
        assert len(withdrawals_of(snap, r)) == 1, r["id"]
    return snap


async def crash_after_claim(kind: str, tmp: Path) -> None:
    """(a) Killed while intents are claimed but not yet committed to send.

    The first intent's request hangs in the exchange (delay_before_accept_s), so the
    rest of the claimed batch sits claimed-but-queued; the kill lands then. The
    hanging request is accepted by the exchange after the daemon died.
    """
    faults = {"delay_before_accept_s": {"seconds": 3, "next": 1}}
    # at 10/s the daemon processes one intent at a time (above, sends overlap)
    async with world(kind, tmp, faults=faults, env={"TREASURY_WITHDRAW_RATE": "10"}) as w:
        d = await w.start_daemon()
        # after it became the sender: what was queued before would be held (a new sender
        # waits out the history lag), and SQL's CURRENT_TIMESTAMP counts whole seconds;
        # paused meanwhile, so that one claim takes all three
        await w.cli("pause", "--reason", "queue three", "--as", "e2e")
        await anyio.sleep(1.1)
        ids = [
            await w.insert_sql(*USDT_TRX, "10.5"),
            await w.insert_sql(*USDT_ETH, "11.25"),
            await w.insert_sql(*XRP_1, "40"),
        ]
        await w.cli("resume", "--as", "e2e")

        async def claimed() -> bool:
            rows = {r["id"]: r for r in await w.intents()}
            first, rest = rows[ids[0]], [rows[i] for i in ids[1:]]
            return first["status"] == "submitting" and all(
                r["status"] == "queued" and r["claimed_by"] for r in rest
            )

        await wait_until(
            claimed, timeout=20, poll=0.01, what="a claimed batch", describe=w.describe
        )
        d.sigkill()
        assert not w.sandbox.ledger().apply_requests, "the kill came too late"
        await w.start_daemon()
        snap = await _one_each(w, ids)
        assert len(snap.ledger.apply_requests) == 3
        assert_invariants(snap, rate=10, delay_before_s=3)


async def crash_in_flight(kind: str, tmp: Path) -> None:
    """(b) Killed after committing ``submitting``, while the exchange has not answered.

    The request hangs 3 s inside the exchange, which accepts it after the daemon died
    (Binance may create a withdrawal up to its processing timeout later). The restarted
    daemon must find it by withdrawOrderId and adopt it, never send it again.
    """
    async with world(kind, tmp, faults={"delay_before_accept_s": {"seconds": 3, "next": 1}}) as w:
        iid = await w.insert_sql(*USDT_TRX, "123.456789")
        d = await w.start_daemon()
        await w.wait_status(iid, ["submitting"], timeout=20)
        await anyio.sleep(0.5)  # the request leaves right after the commit; let it arrive
        d.sigkill()
        assert (await w.intent(iid))["status"] == "submitting"
        await w.start_daemon()
        snap = await _one_each(w, [iid])
        assert len(snap.ledger.apply_requests) == 1, "sent again"
        assert any("reconciled" in r for r in _reasons(snap, iid)), _reasons(snap, iid)
        assert_invariants(snap, delay_before_s=3)


async def crash_committed_never_executed(kind: str, tmp: Path) -> None:
    """(b') Killed after committing ``submitting`` when the exchange did not execute it.

    The exchange answers 503 before processing (error_5xx_before): the outcome is
    unknown to the daemon, which is killed before it could reconcile. Only proof of
    absence (two lookups after signed ts + recvWindow + 10 s + margin) may put it back
    in the queue; it is then sent again with the same withdrawOrderId, exactly once.
    """
    async with world(kind, tmp, faults={"error_5xx_before": {"next": 1}}) as w:
        iid = await w.insert_sql(*USDT_TRX_2, "20.02")
        d = await w.start_daemon()

        async def refused() -> bool:
            return bool(w.sandbox.ledger().apply_requests)

        await wait_until(refused, timeout=20, poll=0.01, what="the 503")
        d.sigkill()
        row = await w.intent(iid)
        assert row["status"] == "submitting", row
        await w.start_daemon()
        snap = await _one_each(w, [iid])
        reasons = " | ".join(_reasons(snap, iid))
        assert "absent" in reasons and "sent again" in reasons, reasons
        calls = snap.ledger.apply_calls_for(row["withdraw_order_id"])
        assert [c.http_status for c in calls] == [503, 200], calls
        assert_invariants(snap)


async def rate_across_restart(kind: str, tmp: Path) -> None:
    """(5) A restart right after a send does not shorten the gap to the next send."""
    async with world(kind, tmp, env={"TREASURY_WITHDRAW_RATE": "0.4"}) as w:
        ids = [
            await w.insert_sql(*USDT_TRX, "10"),
            await w.insert_sql(*USDT_TRX_2, "11"),
            await w.insert_sql(*USDT_TRX_3, "12"),
        ]
        d = await w.start_daemon()

        async def two_sent() -> bool:
            return len(w.sandbox.ledger().apply_requests) >= 2

        await wait_until(two_sent, timeout=20, poll=0.01, what="two sends")
        d.sigkill()
        await w.start_daemon()
        snap = await _one_each(w, ids)
        times = [r.at_ms for r in snap.ledger.apply_requests]
        assert len(times) == 3 and times[2] - times[1] >= 2500 - 10, times
        assert_invariants(snap, rate=0.4)


async def crash_accepted_unrecorded(kind: str, tmp: Path) -> None:
    """(c) Killed after the exchange accepted, before the answer was stored."""
    async with world(kind, tmp, faults={"delay_after_accept_s": {"seconds": 3, "next": 1}}) as w:
        iid = await w.insert_sql(*USDT_BSC, "77.7")
        d = await w.start_daemon()

        async def accepted_not_stored() -> bool:
            return bool(w.sandbox.ledger().withdrawals)

        await wait_until(accepted_not_stored, timeout=20, poll=0.01, what="the acceptance")
        d.sigkill()
        assert (await w.intent(iid))["status"] == "submitting"
        await w.start_daemon()
        snap = await _one_each(w, [iid])
        assert len(snap.ledger.apply_requests) == 1, "sent again"
        assert any("reconciled" in r for r in _reasons(snap, iid)), _reasons(snap, iid)
        assert_invariants(snap)


async def crash_while_polling(kind: str, tmp: Path) -> None:
    """(d) Killed while the withdrawal is ``submitted`` and being polled."""
    async with world(kind, tmp, processing_s=4) as w:
        iid = await w.insert_sql(*XRP_1, "2.5")
        d = await w.start_daemon()
        await w.wait_status(iid, ["submitted"], timeout=20)
        d.sigkill()
        assert (await w.intent(iid))["status"] == "submitted"
        await w.start_daemon()
        snap = await _one_each(w, [iid])
        assert len(snap.ledger.apply_requests) == 1
        assert_invariants(snap)


async def _still_submitting_after(w: Any, ids: list[int], hold_s: float, timeout: float) -> int:
    """The first intent seen ``submitting`` that still is ``hold_s`` later."""
    with anyio.fail_after(timeout):
        while True:
            for intent_id in ids:
                if (await w.intent(intent_id))["status"] == "submitting":
                    await anyio.sleep(hold_s)
                    if (await w.intent(intent_id))["status"] == "submitting":
                        return intent_id
            await anyio.sleep(0.01)


async def sigterm_mid_send(kind: str, tmp: Path) -> None:
    """SIGTERM while a send hangs in the exchange: the send gets its grace, its answer is
    recorded, the process exits 0 within 10 s, and the next start finishes the rest."""
    faults = {"delay_before_accept_s": {"seconds": 2, "next": 1}}
    async with world(kind, tmp, faults=faults, env={"TREASURY_WITHDRAW_RATE": "10"}) as w:
        ids = [
            await w.insert_sql(*USDT_TRX, "64"),
            await w.insert_sql(*USDT_ETH, "65"),
            await w.insert_sql(*USDT_BSC, "66"),
        ]
        d = await w.start_daemon()
        # At 10 sends/s the three go out nearly together and any of them may draw the
        # 2 s delay: the hanging one is the intent still submitting 0.3 s after it was seen
        hanging = await _still_submitting_after(w, ids, 0.3, timeout=20)
        term_ms = time.time() * 1000
        code, took = await d.sigterm(10)
        assert code == 0 and took < 10, (code, took, d.logs()[-2000:])
        first = await w.intent(hanging)
        assert first["status"] in ("submitted", "completed"), first  # the answer was kept
        after = [
            r
            for r in w.sandbox.ledger().apply_requests
            if r.at_ms - (2000 if r.params["withdrawOrderId"] == first["withdraw_order_id"] else 0)
            > term_ms
        ]
        assert not after, f"sent after SIGTERM: {after}"
        await w.start_daemon()
        snap = await _one_each(w, ids)
        assert len(snap.ledger.apply_requests) == 3
        assert_invariants(snap, rate=10, delay_before_s=2)


async def test_sigkill_at_every_step_then_restart(backend: str, tmp_path: Path) -> None:
    scenarios = {
        "a-claimed": crash_after_claim,
        "b-in-flight": crash_in_flight,
        "b-committed-never-executed": crash_committed_never_executed,
        "rate-across-restart": rate_across_restart,
        "sigterm-mid-send": sigterm_mid_send,
        "c-accepted-unrecorded": crash_accepted_unrecorded,
        "d-polling": crash_while_polling,
    }
    await run_concurrently(
        {name: partial(fn, backend, tmp_path / name) for name, fn in scenarios.items()}
    )
