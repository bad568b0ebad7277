"""Every failure lands in the right branch of the error tree, and apply is sent once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
import respx

from treasury.adapters.binance import (
    BinanceClient,
    ExchangeError,
    IpBanned,
    NotSent,
    OutcomeUnknown,
    Reason,
    Rejected,
    ResponseInvalid,
    RetryPolicy,
)
from treasury.domain.exchange import WithdrawRequest

ACCOUNT_PATH = "/api/v3/account"
QUOTA_PATH = "/sapi/v1/capital/withdraw/quota"
QUOTA_OK = httpx.Response(200, json={"wdQuota": "1", "usedWdQuota": "0"})


def binance_error(
    code: int, status: int = 400, msg: str = "nope", **headers: str
) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "msg": msg}, headers=headers)


# -- withdraw/apply: outcome unknown, never retried ---------------------------------------


UNKNOWN_CASES: list[Any] = [
    pytest.param(httpx.ReadTimeout("timed out"), Reason.TIMEOUT, id="read-timeout"),
    pytest.param(httpx.WriteTimeout("timed out"), Reason.TIMEOUT, id="write-timeout"),
    pytest.param(
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        Reason.DISCONNECTED,
        id="remote-protocol-error",
    ),
    pytest.param(httpx.ReadError("connection reset"), Reason.DISCONNECTED, id="read-error"),
    pytest.param(
        httpx.Response(500, text="Internal Server Error"), Reason.SERVER_ERROR, id="http-500"
    ),
    pytest.param(
        httpx.Response(503, json={"code": -1008, "msg": "busy"}), Reason.SERVER_ERROR, id="http-503"
    ),
    pytest.param(binance_error(-1000), Reason.SERVER_ERROR, id="-1000"),
    pytest.param(binance_error(-1001), Reason.SERVER_ERROR, id="-1001"),
    pytest.param(binance_error(-1004), Reason.SERVER_ERROR, id="-1004"),
    pytest.param(binance_error(-1006), Reason.SERVER_ERROR, id="-1006"),
    pytest.param(binance_error(-1007), Reason.TIMEOUT, id="-1007"),
    pytest.param(binance_error(-1008), Reason.SERVER_ERROR, id="-1008"),
    pytest.param(binance_error(-4027), Reason.SERVER_ERROR, id="-4027"),
    pytest.param(binance_error(-4030), Reason.UNKNOWN_CODE, id="-4030"),
    pytest.param(binance_error(-3005), Reason.UNKNOWN_CODE, id="-3005-margin-code"),
    pytest.param(binance_error(-9000), Reason.UNKNOWN_CODE, id="-9000-undocumented"),
    pytest.param(httpx.Response(403, text="<html>WAF</html>"), Reason.BLOCKED, id="403-waf"),
    pytest.param(httpx.Response(200, text="not json"), Reason.INVALID_RESPONSE, id="not-json"),
    pytest.param(httpx.Response(200, json={"success": True}), Reason.INVALID_RESPONSE, id="no-id"),
    pytest.param(
        httpx.Response(200, json={"id": 12345}), Reason.INVALID_RESPONSE, id="id-not-a-string"
    ),
    pytest.param(
        httpx.Response(200, json={"code": -4026, "msg": "x"}),
        Reason.INVALID_RESPONSE,
        id="error-shaped-200",
    ),
]


@pytest.mark.parametrize(("answer", "reason"), UNKNOWN_CASES)
async def test_apply_outcome_unknown_is_never_retried(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
    answer: Any,
    reason: Reason,
) -> None:
    route = router.post(wire.apply_path).mock(side_effect=[answer, answer, answer])
    with pytest.raises(OutcomeUnknown) as caught:
        await client.withdraw(
            make_request(withdraw_order_id="wd-7"), timestamp_ms=1_700_000_000_321
        )
    assert route.call_count == 1
    error = caught.value
    assert error.reason is reason
    assert error.timestamp_ms == 1_700_000_000_321
    assert error.recv_window_ms == 5000
    assert error.withdraw_order_id == "wd-7"
    assert error.last_acceptable_ms == 1_700_000_005_321
    sent = wire.params(route.calls.last.request)
    assert sent["timestamp"] == "1700000000321" and sent["recvWindow"] == "5000"


async def test_apply_without_a_fixed_timestamp_reports_the_one_it_signed(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    client = make_client(apply_recv_window_ms=1500)
    route = router.post(wire.apply_path).mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(OutcomeUnknown) as caught:
        await client.withdraw(make_request())
    sent = wire.params(route.calls.last.request)
    assert caught.value.timestamp_ms == int(sent["timestamp"])
    assert caught.value.recv_window_ms == 1500 == int(sent["recvWindow"])
    assert abs(caught.value.timestamp_ms - time.time() * 1000) < 5000


async def test_apply_is_shielded_and_bounded(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    entered: list[httpx.Request] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.append(request)
        await anyio.sleep(5)
        return httpx.Response(200, json={"id": "late"})

    client = make_client(apply_timeout_s=0.1)
    router.post(wire.apply_path).mock(side_effect=hang)
    with pytest.raises(OutcomeUnknown, match=r"no answer within 0\.1 s"):
        await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert len(entered) == 1


async def test_cancelling_the_caller_does_not_abandon_a_sent_apply(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.2)
        return httpx.Response(200, json={"id": "landed"})

    router.post(wire.apply_path).mock(side_effect=slow)
    accepted = None
    with anyio.move_on_after(0.05) as scope:
        accepted = await client.withdraw(make_request(), timestamp_ms=client.now_ms())
        await anyio.sleep(1)  # the pending cancellation lands here, after the result
    assert scope.cancelled_caught
    assert accepted is not None and accepted.id == "landed"


async def test_unexpected_exception_during_apply_is_unknown(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    route = router.post(wire.apply_path).mock(side_effect=RuntimeError("hook exploded"))
    with pytest.raises(OutcomeUnknown, match="unexpected RuntimeError"):
        await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert route.call_count == 1


# -- withdraw/apply: not sent -----------------------------------------------------------


NOT_SENT_CASES: list[Any] = [
    pytest.param(
        httpx.ConnectError("connection refused"), Reason.CONNECT_FAILED, None, id="connect-error"
    ),
    pytest.param(
        httpx.ConnectTimeout("timed out"), Reason.CONNECT_FAILED, None, id="connect-timeout"
    ),
    pytest.param(
        binance_error(-1003, 429, **{"Retry-After": "7"}), Reason.RATE_LIMITED, 7.0, id="429"
    ),
    pytest.param(
        httpx.Response(429, text=""), Reason.RATE_LIMITED, 60.0, id="429-without-retry-after"
    ),
    pytest.param(binance_error(-1003, 400), Reason.RATE_LIMITED, 60.0, id="-1003"),
    pytest.param(
        binance_error(-4005, 400, **{"Retry-After": "3"}), Reason.RATE_LIMITED, 3.0, id="-4005"
    ),
    pytest.param(
        httpx.Response(418, headers={"Retry-After": "120"}), Reason.IP_BANNED, 120.0, id="418"
    ),
]


@pytest.mark.parametrize(("answer", "reason", "retry_after"), NOT_SENT_CASES)
async def test_apply_not_sent(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
    answer: Any,
    reason: Reason,
    retry_after: float | None,
) -> None:
    route = router.post(wire.apply_path).mock(side_effect=[answer, answer])
    with pytest.raises(NotSent) as caught:
        await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert route.call_count == 1  # NotSent is the caller's to retry, not the client's
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.reason is reason
    assert caught.value.retry_after_s == retry_after


async def test_418_bans_every_pool_and_carries_until(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    router.post(wire.apply_path).mock(
        return_value=httpx.Response(
            418, json={"code": -1003, "msg": "banned"}, headers={"Retry-After": "0.3"}
        )
    )
    quota = router.get(QUOTA_PATH).mock(return_value=QUOTA_OK)
    before = time.time()
    with pytest.raises(IpBanned) as caught:
        await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert before + 0.25 <= caught.value.until.timestamp() <= time.time() + 0.35
    assert client.rate_limiter.banned_for_s() > 0.1
    started = time.monotonic()
    await client.withdraw_quota()  # another pool entirely: still waits for the ban
    assert time.monotonic() - started >= 0.2
    assert quota.call_count == 1


async def test_ban_until_is_read_from_the_message_without_retry_after(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    until_ms = int((time.time() + 600) * 1000)
    router.post(wire.apply_path).mock(
        return_value=binance_error(
            -1003, 400, msg=f"Way too much request weight used; IP banned until {until_ms}."
        )
    )
    with pytest.raises(IpBanned) as caught:
        await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert abs(caught.value.until.timestamp() * 1000 - until_ms) < 1000


async def test_apply_clock_skew_resyncs_but_does_not_resend(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    await client.sync_clock()
    times_before = router.routes["time"].call_count
    route = router.post(wire.apply_path).mock(return_value=binance_error(-1021))
    with pytest.raises(NotSent) as caught:
        await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert caught.value.reason is Reason.CLOCK_SKEW and caught.value.code == -1021
    assert route.call_count == 1
    assert router.routes["time"].call_count == times_before + 1


# -- withdraw/apply: rejected ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "permanent", "reason"),
    [
        (-4035, True, Reason.WHITELIST),
        (-4012, True, Reason.WHITELIST),
        (-4007, True, Reason.ADDRESS),
        (-4008, True, Reason.ADDRESS),
        (-4033, True, Reason.ADDRESS),
        (-4034, True, Reason.ADDRESS),
        (-4106, True, Reason.ADDRESS),
        (-4018, True, Reason.ASSET),
        (-4021, True, Reason.AMOUNT),
        (-4022, True, Reason.AMOUNT),
        (-4028, True, Reason.AMOUNT),
        (-1022, True, Reason.AUTH),
        (-2014, True, Reason.AUTH),
        (-2015, False, Reason.AUTH),
        (-1002, True, Reason.AUTH),
        (-1102, True, Reason.BAD_REQUEST),
        (-4013, True, Reason.ACCOUNT),
        (-4104, True, Reason.TRAVEL_RULE),
        (-4026, False, Reason.BALANCE),
        (-4024, False, Reason.BALANCE),
        (-4025, False, Reason.BALANCE),
        (-4019, False, Reason.ASSET),
        (-4015, False, Reason.ACCOUNT),
        (-4014, False, Reason.ACCOUNT),
        (-4016, False, Reason.ACCOUNT),
        (-4017, False, Reason.ACCOUNT),
        (-4036, False, Reason.ADDRESS_COOLING),
        (-4023, False, Reason.QUOTA),
        (-4060, False, Reason.ASSET),
    ],
)
async def test_apply_rejected(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
    code: int,
    permanent: bool,
    reason: Reason,
) -> None:
    route = router.post(wire.apply_path).mock(return_value=binance_error(code, msg="refused"))
    with pytest.raises(Rejected) as caught:
        await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert route.call_count == 1
    assert caught.value.permanent is permanent
    assert caught.value.reason is reason
    assert caught.value.code == code and caught.value.http_status == 400
    assert "refused" in str(caught.value)


# -- read-only calls ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param(httpx.ConnectError("refused"), Reason.CONNECT_FAILED, id="connect"),
        pytest.param(httpx.ReadTimeout("slow"), Reason.TIMEOUT, id="read-timeout"),
        pytest.param(httpx.Response(502, text="bad gateway"), Reason.SERVER_ERROR, id="502"),
        pytest.param(binance_error(-1000), Reason.SERVER_ERROR, id="-1000"),
        pytest.param(binance_error(-9999), Reason.UNKNOWN_CODE, id="unknown-code"),
        pytest.param(httpx.Response(200, text="{"), Reason.INVALID_RESPONSE, id="not-json"),
    ],
)
async def test_read_failures_are_not_sent_and_retried_a_bounded_number_of_times(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    answer: Any,
    reason: Reason,
) -> None:
    client = make_client(retry=RetryPolicy(max_retries=2, backoff_s=0.0))
    route = router.get(QUOTA_PATH).mock(side_effect=[answer] * 3)
    with pytest.raises(NotSent) as caught:
        await client.withdraw_quota()
    assert caught.value.reason is reason
    assert route.call_count == 3  # 1 + max_retries


async def test_read_retry_recovers(router: respx.MockRouter, client: BinanceClient) -> None:
    route = router.get(QUOTA_PATH).mock(
        side_effect=[httpx.Response(503), httpx.ConnectError("refused"), QUOTA_OK]
    )
    quota = await client.withdraw_quota()
    assert quota.quota == 1
    assert route.call_count == 3


async def test_malformed_read_body_names_the_field(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient]
) -> None:
    client = make_client(retry=RetryPolicy(max_retries=0))
    router.get(QUOTA_PATH).mock(return_value=httpx.Response(200, json={"wdQuota": "1"}))
    with pytest.raises(ResponseInvalid, match="usedWdQuota") as caught:
        await client.withdraw_quota()
    assert caught.value.field == "usedWdQuota"


async def test_read_429_honours_retry_after_and_blocks_the_pool(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient]
) -> None:
    client = make_client(retry=RetryPolicy(max_retries=0))
    route = router.get(QUOTA_PATH).mock(
        side_effect=[
            binance_error(-1003, 429, **{"Retry-After": "0.3"}),
            QUOTA_OK,
        ]
    )
    with pytest.raises(NotSent) as caught:
        await client.withdraw_quota()
    assert caught.value.retry_after_s == 0.3
    started = time.monotonic()
    await client.withdraw_quota()
    assert time.monotonic() - started >= 0.25
    assert route.call_count == 2


async def test_read_429_is_retried_after_its_retry_after(
    router: respx.MockRouter, client: BinanceClient
) -> None:
    route = router.get(QUOTA_PATH).mock(
        side_effect=[
            binance_error(-1003, 429, **{"Retry-After": "0.2"}),
            QUOTA_OK,
        ]
    )
    started = time.monotonic()
    await client.withdraw_quota()
    assert time.monotonic() - started >= 0.18
    assert route.call_count == 2


async def test_long_retry_after_is_handed_to_the_caller(
    router: respx.MockRouter, client: BinanceClient
) -> None:
    route = router.get(QUOTA_PATH).mock(
        return_value=binance_error(-1003, 429, **{"Retry-After": "300"})
    )
    with pytest.raises(NotSent):
        await client.withdraw_quota()
    assert route.call_count == 1


async def test_read_rejection_is_not_retried(
    router: respx.MockRouter, client: BinanceClient
) -> None:
    route = router.get(ACCOUNT_PATH).mock(return_value=binance_error(-2014, 401))
    with pytest.raises(Rejected) as caught:
        await client.account()
    assert caught.value.permanent and route.call_count == 1


async def test_ip_ban_on_a_read_is_not_retried(
    router: respx.MockRouter, client: BinanceClient
) -> None:
    route = router.get(QUOTA_PATH).mock(
        return_value=httpx.Response(418, headers={"Retry-After": "0.05"})
    )
    with pytest.raises(IpBanned):
        await client.withdraw_quota()
    assert route.call_count == 1


# -- the metrics hook ---------------------------------------------------------------------------


async def test_on_call_reports_every_exchange(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    seen: list[tuple[str, str, float]] = []
    client = make_client(on_call=lambda *call: seen.append(call))
    router.get(QUOTA_PATH).mock(side_effect=[httpx.Response(500), QUOTA_OK])
    router.post(wire.apply_path).mock(
        side_effect=[
            binance_error(-4026),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json={"id": "x"}),
        ]
    )
    await client.withdraw_quota()
    for _ in range(2):
        with pytest.raises(ExchangeError):
            await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert [(e, o) for e, o, _ in seen if e != "/api/v3/time"] == [
        (QUOTA_PATH, "not_sent"),
        (QUOTA_PATH, "ok"),
        (wire.apply_path, "rejected"),
        (wire.apply_path, "unknown"),
        (wire.apply_path, "ok"),
    ]
    assert all(seconds >= 0 for _, _, seconds in seen)


async def test_a_failing_metrics_hook_never_hides_an_accepted_withdrawal(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    def broken(endpoint: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("metrics down")

    client = make_client(on_call=broken)
    router.post(wire.apply_path).mock(return_value=httpx.Response(200, json={"id": "abc"}))
    accepted = await client.withdraw(make_request(), timestamp_ms=client.now_ms())
    assert accepted.id == "abc"
