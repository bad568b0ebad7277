"""Cached facts from the exchange, so checks cost no request per intent.

Coin rules are kept for ``rules_ttl_s`` (and refreshed at once after a rule-related
rejection); account standing, system status and key permissions for a few seconds.
A failed refresh keeps nothing stale beyond its TTL: the caller holds the intent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

from treasury.domain.exchange import (
    AccountInfo,
    ApiRestrictions,
    Balance,
    CoinConfig,
    SystemStatus,
    WithdrawQuota,
)
from treasury.domain.fee_payer import FeePayer
from treasury.domain.money import add
from treasury.domain.view_snapshot import Standing, ViewSnapshot
from treasury.domain.wallet import Wallet
from treasury.ports.clock import utcnow
from treasury.ports.exchange import Exchange

V = TypeVar("V")

# The shortest life of a balance read, and the age past which a balance that does not
# cover an intent is read again before the intent is held for it.
ACCOUNT_TTL_S = 5.0


Seconds = float | Callable[[], float]  # a lifetime, or how to work it out at each read


@dataclass
class _Cached(Generic[V]):
    fetch: Callable[[], Awaitable[V]]
    ttl_s: Seconds
    value: V | None = None
    at: float = float("-inf")
    fetched_at: datetime | None = None  # wall clock of the last fetch (for a snapshot)

    def age_s(self) -> float:
        return time.monotonic() - self.at

    async def get(self) -> V:
        ttl = self.ttl_s() if callable(self.ttl_s) else self.ttl_s
        if self.value is None or self.age_s() > ttl:
            self.value = await self.fetch()
            self.at = time.monotonic()
            self.fetched_at = utcnow()
        return self.value

    def invalidate(self) -> None:
        self.at = float("-inf")


class ExchangeView:
    def __init__(
        self,
        exchange: Exchange,
        *,
        rules_ttl_s: float,
        account_ttl_s: Seconds = ACCOUNT_TTL_S,
        on_can_withdraw: Callable[[bool], Awaitable[None]] | None = None,
    ):
        """``account_ttl_s``: how long the account read (spot balances, ``canWithdraw``)
        is kept; a callable when it depends on how many accounts share the IP's budget."""
        self.exchange = exchange
        self._rules = _Cached(exchange.coin_configs, rules_ttl_s)
        self._account = _Cached(self._fetch_account, account_ttl_s)
        self._quota = _Cached(exchange.withdraw_quota, 30.0)
        self._can_withdraw: bool | None = None
        self._on_can_withdraw = on_can_withdraw
        self._status = _Cached(exchange.system_status, 10.0)
        self._restrictions = _Cached(exchange.api_restrictions, 60.0)
        self._funding = _Cached(self._fetch_funding, ACCOUNT_TTL_S)
        self._account_status = _Cached(exchange.account_status, 10.0)
        # which Binance local entity the account is under ("" for none): it changes only
        # when Binance moves the account, so a few minutes' staleness is harmless
        self._travel_rule = _Cached(self._fetch_travel_rule, 300.0)
        # Amounts committed to sends since a wallet's cached balance was fetched, per
        # (wallet, coin): the balance check subtracts them, so a send need not refetch.
        self._spent: dict[tuple[Wallet, str], Decimal] = {}

    def _forget_spent_before(
        self, wallet: Wallet, spent_before: dict[tuple[Wallet, str], Decimal]
    ) -> None:
        """What was spent before a fetch of ``wallet`` is in the fetched balance: keep only
        the later sends."""
        kept = {}
        for key, total in self._spent.items():
            earlier = spent_before.get(key, Decimal(0)) if key[0] is wallet else Decimal(0)
            if total != earlier:
                kept[key] = total - earlier
        self._spent = kept

    async def _fetch_funding(self) -> dict[str, Balance]:
        spent_before = dict(self._spent)
        balances = await self.exchange.funding_balances()
        self._forget_spent_before(Wallet.FUNDING, spent_before)
        return balances

    async def _fetch_account(self) -> AccountInfo:
        spent_before = dict(self._spent)
        account = await self.exchange.account()
        self._forget_spent_before(Wallet.SPOT, spent_before)
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

    async def free(self, wallet: Wallet, coin: str) -> Decimal:
        """The free balance of ``coin`` in ``wallet`` as last fetched (spot: the account;
        funding: ``get-funding-asset``)."""
        if wallet is Wallet.SPOT:
            return (await self._account.get()).free(coin)
        found = (await self._funding.get()).get(coin)
        return found.free if found is not None else Decimal(0)

    async def free_now(self, wallet: Wallet, coin: str) -> Decimal:
        """As ``free``, but read again first when the cached read is older than
        ``ACCOUNT_TTL_S``: a deposit since then may cover what the cache does not. (Reads
        are spaced out when many accounts share the IP's budget; a hold should not wait
        for the next one.)"""
        cached = self._account if wallet is Wallet.SPOT else self._funding
        if cached.value is not None and cached.age_s() > ACCOUNT_TTL_S:
            cached.invalidate()
        return await self.free(wallet, coin)

    async def warm(self, wallet: Wallet) -> None:
        """Fetch what a preview reads (standing, rules, balances, quota) where its cache
        has expired: an idle worker's published view stays current. Each cache's own
        lifetime bounds the cost (about 50 request weight a minute when idle)."""
        await self.system_status()
        await self.account_status()
        await self.restrictions()
        await self.rules()
        await self.quota()
        await self.travel_rule()
        await self.free(wallet, "")

    async def system_status(self) -> SystemStatus:
        return await self._status.get()

    async def account_status(self) -> str:
        return await self._account_status.get()

    async def restrictions(self) -> ApiRestrictions:
        return await self._restrictions.get()

    async def _fetch_travel_rule(self) -> str:
        return await self.exchange.travel_rule_requirement() or ""

    async def travel_rule(self) -> str | None:
        """The local entity whose travel-rule questionnaire the account's withdrawals
        need (``JP``, ``PL``…), or ``None``."""
        return await self._travel_rule.get() or None

    def travel_rule_changed(self) -> None:
        """The exchange said the account's path changed (-4104): ask again next time."""
        self._travel_rule.invalidate()

    def rules_changed(self) -> None:
        """The exchange refused on a rule: refetch rules (and balances) next time."""
        self._rules.invalidate()
        self._account.invalidate()
        self._funding.invalidate()

    def committed(self, wallet: Wallet, coin: str, amount: Decimal) -> None:
        """An amount of ``coin`` is about to leave ``wallet``: count it against the cached
        balance."""
        key = (wallet, coin)
        self._spent[key] = add(self._spent.get(key, Decimal(0)), amount)

    def reserved(self, wallet: Wallet, coin: str) -> Decimal:
        return self._spent.get((wallet, coin), Decimal(0))

    def not_sent(self, wallet: Wallet, coin: str, amount: Decimal) -> None:
        """A committed amount provably did not leave."""
        key = (wallet, coin)
        if key in self._spent:
            self._spent[key] = max(Decimal(0), self._spent[key] - amount)

    def standing_changed(self) -> None:
        self._account.invalidate()
        self._account_status.invalidate()
        self._funding.invalidate()
        self._status.invalidate()
        self._restrictions.invalidate()

    def snapshot(self, account: str, *, wallet: Wallet, fee_payer: FeePayer) -> ViewSnapshot | None:
        """What is cached now, fetching nothing (None: no coin rules fetched yet).
        Balances are net of amounts committed since they were fetched; ``fetched_at`` is
        the oldest fetch among the facts included."""
        rules = self._rules
        if rules.value is None or rules.fetched_at is None:
            return None
        times = [rules.fetched_at]
        balances: dict[Wallet, dict[str, Decimal]] = {}
        account_info = self._account.value
        if account_info is not None and self._account.fetched_at is not None:
            times.append(self._account.fetched_at)
            balances[Wallet.SPOT] = {
                coin: b.free - self.reserved(Wallet.SPOT, coin)
                for coin, b in account_info.balances.items()
            }
        funding = self._funding.value
        if funding is not None and self._funding.fetched_at is not None:
            times.append(self._funding.fetched_at)
            balances[Wallet.FUNDING] = {
                coin: b.free - self.reserved(Wallet.FUNDING, coin) for coin, b in funding.items()
            }
        quota = self._quota.value
        if quota is not None and self._quota.fetched_at is not None:
            times.append(self._quota.fetched_at)
        standing = None
        status, restrictions = self._status.value, self._restrictions.value
        account_status = self._account_status.value
        if (
            account_info is not None
            and status is not None
            and restrictions is not None
            and account_status is not None
        ):
            standing = Standing(
                system_normal=status.normal,
                can_withdraw=account_info.can_withdraw,
                account_status=account_status,
                enable_withdrawals=restrictions.enable_withdrawals,
            )
        travel = self._travel_rule.value
        return ViewSnapshot(
            account=account,
            fetched_at=min(times),
            wallet=wallet,
            fee_payer=fee_payer,
            coins=dict(rules.value),
            balances=balances,
            quota=quota,
            standing=standing,
            travel_rule=travel or None,
            travel_rule_known=travel is not None,
        )
