"""The mutable side of an account: what admin calls and withdrawals change at run time.

The frozen :class:`~treasury.sandbox.config.AccountConfig` is where an account starts;
this is where it is now. Only :mod:`treasury.sandbox.state` mutates it, and only while
applying a journal record, so a replay reaches exactly the same values.

Two wallets, as on Binance: ``balances`` (spot) and ``funding_balances`` (funding), each
addressed by its ``walletType`` (0, 1). A withdrawal debits one of them and a refund goes
back to the same one; the other wallet's funds never count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from treasury.sandbox.config import EVM_NETWORKS, WALLETS, AccountConfig, WhitelistEntry

DAY_MS = 86_400_000
SPOT, FUNDING = WALLETS["spot"], WALLETS["funding"]


@dataclass
class AccountState:
    config: AccountConfig
    can_withdraw: bool
    can_trade: bool
    can_deposit: bool
    api_restrictions: dict[str, bool]
    balances: dict[str, Decimal]  # the spot wallet
    funding_balances: dict[str, Decimal]
    default_wallet: int  # the walletType an apply without one debits
    account_status: str
    whitelist_enabled: bool
    whitelist: list[WhitelistEntry]  # the address book; entries carry `whitelisted`
    quota_usd: Decimal
    # (applied_at_ms, usd) of the last 24 h of withdrawals, oldest first, and their sum
    quota_window: deque[tuple[int, Decimal]] = field(default_factory=deque)
    quota_used: Decimal = Decimal(0)

    @classmethod
    def from_config(cls, cfg: AccountConfig) -> AccountState:
        return cls(
            config=cfg,
            can_withdraw=cfg.can_withdraw,
            can_trade=cfg.can_trade,
            can_deposit=cfg.can_deposit,
            api_restrictions=dict(cfg.api_restrictions),
            balances=dict(cfg.balances),
            funding_balances=dict(cfg.funding_balances),
            default_wallet=WALLETS[cfg.default_wallet],
            account_status=cfg.account_status,
            whitelist_enabled=cfg.whitelist_enabled,
            whitelist=list(cfg.whitelist),
            quota_usd=cfg.quota_usd,
        )

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def uid(self) -> int:
        return self.config.uid

    @property
    def key_may_withdraw(self) -> bool:
        """Binance only lets a key withdraw when it is also restricted to trusted IPs."""
        flags = self.api_restrictions
        return flags["enableWithdrawals"] and flags["ipRestrict"]

    def free(self, coin: str) -> Decimal:
        """The spot wallet's balance of ``coin``."""
        return self.balances.get(coin, Decimal(0))

    def wallet(self, wallet_type: int) -> dict[str, Decimal]:
        """The balances of one wallet by ``walletType`` (0 spot, 1 funding), to read or change."""
        if wallet_type == SPOT:
            return self.balances
        if wallet_type == FUNDING:
            return self.funding_balances
        raise ValueError(f"unknown walletType {wallet_type!r}")

    def free_in(self, wallet_type: int, coin: str) -> Decimal:
        return self.wallet(wallet_type).get(coin, Decimal(0))

    def move(self, wallet_type: int, coin: str, delta: Decimal) -> None:
        """Add ``delta`` (negative: a debit) to one wallet's balance of ``coin``."""
        balances = self.wallet(wallet_type)
        balances[coin] = balances.get(coin, Decimal(0)) + delta

    def is_whitelisted(self, coin: str, network: str, address: str, tag: str | None) -> bool:
        """On the withdrawal whitelist: in the address book *and* marked whitelisted."""
        return any(e.whitelisted and _same(e, coin, network, address, tag) for e in self.whitelist)

    def in_address_book(self, coin: str, network: str, address: str, tag: str | None) -> bool:
        return any(_same(e, coin, network, address, tag) for e in self.whitelist)

    def remove_whitelisted(self, coin: str, network: str, address: str, tag: str | None) -> bool:
        kept = [e for e in self.whitelist if not _same(e, coin, network, address, tag)]
        removed = len(kept) != len(self.whitelist)
        self.whitelist = kept
        return removed

    def quota_used_at(self, now_ms: int) -> Decimal:
        """USD withdrawn over the last 24 h (failed ones included, as a conservative choice)."""
        while self.quota_window and self.quota_window[0][0] <= now_ms - DAY_MS:
            _, usd = self.quota_window.popleft()
            self.quota_used -= usd
        return self.quota_used

    def add_quota_use(self, at_ms: int, usd: Decimal) -> None:
        self.quota_window.append((at_ms, usd))
        self.quota_used += usd


def _same(e: WhitelistEntry, coin: str, network: str, address: str, tag: str | None) -> bool:
    if (e.coin, e.network, e.address_tag or None) != (coin, network, tag or None):
        return False
    if network in EVM_NETWORKS:  # EVM addresses are case-insensitive (checksum casing)
        return e.address.lower() == address.lower()
    return e.address == address
