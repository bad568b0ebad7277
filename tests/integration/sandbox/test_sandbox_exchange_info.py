"""``GET /api/v3/exchangeInfo``: Binance's spot shape, for the coins the sandbox knows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS

from treasury.sandbox import ManualClock, SandboxTask, parse_config

SYMBOL_FIELDS = {
    "symbol", "status", "baseAsset", "baseAssetPrecision", "quoteAsset", "quotePrecision",
    "quoteAssetPrecision", "baseCommissionPrecision", "quoteCommissionPrecision", "orderTypes",
    "icebergAllowed", "ocoAllowed", "otoAllowed", "quoteOrderQtyMarketAllowed",
    "allowTrailingStop", "cancelReplaceAllowed", "amendAllowed", "pegInstructionsAllowed",
    "isSpotTradingAllowed", "isMarginTradingAllowed", "filters", "permissions", "permissionSets",
    "defaultSelfTradePreventionMode", "allowedSelfTradePreventionModes",
}  # fmt: skip
EXCHANGE_INFO = "/api/v3/exchangeInfo"


async def test_every_coin_against_usdt_and_btc(http: httpx.AsyncClient) -> None:
    response = await http.get(EXCHANGE_INFO)
    assert response.status_code == 200
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "20"  # unsigned, /api IP weight 20
    body = response.json()
    assert set(body) == {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"}
    assert (body["timezone"], body["serverTime"], body["exchangeFilters"]) == ("UTC", START_MS, [])
    assert body["rateLimits"] == []  # the tests' config turns rate limits off
    names = [s["symbol"] for s in body["symbols"]]
    # the built-in coins are USDT, BTC, ETH, XRP; no USDTBTC (USDT quotes BTC, not the reverse)
    assert names == ["BTCUSDT", "ETHUSDT", "XRPUSDT", "ETHBTC", "XRPBTC"]
    for symbol in body["symbols"]:
        assert set(symbol) == SYMBOL_FIELDS
        assert symbol["symbol"] == symbol["baseAsset"] + symbol["quoteAsset"]
        assert symbol["status"] == "TRADING" and symbol["isSpotTradingAllowed"] is True
        assert symbol["isMarginTradingAllowed"] is False  # the sandbox has no margin
        assert symbol["permissions"] == [] and symbol["permissionSets"] == [["SPOT"]]


async def test_filters_follow_the_coins_precision_with_eight_decimals(
    http: httpx.AsyncClient,
) -> None:
    symbols = (await http.get(EXCHANGE_INFO)).json()["symbols"]
    xrp = next(s for s in symbols if s["symbol"] == "XRPBTC")
    assert xrp["filters"] == [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.00000001",  # BTC's precision is 8
            "maxPrice": "1000000.00000000",
            "tickSize": "0.00000001",
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": "0.00000100",  # XRP's precision is 6
            "maxQty": "9000000.00000000",
            "stepSize": "0.00000100",
        },
    ]


async def test_symbol_and_symbols_pick_symbols(http: httpx.AsyncClient) -> None:
    one = (await http.get(EXCHANGE_INFO, params={"symbol": "ETHBTC"})).json()
    assert [s["symbol"] for s in one["symbols"]] == ["ETHBTC"]
    two = await http.get(EXCHANGE_INFO, params={"symbols": '["XRPUSDT","BTCUSDT"]'})
    assert [s["symbol"] for s in two.json()["symbols"]] == ["XRPUSDT", "BTCUSDT"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "USDTBTC"}, -1121),
        ({"symbols": '["BTCUSDT","DOGEUSDT"]'}, -1121),
        ({"symbols": "BTCUSDT"}, -1100),
        ({"symbols": "[]"}, -1100),
        ({"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, -1128),
    ],
)
async def test_unknown_or_malformed_symbols_are_refused(
    http: httpx.AsyncClient, params: dict[str, str], code: int
) -> None:
    response = await http.get(EXCHANGE_INFO, params=params)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "20"  # charged like any request


async def test_rate_limits_name_the_api_weight_limit_when_on() -> None:
    config: dict[str, Any] = {
        **BASE_CONFIG,
        "rate_limits": {"enabled": True},
        "rate_limit_multiplier": "0.5",
    }
    owner = await SandboxTask.start(config=parse_config(config), clock=ManualClock(START_MS))
    try:
        async with httpx.AsyncClient(base_url=owner.running.url, timeout=5) as http:
            body = (await http.get(EXCHANGE_INFO)).json()
    finally:
        await owner.stop()
    assert body["rateLimits"] == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 3000}
    ]
