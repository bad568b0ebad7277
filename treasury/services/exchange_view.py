"""Cached facts from the exchange, so checks cost no request per intent.

Coin rules are kept for ``rules_ttl_s`` (and refreshed at once after a rule-related
rejection); account standing, system status and key permissions for a few seconds.
A failed refresh keeps nothing stale beyond its TTL: the caller holds the intent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

from treasury.domain.exchange import (
    AccountInfo,
    ApiRestrictions,
    CoinConfig,
    SystemStatus,
    WithdrawQuota,
)
from treasury.domain.money import add
from treasury.ports.exchange import Exchange

V = TypeVar("V")


@dataclass
class _Cached(Generic[V]):
    fetch: Callable[[], Awaitable[V]]
    ttl_s: float
    value: V | None = None
    at: float = float("-inf")

    async def get(self) -> V:
        if self.value is None or time.monotonic() - self.at > self.ttl_s:
            self.value = await self.fetch()
            self.at = time.monotonic()
        return self.value

    def invalidate(self) -> None:
        self.at = float("-inf")


class ExchangeView:
    def __init__(
        self,
        exchange: Exchange,
        *,
        rules_ttl_s: float,
        account_ttl_s: float = 5.0,
        on_can_withdraw: Callable[[bool], Awaitable[None]] | None = None,
    ):
        self.exchange = exchange
        self._rules = _Cached(exchange.coin_configs, rules_ttl_s)
        self._account = _Cached(self._fetch_account, account_ttl_s)
        self._quota = _Cached(exchange.withdraw_quota, 30.0)
        self._can_withdraw: bool | None = None
        self._on_can_withdraw = on_can_withdraw
        self._status = _Cached(exchange.system_status, max(account_ttl_s, 10.0))
        self._restrictions = _Cached(exchange.api_restrictions, 60.0)
        # Amounts committed to sends since the cached balance was fetched: the balance
        # check subtracts them, so a send need not refetch the account (2 requests).
        self._spent: dict[str, Decimal] = {}

    async def _fetch_account(self) -> AccountInfo:
        spent_before = dict(self._spent)
        account = await self.exchange.account()
        # What was spent before the fetch is in the fetched balance; keep only later sends.
        self._spent = {
            coin: total - spent_before.get(coin, Decimal(0))
            for coin, total in self._spent.items()
            if total != spent_before.get(coin, Decimal(0))
        }
        changed = self._can_withdraw is not None and account.can_withdraw != self._can_withdraw
        self._can_withdraw = account.can_withdraw
        if changed and self._on_can_withdraw is not None:
            await self._on_can_withdraw(account.can_withdraw)
        return account

    async def quota(self) -> WithdrawQuota:
        return await self._quota.get()

    async def rules(self) -> dict[str, CoinConfig]:
        return await self._rules.get()

    async def account(self) -> AccountInfo:
        return await self._account.get()

    async def system_status(self) -> SystemStatus:
        return await self._status.get()

    async def restrictions(self) -> ApiRestrictions:
        return await self._restrictions.get()

    def rules_changed(self) -> None:
        """The exchange refused on a rule: refetch rules (and balances) next time."""
        self._rules.invalidate()
        self._account.invalidate()

    def committed(self, coin: str, amount: Decimal) -> None:
        """An amount of ``coin`` is about to leave: count it against the cached balance."""
        self._spent[coin] = add(self._spent.get(coin, Decimal(0)), amount)

    def reserved(self, coin: str) -> Decimal:
        return self._spent.get(coin, Decimal(0))

    def not_sent(self, coin: str, amount: Decimal) -> None:
        """A committed amount provably did not leave."""
        if coin in self._spent:
            self._spent[coin] = max(Decimal(0), self._spent[coin] - amount)

    def standing_changed(self) -> None:
        self._account.invalidate()
        self._status.invalidate()
        self._restrictions.invalidate()
