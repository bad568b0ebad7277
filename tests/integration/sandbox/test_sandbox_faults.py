"""Injected faults: each one does what it says, and the ledger still tells the truth."""

from __future__ import annotations

import anyio
import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, USDT_TRX, Client, error_code, usdt_trx

from treasury.sandbox import ManualClock, RunningSandbox, parse_config, running_sandbox
from treasury.sandbox.app import build_app
from treasury.sandbox.core import open_sandbox

FAULTS = "/_sandbox/faults"


async def set_faults(http: httpx.AsyncClient, body: dict[str, object]) -> dict[str, object]:
    response = await http.post(FAULTS, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_drop_after_accept_drops_the_connection_but_books_it(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await set_faults(http, {"drop_after_accept": 1})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await client.apply(**usdt_trx(withdrawOrderId="dropped"))
    [withdrawal] = sandbox.ledger().withdrawals
    assert withdrawal.withdraw_order_id == "dropped"
    [request] = sandbox.ledger().apply_calls_for("dropped")
    assert request.accepted and request.http_status is None
    assert request.fault == "drop_after_accept"
    # the counter is spent: the next call is answered normally
    assert (await client.apply(**usdt_trx(withdrawOrderId="next"))).status_code == 200
    assert len(await client.history(withdrawOrderId="dropped")) == 1


async def test_delay_after_accept_outlasts_the_client_timeout(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await set_faults(http, {"delay_after_accept_s": {"seconds": 0.6, "next": 1}})
    with pytest.raises(httpx.ReadTimeout):
        await client.http.post(
            "/sapi/v1/capital/withdraw/apply?"
            + client.signed_query(usdt_trx(withdrawOrderId="slow")),
            headers={"X-MBX-APIKEY": client.key},
            timeout=0.2,
        )
    assert [w.withdraw_order_id for w in sandbox.ledger().withdrawals] == ["slow"]


async def test_delay_before_accept_books_after_the_client_gave_up(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await set_faults(http, {"delay_before_accept_s": 0.5})
    with pytest.raises(httpx.ReadTimeout):
        await client.http.post(
            "/sapi/v1/capital/withdraw/apply?"
            + client.signed_query(usdt_trx(withdrawOrderId="late")),
            headers={"X-MBX-APIKEY": client.key},
            timeout=0.2,
        )
    assert sandbox.ledger().withdrawals == []
    with anyio.fail_after(3):
        while not sandbox.ledger().withdrawals:
            await anyio.sleep(0.05)
    assert sandbox.ledger().withdrawals[0].withdraw_order_id == "late"


async def test_5xx_before_books_nothing(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await set_faults(http, {"error_5xx_before": 1})
    response = await client.apply(**usdt_trx(withdrawOrderId="five"))
    assert response.status_code == 503
    assert sandbox.ledger().withdrawals == []
    [request] = sandbox.ledger().apply_calls_for("five")
    assert request.http_status == 503 and request.fault == "error_5xx_before"


async def test_5xx_after_books_the_withdrawal(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await set_faults(http, {"error_5xx_after": 1})
    response = await client.apply(**usdt_trx(withdrawOrderId="five-after"))
    assert response.status_code == 500
    assert error_code(response) == -1000
    assert len(await client.history(withdrawOrderId="five-after")) == 1
    assert sandbox.ledger().apply_calls_for("five-after")[0].accepted


async def test_error_code_after_books_the_withdrawal(
    client: Client, http: httpx.AsyncClient
) -> None:
    await set_faults(http, {"error_code_after": {"code": -1007, "next": 1}})
    response = await client.apply(**usdt_trx(withdrawOrderId="timeout"))
    assert response.status_code == 400
    assert error_code(response) == -1007
    assert "execution status unknown" in response.json()["msg"]
    assert len(await client.history(withdrawOrderId="timeout")) == 1


async def test_after_faults_fire_only_on_accepted_calls(
    client: Client, http: httpx.AsyncClient
) -> None:
    await set_faults(http, {"error_5xx_after": 1})
    refused = await client.apply(**usdt_trx("1"))  # below minimum
    assert error_code(refused) == -4022
    assert (await client.apply(**usdt_trx())).status_code == 500


async def test_probability_faults_are_seeded(clock: ManualClock) -> None:
    patterns = []
    for _ in range(2):
        config = parse_config(BASE_CONFIG)
        faults = {"error_5xx_after": {"probability": 0.5}, "seed": 3}
        async with (
            running_sandbox(config=config, clock=ManualClock(START_MS), faults=faults) as sb,
            httpx.AsyncClient(base_url=sb.url) as http,
        ):
            client = Client(http, sb.clock.now_ms)
            patterns.append([(await client.apply(**usdt_trx())).status_code for _ in range(16)])
            assert len(sb.ledger().withdrawals) == 16
    assert patterns[0] == patterns[1]
    assert set(patterns[0]) == {200, 500}


async def test_clock_skew(client: Client, http: httpx.AsyncClient, clock: ManualClock) -> None:
    await set_faults(http, {"clock_skew_ms": 6000})
    assert (await http.get("/api/v3/time")).json() == {"serverTime": START_MS + 6000}
    assert error_code(await client.get("/api/v3/account")) == -1021
    await set_faults(http, {"clock_skew_ms": -1500})
    response = await client.get("/api/v3/account")
    assert (
        response.json()["msg"]
        == "Timestamp for this request was 1000ms ahead of the server's time."
    )
    await set_faults(http, {"clock_skew_ms": 0})
    assert (await client.get("/api/v3/account")).status_code == 200


async def test_history_lag(client: Client, http: httpx.AsyncClient, clock: ManualClock) -> None:
    await set_faults(http, {"history_lag_s": 3})
    wid = (await client.apply(**usdt_trx(withdrawOrderId="lag"))).json()["id"]
    assert await client.history(withdrawOrderId="lag") == []
    assert await client.history(idList=wid) == []
    clock.advance_s(3)
    assert [i["id"] for i in await client.history(withdrawOrderId="lag")] == [wid]


async def test_maintenance(client: Client, http: httpx.AsyncClient) -> None:
    await set_faults(http, {"maintenance": True})
    status = await http.get("/sapi/v1/system/status")
    assert status.json() == {"status": 1, "msg": "system_maintenance"}
    assert error_code(await client.apply(**usdt_trx())) == -4015
    await set_faults(http, {"maintenance": False})
    assert (await client.apply(**usdt_trx())).status_code == 200


async def test_rule_change_through_faults(client: Client, http: httpx.AsyncClient) -> None:
    await set_faults(http, {"network": {"coin": "USDT", "network": "TRX", "withdrawMin": "50"}})
    assert error_code(await client.apply(**usdt_trx("49"))) == -4022
    getall = (await client.get("/sapi/v1/capital/config/getall")).json()
    usdt = next(c for c in getall if c["coin"] == "USDT")
    assert next(n for n in usdt["networkList"] if n["network"] == "TRX")["withdrawMin"] == "50"


async def test_whitelist_add_and_remove(client: Client, http: httpx.AsyncClient) -> None:
    other = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
    assert error_code(await client.apply(**usdt_trx(address=other))) == -4035
    entry = {"account": "default", "coin": "USDT", "network": "TRX", "address": other}
    assert (await http.post("/_sandbox/whitelist", json=entry)).status_code == 200
    assert (await client.apply(**usdt_trx(address=other))).status_code == 200
    listed = (await client.get("/sapi/v1/capital/withdraw/address/list")).json()
    assert other in {e["address"] for e in listed}
    await http.post("/_sandbox/whitelist", json={**entry, "action": "remove"})
    await http.post("/_sandbox/whitelist", json={**entry, "address": USDT_TRX, "action": "remove"})
    assert error_code(await client.apply(**usdt_trx())) == -4035
    await http.post("/_sandbox/account", json={"account": "default", "whitelist_enabled": False})
    assert (await client.apply(**usdt_trx(address=other))).status_code == 200


async def test_foreign_withdrawal(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    plain = await http.post(
        "/_sandbox/foreign-withdrawal",
        json={"coin": "USDT", "network": "TRX", "address": USDT_TRX, "amount": "40"},
    )
    assert plain.status_code == 200, plain.text
    await client.apply(**usdt_trx(withdrawOrderId="mine"))
    result = await set_faults(
        http,
        {
            "inject_foreign_withdrawal": {
                "coin": "USDT",
                "network": "TRX",
                "address": USDT_TRX,
                "amount": "30",
                "withdrawOrderId": "mine",
            }
        },
    )
    [foreign_id] = result["injected_ids"]  # type: ignore[misc]
    items = await client.history()
    assert [i["id"] for i in items][::2] == [foreign_id, plain.json()["id"]]
    assert "withdrawOrderId" not in items[2]
    assert len(await client.history(withdrawOrderId="mine")) == 2
    ledger = sandbox.ledger()
    assert [w.source for w in ledger.withdrawals] == ["foreign", "api", "foreign"]
    assert len(ledger.duplicates_by_withdraw_order_id()["mine"]) == 2
    assert len(ledger.apply_calls_for("mine")) == 1  # the second one never came through apply
    assert await client.free("USDT") == 2500000 - 40 - 25 - 30


async def test_faults_endpoint_shows_and_validates(http: httpx.AsyncClient) -> None:
    shown = (await http.get(FAULTS)).json()
    assert shown["drop_after_accept"] is None and shown["maintenance"] is False
    await set_faults(http, {"drop_after_accept": 2, "clock_skew_ms": 10})
    shown = (await http.get(FAULTS)).json()
    assert shown["drop_after_accept"]["next"] == 2 and shown["clock_skew_ms"] == 10
    bad = await http.post(FAULTS, json={"drop_after_accept": {"nxt": 1}, "maintenance": True})
    assert bad.status_code == 400
    assert "faults.drop_after_accept.nxt" in bad.json()["error"]
    assert (await http.get(FAULTS)).json()["maintenance"] is False  # nothing applied
    cleared = await set_faults(http, {"reset": True})
    assert cleared["drop_after_accept"] is None and cleared["clock_skew_ms"] == 0


async def test_admin_answers_loopback_only() -> None:
    sandbox = open_sandbox(parse_config(BASE_CONFIG))
    try:
        transport = httpx.ASGITransport(build_app(sandbox), client=("10.1.2.3", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            assert (await http.get(FAULTS)).status_code == 403
            assert (await http.get("/api/v3/time")).status_code == 200
    finally:
        sandbox.close()
