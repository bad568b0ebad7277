"""The kill switch: ``treasury pause`` stops sends mid-stream, holds across a restart, and
``treasury resume`` lets the queue complete."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from harness import (
    BTC_BTC,
    ETH_ARB,
    USDT_BSC,
    USDT_ETH,
    USDT_TRX,
    USDT_TRX_2,
    XRP_2,
    wait_until,
    world,
)
from invariants import Snapshot, assert_invariants

pytestmark = pytest.mark.slow
RATE = 2.0  # slow enough that the pause lands in the middle of the queue


def _epoch_ms(value: object) -> int:
    if isinstance(value, str):  # SQLite keeps UTC text
        value = datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return int(value.timestamp() * 1000)


async def test_pause_stops_sends_holds_across_restart_and_resume_completes(
    backend: str, tmp_path: Path
) -> None:
    async with world(backend, tmp_path, env={"TREASURY_WITHDRAW_RATE": str(RATE)}) as w:
        ids = [
            await w.insert_sql(*dest, amount)
            for dest, amount in [
                (USDT_TRX, "10"),
                (USDT_TRX_2, "20"),
                (BTC_BTC, "0.001"),
                (XRP_2, "3"),
                (USDT_ETH, "30"),
                (USDT_BSC, "40"),
                (ETH_ARB, "0.01"),
                (USDT_TRX, "50"),
            ]
        ]
        daemon = await w.start_daemon()

        async def two_sent() -> bool:
            return len(w.sandbox.ledger().apply_requests) >= 2

        await wait_until(two_sent, timeout=20, poll=0.02, what="two sends")
        await w.cli("pause", "--reason", "e2e drill", "--as", "e2e")
        row = (await w.sql("SELECT updated_at FROM service_state WHERE key = 'paused'"))[0]
        paused_at = _epoch_ms(row["updated_at"])
        sent_at_pause = len(w.sandbox.ledger().apply_requests)
        assert sent_at_pause < len(ids), "everything was sent before the pause"
        await anyio.sleep(3)
        ledger = w.sandbox.ledger()
        late = [r for r in ledger.apply_requests if r.at_ms > paused_at + 500]
        assert not late, f"{len(late)} apply calls more than 0.5 s after the pause"
        assert len(ledger.apply_requests) <= sent_at_pause + 1  # at most one in flight

        code, took = await daemon.sigterm(10)
        assert code == 0 and took < 10
        await w.start_daemon()
        await anyio.sleep(2)
        assert len(w.sandbox.ledger().apply_requests) == len(ledger.apply_requests), (
            "the pause did not survive a restart"
        )
        listing = json.loads((await w.cli("list", "--json")).stdout)
        assert listing["paused"] is True and listing["pause_reason"] == "e2e drill"
        assert "queued" in {i["status"] for i in listing["intents"]}

        await w.cli("resume")
        rows = await w.wait_settled(ids, timeout=40)
        assert {r["status"] for r in rows} == {"completed"}
        snap = await Snapshot.take(w)
        assert len(snap.ledger.apply_requests) == len(ids)
        assert_invariants(snap, rate=RATE)
