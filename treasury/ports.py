"""The interfaces the worker depends on. The Binance client implements ``Exchange``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from treasury.domain.exchange import (
    AccountInfo,
    ApiRestrictions,
    CoinConfig,
    SystemStatus,
    WhitelistAddress,
    WithdrawAccepted,
    WithdrawalRecord,
    WithdrawQuota,
    WithdrawRequest,
)


class Exchange(Protocol):
    def now_ms(self) -> int: ...

    async def sync_clock(self) -> None: ...

    async def system_status(self) -> SystemStatus: ...

    async def account(self) -> AccountInfo: ...

    async def api_restrictions(self) -> ApiRestrictions: ...

    async def coin_configs(self) -> dict[str, CoinConfig]: ...

    async def whitelist_addresses(self) -> list[WhitelistAddress]: ...

    async def withdraw_quota(self) -> WithdrawQuota: ...

    async def withdraw(
        self, request: WithdrawRequest, *, timestamp_ms: int | None = None
    ) -> WithdrawAccepted: ...

    async def withdraw_history(
        self,
        *,
        withdraw_order_id: str | None = None,
        id_list: Sequence[str] | None = None,
        coin: str | None = None,
        status: int | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[WithdrawalRecord]: ...
