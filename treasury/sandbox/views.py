"""The JSON bodies of the read endpoints, shaped field for field like Binance's (reference §2).

Pure functions of the exchange state so the shapes can be read (and reviewed against the
reference) in one place. Every amount is a decimal string from ``format_amount``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal

from treasury.domain.money import format_amount
from treasury.sandbox.accounts import FUNDING, SPOT, AccountState
from treasury.sandbox.config import CoinConfig
from treasury.sandbox.state import Exchange

ZERO = "0"
SATOSHI = Decimal("0.00000001")  # btcValuation's precision
# exchangeInfo: the quote assets spot symbols are listed against, in this order, and the
# nominal upper bounds of the price and quantity filters (the sandbox does not trade).
QUOTE_ASSETS = ("USDT", "BTC")
MAX_PRICE = Decimal(1_000_000)
MAX_QTY = Decimal(9_000_000)
FILTER_PLACES = 8  # Binance writes filter values with 8 decimals
_API_KEY_CREATED_MS = 1_700_000_000_000


def account_info(acc: AccountState, now_ms: int, *, omit_zero: bool) -> dict[str, object]:
    balances = [
        {"asset": coin, "free": format_amount(free), "locked": ZERO}
        for coin, free in sorted(acc.balances.items())
        if not (omit_zero and free == 0)
    ]
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": "0.00100000",
            "taker": "0.00100000",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": acc.can_trade,
        "canWithdraw": acc.can_withdraw,
        "canDeposit": acc.can_deposit,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": acc.uid,
    }


def api_restrictions(acc: AccountState) -> dict[str, object]:
    return {**acc.api_restrictions, "createTime": _API_KEY_CREATED_MS}


def system_status(maintenance: bool) -> dict[str, object]:
    return (
        {"status": 1, "msg": "system_maintenance"}
        if maintenance
        else {"status": 0, "msg": "normal"}
    )


def account_status(acc: AccountState) -> dict[str, object]:
    return {"data": acc.account_status}


def withdrawing(
    ex: Exchange, acc: AccountState, wallet_type: int, now_ms: int
) -> dict[str, Decimal]:
    """Per coin, the amounts of one wallet's withdrawals not final yet (review or processing)."""
    out: dict[str, Decimal] = {}
    for w in ex.by_account.get(acc.name, ()):
        if w.wallet_type == wallet_type and w.pending(now_ms):
            out[w.coin] = out.get(w.coin, Decimal(0)) + w.debited
    return out


def funding_assets(
    ex: Exchange, acc: AccountState, now_ms: int, *, asset: str | None, btc_valuation: bool
) -> list[dict[str, object]]:
    """``get-funding-asset``: the funding wallet's coins with a non-zero free or withdrawing
    amount (``locked`` and ``freeze`` are always 0 here), by coin name."""
    pending = withdrawing(ex, acc, FUNDING, now_ms)
    out: list[dict[str, object]] = []
    for coin in sorted(set(acc.funding_balances) | set(pending)):
        free, held = acc.free_in(FUNDING, coin), pending.get(coin, Decimal(0))
        if (asset is not None and coin != asset) or (free == 0 and held == 0):
            continue
        value = _btc_value(ex.config.coins, coin, free) if btc_valuation else Decimal(0)
        out.append(
            {
                "asset": coin,
                "free": format_amount(free),
                "locked": ZERO,
                "freeze": ZERO,
                "withdrawing": format_amount(held),
                "btcValuation": format_amount(value),
            }
        )
    return out


def _btc_value(coins: Mapping[str, CoinConfig], coin: str, amount: Decimal) -> Decimal:
    """``amount`` of ``coin`` in BTC at the configured USD prices, rounded down to 8 places
    (never more than it is worth); 0 when the coin or BTC has no configured price."""
    priced, btc = coins.get(coin), coins.get("BTC")
    if priced is None or btc is None or btc.usd_price == 0:
        return Decimal(0)
    return (amount * priced.usd_price / btc.usd_price).quantize(SATOSHI, rounding=ROUND_DOWN)


