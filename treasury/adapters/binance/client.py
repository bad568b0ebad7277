"""The async Binance client: signed reads with bounded retries, and a withdraw that is
sent at most once per call.

The client receives its ``httpx.AsyncClient`` (tests plug in respx or ``MockTransport``),
never reads settings or the environment, and never retries ``withdraw``: anything that
may have reached the exchange comes back as ``OutcomeUnknown`` for the caller to
reconcile through ``withdraw_history``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import anyio
import httpx
import structlog

from treasury.adapters.binance import endpoints as ep
from treasury.adapters.binance import parse
from treasury.adapters.binance.classify import MAX_MSG_CHARS, ApplyContext
from treasury.adapters.binance.clock import DEFAULT_REFRESH_S, ServerClock
from treasury.adapters.binance.codes import Reason
from treasury.adapters.binance.encoding import Params, SignedQuery, sign_query, unsigned_query
from treasury.adapters.binance.endpoints import Endpoint
from treasury.adapters.binance.errors import ExchangeError, NotSent, Rejected
from treasury.adapters.binance.limits import IpBudgets, RateLimiter, RateLimits
from treasury.adapters.binance.logredact import install_signature_redaction
from treasury.adapters.binance.pacing import ApplyLimiter
from treasury.adapters.binance.params import (
    history_params,
    local_history_params,
    local_withdraw_params,
    withdraw_params,
)
from treasury.adapters.binance.retry import RetryPolicy, read_retrying
from treasury.adapters.binance.signing import Signer
from treasury.adapters.binance.transport import OnCall, Reply, Transport
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

T = TypeVar("T")

log = structlog.get_logger("treasury.binance")

MAX_RECV_WINDOW_MS = 60_000


def mask_api_key(api_key: str) -> str:
    """First 4 and last 4 characters; nothing at all for a key too short to hide."""
    return f"{api_key[:4]}…{api_key[-4:]}" if len(api_key) >= 16 else "…"


def _check_recv_window(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer number of milliseconds")
    if not 1 <= value <= MAX_RECV_WINDOW_MS:
        raise ValueError(f"{name} must be between 1 and {MAX_RECV_WINDOW_MS} ms")
    return value


class BinanceClient:
    """Binance spot + wallet (capital) endpoints used by the withdrawal daemon.

    Args:
        http: the shared ``httpx.AsyncClient``; its timeouts apply. It must not carry
            default query params (they would be added after signing).
        base_url: e.g. ``https://api.binance.com`` (a path prefix is kept).
        api_key: sent in ``X-MBX-APIKEY`` on signed calls; shown masked in ``repr``.
        signer: from ``signing.load_signer``.
        recv_window_ms: recvWindow of signed reads (1..60000).
        apply_recv_window_ms: recvWindow of withdraw/apply; keep it small, it bounds how
            long an unknown outcome can stay open.
        limits: weight budgets; ``RateLimits()`` holds Binance's published figures.
        withdraw_rate: withdraw/apply calls per second at most (default 1).
        wall_clock: epoch seconds (``time.time``); injectable for tests.
        monotonic, sleep: the limiters' clock and sleep (``time.monotonic``,
            ``anyio.sleep``); injectable so a test can run the pace on a fake clock.
        retry: the read-only retry policy.
        clock_refresh_s: how often the server-time offset is measured again.
        apply_timeout_s: withdraw/apply is shielded from cancellation up to this long.
        on_call: ``(endpoint_path, outcome, seconds)`` after every HTTP exchange; outcome
            is ``ok``, ``not_sent``, ``invalid_response``, ``rejected`` or ``unknown``.
        ip_budgets: the IP's weight pools and ban, shared by the clients of every account
            that leaves from the same address (one process); default: this client's own.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        signer: Signer,
        recv_window_ms: int = 5000,
        apply_recv_window_ms: int = 5000,
        limits: RateLimits | None = None,
        withdraw_rate: float = 1.0,
        wall_clock: Callable[[], float] | None = None,
        monotonic: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        retry: RetryPolicy | None = None,
        clock_refresh_s: float = DEFAULT_REFRESH_S,
        apply_timeout_s: float = 20.0,
        on_call: OnCall | None = None,
        ip_budgets: IpBudgets | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is empty")
        if http.params:
            raise ValueError("the httpx client must not add query params to signed requests")
        if apply_timeout_s <= 0:
            raise ValueError("apply_timeout_s must be positive")
        self._recv_window_ms = _check_recv_window("recv_window_ms", recv_window_ms)
        self._apply_recv_window_ms = _check_recv_window(
            "apply_recv_window_ms", apply_recv_window_ms
        )
        wall = wall_clock or time.time
        self._base_url = base_url
        self._api_key = api_key
        self._signer = signer
        self._retry = retry or RetryPolicy()
        self._clock = ServerClock(wall_clock=wall, refresh_s=clock_refresh_s)
        self._clock_lock: anyio.Lock | None = None
        mono = monotonic or time.monotonic
        nap = sleep or anyio.sleep
        self._limiter = RateLimiter(
            limits or RateLimits(), monotonic=mono, sleep=nap, ip=ip_budgets
        )
        self._pacer = ApplyLimiter(withdraw_rate, monotonic=mono, wall_clock=wall, sleep=nap)
        self._transport = Transport(
            http,
            base_url=base_url,
            api_key=api_key,
            limiter=self._limiter,
            wall_clock=wall,
            on_call=on_call,
            apply_timeout_s=apply_timeout_s,
        )
        install_signature_redaction()

    def __repr__(self) -> str:
        return (
            f"BinanceClient(base_url={self._base_url!r}, api_key={mask_api_key(self._api_key)!r}, "
            f"signer={self._signer!r})"
        )

    # -- limits and clock, for the caller and for metrics ---------------------------------

    @property
    def rate_limiter(self) -> RateLimiter:
        """Weight budgets: ``used_weight()``, ``waited_s``, ``banned_for_s()``."""
        return self._limiter

    @property
    def apply_limiter(self) -> ApplyLimiter:
        """The withdraw pace: seed it with ``note_sent_at`` / ``defer_until`` on start."""
        return self._pacer

    @property
    def clock_offset_ms(self) -> float:
        return self._clock.offset_ms

    def now_ms(self) -> int:
        """Estimated exchange time in epoch ms (no I/O)."""
        return self._clock.now_ms()

    async def server_time_ms(self) -> int:
        return (await self._read(ep.SERVER_TIME, (), parse.parse_server_time)).value

    async def sync_clock(self) -> None:
        """Measure the server-time offset now."""
        async with self._lock():
            await self._sync_clock_locked()

    # -- read-only endpoints ---------------------------------------------------------------

    async def account(self) -> AccountInfo:
        reply = await self._read(ep.ACCOUNT, [("omitZeroBalances", True)], parse.parse_account)
        return reply.value

    async def funding_balances(self) -> dict[str, Balance]:
        """The funding wallet (``/api/v3/account`` shows the spot wallet only)."""
        reply = await self._read(ep.FUNDING_ASSET, (), parse.parse_funding_assets)
        return reply.value

    async def account_status(self) -> str:
        """``Normal``, or the exchange's text for a restricted account."""
        return (await self._read(ep.ACCOUNT_STATUS, (), parse.parse_account_status)).value

    async def system_status(self) -> SystemStatus:
        return (await self._read(ep.SYSTEM_STATUS, (), parse.parse_system_status)).value

    async def api_restrictions(self) -> ApiRestrictions:
        reply = await self._read(ep.API_RESTRICTIONS, (), parse.parse_api_restrictions)
        return reply.value

    async def coin_configs(self) -> dict[str, CoinConfig]:
        return (await self._read(ep.COIN_CONFIG, (), parse.parse_coin_configs)).value

    async def whitelist_addresses(self) -> list[WhitelistAddress]:
        return (await self._read(ep.ADDRESS_LIST, (), parse.parse_whitelist)).value

    async def withdraw_quota(self) -> WithdrawQuota:
        return (await self._read(ep.WITHDRAW_QUOTA, (), parse.parse_withdraw_quota)).value

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
        """Withdrawal records, filtered as Binance documents.

        Raises:
            ValueError: the filters break a documented rule (see ``params.history_params``).
            NotSent, Rejected: as for every read.
        """
        params = history_params(
            withdraw_order_id=withdraw_order_id,
            id_list=id_list,
            coin=coin,
            status=status,
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            offset=offset,
            limit=limit,
            now_ms=self.now_ms(),
        )
        reply = await self._read(ep.WITHDRAW_HISTORY, params, parse.parse_withdraw_history)
        return reply.value

    # -- the one call that moves money --------------------------------------------------

    async def withdraw(
        self, request: WithdrawRequest, *, timestamp_ms: int | None = None
    ) -> WithdrawAccepted:
        """Send one withdraw/apply. Never retried, whatever happens.

        Args:
            request: what to send; ``withdraw_order_id`` must match ``[A-Za-z0-9_-]{1,64}``.
            timestamp_ms: the timestamp to sign, when the caller fixed (and stored) it
                before the call; otherwise the estimated server time at sending.

        Raises:
            ValueError: the request is malformed; nothing was sent.
            NotSent: nothing was executed (no connection, 429/418, -1021 after a clock
                resync, -1003, -4005).
            Rejected: a definitive refusal; ``permanent`` says whether it can ever pass.
            OutcomeUnknown: it may have been executed; reconcile via ``withdraw_history``.
        """
        params = withdraw_params(request)
        reply, signed_ts, recv_window = await self._apply(
            ep.WITHDRAW_APPLY, params, request, timestamp_ms, parse.parse_withdraw_id
        )
        log.info(
            "binance.withdraw_accepted",
            withdraw_order_id=request.withdraw_order_id,
            withdraw_id=reply.value,
            timestamp_ms=signed_ts,
        )
        return WithdrawAccepted(id=reply.value, timestamp_ms=signed_ts, recv_window_ms=recv_window)

    # -- travel rule (local entities), reference §11 ---------------------------------------

    async def travel_rule_requirement(self) -> str | None:
        """The questionnaire country code (``JP``, ``PL``…), ``None`` for ``NIL``."""
        reply = await self._read(
            ep.QUESTIONNAIRE_REQUIREMENTS, (), parse.parse_questionnaire_requirement
        )
        return reply.value

    async def vasps(self) -> list[Vasp]:
        return (await self._read(ep.LOCAL_VASPS, (), parse.parse_vasps)).value

    async def countries(self) -> list[TravelRuleCountry]:
        return (await self._read(ep.LOCAL_COUNTRIES, (), parse.parse_countries)).value

    async def regions(self, country_code: str) -> list[TravelRuleRegion]:
        if not isinstance(country_code, str) or not country_code.strip():
            raise ValueError("country_code must be a non-empty ISO-2 code")
        params = [("countryCode", country_code.strip().lower())]
        return (await self._read(ep.LOCAL_REGIONS, params, parse.parse_regions)).value

    async def withdraw_local_entity(
        self,
        request: WithdrawRequest,
        questionnaire: Mapping[str, object],
        *,
        timestamp_ms: int | None = None,
    ) -> LocalEntityWithdrawAccepted:
        """``withdraw`` through ``localentity/withdraw/apply``: the same checks, pace
        (one apply a second, shared with ``withdraw``), signing and error rules, plus the
        questionnaire, sent as compact JSON, URL-encoded, inside the signed query.

        Raises:
            ValueError, NotSent, OutcomeUnknown: as ``withdraw``.
            Rejected: as ``withdraw``; also ``permanent`` with reason ``travel_rule`` when
                Binance answers ``accepted: false`` (its ``info`` in the message).
        """
        params = local_withdraw_params(request, questionnaire)
        endpoint = ep.LOCAL_WITHDRAW_APPLY
        reply, signed_ts, recv_window = await self._apply(
            endpoint, params, request, timestamp_ms, parse.parse_local_withdraw
        )
        answer = reply.value
        if not answer.accepted:
            said = f"; Binance says {answer.info[:MAX_MSG_CHARS]!r}" if answer.info else ""
            log.warning(
                "binance.local_withdraw_refused", withdraw_order_id=request.withdraw_order_id
            )
            raise Rejected(
                f"questionnaire refused{said}",
                endpoint=endpoint.path,
                reason=Reason.TRAVEL_RULE,
                permanent=True,
            )
        assert answer.tr_id is not None  # the parser requires it of an accepted answer
        log.info(
            "binance.local_withdraw_accepted",
            withdraw_order_id=request.withdraw_order_id,
            tr_id=answer.tr_id,
            timestamp_ms=signed_ts,
        )
        return LocalEntityWithdrawAccepted(
            tr_id=answer.tr_id,
            info=answer.info,
            id=answer.id,
            timestamp_ms=signed_ts,
            recv_window_ms=recv_window,
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
        """Local-entity withdrawal records (history v2). Binance warns that a withdrawal
        may show in only one of this and ``withdraw_history``: reconcile through both.

        Raises:
            ValueError: the filters break a documented rule (``params.local_history_params``).
            NotSent, Rejected: as for every read.
        """
        params = local_history_params(
            tr_ids=tr_ids,
            withdraw_order_id=withdraw_order_id,
            coin=coin,
            travel_rule_status=travel_rule_status,
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            offset=offset,
            limit=limit,
            now_ms=self.now_ms(),
        )
        reply = await self._read(ep.LOCAL_WITHDRAW_HISTORY, params, parse.parse_local_history)
        return reply.value

    async def _apply(
        self,
        endpoint: Endpoint,
        params: Params,
        request: WithdrawRequest,
        timestamp_ms: int | None,
        parser: Callable[[object, str], T],
    ) -> tuple[Reply[T], int, int]:
        """Sign and send one apply (either endpoint), exactly once: the shared pace, the
        expired-timestamp guard, and the unknown-outcome context. Returns the reply, the
        signed timestamp and the recvWindow."""
        if timestamp_ms is not None and (
            isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms <= 0
        ):
            raise ValueError("timestamp_ms must be a positive integer of epoch milliseconds")
        if timestamp_ms is None:
            await self._ensure_clock()
        await self._limiter.acquire(endpoint)
        recv_window = self._apply_recv_window_ms
        async with self._pacer.slot():  # the last wait; the request leaves right after it
            signed_ts = timestamp_ms if timestamp_ms is not None else self.now_ms()
            if self._clock.measured and self.now_ms() >= signed_ts + recv_window:
                # A caller-fixed timestamp that waited out its window here (limits, a ban):
                # the exchange would refuse it; refusing it here is certain, and nothing
                # reaches the exchange that a reconciler might later have to account for.
                raise NotSent(
                    "the signed timestamp expired before the request could leave",
                    endpoint=endpoint.path,
                    reason=Reason.CLOCK_SKEW,
                )
            query = sign_query(
                [*params, ("recvWindow", recv_window), ("timestamp", signed_ts)], self._signer
            )
        context = ApplyContext(
            timestamp_ms=signed_ts,
            recv_window_ms=recv_window,
            withdraw_order_id=request.withdraw_order_id,
        )
        try:
            reply = await self._transport.send(endpoint, query, parser, apply=context)
        except NotSent as exc:
            if exc.reason is Reason.CLOCK_SKEW:
                await self._resync_after_skew()
            raise
        return reply, signed_ts, recv_window

    # -- internals ---------------------------------------------------------------------

    async def _read(
        self, endpoint: Endpoint, params: Params, parser: Callable[[object, str], T]
    ) -> Reply[T]:
        async for attempt in read_retrying(self._retry, endpoint=endpoint.path):
            with attempt:
                return await self._read_once(endpoint, params, parser)
        raise RuntimeError("tenacity ended without a result")  # not reached: reraise=True

    async def _read_once(
        self, endpoint: Endpoint, params: Params, parser: Callable[[object, str], T]
    ) -> Reply[T]:
        if endpoint.signed:
            await self._ensure_clock()
        await self._limiter.acquire(endpoint)
        try:
            return await self._transport.send(endpoint, self._query(endpoint, params), parser)
        except NotSent as exc:
            if exc.reason is Reason.CLOCK_SKEW:
                await self._resync_after_skew()
            raise

    def _query(self, endpoint: Endpoint, params: Params) -> SignedQuery:
        if not endpoint.signed:
            return unsigned_query(params)
        stamped = [*params, ("recvWindow", self._recv_window_ms), ("timestamp", self.now_ms())]
        return sign_query(stamped, self._signer)

    def _lock(self) -> anyio.Lock:
        if self._clock_lock is None:
            self._clock_lock = anyio.Lock()
        return self._clock_lock

    async def _ensure_clock(self) -> None:
        if not self._clock.needs_sync():
            return
        async with self._lock():
            if self._clock.needs_sync():  # another task may have synced while we waited
                await self._sync_clock_locked()

    async def _sync_clock_locked(self) -> None:
        reply = await self._read(ep.SERVER_TIME, (), parse.parse_server_time)
        self._clock.record(
            server_time_ms=reply.value, sent_at=reply.sent_at, received_at=reply.received_at
        )
        log.info(
            "binance.clock_synced",
            offset_ms=round(self._clock.offset_ms, 1),
            rtt_ms=round(self._clock.rtt_ms or 0.0, 1),
        )

    async def _resync_after_skew(self) -> None:
        self._clock.invalidate()
        try:
            await self._ensure_clock()
        except ExchangeError as exc:  # the -1021 itself is what the caller must hear
            log.warning("binance.clock_resync_failed", reason=exc.reason.value)
