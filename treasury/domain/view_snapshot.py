"""The worker's view of one account on the exchange, as JSON another process can read.

The daemon publishes it (``service_state`` key ``exchange_view:<account>``) so that a
process without exchange access (``treasury api``'s preview) checks against the same
facts: coin rules with fees, free balances per wallet, the withdraw quota, the account's
standing and local entity, the account's default wallet and fee payer, and when the
oldest of these was fetched. Every amount is a decimal string. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from treasury.domain.exchange import CoinConfig, NetworkRule, WithdrawQuota
from treasury.domain.fee_payer import FeePayer
from treasury.domain.wallet import Wallet

KEY_PREFIX = "exchange_view:"
FORMAT = 1


def key_of(account: str) -> str:
    return KEY_PREFIX + account


@dataclass(frozen=True, kw_only=True)
class Standing:
    system_normal: bool
    can_withdraw: bool
    account_status: str
    enable_withdrawals: bool


@dataclass(frozen=True, kw_only=True)
class ViewSnapshot:
    account: str
    fetched_at: datetime  # the oldest of the facts below
    wallet: Wallet  # the account's default wallet
    fee_payer: FeePayer
    coins: dict[str, CoinConfig] = field(default_factory=dict)
    balances: dict[Wallet, dict[str, Decimal]] = field(default_factory=dict)
    quota: WithdrawQuota | None = None
    standing: Standing | None = None
    travel_rule: str | None = None  # the local entity code, None: none
    travel_rule_known: bool = False

    def free(self, wallet: Wallet, coin: str) -> Decimal | None:
        """None: that wallet's balances were not fetched."""
        found = self.balances.get(wallet)
        return None if found is None else found.get(coin, Decimal(0))

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.fetched_at).total_seconds())


def _rule(n: NetworkRule) -> dict[str, Any]:
    return {
        "network": n.network,
        "withdraw_enable": n.withdraw_enable,
        "withdraw_min": str(n.withdraw_min),
        "withdraw_max": str(n.withdraw_max),
        "withdraw_multiple": str(n.withdraw_multiple),
        "withdraw_fee": str(n.withdraw_fee),
        "address_regex": n.address_regex,
        "memo_regex": n.memo_regex,
        "memo_required": n.memo_required,
        "is_default": n.is_default,
        "busy": n.busy,
        "withdraw_desc": n.withdraw_desc,
    }


def to_json(s: ViewSnapshot) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "account": s.account,
            "fetched_at": s.fetched_at.isoformat(),
            "wallet": s.wallet.value,
            "fee_payer": s.fee_payer.value,
            "coins": {
                c.coin: {
                    "withdraw_all_enable": c.withdraw_all_enable,
                    "free": str(c.free),
                    "networks": [_rule(n) for n in c.networks],
                }
                for c in s.coins.values()
            },
            "balances": {
                w.value: {coin: str(v) for coin, v in sorted(b.items())}
                for w, b in s.balances.items()
            },
            "quota": None
            if s.quota is None
            else {"quota": str(s.quota.quota), "used": str(s.quota.used)},
            "standing": None
            if s.standing is None
            else {
                "system_normal": s.standing.system_normal,
                "can_withdraw": s.standing.can_withdraw,
                "account_status": s.standing.account_status,
                "enable_withdrawals": s.standing.enable_withdrawals,
            },
            "travel_rule": s.travel_rule,
            "travel_rule_known": s.travel_rule_known,
        },
        sort_keys=True,
    )


class MalformedSnapshot(ValueError):
    """The text is not a snapshot this version writes (the message says what is wrong)."""


def _dec(value: object) -> Decimal:
    """A finite decimal from its string (a number, NaN or Infinity is refused)."""
    if not isinstance(value, str):
        raise TypeError(f"an amount is {type(value).__name__}, not a decimal string")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"an amount is {value!r}")
    return amount


def _when(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"fetched_at is {type(value).__name__}, not an ISO time")
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError(f"fetched_at {value!r} has no time zone")
    return at


def from_json(text: str) -> ViewSnapshot:
    """Raises ``MalformedSnapshot`` (a ValueError) naming the problem for text that is
    not a snapshot of this ``FORMAT``."""
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise MalformedSnapshot(f"not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise MalformedSnapshot(f"a JSON {type(d).__name__}, not an object")
    if d.get("format") != FORMAT:
        raise MalformedSnapshot(f"snapshot format {d.get('format')!r}, expected {FORMAT}")
    try:
        return _parse(d)
    except KeyError as exc:
        raise MalformedSnapshot(f"no {exc.args[0]!r}") from None
    except (ValueError, TypeError, AttributeError, ArithmeticError) as exc:
        raise MalformedSnapshot(f"{type(exc).__name__}: {exc}") from None


def _parse(d: dict[str, Any]) -> ViewSnapshot:
    coins = {
        name: CoinConfig(
            coin=name,
            withdraw_all_enable=bool(c["withdraw_all_enable"]),
            free=_dec(c["free"]),
            networks=tuple(
                NetworkRule(
                    coin=name,
                    network=n["network"],
                    withdraw_enable=bool(n["withdraw_enable"]),
                    withdraw_min=_dec(n["withdraw_min"]),
                    withdraw_max=_dec(n["withdraw_max"]),
                    withdraw_multiple=_dec(n["withdraw_multiple"]),
                    withdraw_fee=_dec(n["withdraw_fee"]),
                    address_regex=n["address_regex"],
                    memo_regex=n["memo_regex"],
                    memo_required=n["memo_required"],
                    is_default=bool(n.get("is_default", False)),
                    busy=bool(n.get("busy", False)),
                    withdraw_desc=n.get("withdraw_desc", ""),
                )
                for n in c["networks"]
            ),
        )
        for name, c in d["coins"].items()
    }
    q = d.get("quota")
    st = d.get("standing")
    return ViewSnapshot(
        account=d["account"],
        fetched_at=_when(d["fetched_at"]),
        wallet=Wallet(d["wallet"]),
        fee_payer=FeePayer(d["fee_payer"]),
        coins=coins,
        balances={
            Wallet(w): {coin: _dec(v) for coin, v in b.items()} for w, b in d["balances"].items()
        },
        quota=None if q is None else WithdrawQuota(quota=_dec(q["quota"]), used=_dec(q["used"])),
        standing=None if st is None else Standing(**st),
        travel_rule=d.get("travel_rule"),
        travel_rule_known=bool(d.get("travel_rule_known")),
    )
