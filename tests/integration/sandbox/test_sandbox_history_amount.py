"""withdraw/history's `amount`: net of the fee by default, gross when the switch says so.

Binance most likely reports the amount the recipient gets; the balance, the journal and
the admin ledger always keep the requested (gross) amount.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, USDT_TRX, Client, usdt_trx

from treasury.sandbox import ManualClock, RunningSandbox, parse_config, running_sandbox

FAULTS = "/_sandbox/faults"


async def _set(http: httpx.AsyncClient, body: dict[str, object]) -> dict[str, object]:
    response = await http.post(FAULTS, json=body)
    assert response.status_code == 200, response.text
    shown: dict[str, object] = response.json()
    return shown


async def test_history_amount_is_net_by_default(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    assert (await http.get(FAULTS)).json()["history_amount"] == "net"
    await client.apply(**usdt_trx("25.5", withdrawOrderId="net"))
    [item] = await client.history(withdrawOrderId="net")
    assert (item["amount"], item["transactionFee"]) == ("24.5", "1")
    # the balance and the ground truth stay gross
    assert await client.free("USDT") == Decimal("2500000") - Decimal("25.5")
    [booked] = sandbox.ledger().withdrawals
    assert (booked.amount, booked.fee) == (Decimal("25.5"), Decimal("1"))
    shown = (await http.get("/_sandbox/ledger")).json()["withdrawals"]
    assert (shown[0]["amount"], shown[0]["fee"]) == ("25.5", "1")


async def test_net_amount_is_exact_decimal(client: Client) -> None:
    from treasury.sandbox import default_config

    btc = default_config().accounts["default"].whitelisted("BTC", "BTC")[0].address
    response = await client.apply(coin="BTC", network="BTC", address=btc, amount="0.0103")
    assert response.status_code == 200, response.text
    [item] = await client.history(coin="BTC")
    assert (item["amount"], item["transactionFee"]) == ("0.0101", "0.0002")


async def test_gross_switch_at_run_time_and_reset(client: Client, http: httpx.AsyncClient) -> None:
    await client.apply(**usdt_trx("25"))
    shown = await _set(http, {"history_amount": "gross"})
    assert shown["history_amount"] == "gross"
    assert (await client.history())[0]["amount"] == "25"  # the same withdrawal, now gross
    await _set(http, {"history_amount": "net"})
    assert (await client.history())[0]["amount"] == "24"
    await _set(http, {"history_amount": "gross"})
    assert (await _set(http, {"reset": True}))["history_amount"] == "net"
    assert (await client.history())[0]["amount"] == "24"


async def test_config_sets_the_start_value_reset_and_null_return_to_it() -> None:
    config = parse_config({**BASE_CONFIG, "history_amount": "gross"})
    clock = ManualClock(START_MS)
    async with (
        running_sandbox(config=config, clock=clock) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        await client.apply(**usdt_trx("30"))
        assert (await client.history())[0]["amount"] == "30"
        await _set(http, {"history_amount": "net"})
        assert (await client.history())[0]["amount"] == "29"
        assert (await _set(http, {"reset": True}))["history_amount"] == "gross"
        await _set(http, {"history_amount": "net"})
        assert (await _set(http, {"history_amount": None}))["history_amount"] == "gross"
        assert (await client.history())[0]["amount"] == "30"


async def test_start_faults_can_set_gross(clock: ManualClock) -> None:
    config = parse_config(BASE_CONFIG)
    async with (
        running_sandbox(config=config, clock=clock, faults={"history_amount": "gross"}) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        await client.apply(**usdt_trx("12"))
        assert (await client.history())[0]["amount"] == "12"


@pytest.mark.parametrize("value", ["GROSS", "", 1, True, {"mode": "net"}])
async def test_bad_history_amount_fault_is_refused(http: httpx.AsyncClient, value: object) -> None:
    bad = await http.post(FAULTS, json={"history_amount": value, "maintenance": True})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("faults.history_amount:")
    shown = (await http.get(FAULTS)).json()
    assert shown["history_amount"] == "net" and shown["maintenance"] is False


async def test_foreign_withdrawal_must_exceed_the_fee(
    client: Client, http: httpx.AsyncClient
) -> None:
    body = {"coin": "USDT", "network": "TRX", "address": USDT_TRX, "amount": "1"}
    refused = await http.post("/_sandbox/foreign-withdrawal", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("inject_foreign_withdrawal.amount: must exceed")
    ok = await http.post("/_sandbox/foreign-withdrawal", json={**body, "amount": "1.01"})
    assert ok.status_code == 200, ok.text
    assert [i["amount"] for i in await client.history()] == ["0.01"]
