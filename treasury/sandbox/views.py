"""The JSON bodies of the read endpoints, shaped field for field like Binance's (reference §2).

Pure functions of the exchange state so the shapes can be read (and reviewed against the
reference) in one place. Every amount is a decimal string from ``format_amount``.
"""

from __future__ import annotations

from decimal import Decimal

from treasury.domain.money import format_amount
from treasury.sandbox.accounts import AccountState
from treasury.sandbox.state import Exchange
from treasury.sandbox.withdrawals import PROCESSING

ZERO = "0"
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


def coin_configs(ex: Exchange, acc: AccountState, now_ms: int) -> list[dict[str, object]]:
    withdrawing: dict[str, Decimal] = {}
    for w in ex.by_account.get(acc.name, ()):
        if w.status(now_ms) == PROCESSING:
            withdrawing[w.coin] = withdrawing.get(w.coin, Decimal(0)) + w.amount
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
                "withdrawing": format_amount(withdrawing.get(coin.coin, Decimal(0))),
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
            "whiteStatus": acc.whitelist_enabled,
        }
        for e in acc.whitelist
    ]


def quota(acc: AccountState, now_ms: int) -> dict[str, object]:
    return {
        "wdQuota": format_amount(acc.quota_usd),
        "usedWdQuota": format_amount(acc.quota_used_at(now_ms)),
    }
