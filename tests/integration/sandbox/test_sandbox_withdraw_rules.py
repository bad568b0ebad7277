"""withdraw/apply: every refusal with its code, and what an acceptance does to balances."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sandbox_testkit import USDT_ETH, USDT_TRX, XRP_ENTRY, Client, error_code, usdt_trx

from treasury.sandbox import ManualClock, RunningSandbox, default_config

WL = default_config().accounts["default"]
ETH_ADDRESS = WL.whitelisted("ETH", "ETH")[0].address
NOT_LISTED_TRX = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        pytest.param(usdt_trx(address=NOT_LISTED_TRX), -4035, id="not-whitelisted"),
        pytest.param(usdt_trx("9.999999"), -4022, id="below-minimum"),
        pytest.param(usdt_trx("10.0000001"), -4021, id="wrong-multiple"),
        pytest.param(usdt_trx("10.000000001"), -1111, id="too-many-decimals"),
        pytest.param(usdt_trx("10000001"), -4023, id="above-maximum"),
        pytest.param(
            usdt_trx(address="0x94df8b352de7f46f64b01d3666bf6e936e44ce60"), -4007, id="bad-address"
        ),
        pytest.param(usdt_trx(addressTag="12345"), -4106, id="memo-on-memoless-network"),
        pytest.param(
            {"coin": "XRP", "network": "XRP", "address": XRP_ENTRY.address, "amount": "20"},
            -4008,
            id="missing-memo",
        ),
        pytest.param(
            {
                "coin": "XRP",
                "network": "XRP",
                "address": XRP_ENTRY.address,
                "addressTag": "no spaces!",
                "amount": "20",
            },
            -4008,
            id="bad-memo",
        ),
        pytest.param(usdt_trx(coin="NOPE"), -4018, id="unknown-coin"),
        pytest.param(usdt_trx(network="SOL"), -4019, id="unknown-network"),
        pytest.param(usdt_trx("1e3"), -1100, id="amount-syntax"),
        pytest.param({"coin": "USDT", "network": "TRX", "amount": "20"}, -1102, id="no-address"),
        pytest.param(usdt_trx(walletType="7"), -1130, id="bad-wallet-type"),
    ],
)
async def test_refusals(
    client: Client, sandbox: RunningSandbox, params: dict[str, Any], code: int
) -> None:
    response = await client.apply(**params)
    assert response.status_code == 400, response.text
    assert error_code(response) == code
    assert await client.free("USDT") == Decimal("2500000")
    assert sandbox.ledger().withdrawals == []
    [request] = sandbox.ledger().apply_requests
    assert request.error_code == code and request.withdrawal_id is None


async def test_memo_network_accepts_whitelisted_memo(client: Client) -> None:
    response = await client.apply(
        coin="XRP",
        network="XRP",
        address=XRP_ENTRY.address,
        addressTag=XRP_ENTRY.address_tag,
        amount="20",
    )
    assert response.status_code == 200, response.text
    [item] = await client.history(coin="XRP")
    assert item["addressTag"] == XRP_ENTRY.address_tag


async def test_tag_on_a_network_without_withdraw_tag_is_4106_whatever_its_memo_regex(
    client: Client, http: httpx.AsyncClient
) -> None:
    # a memo pattern on a tag-less network (getall can show one) must not open it to tags
    rule = {"coin": "USDT", "network": "TRX", "memoRegex": "^[0-9]{1,10}$"}
    assert (await http.post("/_sandbox/network", json=rule)).status_code == 200
    entry = {"coin": "USDT", "network": "TRX", "address": USDT_TRX, "addressTag": "12345"}
    assert (await http.post("/_sandbox/whitelist", json=entry)).status_code == 200
    response = await client.apply(**usdt_trx(addressTag="12345"))
    assert response.json() == {"code": -4106, "msg": "Tag is not supported for this network."}
    assert (await client.apply(**usdt_trx(addressTag=""))).status_code == 200  # empty: no tag


async def test_a_tag_network_keeps_a_memo_regex(client: Client, http: httpx.AsyncClient) -> None:
    """As in the config: withdrawTag true needs a memoRegex to check the tag against."""
    emptied = await http.post(
        "/_sandbox/network", json={"coin": "XRP", "network": "XRP", "memoRegex": ""}
    )
    assert emptied.status_code == 400
    assert emptied.json()["error"].startswith("network.memoRegex: required when withdrawTag")
    tagged = {"coin": "USDT", "network": "TRX", "withdrawTag": True}
    assert (await http.post("/_sandbox/network", json=tagged)).status_code == 400
    both = {**tagged, "memoRegex": "^[0-9]+$"}
    assert (await http.post("/_sandbox/network", json=both)).status_code == 200
    response = await client.apply(**usdt_trx())
    assert error_code(response) == -4008  # withdrawTag true and no tag


async def test_default_network_when_omitted(client: Client) -> None:
    response = await client.apply(coin="ETH", address=ETH_ADDRESS, amount="0.5")
    assert response.status_code == 200, response.text
    [item] = await client.history()
    assert item["network"] == "ETH"


async def test_evm_whitelist_match_ignores_checksum_case(client: Client) -> None:
    response = await client.apply(
        coin="USDT", network="ETH", address=USDT_ETH.upper().replace("0X", "0x"), amount="20"
    )
    assert response.status_code == 200, response.text


async def test_disabled_network_is_4019(client: Client, http: httpx.AsyncClient) -> None:
    changed = await http.post(
        "/_sandbox/network",
        json={
            "coin": "USDT",
            "network": "TRX",
            "withdrawEnable": False,
            "withdrawDesc": "Wallet maintenance",
        },
    )
    assert changed.status_code == 200, changed.text
    response = await client.apply(**usdt_trx())
    assert response.json() == {"code": -4019, "msg": "Wallet maintenance"}
    getall = (await client.get("/sapi/v1/capital/config/getall")).json()
    trx = next(n for c in getall if c["coin"] == "USDT" for n in c["networkList"]
               if n["network"] == "TRX")  # fmt: skip
    assert trx["withdrawEnable"] is False and trx["withdrawDesc"] == "Wallet maintenance"


async def test_amount_not_above_fee_is_4028(client: Client, http: httpx.AsyncClient) -> None:
    await http.post(
        "/_sandbox/network", json={"coin": "USDT", "network": "TRX", "withdrawMin": "0.5"}
    )
    response = await client.apply(**usdt_trx("1"))
    assert error_code(response) == -4028
    assert (await client.apply(**usdt_trx("1.000001"))).status_code == 200


async def test_insufficient_balance_is_4026(client: Client, http: httpx.AsyncClient) -> None:
    await http.post("/_sandbox/account", json={"account": "default", "balances": {"USDT": "30"}})
    assert (await client.apply(**usdt_trx("20"))).status_code == 200
    response = await client.apply(**usdt_trx("10.5"))
    assert response.json() == {"code": -4026, "msg": "Insufficient balance."}
    assert await client.free("USDT") == Decimal("10")


async def test_quota_exceeded_is_4023(client: Client, http: httpx.AsyncClient) -> None:
    await http.post("/_sandbox/account", json={"account": "default", "quota_usd": "100"})
    assert (await client.apply(**usdt_trx("60"))).status_code == 200
    response = await client.apply(**usdt_trx("60"))
    assert error_code(response) == -4023
    assert "24-hour" in response.json()["msg"]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"canWithdraw": False}, 400, -4015),
        ({"apiRestrictions": {"enableWithdrawals": False}}, 401, -2015),
        ({"apiRestrictions": {"ipRestrict": False}}, 401, -2015),
    ],
)
async def test_withdraw_permissions(
    client: Client, http: httpx.AsyncClient, change: dict[str, Any], status: int, code: int
) -> None:
    await http.post("/_sandbox/account", json={"account": "default", **change})
    response = await client.apply(**usdt_trx())
    assert (response.status_code, error_code(response)) == (status, code)
    assert (await client.get("/api/v3/account")).status_code == 200


async def test_acceptance_debits_and_completion_keeps_it(
    client: Client, clock: ManualClock
) -> None:
    response = await client.apply(**usdt_trx("100", withdrawOrderId="life-1"))
    wid = response.json()["id"]
    assert await client.free("USDT") == Decimal("2499900")
    [item] = await client.history(idList=wid)
    assert item["status"] == 4 and item["txId"] == "" and "completeTime" not in item
    getall = (await client.get("/sapi/v1/capital/config/getall")).json()
    assert next(c for c in getall if c["coin"] == "USDT")["withdrawing"] == "100"
    clock.advance_s(2)
    [done] = await client.history(idList=wid)
    assert done["status"] == 6
    assert done["txId"] and len(done["txId"]) == 64  # TRX hashes carry no 0x
    assert done["completeTime"] == "2026-01-01 00:00:02"
    assert done["confirmNo"] >= 1
    assert await client.free("USDT") == Decimal("2499900")


async def test_evm_tx_id_is_0x_prefixed(client: Client, clock: ManualClock) -> None:
    await client.apply(coin="USDT", network="ETH", address=USDT_ETH, amount="20")
    clock.advance_s(3)
    [item] = await client.history()
    assert item["txId"].startswith("0x") and len(item["txId"]) == 66


async def test_name_param_is_accepted_and_recorded(client: Client, sandbox: RunningSandbox) -> None:
    response = await client.apply(**usdt_trx(name="Cold wallet #1", withdrawOrderId="named"))
    assert response.status_code == 200, response.text
    [withdrawal] = sandbox.ledger().withdrawals
    assert withdrawal.name == "Cold wallet #1"
    [request] = sandbox.ledger().apply_calls_for("named")
    assert request.params["name"] == "Cold wallet #1"
    assert "signature" not in request.params


async def test_same_withdraw_order_id_twice_makes_two_withdrawals(
    client: Client, sandbox: RunningSandbox
) -> None:
    first = await client.apply(**usdt_trx("15", withdrawOrderId="dup-1"))
    second = await client.apply(**usdt_trx("15", withdrawOrderId="dup-1"))
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] != second.json()["id"]
    assert len(await client.history(withdrawOrderId="dup-1")) == 2
    assert await client.free("USDT") == Decimal("2499970")
    ledger = sandbox.ledger()
    duplicates = ledger.duplicates_by_withdraw_order_id()
    assert list(duplicates) == ["dup-1"]
    assert {w.id for w in duplicates["dup-1"]} == {first.json()["id"], second.json()["id"]}
    assert len(ledger.apply_calls_for("dup-1")) == 2


async def test_sub_account_has_its_own_key_and_balances(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    from treasury.sandbox import SUB_API_KEY, SUB_API_SECRET

    sub = Client(http, clock.now_ms, SUB_API_KEY, SUB_API_SECRET)
    assert await sub.free("USDT") == Decimal("250000")
    assert (await sub.apply(**usdt_trx("50", address=USDT_TRX))).status_code == 200
    assert len(await sub.history()) == 1
    main = Client(http, clock.now_ms)
    assert await main.history() == []
