"""The exchange at its documented worst (sandbox faults), through the real daemon.

Every scenario ends with: each intent completed, exactly one withdrawal per
withdrawOrderId on the exchange's side, and the seven invariants. Scenarios are
independent worlds run side by side.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from harness import USDT_BSC, USDT_ETH, USDT_TRX, USDT_TRX_2, XRP_1, World, run_concurrently, world
from invariants import Snapshot, assert_invariants, withdrawals_of

pytestmark = pytest.mark.slow


async def _all_once(w: World, ids: list[int], *, deadline_s: float = 60) -> Snapshot:
    rows = await w.wait_settled(ids, timeout=deadline_s)
    snap = await Snapshot.take(w)
    for r in rows:
        assert r["status"] == "completed", (r["id"], r["status"], r["status_reason"])
        assert len(withdrawals_of(snap, r)) == 1, r["id"]
    return snap


def _trail(snap: Snapshot, intent_id: int) -> str:
    return " | ".join(e["reason"] for e in snap.events if e["intent_id"] == intent_id)


async def drop_and_history_lag(tmp: Path) -> None:
    """Every answer lost after acceptance, and history 9 s behind: wait, find, adopt."""
    faults = {"drop_after_accept": True, "history_lag_s": 9}
    async with world("sqlite", tmp, faults=faults) as w:
        ids = [
            await w.insert_sql(*USDT_TRX, "10.1"),
            await w.insert_sql(*USDT_ETH, "10.2"),
            await w.insert_sql(*XRP_1, "2.000001"),
        ]
        await w.start_daemon()
        snap = await _all_once(w, ids, deadline_s=60)
        assert len(snap.ledger.apply_requests) == 3, "something was sent twice"
        assert all(r.http_status is None for r in snap.ledger.apply_requests)
        for i in ids:
            assert "adopted: the exchange has it" in _trail(snap, i), _trail(snap, i)
        assert_invariants(snap)


async def error_5xx_after(tmp: Path) -> None:
    """Accepted, then a 500: reconciled and adopted, never sent again."""
    async with world("sqlite", tmp, faults={"error_5xx_after": {"next": 1}}) as w:
        iid = await w.insert_sql(*USDT_BSC, "42.424242")
        await w.start_daemon()
        snap = await _all_once(w, [iid])
        assert [r.http_status for r in snap.ledger.apply_requests] == [500]
        assert "adopted: the exchange has it" in _trail(snap, iid), _trail(snap, iid)
        assert_invariants(snap)


async def error_code_after(tmp: Path) -> None:
    """Accepted, then -1007 (timeout waiting for the backend): adopted, not re-sent."""
    async with world("sqlite", tmp, faults={"error_code_after": {"next": 1}}) as w:
        iid = await w.insert_sql(*USDT_TRX_2, "15")
        await w.start_daemon()
        snap = await _all_once(w, [iid])
        assert len(snap.ledger.apply_requests) == 1
        assert "reconciled" in _trail(snap, iid), _trail(snap, iid)
        assert_invariants(snap)


async def error_5xx_before(tmp: Path) -> None:
    """A 503 before processing: re-sent only after proof of absence; one withdrawal."""
    async with world("sqlite", tmp, faults={"error_5xx_before": {"next": 1}}) as w:
        iid = await w.insert_sql(*USDT_TRX, "33.33")
        await w.start_daemon()
        snap = await _all_once(w, [iid])
        row = next(r for r in snap.intents if r["id"] == iid)
        calls = snap.ledger.apply_calls_for(row["withdraw_order_id"])
        assert [c.http_status for c in calls] == [503, 200], calls
        # the re-send waited for the safe point: signed ts + recvWindow + 10 s + margin
        first_ts = int(calls[0].params["timestamp"])
        assert calls[1].at_ms >= first_ts + 1000 + 10_000 + 1000, (calls[0], calls[1])
        assert calls[1].params["withdrawOrderId"] == calls[0].params["withdrawOrderId"]
        assert "absent" in _trail(snap, iid), _trail(snap, iid)
        assert_invariants(snap)


async def read_timeout_then_late_acceptance(tmp: Path) -> None:
    """The client gives up (read timeout) and the exchange creates it 4 s later."""
    faults = {"delay_before_accept_s": {"seconds": 4, "next": 1}}
    env = {"TREASURY_APPLY_TIMEOUT_S": "1.5"}
    async with world("sqlite", tmp, faults=faults, env=env) as w:
        iid = await w.insert_sql(*USDT_ETH, "500")
        await w.start_daemon()
        snap = await _all_once(w, [iid])
        assert len(snap.ledger.apply_requests) == 1, "sent again after a timeout"
        assert "adopted: the exchange has it" in _trail(snap, iid), _trail(snap, iid)
        assert_invariants(snap, delay_before_s=4)


async def clock_skew_jumps(tmp: Path) -> None:
    """The exchange's clock jumps 2.5 s ahead, then 2.5 s behind (recvWindow 1 s): -1021
    answers come and go; the daemon resyncs and sends each intent once."""
    async with world("sqlite", tmp) as w:
        d = await w.start_daemon()
        await w.sandbox.set_faults({"clock_skew_ms": 2500})
        ids = [await w.insert_sql(*USDT_TRX, "18"), await w.insert_sql(*USDT_BSC, "19")]
        await w.wait_settled(ids, timeout=30)
        await w.sandbox.set_faults({"clock_skew_ms": -2500})
        ids += [await w.insert_sql(*USDT_TRX_2, "20"), await w.insert_sql(*XRP_1, "21")]
        snap = await _all_once(w, ids)
        assert len(snap.ledger.withdrawals) == 4
        assert d.alive()
        assert_invariants(snap)


async def test_exchange_faults_never_cause_a_second_withdrawal(tmp_path: Path) -> None:
    scenarios = {
        "drop_after_accept+history_lag_s": drop_and_history_lag,
        "error_5xx_after": error_5xx_after,
        "error_code_after": error_code_after,
        "error_5xx_before": error_5xx_before,
        "read-timeout": read_timeout_then_late_acceptance,
        "clock-skew": clock_skew_jumps,
    }
    await run_concurrently(
        {name: partial(fn, tmp_path / name.replace("+", "_")) for name, fn in scenarios.items()}
    )
