"""The shape of every endpoint's answer, field for field as the reference lists them."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
from sandbox_testkit import START_MS, XRP_ENTRY, Client, usdt_trx

from treasury.sandbox import ManualClock, RunningSandbox

NETWORK_FIELDS = {
    "network", "coin", "name", "addressRegex", "memoRegex", "specialTips", "specialWithdrawTips",
    "depositDesc", "withdrawDesc", "contractAddress", "contractAddressUrl", "withdrawFee",
    "withdrawMin", "withdrawMax", "withdrawIntegerMultiple", "withdrawInternalMin", "depositDust",
    "isDefault", "depositEnable", "withdrawEnable", "sameAddress", "withdrawTag", "busy",
    "resetAddressStatus", "minConfirm", "unLockConfirm", "estimatedArrivalTime", "denomination",
}  # fmt: skip
COIN_FIELDS = {
    "coin", "name", "depositAllEnable", "withdrawAllEnable", "isLegalMoney", "trading", "free",
    "locked", "freeze", "withdrawing", "ipoing", "ipoable", "storage", "networkList",
}  # fmt: skip


async def test_time_reports_the_sandbox_clock(http: httpx.AsyncClient, clock: ManualClock) -> None:
    response = await http.get("/api/v3/time")
    assert response.json() == {"serverTime": START_MS}
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "1"


async def test_system_status(http: httpx.AsyncClient) -> None:
    response = await http.get("/sapi/v1/system/status")
    assert response.json() == {"status": 0, "msg": "normal"}
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"


async def test_account(client: Client) -> None:
    response = await client.get("/api/v3/account")
    body = response.json()
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "20"
    assert body["canWithdraw"] is True and body["canTrade"] is True and body["canDeposit"] is True
    assert body["accountType"] == "SPOT" and isinstance(body["uid"], int)
    usdt = next(b for b in body["balances"] if b["asset"] == "USDT")
    assert usdt == {"asset": "USDT", "free": "2500000", "locked": "0"}


async def test_account_omits_zero_balances_on_request(client: Client) -> None:
    await client.http.post(
        "/_sandbox/account", json={"account": "default", "balances": {"DOGE": "0"}}
    )
    every = (await client.get("/api/v3/account")).json()["balances"]
    nonzero = (await client.get("/api/v3/account", {"omitZeroBalances": "true"})).json()["balances"]
    assert "DOGE" in {b["asset"] for b in every}
    assert "DOGE" not in {b["asset"] for b in nonzero}


async def test_api_restrictions(client: Client) -> None:
    response = await client.get("/sapi/v1/account/apiRestrictions")
    body = response.json()
    assert body["ipRestrict"] is True and body["enableWithdrawals"] is True
    assert body["enableReading"] is True and isinstance(body["createTime"], int)
    assert {"enableInternalTransfer", "enableMargin", "enableFutures"} <= set(body)
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"


async def test_config_getall(client: Client) -> None:
    response = await client.get("/sapi/v1/capital/config/getall")
    coins = {c["coin"]: c for c in response.json()}
    assert set(coins) == {"USDT", "BTC", "ETH", "XRP"}
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "10"
    usdt = coins["USDT"]
    assert set(usdt) == COIN_FIELDS
    assert usdt["free"] == "2500000"
    networks = {n["network"]: n for n in usdt["networkList"]}
    assert set(networks) == {"ETH", "TRX", "BSC"}
    trx = networks["TRX"]
    assert set(trx) == NETWORK_FIELDS
    assert trx["withdrawMin"] == "10" and trx["withdrawFee"] == "1"
    assert trx["withdrawIntegerMultiple"] == "0.000001"
    assert trx["addressRegex"] == "^T[1-9A-HJ-NP-Za-km-z]{33}$"
    assert trx["withdrawTag"] is False and trx["withdrawEnable"] is True
    assert sum(n["isDefault"] for n in networks.values()) == 1
    xrp = coins["XRP"]["networkList"][0]
    assert xrp["withdrawTag"] is True and xrp["memoRegex"]
    btc = {n["network"]: n for n in coins["BTC"]["networkList"]}["BTC"]
    assert btc["withdrawMin"] == "0.0005" and btc["withdrawIntegerMultiple"] == "0.00000001"


async def test_address_list(client: Client) -> None:
    response = await client.get("/sapi/v1/capital/withdraw/address/list")
    entries = response.json()
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "10"
    assert all(
        set(e)
        == {
            "address",
            "addressTag",
            "coin",
            "name",
            "network",
            "origin",
            "originType",
            "whiteStatus",
        }
        for e in entries
    )
    xrp = [e for e in entries if e["coin"] == "XRP"]
    assert {"address": XRP_ENTRY.address, "addressTag": XRP_ENTRY.address_tag} in [
        {"address": e["address"], "addressTag": e["addressTag"]} for e in xrp
    ]
    assert {e["network"] for e in entries} >= {"ETH", "TRX", "BSC", "BTC", "ARBITRUM", "XRP"}


async def test_quota_counts_usd(client: Client) -> None:
    before = (await client.get("/sapi/v1/capital/withdraw/quota")).json()
    assert before == {"wdQuota": "8000000", "usedWdQuota": "0"}
    await client.apply(coin="BTC", network="BTC", address=_btc(), amount="0.01")
    after = (await client.get("/sapi/v1/capital/withdraw/quota")).json()
    assert after["usedWdQuota"] == "650"  # 0.01 BTC at 65,000 USD


async def test_apply_and_history_item_shape(client: Client, sandbox: RunningSandbox) -> None:
    response = await client.apply(**usdt_trx("12.5", withdrawOrderId="shape-1"))
    assert response.status_code == 200, response.text
    assert response.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "900"
    wid = response.json()["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", wid) and response.json() == {"id": wid}
    history = await client.get("/sapi/v1/capital/withdraw/history")
    assert history.headers["X-SAPI-USED-UID-WEIGHT-1S"] == "18000"  # the per-second limit
    assert "X-SAPI-USED-UID-WEIGHT-1M" not in history.headers
    [item] = history.json()
    assert item == {
        "id": wid,
        "amount": "11.5",  # net of the fee by default: 12.5 asked, 1 fee
        "transactionFee": "1",
        "coin": "USDT",
        "status": 4,
        "address": usdt_trx()["address"],
        "addressTag": "",
        "txId": "",
        "applyTime": "2026-01-01 00:00:00",
        "network": "TRX",
        "transferType": 0,
        "withdrawOrderId": "shape-1",
        "info": "",
        "confirmNo": 0,
        "walletType": 0,
        "txKey": "",
    }


async def test_history_omits_withdraw_order_id_when_none(client: Client) -> None:
    await client.apply(**usdt_trx())
    [item] = await client.history()
    assert "withdrawOrderId" not in item
    assert "completeTime" not in item


async def test_amounts_are_exact_strings(client: Client) -> None:
    await client.apply(**usdt_trx("10.000001"))
    [item] = await client.history()
    assert item["amount"] == "9.000001"  # net: 10.000001 - 1
    assert Decimal(item["amount"]) + Decimal(item["transactionFee"]) == Decimal("10.000001")
    assert await client.free("USDT") == Decimal("2500000") - Decimal("10.000001")


def _btc() -> str:
    from treasury.sandbox import default_config

    return default_config().accounts["default"].whitelisted("BTC", "BTC")[0].address
