"""The journal: durable, replayed on restart, readable by torture tests while it grows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, USDT_TRX, Client, error_code, usdt_trx

from treasury.sandbox import ManualClock, parse_config, read_ledger, running_sandbox
from treasury.sandbox.ledger import JournalInUse
from treasury.sandbox.state import ReplayError


@asynccontextmanager
async def started(
    state: Path, clock: ManualClock, faults: dict[str, Any] | None = None, **timings: object
) -> AsyncIterator[Client]:
    config = parse_config(
        {
            **BASE_CONFIG,
            "journal_fsync": True,
            "timings": {**BASE_CONFIG["timings"], **timings},
        }
    )
    async with (
        running_sandbox(config=config, clock=clock, state_path=state, faults=faults) as sandbox,
        httpx.AsyncClient(base_url=sandbox.url) as http,
    ):
        yield Client(http, clock.now_ms)


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    async with started(state, clock) as client:
        first = (await client.apply(**usdt_trx("100", withdrawOrderId="a"))).json()["id"]
        await client.http.post(
            "/_sandbox/network", json={"coin": "USDT", "network": "TRX", "withdrawMin": "30"}
        )
        refused = await client.apply(**usdt_trx("20", withdrawOrderId="b"))
        assert error_code(refused) == -4022
    ledger = read_ledger(state)
    assert [w.id for w in ledger.withdrawals] == [first]
    assert ledger.withdrawals[0].amount == Decimal("100")
    assert [r.error_code for r in ledger.apply_requests] == [None, -4022]

    clock.advance_s(1)
    async with started(state, clock) as client:
        [item] = await client.history()
        assert item["id"] == first and item["withdrawOrderId"] == "a"
        assert await client.free("USDT") == Decimal("2499900")
        assert error_code(await client.apply(**usdt_trx("20"))) == -4022  # rule change kept
        second = (await client.apply(**usdt_trx("40"))).json()["id"]
        assert second != first
        clock.advance_s(1)  # the first is 2 s old (done), the second 1 s (processing)
        assert [i["status"] for i in await client.history()] == [4, 6]
    assert [w.id for w in read_ledger(state).withdrawals] == [first, second]


async def test_failed_withdrawal_is_refunded_once_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    async with started(state, clock, failure_share="1") as client:
        await client.apply(**usdt_trx("100"))
        assert await client.free("USDT") == Decimal("2499900")
        clock.advance_s(2)
        [item] = await client.history()
        assert item["status"] == 5 and item["info"] and item["txId"] == ""
        assert "completeTime" not in item
        assert await client.free("USDT") == Decimal("2500000")
    async with started(state, clock, failure_share="1") as client:
        assert await client.free("USDT") == Decimal("2500000")
        assert (await client.history())[0]["status"] == 5


async def test_rejections_come_back_as_status_3(tmp_path: Path) -> None:
    clock = ManualClock(START_MS)
    async with started(tmp_path / "s.jsonl", clock, rejection_share="1") as client:
        await client.apply(**usdt_trx("100"))
        clock.advance_s(2)
        assert (await client.history())[0]["status"] == 3
        assert await client.free("USDT") == Decimal("2500000")


async def test_drop_is_on_disk_before_the_connection_drops(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    async with started(state, ManualClock(START_MS), {"drop_after_accept": 1}) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.apply(**usdt_trx(withdrawOrderId="x"))
        ledger = read_ledger(state)  # the file, while the sandbox still runs
        assert [w.withdraw_order_id for w in ledger.withdrawals] == ["x"]
        assert ledger.apply_calls_for("x")[0].fault == "drop_after_accept"


async def test_torn_last_line_is_ignored_and_cut(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    async with started(state, clock) as client:
        await client.apply(**usdt_trx())
    with state.open("ab") as f:
        f.write(b'{"type":"withdrawal","id":"tor')
    assert len(read_ledger(state).withdrawals) == 1
    async with started(state, clock) as client:
        assert len(await client.history()) == 1
        await client.apply(**usdt_trx())
    lines = state.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)
    assert len(read_ledger(state).withdrawals) == 2


async def test_a_state_file_serves_one_sandbox_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    async with started(state, ManualClock(START_MS)):
        with pytest.raises(JournalInUse):
            async with started(state, ManualClock(START_MS)):
                pass


async def test_start_faults_actions_apply_only_to_a_new_journal(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    faults = {
        "maintenance": True,
        "inject_foreign_withdrawal": {
            "coin": "USDT", "network": "TRX", "address": USDT_TRX, "amount": "11",
        },
    }  # fmt: skip
    clock = ManualClock(START_MS)
    for _ in range(2):
        async with started(state, clock, faults) as client:
            assert (await client.http.get("/sapi/v1/system/status")).json()["status"] == 1
            assert len(await client.history()) == 1
    assert [w.source for w in read_ledger(state).withdrawals] == ["foreign"]


def test_ledger_helpers_on_a_handwritten_journal(tmp_path: Path) -> None:
    def withdrawal(wid: str, woid: str | None) -> dict[str, Any]:
        return {
            "type": "withdrawal", "t": 1, "seq": 0, "id": wid, "source": "api",
            "account": "default", "coin": "USDT", "network": "TRX", "address": USDT_TRX,
            "addressTag": None, "amount": "10.50", "fee": "1", "withdrawOrderId": woid,
            "name": None, "walletType": 0, "applied_at": START_MS, "visible_at": START_MS,
            "settle_at": START_MS + 1, "final_status": 6, "info": "", "txId": "ab",
            "confirmNo": 1,
        }  # fmt: skip

    def apply(woid: str, wid: str | None) -> dict[str, Any]:
        return {"type": "apply", "t": 1, "account": "default", "params": {"withdrawOrderId": woid},
                "id": wid, "code": None if wid else -4026, "http": 200, "fault": None}  # fmt: skip

    records = [
        apply("k1", "a"), withdrawal("a", "k1"), apply("k1", None), apply("k1", "b"),
        withdrawal("b", "k1"), apply("k2", "c"), withdrawal("c", "k2"), withdrawal("d", None),
    ]  # fmt: skip
    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    ledger = read_ledger(path)
    assert ledger.withdrawals[0].amount == Decimal("10.50")
    assert ledger.withdrawals[0].visible_at_ms == START_MS
    assert {k: [w.id for w in v] for k, v in ledger.duplicates_by_withdraw_order_id().items()} == {
        "k1": ["a", "b"]
    }
    assert [r.withdrawal_id for r in ledger.apply_calls_for("k1")] == ["a", None, "b"]
    assert ledger.apply_calls_for("k1")[1].error_code == -4026
    assert ledger.withdrawals[0].applied_at.year == 2026


async def test_a_journal_from_another_config_is_refused_clearly(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    async with started(state, ManualClock(START_MS)) as client:
        await client.apply(**usdt_trx())
    lonely = {"accounts": [{"name": "other", "api_key": "k", "hmac_secret": "s"}]}
    with pytest.raises(ReplayError, match=r"record 3 \('withdrawal'\)"):
        async with running_sandbox(config=parse_config(lonely), state_path=state):
            pass
    # the refused start left the journal untouched and unlocked
    async with started(state, ManualClock(START_MS)) as client:
        assert len(await client.history()) == 1


async def test_admin_clock_advance_is_journaled(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    async with (
        running_sandbox(config=parse_config(BASE_CONFIG), state_path=state) as sandbox,
        httpx.AsyncClient(base_url=sandbox.url) as http,
    ):
        before = (await http.get("/_sandbox/clock")).json()["now_ms"]
        after = (await http.post("/_sandbox/clock", json={"advance_ms": 3_600_000})).json()
        assert after["now_ms"] - before >= 3_600_000
        assert after["server_ms"] == after["now_ms"]  # no skew set
        refused = await http.post("/_sandbox/clock", json={"advance_ms": -1})
        assert refused.status_code == 400 and "advance_ms" in refused.json()["error"]
    async with running_sandbox(config=parse_config(BASE_CONFIG), state_path=state) as sandbox:
        assert sandbox.clock.now_ms() - before >= 3_600_000


async def test_a_journal_written_before_wallets_and_reviews_still_replays(tmp_path: Path) -> None:
    """Records without ``review_*`` or ``whitelisted`` keys read as before: spot, no review."""
    other = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
    records = [
        {"type": "whitelist", "t": START_MS, "account": "default", "action": "add",
         "entry": {"coin": "USDT", "network": "TRX", "address": other, "addressTag": None,
                   "name": ""}},
        {"type": "withdrawal", "t": START_MS, "seq": 0, "id": "old", "source": "api",
         "account": "default", "coin": "USDT", "network": "TRX", "address": other,
         "addressTag": None, "amount": "30", "fee": "1", "withdrawOrderId": "o", "name": None,
         "walletType": 0, "applied_at": START_MS, "visible_at": START_MS,
         "settle_at": START_MS + 2000, "final_status": 6, "info": "", "txId": "ab",
         "confirmNo": 1},
    ]  # fmt: skip
    state = tmp_path / "old.jsonl"
    state.write_text("".join(json.dumps(r) + "\n" for r in records))
    clock = ManualClock(START_MS + 1000)
    async with started(state, clock) as client:
        [item] = await client.history()
        assert (item["id"], item["status"], item["walletType"]) == ("old", 4, 0)
        assert await client.free("USDT") == Decimal("2499970")
        listed = (await client.get("/sapi/v1/capital/withdraw/address/list")).json()
        assert next(e for e in listed if e["address"] == other)["whiteStatus"] is True
        assert (await client.apply(**usdt_trx(address=other))).status_code == 200
    [old, _] = read_ledger(state).withdrawals
    assert (old.wallet_type, old.review_status, old.review_until_ms) == (0, None, None)
