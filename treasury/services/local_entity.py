"""The exchange port for an account that may be under a Binance local entity (travel rule).

``LocalEntityRouting`` wraps an ``Exchange`` so that the rest of the worker does not have to
know which of Binance's two withdrawal paths an account takes:

* ``withdraw`` sends a request that carries a questionnaire through
  ``localentity/withdraw/apply`` (``withdraw_local_entity``), any other through
  ``capital/withdraw/apply``. Everything around the call is the same: the commit before
  it, the signed timestamp fixed in that commit, the single attempt, and an unknown
  outcome reconciled by ``withdrawOrderId`` before anything is sent again. The answer's
  ``trId`` comes back on ``WithdrawAccepted.tr_id``; its ``id`` is the withdrawal's when
  Binance gave one, else None until a history shows it.
* ``withdraw_history`` answers with the capital history and the local-entity history merged
  (``treasury.domain.local_history``) for an account under a local entity, so that absence
  means absent from both. Which account that is, it asks the exchange itself
  (``questionnaire-requirements``) before it answers a history question, and remembers a
  "yes" for good: a process that restarts and reconciles before it has sent anything
  cannot read only half the record. A "no" is asked again after ``recheck_s``.
* An exchange refusal of a local-entity apply has the questionnaire's personal answers
  masked out of its message: Binance's text goes into the intent's reason and the alerts.

Anything else (the limiter, the clock offset) is the wrapped client's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from treasury.domain.exchange import (
    AccountInfo,
    ApiRestrictions,
    Balance,
    CoinConfig,
    LocalEntityWithdrawAccepted,
    LocalEntityWithdrawalRecord,
    SystemStatus,
    TravelRuleCountry,
    TravelRuleRegion,
    Vasp,
    WhitelistAddress,
    WithdrawAccepted,
    WithdrawalRecord,
    WithdrawQuota,
    WithdrawRequest,
)
from treasury.domain.local_history import merge
from treasury.domain.travel_rule import MASK, personal_values
from treasury.ports.exchange import Exchange, ExchangeError

RECHECK_S = 300.0


class LocalEntityRouting:
    """An ``Exchange`` that routes sends and merges histories for the travel rule."""

    def __init__(
        self, inner: Exchange, *, local_entity: str | None = None, recheck_s: float = RECHECK_S
    ) -> None:
        self.inner = inner
        # a configured entity is trusted at once (preflight checks it against the exchange)
        self._local = local_entity is not None
        self._checked_at = float("-inf")
        self._recheck_s = recheck_s
        self._lock = anyio.Lock()

    def __getattr__(self, name: str) -> Any:
        # the wrapped client's own attributes (apply_limiter, clock_offset_ms, ...)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"LocalEntityRouting({self.inner!r}, local={self._local})"

    async def under_local_entity(self) -> bool:
        """Does this account take the local-entity path? Asked of the exchange unless known.

        Raises:
            ExchangeError: the exchange could not be asked (no history answer without it).
        """
        if self._local:
            return True
        async with self._lock:
            if not self._local and time.monotonic() - self._checked_at > self._recheck_s:
                await self.travel_rule_requirement()
        return self._local

    # -- the two calls that differ -------------------------------------------------------

    async def withdraw(
        self, request: WithdrawRequest, *, timestamp_ms: int | None = None
    ) -> WithdrawAccepted:
        if request.questionnaire is None:
            return await self.inner.withdraw(request, timestamp_ms=timestamp_ms)
        self._local = True  # from now on its history is read from both sides
        try:
            accepted = await self.inner.withdraw_local_entity(
                request, request.questionnaire, timestamp_ms=timestamp_ms
            )
        except ExchangeError as exc:
            _mask(exc, personal_values(request.questionnaire))
            raise
        return WithdrawAccepted(
            id=accepted.id,
            tr_id=accepted.tr_id,
            timestamp_ms=accepted.timestamp_ms,
            recv_window_ms=accepted.recv_window_ms,
        )

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
    ) -> list[WithdrawalRecord]:
        """The capital history, merged with the local-entity one for such an account.

        Both are read with the same window, ``offset`` and ``limit``: a caller that pages
        until a page is short reads both to their end (a merged page is at least as long
        as either of its halves). Either read failing fails the whole answer."""
        local = await self.under_local_entity()
        rows = await self.inner.withdraw_history(
            withdraw_order_id=withdraw_order_id,
            id_list=id_list,
            coin=coin,
            status=status,
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            offset=offset,
            limit=limit,
        )
        if not local:
            return rows
        other = await self.inner.local_entity_history(
            withdraw_order_id=withdraw_order_id,
            coin=coin,
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            offset=offset,
            limit=limit,
        )
        merged = merge(rows, other)
        if id_list is not None:
            wanted = set(id_list)
            merged = [r for r in merged if r.id in wanted]
        if status is not None:
            merged = [r for r in merged if r.status == status]
        if withdraw_order_id is not None:
            merged = [r for r in merged if r.withdraw_order_id == withdraw_order_id]
        return merged

    async def travel_rule_requirement(self) -> str | None:
        code = await self.inner.travel_rule_requirement()
        self._checked_at = time.monotonic()
        if code is not None:
            self._local = True
        return code

    # -- the rest, as the wrapped exchange answers it ------------------------------------

    def now_ms(self) -> int:
        return self.inner.now_ms()

    async def sync_clock(self) -> None:
        await self.inner.sync_clock()

    async def system_status(self) -> SystemStatus:
        return await self.inner.system_status()

    async def account(self) -> AccountInfo:
        return await self.inner.account()

    async def funding_balances(self) -> dict[str, Balance]:
        return await self.inner.funding_balances()

    async def account_status(self) -> str:
        return await self.inner.account_status()

    async def api_restrictions(self) -> ApiRestrictions:
        return await self.inner.api_restrictions()

    async def coin_configs(self) -> dict[str, CoinConfig]:
        return await self.inner.coin_configs()

    async def whitelist_addresses(self) -> list[WhitelistAddress]:
        return await self.inner.whitelist_addresses()

    async def withdraw_quota(self) -> WithdrawQuota:
        return await self.inner.withdraw_quota()

    async def vasps(self) -> list[Vasp]:
        return await self.inner.vasps()

    async def countries(self) -> list[TravelRuleCountry]:
        return await self.inner.countries()

    async def regions(self, country_code: str) -> list[TravelRuleRegion]:
        return await self.inner.regions(country_code)

    async def withdraw_local_entity(
        self,
        request: WithdrawRequest,
        questionnaire: Mapping[str, object],
        *,
        timestamp_ms: int | None = None,
    ) -> LocalEntityWithdrawAccepted:
        self._local = True
        return await self.inner.withdraw_local_entity(
            request, questionnaire, timestamp_ms=timestamp_ms
        )

    async def local_entity_history(
        self,
        *,
        tr_ids: Sequence[int] | None = None,
        withdraw_order_id: str | None = None,
        coin: str | None = None,
        travel_rule_status: int | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[LocalEntityWithdrawalRecord]:
        return await self.inner.local_entity_history(
            tr_ids=tr_ids,
            withdraw_order_id=withdraw_order_id,
            coin=coin,
            travel_rule_status=travel_rule_status,
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            offset=offset,
            limit=limit,
        )


def _mask(exc: ExchangeError, values: Sequence[str]) -> None:
    """Replace every personal answer in the error's message with ``<redacted>``."""
    detail, text = exc.detail, str(exc)
    for value in values:
        detail = detail.replace(value, MASK)
        text = text.replace(value, MASK)
    exc.detail = detail
    exc.args = (text,)


__all__ = ["RECHECK_S", "LocalEntityRouting"]
