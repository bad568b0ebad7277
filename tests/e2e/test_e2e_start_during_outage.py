"""`treasury run` started while the exchange is in maintenance, then unreachable: it starts,
sends nothing, says why on /readyz, and begins sending when the exchange recovers, without
a restart. What an operator must fix still stops it at once."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from harness import USDT_TRX, wait_until, world
from invariants import Snapshot, assert_invariants, withdrawals_of

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_run_rides_out_maintenance_and_an_outage(tmp_path: Path) -> None:
    async with world("sqlite", tmp_path) as w:
        iid = await w.insert_sql(*USDT_TRX, "12.5")
        await w.sandbox.set_faults({"maintenance": True})
        port = _free_port()
        daemon = await w.start_daemon(
            wait=False, TREASURY_METRICS_BIND=f"127.0.0.1:{port}", TREASURY_PREFLIGHT_RETRY_S="1"
        )
        async with httpx.AsyncClient(timeout=5) as http:

            async def readyz() -> httpx.Response | None:
                if not daemon.alive():
                    raise AssertionError(f"treasury run exited:\n{daemon.logs()}")
                try:
                    return await http.get(f"http://127.0.0.1:{port}/readyz")
                except httpx.TransportError:
                    return None  # not listening yet

            async def waiting_for(word: str) -> bool:
                answer = await readyz()
                return (
                    answer is not None
                    and answer.status_code == 503
                    and "preflight" in answer.json()["failed"]
                    and word in answer.json()["checks"]["preflight"]
                )

            await wait_until(lambda: waiting_for("maintenance"), timeout=30, what="503 on /readyz")
            assert daemon.saw("daemon.waiting_for_exchange")

            await w.sandbox.set_faults({"maintenance": False, "outage": True})
            await wait_until(lambda: waiting_for("clock"), timeout=30, what="the outage reported")
            assert w.sandbox.ledger().apply_requests == [], "sent while waiting"
            assert (await w.intent(iid))["status"] == "queued"

            await w.sandbox.reset_faults()
            [row] = await w.wait_settled([iid], timeout=60)
            assert row["status"] == "completed", row
            answer = await readyz()
            assert answer is not None and "preflight" not in answer.json()["checks"]
        assert daemon.alive() and daemon.saw("daemon.exchange_ready")
        code, _ = await daemon.sigterm()
        assert code == 0, daemon.logs()[-3000:]
        assert daemon.saw("daemon.stopped")  # the last line says the stop completed
        alerts = [e for e in daemon.events() if e.get("event") == "alert"]
        assert [a["kind"] for a in alerts][:1] == ["waiting_for_exchange"], alerts
        snap = await Snapshot.take(w)
        assert len(withdrawals_of(snap, row)) == 1
        assert_invariants(snap)


async def test_run_still_refuses_what_an_operator_must_fix(tmp_path: Path) -> None:
    async with world("sqlite", tmp_path) as w:
        await w.sandbox.set_faults({"maintenance": True})  # would be waited out alone
        daemon = await w.start_daemon(wait=False, TREASURY_BINANCE_API_KEY="not-the-key")

        async def exited() -> bool:
            return not daemon.alive()

        await wait_until(exited, timeout=30, what="treasury run to exit")
        assert daemon.proc.returncode == 1, daemon.logs()[-3000:]
        [key] = [
            e
            for e in daemon.events()
            if e.get("event") == "preflight.check" and e.get("check") == "api key"
        ]
        assert (key["ok"], key["level"], key["waits"]) == (False, "error", False), key
        assert key["detail"].startswith("refused"), key
        assert "[FAIL]" not in daemon.logs()  # no text checklist in the JSON stream
        assert "preflight failed, not starting" in daemon.logs()
