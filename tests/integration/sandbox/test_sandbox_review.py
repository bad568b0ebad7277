"""The review fault: hours in status 0 or 2, then completed or cancelled (1), across restarts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, Client, accounts_with, error_code, usdt_trx

from treasury.sandbox import ManualClock, RunningSandbox, parse_config, read_ledger, running_sandbox

FAULTS = "/_sandbox/faults"
HOUR_MS = 3_600_000
SPOT_USDT = Decimal("2500000")


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"accounts": accounts_with(funding_balances={"USDT": "500"})}


async def _set(http: httpx.AsyncClient, body: dict[str, object]) -> dict[str, Any]:
    response = await http.post(FAULTS, json=body)
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown


async def _status(client: Client, wid: str) -> int:
    [item] = await client.history(idList=wid)
    status: int = item["status"]
    return status


async def test_awaiting_approval_for_two_hours_then_completed(
    client: Client, http: httpx.AsyncClient, clock: ManualClock, sandbox: RunningSandbox
) -> None:
    review = {"status": 2, "hold_s": 7200, "then": "complete", "next": 1}
    assert (await _set(http, {"review": review}))["review"] == review
    wid = (await client.apply(**usdt_trx("100"))).json()["id"]
    assert await client.free("USDT") == SPOT_USDT - 100  # held while under review
    [item] = await client.history(idList=wid)
    assert (item["status"], item["txId"], item["info"]) == (2, "", "")
    assert "completeTime" not in item
    assert [i["id"] for i in await client.history(status=2)] == [wid]
    clock.advance(2 * HOUR_MS - 1)
    assert await _status(client, wid) == 2
    clock.advance(1)
    assert await _status(client, wid) == 4  # out of review: processed as usual
    clock.advance_s(2)
    [done] = await client.history(idList=wid)
    assert done["status"] == 6 and done["txId"]
    assert done["completeTime"] == "2026-01-01 02:00:02"
    assert await client.free("USDT") == SPOT_USDT - 100
    # the counter is spent: the next withdrawal is processed at once
    other = (await client.apply(**usdt_trx())).json()["id"]
    assert await _status(client, other) == 4
    assert (await http.get(FAULTS)).json()["review"]["next"] == 0
    [reviewed, plain] = sandbox.ledger().withdrawals
    assert (reviewed.review_status, reviewed.review_until_ms) == (2, START_MS + 2 * HOUR_MS)
    assert (plain.review_status, plain.review_until_ms) == (None, None)
    assert [r.fault for r in sandbox.ledger().apply_requests] == ["review", None]


async def test_email_sent_for_hours_then_cancelled_refunds_its_wallet(
    client: Client, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await _set(http, {"review": {"status": 0, "hold_s": 3 * 3600, "then": "cancel"}})
    wid = (await client.apply(**usdt_trx("200", walletType=1))).json()["id"]
    assert await client.funding("USDT") == Decimal("300")
    clock.advance(3 * HOUR_MS - 1)
    [item] = await client.history(idList=wid)
    assert item["status"] == 0
    getall = (await client.get("/sapi/v1/capital/config/getall")).json()
    assert next(c for c in getall if c["coin"] == "USDT")["withdrawing"] == "0"  # not spot's
    [row] = await client.funding_assets(asset="USDT")
    assert row["withdrawing"] == "200"
    clock.advance(1)
    [cancelled] = await client.history(idList=wid)
    assert (cancelled["status"], cancelled["txId"], cancelled["confirmNo"]) == (1, "", 0)
    assert cancelled["info"] and "completeTime" not in cancelled
    assert await client.funding("USDT") == Decimal("500")
    assert await client.free("USDT") == SPOT_USDT
    clock.advance(HOUR_MS)
    assert await _status(client, wid) == 1  # terminal


async def test_every_call_form_reviews_each_accepted_withdrawal(
    client: Client, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await _set(http, {"review": {"hold_s": 60}})  # status 2 and "complete" by default
    assert error_code(await client.apply(**usdt_trx("1"))) == -4022  # refused: not reviewed
    ids = [(await client.apply(**usdt_trx())).json()["id"] for _ in range(2)]
    assert [await _status(client, wid) for wid in ids] == [2, 2]
    clock.advance_s(60)
    assert [await _status(client, wid) for wid in ids] == [4, 4]
    await _set(http, {"review": None})
    assert await _status(client, (await client.apply(**usdt_trx())).json()["id"]) == 4


async def test_probability_form_reviews_only_some(http: httpx.AsyncClient, client: Client) -> None:
    await _set(http, {"review": {"hold_s": 60, "probability": 0.5}, "seed": 5})
    ids = [(await client.apply(**usdt_trx())).json()["id"] for _ in range(12)]
    assert {await _status(client, wid) for wid in ids} == {2, 4}


@pytest.mark.parametrize("then", ["complete", "cancel"])
async def test_a_review_survives_a_restart_in_its_middle(tmp_path: Path, then: str) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    config = parse_config(
        {**BASE_CONFIG, "accounts": accounts_with(funding_balances={"USDT": "500"})}
    )
    faults = {"review": {"status": 2, "hold_s": 7200, "then": then, "next": 1}}
    async with (
        running_sandbox(config=config, clock=clock, state_path=state, faults=faults) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        wid = (await client.apply(**usdt_trx("50", walletType=1))).json()["id"]
        clock.advance(HOUR_MS)
        assert await _status(client, wid) == 2
    [booked] = read_ledger(state).withdrawals
    assert booked.review_status == 2 and booked.review_until_ms == START_MS + 2 * HOUR_MS
    assert booked.final_status == (6 if then == "complete" else 1)
    # restarted without the fault: the journaled review still holds
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        assert await _status(client, wid) == 2
        assert await client.funding("USDT") == Decimal("450")
        clock.advance(HOUR_MS)
        if then == "complete":
            assert await _status(client, wid) == 4
            clock.advance_s(2)
            assert await _status(client, wid) == 6
            assert await client.funding("USDT") == Decimal("450")
        else:
            assert await _status(client, wid) == 1
            assert await client.funding("USDT") == Decimal("500")
        assert await _status(client, (await client.apply(**usdt_trx())).json()["id"]) == 4
    async with running_sandbox(config=config, clock=clock, state_path=state) as sb:
        refunded = Decimal("500") if then == "cancel" else Decimal("450")
        assert sb.exchange.accounts["default"].funding_balances["USDT"] == refunded


async def test_faults_show_and_reset_the_review(http: httpx.AsyncClient) -> None:
    assert (await http.get(FAULTS)).json()["review"] is None
    shown = await _set(http, {"review": {"hold_s": 30, "probability": 0.25}})
    assert shown["review"] == {"status": 2, "hold_s": 30, "then": "complete", "probability": 0.25}
    assert (await _set(http, {"reset": True}))["review"] is None


@pytest.mark.parametrize(
    ("review", "field"),
    [
        ({"status": 4, "hold_s": 60}, "faults.review.status"),
        ({"status": 1, "hold_s": 60}, "faults.review.status"),
        ({"status": 2}, "faults.review.hold_s"),
        ({"hold_s": -5}, "faults.review.hold_s"),
        ({"hold_s": 60, "then": "reject"}, "faults.review.then"),
        ({"hold_s": 60, "next": -1}, "faults.review.next"),
        ({"hold_s": 60, "probability": 2}, "faults.review.probability"),
        ({"hold_s": 60, "seconds": 3}, "faults.review.seconds"),
        (True, "faults.review"),
        (3, "faults.review"),
    ],
)
async def test_a_bad_review_names_the_field(
    http: httpx.AsyncClient, review: object, field: str
) -> None:
    bad = await http.post(FAULTS, json={"review": review})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith(f"{field}:"), bad.json()
    assert (await http.get(FAULTS)).json()["review"] is None
