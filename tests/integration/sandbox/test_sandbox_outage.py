"""Outages: every exchange endpoint (or withdraw/history alone) answers 503 -1001, doing nothing."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, Client, usdt_trx

from treasury.sandbox import ManualClock, RunningSandbox, parse_config, running_sandbox

FAULTS = "/_sandbox/faults"
HISTORY = "/sapi/v1/capital/withdraw/history"
APPLY = "/sapi/v1/capital/withdraw/apply"
FUNDING = "/sapi/v1/asset/get-funding-asset"
DOWN = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
UNSIGNED = ["/api/v3/time", "/sapi/v1/system/status"]
SIGNED = [
    "/api/v3/account",
    "/sapi/v1/account/apiRestrictions",
    "/sapi/v1/capital/config/getall",
    "/sapi/v1/capital/withdraw/address/list",
    "/sapi/v1/capital/withdraw/quota",
    "/sapi/v1/account/status",
    HISTORY,
]


async def _set(http: httpx.AsyncClient, body: dict[str, object]) -> dict[str, object]:
    response = await http.post(FAULTS, json=body)
    assert response.status_code == 200, response.text
    shown: dict[str, object] = response.json()
    return shown


def _is_down(response: httpx.Response) -> bool:
    return response.status_code == 503 and response.json() == DOWN


async def test_outage_takes_every_exchange_endpoint_down(
    client: Client, http: httpx.AsyncClient
) -> None:
    assert (await _set(http, {"outage": True}))["outage"] is True
    for path in UNSIGNED:
        assert _is_down(await http.get(path)), path
    for path in SIGNED:
        assert _is_down(await client.get(path)), path
    assert _is_down(await client.apply(**usdt_trx()))
    assert _is_down(await client.post(FUNDING))
    assert _is_down(await http.get(HISTORY))  # not even authentication is looked at
    # the admin API stays up
    for path in (FAULTS, "/_sandbox/ledger", "/_sandbox/clock"):
        assert (await http.get(path)).status_code == 200, path
    await _set(http, {"outage": False})
    for path in UNSIGNED:
        assert (await http.get(path)).status_code == 200, path
    for path in SIGNED:
        assert (await client.get(path)).status_code == 200, path
    assert (await client.post(FUNDING)).status_code == 200


async def test_apply_during_an_outage_creates_nothing(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await _set(http, {"outage": True})
    assert _is_down(await client.apply(**usdt_trx(withdrawOrderId="in-outage")))
    await _set(http, {"outage": None})
    assert await client.history() == []
    assert await client.free("USDT") == Decimal("2500000")
    ledger = sandbox.ledger()
    assert ledger.withdrawals == []
    [call] = ledger.apply_calls_for("in-outage")  # the call is on record, refused
    assert (call.account, call.error_code, call.http_status) == ("default", -1001, 503)
    assert call.fault == "outage" and not call.accepted
    assert (await client.apply(**usdt_trx(withdrawOrderId="after"))).status_code == 200
    assert [w.withdraw_order_id for w in sandbox.ledger().withdrawals] == ["after"]


async def test_reset_ends_an_outage(client: Client, http: httpx.AsyncClient) -> None:
    await _set(http, {"outage": True, "history_unavailable": True})
    shown = await _set(http, {"reset": True})
    assert shown["outage"] is False and shown["history_unavailable"] is False
    assert (await client.apply(**usdt_trx())).status_code == 200
    assert len(await client.history()) == 1


async def test_an_outage_charges_no_rate_limit_pool() -> None:
    clock = ManualClock(START_MS)
    config = parse_config({**BASE_CONFIG, "rate_limits": {"enabled": True}})
    async with (
        running_sandbox(config=config, clock=clock, faults={"outage": True}) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        for _ in range(3):
            assert _is_down(await client.get(HISTORY))
            assert _is_down(await client.get("/api/v3/account"))
        await _set(http, {"outage": False})
        history = await client.get(HISTORY)
        assert history.headers["X-SAPI-USED-UID-WEIGHT-1S"] == "18000"  # this call alone
        account = await client.get("/api/v3/account")
        assert account.headers["X-MBX-USED-WEIGHT-1M"] == "20"


async def test_history_unavailable_takes_only_history_down(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    assert (await _set(http, {"history_unavailable": True}))["history_unavailable"] is True
    wid = (await client.apply(**usdt_trx(withdrawOrderId="h"))).json()["id"]
    assert _is_down(await client.get(HISTORY, {"withdrawOrderId": "h"}))
    for path in SIGNED[:-1]:
        assert (await client.get(path)).status_code == 200, path
    assert [w.id for w in sandbox.ledger().withdrawals] == [wid]
    await _set(http, {"history_unavailable": False})
    assert [i["id"] for i in await client.history(withdrawOrderId="h")] == [wid]


@pytest.mark.parametrize("name", ["outage", "history_unavailable"])
@pytest.mark.parametrize("value", ["yes", 1, {}])
async def test_switches_take_only_booleans(
    http: httpx.AsyncClient, name: str, value: object
) -> None:
    bad = await http.post(FAULTS, json={name: value})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith(f"faults.{name}:")
    assert (await http.get(FAULTS)).json()[name] is False
