"""Every endpoint's success path, parsed into the domain types with exact values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from treasury.adapters.binance import BinanceClient
from treasury.domain.exchange import (
    AccountInfo,
    ApiRestrictions,
    CoinConfig,
    NetworkRule,
    SystemStatus,
    WhitelistAddress,
    WithdrawalRecord,
    WithdrawQuota,
    WithdrawRequest,
)
from treasury.ports.exchange import Rejected

ACCOUNT_JSON = """{"makerCommission": 15, "canTrade": true, "canWithdraw": true,
 "canDeposit": true, "accountType": "SPOT", "uid": 354937868, "updateTime": 123456789,
 "permissions": ["SPOT"],
 "balances": [{"asset": "BTC", "free": "4723846.89208129", "locked": "0.00000000"},
              {"asset": "ETH", "free": 8.91, "locked": "0.000000000000000001"}]}"""

COIN_CONFIG_JSON = """[{"coin": "USDT", "name": "TetherUS", "depositAllEnable": true,
 "withdrawAllEnable": true, "free": "0.000000000000000001", "locked": "0", "freeze": "0",
 "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0", "isLegalMoney": false,
 "trading": true, "networkList": [
  {"network": "ETH", "coin": "USDT", "withdrawIntegerMultiple": "0.000001",
   "isDefault": true, "depositEnable": true, "withdrawEnable": true, "depositDesc": "",
   "withdrawDesc": "", "specialTips": "", "specialWithdrawTips": "", "name": "Ethereum",
   "resetAddressStatus": false, "addressRegex": "^(0x)[0-9A-Fa-f]{40}$", "memoRegex": "",
   "withdrawFee": 8.91, "withdrawMin": "10", "withdrawMax": "9999999999.99999999",
   "withdrawInternalMin": "0.01", "depositDust": "0.01", "minConfirm": 12,
   "unLockConfirm": 64, "sameAddress": false, "withdrawTag": false,
   "estimatedArrivalTime": 5, "busy": false, "contractAddressUrl": "",
   "contractAddress": "", "denomination": 1},
  {"network": "TRX", "coin": "USDT", "withdrawIntegerMultiple": "0",
   "isDefault": false, "withdrawEnable": false, "withdrawDesc": "suspended",
   "addressRegex": "^T[1-9A-HJ-NP-Za-km-z]{33}$", "memoRegex": "",
   "withdrawFee": "1", "withdrawMin": "2", "withdrawMax": "100", "withdrawTag": false,
   "busy": true}]}]"""

HISTORY_JSON = """[{"id": "b6ae22b3aa844210a7041aee7589627c", "amount": "0.000000000000000001",
 "transactionFee": "0.004", "coin": "USDT", "status": 6,
 "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
 "txId": "0xb5ef8c13b968a406cc62a93a8bd80f9e9a906ef1b3fcf20a2e48573c17659268",
 "applyTime": "2019-10-12 11:12:02", "network": "ETH", "transferType": 0,
 "withdrawOrderId": "WITHDRAWtest123", "info": "", "confirmNo": 3, "walletType": 1,
 "txKey": "", "completeTime": "2023-03-23 16:52:41"},
 {"id": "156ec387f49b41df8724fa744fa82719", "amount": 8.91, "transactionFee": "0.25",
  "coin": "XRP", "status": 4, "address": "rExampleXrpAddress", "addressTag": "1234",
  "txId": "", "applyTime": "2019-10-12 11:12:02", "transferType": 0, "info": "",
  "confirmNo": 0, "walletType": 0, "txKey": ""}]"""


def _json(text: str) -> httpx.Response:
    return httpx.Response(200, content=text.encode(), headers={"content-type": "application/json"})


async def test_server_time_and_clock_offset(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient]
) -> None:
    router.routes["time"].mock(
        return_value=httpx.Response(200, json={"serverTime": 1_700_000_002_500})
    )
    client = make_client(wall_clock=lambda: 1_700_000_000.0)
    assert await client.server_time_ms() == 1_700_000_002_500
    assert client.clock_offset_ms == 0  # server_time_ms only reads
    await client.sync_clock()
    assert client.clock_offset_ms == 2500
    assert client.now_ms() == 1_700_000_002_500


async def test_account(router: respx.MockRouter, client: BinanceClient, wire: Any) -> None:
    route = router.get("/api/v3/account").mock(return_value=_json(ACCOUNT_JSON))
    account = await client.account()
    assert isinstance(account, AccountInfo)
    assert account.free("ETH") == Decimal("8.91")
    assert account.balances["ETH"].locked == Decimal("0.000000000000000001")
    assert account.free("BTC") == Decimal("4723846.89208129")
    request = route.calls.last.request
    params = wire.params(request)
    assert params["omitZeroBalances"] == "true"
    assert params["recvWindow"] == "5000"
    assert request.headers["X-MBX-APIKEY"] == wire.api_key
    payload, signature = wire.split_signature(request)
    assert signature == wire.hmac_of(payload)


async def test_system_status_is_unsigned(router: respx.MockRouter, client: BinanceClient) -> None:
    route = router.get("/sapi/v1/system/status").mock(
        return_value=httpx.Response(200, json={"status": 1, "msg": "system_maintenance"})
    )
    assert await client.system_status() == SystemStatus(normal=False, message="system_maintenance")
    request = route.calls.last.request
    assert request.url.query == b""
    assert "X-MBX-APIKEY" not in request.headers
    assert router.routes["time"].call_count == 0  # no clock needed for an unsigned call


async def test_api_restrictions(router: respx.MockRouter, client: BinanceClient) -> None:
    router.get("/sapi/v1/account/apiRestrictions").mock(
        return_value=httpx.Response(
            200,
            json={
                "ipRestrict": True,
                "createTime": 1698645219000,
                "enableInternalTransfer": False,
                "enableFutures": False,
                "enablePortfolioMarginTrading": False,
                "enableVanillaOptions": False,
                "permitsUniversalTransfer": False,
                "enableReading": True,
                "enableSpotAndMarginTrading": False,
                "enableWithdrawals": True,
                "enableMargin": False,
                "tradingAuthorityExpirationTime": 1700000000000,
            },
        )
    )
    assert await client.api_restrictions() == ApiRestrictions(
        ip_restrict=True,
        enable_withdrawals=True,
        enable_reading=True,
        trading_authority_expiration_time=1700000000000,
    )


async def test_coin_configs(router: respx.MockRouter, client: BinanceClient) -> None:
    router.get("/sapi/v1/capital/config/getall").mock(return_value=_json(COIN_CONFIG_JSON))
    configs = await client.coin_configs()
    usdt = configs["USDT"]
    assert isinstance(usdt, CoinConfig)
    assert usdt.free == Decimal("0.000000000000000001")
    assert usdt.network("ETH") == NetworkRule(
        coin="USDT",
        network="ETH",
        withdraw_enable=True,
        withdraw_min=Decimal("10"),
        withdraw_max=Decimal("9999999999.99999999"),
        withdraw_multiple=Decimal("0.000001"),
        withdraw_fee=Decimal("8.91"),
        address_regex="^(0x)[0-9A-Fa-f]{40}$",
        memo_regex="",
        memo_required=False,
        is_default=True,
        busy=False,
        withdraw_desc="",
    )
    trx = usdt.network("TRX")
    assert trx is not None and not trx.withdraw_enable and trx.busy
    assert trx.withdraw_desc == "suspended" and trx.withdraw_multiple == 0


async def test_withdraw_history(router: respx.MockRouter, client: BinanceClient, wire: Any) -> None:
    route = router.get(wire.history_path).mock(return_value=_json(HISTORY_JSON))
    records = await client.withdraw_history(
        withdraw_order_id="WITHDRAWtest123",
        coin="USDT",
        status=6,
        start_time_ms=client.now_ms() - 3_600_000,
        limit=50,
    )
    assert all(isinstance(r, WithdrawalRecord) for r in records)
    first, second = records
    assert first.amount == Decimal("0.000000000000000001")
    assert first.complete_time == datetime(2023, 3, 23, 16, 52, 41, tzinfo=UTC)
    assert second.amount == Decimal("8.91")
    assert second.withdraw_order_id is None and second.network is None
    assert second.address_tag == "1234" and second.tx_id is None
    # kept as Binance sends them: the wallet debited, external vs internal, confirmations
    assert (first.wallet_type, first.transfer_type, first.confirm_no) == (1, 0, 3)
    assert (second.wallet_type, second.internal) == (0, False)
    params = wire.params(route.calls.last.request)
    assert params["withdrawOrderId"] == "WITHDRAWtest123"
    assert params["coin"] == "USDT" and params["status"] == "6" and params["limit"] == "50"


async def test_history_by_id_list(
    router: respx.MockRouter, client: BinanceClient, wire: Any
) -> None:
    route = router.get(wire.history_path).mock(return_value=httpx.Response(200, json=[]))
    assert await client.withdraw_history(id_list=["a1", "b2"]) == []
    assert "idList=a1%2Cb2" in wire.raw_query(route.calls.last.request)


async def test_whitelist_addresses(router: respx.MockRouter, client: BinanceClient) -> None:
    router.get("/sapi/v1/capital/withdraw/address/list").mock(
        return_value=httpx.Response(
            200,
            json=[
                {
                    "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
                    "addressTag": "",
                    "coin": "USDT",
                    "name": "cold",
                    "network": "ETH",
                    "origin": "",
                    "originType": "others",
                    "whiteStatus": True,
                },
                {
                    "address": "rExample",
                    "addressTag": "1234",
                    "coin": "XRP",
                    "name": "exchange",
                    "network": "XRP",
                    "origin": "bybit",
                    "originType": "others",
                    "whiteStatus": False,
                },
            ],
        )
    )
    assert await client.whitelist_addresses() == [
        WhitelistAddress(
            coin="USDT",
            network="ETH",
            address="0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
            address_tag=None,
            name="cold",
            white_status=True,
        ),
        WhitelistAddress(
            coin="XRP",
            network="XRP",
            address="rExample",
            address_tag="1234",
            name="exchange",
            white_status=False,
        ),
    ]


async def test_withdraw_quota(router: respx.MockRouter, client: BinanceClient) -> None:
    router.get("/sapi/v1/capital/withdraw/quota").mock(
        return_value=_json('{"wdQuota": "10000", "usedWdQuota": 8.91}')
    )
    quota = await client.withdraw_quota()
    assert quota == WithdrawQuota(quota=Decimal("10000"), used=Decimal("8.91"))
    assert quota.remaining == Decimal("9991.09")


async def test_withdraw_accepted(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    route = router.post(wire.apply_path).mock(
        return_value=httpx.Response(200, json={"id": "7213fea8e94b4a5593d507237e5a555b"})
    )
    accepted = await client.withdraw(make_request(), timestamp_ms=1_700_000_000_123)
    assert accepted.id == "7213fea8e94b4a5593d507237e5a555b"
    assert accepted.timestamp_ms == 1_700_000_000_123 and accepted.recv_window_ms == 5000
    assert route.call_count == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"id_list": ["x"] * 46},
        {"id_list": []},
        {"id_list": ["a,b"]},
        {"start_time_ms": 0, "end_time_ms": 90 * 86_400_000},
        {"start_time_ms": 10, "end_time_ms": 5},
        {"withdraw_order_id": "abc", "start_time_ms": 0, "end_time_ms": 7 * 86_400_000},
        {"withdraw_order_id": "a b"},
    ],
)
async def test_history_rules_are_checked_before_sending(
    router: respx.MockRouter, client: BinanceClient, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match=r"limit|offset|id_list|window|before|withdraw_order_id"):
        await client.withdraw_history(**kwargs)  # type: ignore[arg-type]
    assert router.calls.call_count == 0


async def test_history_windows_just_inside_the_rules_are_sent(
    router: respx.MockRouter, client: BinanceClient, wire: Any
) -> None:
    route = router.get(wire.history_path).mock(return_value=httpx.Response(200, json=[]))
    await client.withdraw_history(start_time_ms=0, end_time_ms=90 * 86_400_000 - 1)
    await client.withdraw_history(
        withdraw_order_id="abc", start_time_ms=0, end_time_ms=7 * 86_400_000 - 1
    )
    await client.withdraw_history(id_list=[f"id{i}" for i in range(45)])
    assert route.call_count == 3


@pytest.mark.parametrize("code", [-1127, -1128, -1130, -1131])
async def test_a_deterministic_refusal_of_a_read_is_not_retried(
    router: respx.MockRouter, client: BinanceClient, wire: Any, code: int
) -> None:
    """-1127/-1128/-1130/-1131 say the request itself is wrong: asking again cannot help."""
    route = router.get(wire.history_path).mock(
        return_value=httpx.Response(400, json={"code": code, "msg": "refused"})
    )
    with pytest.raises(Rejected) as refused:
        await client.withdraw_history(coin="USDT")
    assert refused.value.code == code and refused.value.permanent
    assert route.call_count == 1


async def test_funding_balances_and_account_status(
    router: respx.MockRouter, client: BinanceClient
) -> None:
    router.post("/sapi/v1/asset/get-funding-asset").mock(
        return_value=_json(
            '[{"asset": "USDT", "free": "12.50000001", "locked": "0", "freeze": "1",'
            ' "withdrawing": "0", "btcValuation": "0"}]'
        )
    )
    router.get("/sapi/v1/account/status").mock(return_value=_json('{"data": "Normal"}'))
    funding = await client.funding_balances()
    assert funding["USDT"].free == Decimal("12.50000001")
    assert await client.account_status() == "Normal"
