"""Spot and funding wallets: which one an apply debits, refunds, get-funding-asset, replay."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_testkit import (
    BASE_CONFIG,
    START_MS,
    Client,
    accounts_with,
    error_code,
    usdt_trx,
)

from treasury.sandbox import (
    ConfigError,
    ManualClock,
    RunningSandbox,
    parse_config,
    read_ledger,
    running_sandbox,
)

FUNDING = "/sapi/v1/asset/get-funding-asset"
SPOT_USDT = Decimal("2500000")  # the built-in account's spot USDT
FUNDING_BALANCES = {"USDT": "300", "BTC": "0.5", "ETH": "0"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"accounts": accounts_with(funding_balances=FUNDING_BALANCES)}


async def test_without_wallet_type_the_default_spot_wallet_is_debited(client: Client) -> None:
    assert (await client.apply(**usdt_trx("25"))).status_code == 200
    assert await client.free("USDT") == SPOT_USDT - 25
    assert await client.funding("USDT") == Decimal("300")
    [item] = await client.history()
    assert item["walletType"] == 0


async def test_wallet_type_1_debits_the_funding_wallet(client: Client) -> None:
    assert (await client.apply(**usdt_trx("25", walletType=1))).status_code == 200
    assert await client.funding("USDT") == Decimal("275")
    assert await client.free("USDT") == SPOT_USDT
    [item] = await client.history()
    assert item["walletType"] == 1


async def test_a_short_wallet_is_4026_whatever_the_other_holds(client: Client) -> None:
    short_funding = await client.apply(**usdt_trx("300.5", walletType=1))
    assert short_funding.json() == {"code": -4026, "msg": "Insufficient balance."}
    await client.http.post("/_sandbox/account", json={"balances": {"USDT": "20"}})
    short_spot = await client.apply(**usdt_trx("25", walletType=0))
    assert error_code(short_spot) == -4026
    assert await client.free("USDT") == Decimal("20")
    assert await client.funding("USDT") == Decimal("300")
    assert (await client.apply(**usdt_trx("300", walletType=1))).status_code == 200
    assert await client.funding("USDT") == 0


async def test_the_default_wallet_can_be_funding() -> None:
    config = parse_config(
        {
            **BASE_CONFIG,
            "accounts": accounts_with(funding_balances={"USDT": "100"}, default_wallet="funding"),
        }
    )
    clock = ManualClock(START_MS)
    async with (
        running_sandbox(config=config, clock=clock) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        assert (await client.apply(**usdt_trx("40"))).status_code == 200
        assert await client.funding("USDT") == Decimal("60")
        assert await client.free("USDT") == SPOT_USDT
        assert error_code(await client.apply(**usdt_trx("61"))) == -4026  # spot is not asked
        assert (await client.apply(**usdt_trx("61", walletType=0))).status_code == 200
        assert [i["walletType"] for i in await client.history()] == [0, 1]
        assert [w.wallet_type for w in sb.ledger().withdrawals] == [1, 0]


async def test_a_failed_withdrawal_returns_to_the_wallet_it_came_from() -> None:
    config = parse_config(
        {
            **BASE_CONFIG,
            "timings": {**BASE_CONFIG["timings"], "failure_share": "1"},
            "accounts": accounts_with(funding_balances={"USDT": "100"}),
        }
    )
    clock = ManualClock(START_MS)
    async with (
        running_sandbox(config=config, clock=clock) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        await client.apply(**usdt_trx("40", walletType=1))
        assert await client.funding("USDT") == Decimal("60")
        clock.advance_s(2)
        [item] = await client.history()
        assert (item["status"], item["walletType"]) == (5, 1)
        assert await client.funding("USDT") == Decimal("100")
        assert await client.free("USDT") == SPOT_USDT


async def test_get_funding_asset_lists_non_zero_coins(client: Client) -> None:
    response = await client.post(FUNDING)
    assert response.status_code == 200, response.text
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"
    assert response.json() == [
        {"asset": "BTC", "free": "0.5", "locked": "0", "freeze": "0", "withdrawing": "0",
         "btcValuation": "0"},
        {"asset": "USDT", "free": "300", "locked": "0", "freeze": "0", "withdrawing": "0",
         "btcValuation": "0"},
    ]  # fmt: skip
    assert [a["asset"] for a in await client.funding_assets(asset="BTC")] == ["BTC"]
    assert await client.funding_assets(asset="ETH") == []  # zero: not listed
    assert await client.funding_assets(asset="DOGE") == []


async def test_get_funding_asset_values_in_btc_on_request(client: Client) -> None:
    rows = {a["asset"]: a for a in await client.funding_assets(needBtcValuation="true")}
    assert rows["BTC"]["btcValuation"] == "0.5"
    assert rows["USDT"]["btcValuation"] == "0.00461538"  # 300 USD at 65,000, rounded down
    plain = await client.funding_assets(needBtcValuation="false")
    assert {a["btcValuation"] for a in plain} == {"0"}
    bad = await client.post(FUNDING, {"needBtcValuation": "yes"})
    assert error_code(bad) == -1100


async def test_get_funding_asset_shows_what_is_withdrawing(
    client: Client, clock: ManualClock
) -> None:
    await client.apply(**usdt_trx("300", walletType=1))
    await client.apply(**usdt_trx("50", walletType=0))
    [row] = await client.funding_assets(asset="USDT")
    assert (row["free"], row["withdrawing"]) == ("0", "300")  # still listed: not all zero
    getall = (await client.get("/sapi/v1/capital/config/getall")).json()
    assert next(c for c in getall if c["coin"] == "USDT")["withdrawing"] == "50"  # spot's only
    clock.advance_s(2)
    assert await client.funding_assets(asset="USDT") == []


async def test_get_funding_asset_takes_params_in_the_body(client: Client) -> None:
    from sandbox_testkit import encode, sign

    body = encode({"asset": "USDT", "timestamp": client.now_ms()})
    response = await client.http.post(
        FUNDING,
        content=f"{body}&signature={sign(client.secret, body)}",
        headers={
            "X-MBX-APIKEY": client.key,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert [a["asset"] for a in response.json()] == ["USDT"]


async def test_get_funding_asset_is_signed(client: Client) -> None:
    assert error_code(await client.post(FUNDING, secret="wrong")) == -1022
    get = await client.get(FUNDING)
    assert get.status_code == 405


async def test_account_endpoint_shows_the_spot_wallet_only(client: Client) -> None:
    balances = (await client.get("/api/v3/account")).json()["balances"]
    assert next(b for b in balances if b["asset"] == "USDT")["free"] == "2500000"
    assert next(b for b in balances if b["asset"] == "BTC")["free"] == "40"


async def test_admin_sets_funding_balances_and_the_default_wallet(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    changed = await http.post(
        "/_sandbox/account",
        json={
            "account": "default",
            "funding_balances": {"XRP": "12.5"},
            "default_wallet": "funding",
        },
    )
    assert changed.status_code == 200, changed.text
    assert await client.funding("XRP") == Decimal("12.5")
    assert await client.funding("USDT") == Decimal("300")  # other coins kept
    assert (await client.apply(**usdt_trx("30"))).status_code == 200
    assert await client.funding("USDT") == Decimal("270")
    ledger = (await http.get("/_sandbox/ledger")).json()
    assert ledger["funding_balances"]["default"]["USDT"] == "270"
    assert ledger["balances"]["default"]["USDT"] == "2500000"
    assert ledger["withdrawals"][0]["walletType"] == 1
    assert sandbox.ledger().withdrawals[0].wallet_type == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"default_wallet": "margin"}, "account.default_wallet"),
        ({"default_wallet": 1}, "account.default_wallet"),
        ({"funding_balances": {"USDT": "-1"}}, "account.funding_balances.USDT"),
        ({"funding_balances": {"USDT": True}}, "account.funding_balances.USDT"),
    ],
)
async def test_bad_admin_wallet_values_name_the_field(
    http: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await http.post("/_sandbox/account", json={"account": "default", **body})
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:"), response.json()
    assert not response.json()["error"].endswith("unknown field")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"default_wallet": "margin"}, "accounts[0].default_wallet"),
        ({"funding_balances": {"USDT": "lots"}}, "accounts[0].funding_balances.USDT"),
        ({"funding_balances": ["USDT"]}, "accounts[0].funding_balances"),
    ],
)
def test_bad_wallet_config_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"accounts": accounts_with(**changes)})
    assert caught.value.field == field
    assert caught.value.problem != "unknown field"


def test_wallet_config_defaults() -> None:
    account = parse_config({"accounts": accounts_with()}).accounts["default"]
    assert account.funding_balances == {} and account.default_wallet == "spot"
    funded = parse_config({"accounts": accounts_with(funding_balances={"USDT": "7.25"})})
    assert funded.accounts["default"].funding_balances == {"USDT": Decimal("7.25")}


async def test_wallets_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    config = parse_config(
        {
            **BASE_CONFIG,
            "timings": {**BASE_CONFIG["timings"], "failure_share": "1"},
            "accounts": accounts_with(funding_balances={"USDT": "100"}),
        }
    )
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        await http.post("/_sandbox/account", json={"default_wallet": "funding"})
        assert (await Client(http, clock.now_ms).apply(**usdt_trx("30"))).status_code == 200
    [booked] = read_ledger(state).withdrawals
    assert booked.wallet_type == 1
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        assert await client.funding("USDT") == Decimal("70")
        assert await client.free("USDT") == SPOT_USDT
        clock.advance_s(2)  # the failure refunds the funding wallet, after the replay too
        assert await client.funding("USDT") == Decimal("100")
        assert (await client.apply(**usdt_trx("100"))).status_code == 200  # still funding
        assert await client.funding("USDT") == 0


async def test_a_foreign_withdrawal_debits_the_wallet_it_names(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    body = {"coin": "USDT", "network": "TRX", "address": usdt_trx()["address"], "amount": "40"}
    funded = await http.post("/_sandbox/foreign-withdrawal", json={**body, "walletType": 1})
    assert funded.status_code == 200, funded.text
    assert await client.funding("USDT") == Decimal("260")
    assert (await http.post("/_sandbox/foreign-withdrawal", json=body)).status_code == 200
    assert await client.free("USDT") == SPOT_USDT - 40  # the account's default: spot
    assert [w.wallet_type for w in sandbox.ledger().withdrawals] == [1, 0]
    too_much = await http.post(
        "/_sandbox/foreign-withdrawal", json={**body, "amount": "261", "walletType": 1}
    )
    assert too_much.status_code == 400
    assert (
        too_much.json()["error"]
        == "inject_foreign_withdrawal.amount: more than the wallet's balance"
    )
    bad = await http.post("/_sandbox/foreign-withdrawal", json={**body, "walletType": 2})
    assert (
        bad.json()["error"]
        == "inject_foreign_withdrawal.walletType: must be 0 (spot) or 1 (funding)"
    )
