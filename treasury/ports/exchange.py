"""The exchange port: what the worker asks of an exchange, and how a call can fail.

The Binance client (``treasury.adapters.binance``) implements ``Exchange`` and raises the
error tree below (adapter-specific cases subclass it). Services catch these, never an
adapter's own exceptions.

::

    ExchangeError                 base: endpoint, code, http_status, reason
    ├── NotSent                   the request provably did nothing: safe to send again
    ├── Rejected                  a definitive "no"; ``permanent`` says whether it can ever pass
    └── OutcomeUnknown            withdraw/apply only: it may or may not have been executed

* ``NotSent``: retry. ``retry_after_s`` is the exchange's own wait, when it gave one.
* ``Rejected(permanent=True)``: this request will never pass as it is; tell a person.
  ``Rejected(permanent=False)``: refused *now* (balance, lock, daily cap); may pass later.
* ``OutcomeUnknown``: funds may be moving. Never retried by the client; the caller must
  look the withdrawal up in the history by ``withdraw_order_id`` before anything is sent
  again. It carries the signed ``timestamp_ms`` and ``recv_window_ms``.

Messages never contain a secret, a signature or the signed query.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Protocol

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


class Exchange(Protocol):
    def now_ms(self) -> int: ...

    async def sync_clock(self) -> None: ...

    async def system_status(self) -> SystemStatus: ...

    async def account(self) -> AccountInfo: ...

    async def funding_balances(self) -> dict[str, Balance]: ...

    async def account_status(self) -> str: ...

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

    # -- travel rule (local entities): see reference §11 ---------------------------------

    async def travel_rule_requirement(self) -> str | None:
        """The account's questionnaire country code (e.g. ``JP``, ``PL``), or ``None`` when
        no questionnaire is needed (Binance answers ``NIL``) and ``withdraw`` applies."""
        ...

    async def vasps(self) -> list[Vasp]: ...

    async def countries(self) -> list[TravelRuleCountry]: ...

    async def regions(self, country_code: str) -> list[TravelRuleRegion]: ...

    async def withdraw_local_entity(
        self,
        request: WithdrawRequest,
        questionnaire: Mapping[str, object],
        *,
        timestamp_ms: int | None = None,
    ) -> LocalEntityWithdrawAccepted:
        """``withdraw`` for a travel-rule account: same parameters, errors and rules, plus
        the entity's questionnaire. A questionnaire Binance refuses is a permanent
        ``Rejected`` (reason ``travel_rule``) carrying Binance's text."""
        ...

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
    ) -> list[LocalEntityWithdrawalRecord]: ...


class Reason(enum.StrEnum):
    """Short machine-readable category of a failure (metrics label, worker routing)."""

    CONNECT_FAILED = "connect_failed"  # no connection was made: nothing was sent
    TIMEOUT = "timeout"  # the answer did not come in time
    DISCONNECTED = "disconnected"  # the connection broke while sending or reading
    RATE_LIMITED = "rate_limited"  # 429, -1003, -4005
    IP_BANNED = "ip_banned"  # 418
    CLOCK_SKEW = "clock_skew"  # -1021: timestamp outside recvWindow
    SERVER_ERROR = "server_error"  # 5xx, -1000/-1001/-1006/-1007/-1008
    BLOCKED = "blocked"  # a non-2xx answer without a Binance code (WAF 403, proxy, 404)
    INVALID_RESPONSE = "invalid_response"  # a body we cannot parse
    UNKNOWN_CODE = "unknown_code"  # a code that is not in this table
    BAD_REQUEST = "bad_request"  # malformed parameters: a bug on our side
    AUTH = "auth"  # key, signature or permission
    ADDRESS = "address"  # the destination is invalid for the coin/network
    ADDRESS_COOLING = "address_cooling"  # a new address usable only after some hours
    WHITELIST = "whitelist"  # address not whitelisted, or whitelist switched off
    ASSET = "asset"  # coin unknown, closed for withdrawal or locked
    AMOUNT = "amount"  # multiple, minimum, precision, fee
    BALANCE = "balance"  # not enough funds
    ACCOUNT = "account"  # account-level restriction (2FA, recent login, "limited")
    QUOTA = "quota"  # 24 h maximum reached
    TRAVEL_RULE = "travel_rule"  # must use the local-entity endpoint


class ExchangeError(Exception):
    """Base of every error the Binance adapter raises about an exchange call.

    Attributes:
        endpoint: the request path, e.g. ``/sapi/v1/capital/withdraw/apply``.
        code: Binance's error ``code`` when the body carried one.
        http_status: the HTTP status when a response arrived.
        reason: a short machine-readable category (``Reason``), for metrics and routing.
        detail: the human explanation without the endpoint prefix.
    """

    outcome = "error"  # the label passed to the ``on_call`` metrics hook

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        reason: Reason,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        self.detail = detail
        self.endpoint = endpoint
        self.reason = reason
        self.code = code
        self.http_status = http_status
        facts = [f"reason={reason.value}"]
        if code is not None:
            facts.append(f"code={code}")
        if http_status is not None:
            facts.append(f"http={http_status}")
        super().__init__(f"{endpoint}: {detail} ({', '.join(facts)})")


class NotSent(ExchangeError):
    """The request was not executed: nothing changed, sending it again is safe."""

    outcome = "not_sent"

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        reason: Reason,
        code: int | None = None,
        http_status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(
            detail, endpoint=endpoint, reason=reason, code=code, http_status=http_status
        )
        self.retry_after_s = retry_after_s


class Rejected(ExchangeError):
    """The exchange gave a definitive answer: the request was refused and did nothing."""

    outcome = "rejected"

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        reason: Reason,
        permanent: bool,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(
            detail, endpoint=endpoint, reason=reason, code=code, http_status=http_status
        )
        self.permanent = permanent


class OutcomeUnknown(ExchangeError):
    """withdraw/apply may have been executed. Reconcile through withdraw/history first."""

    outcome = "unknown"

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        reason: Reason,
        timestamp_ms: int,
        recv_window_ms: int,
        withdraw_order_id: str,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(
            detail, endpoint=endpoint, reason=reason, code=code, http_status=http_status
        )
        self.timestamp_ms = timestamp_ms
        self.recv_window_ms = recv_window_ms
        self.withdraw_order_id = withdraw_order_id

    @property
    def last_acceptable_ms(self) -> int:
        """Exchange time after which no copy of this request can still be accepted."""
        return self.timestamp_ms + self.recv_window_ms