def coin_configs(ex: Exchange, acc: AccountState, now_ms: int) -> list[dict[str, object]]:
    """``config/getall``: ``free`` and ``withdrawing`` are the spot wallet's."""
    pending = withdrawing(ex, acc, SPOT, now_ms)
    out: list[dict[str, object]] = []
    for coin in ex.config.coins.values():
        networks = [ex.networks[(coin.coin, n.network)] for n in coin.networks]
        out.append(
            {
                "coin": coin.coin,
                "depositAllEnable": True,
                "withdrawAllEnable": any(n.withdraw_enable for n in networks),
                "name": coin.name,
                "free": format_amount(acc.free(coin.coin)),
                "locked": ZERO,
                "freeze": ZERO,
                "withdrawing": format_amount(pending.get(coin.coin, Decimal(0))),
                "ipoing": ZERO,
                "ipoable": ZERO,
                "storage": ZERO,
                "isLegalMoney": False,
                "trading": True,
                "networkList": [
                    {
                        "network": n.network,
                        "coin": coin.coin,
                        "withdrawIntegerMultiple": format_amount(n.withdraw_integer_multiple),
                        "isDefault": n.is_default,
                        "depositEnable": True,
                        "withdrawEnable": n.withdraw_enable,
                        "depositDesc": "",
                        "withdrawDesc": "" if n.withdraw_enable else n.withdraw_desc,
                        "specialTips": "",
                        "specialWithdrawTips": "",
                        "name": n.name,
                        "resetAddressStatus": False,
                        "addressRegex": n.address_regex,
                        "memoRegex": n.memo_regex,
                        "withdrawFee": format_amount(n.withdraw_fee),
                        "withdrawMin": format_amount(n.withdraw_min),
                        "withdrawMax": format_amount(n.withdraw_max),
                        "withdrawInternalMin": format_amount(n.withdraw_internal_min),
                        "depositDust": format_amount(n.deposit_dust),
                        "minConfirm": n.min_confirm,
                        "unLockConfirm": n.unlock_confirm,
                        "sameAddress": False,
                        "withdrawTag": n.withdraw_tag,
                        "estimatedArrivalTime": n.estimated_arrival_time,
                        "busy": False,
                        "contractAddressUrl": "",
                        "contractAddress": n.contract_address,
                        "denomination": 1,
                    }
                    for n in networks
                ],
            }
        )
    return out


def address_list(acc: AccountState) -> list[dict[str, object]]:
    return [
        {
            "address": e.address,
            "addressTag": e.address_tag or "",
            "coin": e.coin,
            "name": e.name,
            "network": e.network,
            "origin": e.origin if e.origin_type == "others" else "",
            "originType": e.origin_type,
            "whiteStatus": e.whitelisted,  # the entry's own, whatever the account's switch
        }
        for e in acc.whitelist
    ]


def quota(acc: AccountState, now_ms: int) -> dict[str, object]:
    return {
        "wdQuota": format_amount(acc.quota_usd),
        "usedWdQuota": format_amount(acc.quota_used_at(now_ms)),
    }


def spot_symbols(coins: Mapping[str, CoinConfig]) -> list[tuple[CoinConfig, CoinConfig]]:
    """(base, quote) of each listed spot symbol: every configured coin against each
    configured quote asset of ``QUOTE_ASSETS``, except a quote asset against itself or
    against one listed before it (``BTCUSDT``, ``ETHUSDT``, ``ETHBTC``, no ``USDTBTC``)."""
    quotes = [coins[q] for q in QUOTE_ASSETS if q in coins]
    pairs: list[tuple[CoinConfig, CoinConfig]] = []
    for i, quote in enumerate(quotes):
        earlier = {q.coin for q in quotes[: i + 1]}
        pairs += [(base, quote) for base in coins.values() if base.coin not in earlier]
    return pairs


def exchange_info(
    coins: Mapping[str, CoinConfig],
    server_ms: int,
    *,
    weight_limit: int | None,
    symbols: Sequence[str] | None = None,
) -> dict[str, object]:
    """``GET /api/v3/exchangeInfo``: the spot symbols of ``spot_symbols``, all ``TRADING``
    with ``SPOT`` permission, or only ``symbols`` (in that order) when given; the ``/api``
    request-weight limit when ``weight_limit`` is set (rate limits on)."""
    listed = {base.coin + quote.coin: (base, quote) for base, quote in spot_symbols(coins)}
    names = list(listed) if symbols is None else list(symbols)
    limits = [] if weight_limit is None else [_weight_limit(weight_limit)]
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "rateLimits": limits,
        "exchangeFilters": [],
        "symbols": [_symbol(*listed[name]) for name in names],
    }


def _weight_limit(limit: int) -> dict[str, object]:
    return {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": limit,
    }


def _symbol(base: CoinConfig, quote: CoinConfig) -> dict[str, object]:
    # one step of the coin's amount precision (at most 8 places, as Binance's filters)
    step = Decimal(1).scaleb(-min(base.precision, FILTER_PLACES))
    tick = Decimal(1).scaleb(-min(quote.precision, FILTER_PLACES))
    return {
        "symbol": base.coin + quote.coin,
        "status": "TRADING",
        "baseAsset": base.coin,
        "baseAssetPrecision": FILTER_PLACES,
        "quoteAsset": quote.coin,
        "quotePrecision": FILTER_PLACES,
        "quoteAssetPrecision": FILTER_PLACES,
        "baseCommissionPrecision": FILTER_PLACES,
        "quoteCommissionPrecision": FILTER_PLACES,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _filter_value(tick),
                "maxPrice": _filter_value(MAX_PRICE),
                "tickSize": _filter_value(tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _filter_value(step),
                "maxQty": _filter_value(MAX_QTY),
                "stepSize": _filter_value(step),
            },
        ],
        # Binance moved symbol permissions to permissionSets; the old list stays, empty
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def _filter_value(value: Decimal) -> str:
    """Binance's filter text: always 8 decimal places (``"0.01000000"``)."""
    return format(value.quantize(Decimal(1).scaleb(-FILTER_PLACES)), "f")
