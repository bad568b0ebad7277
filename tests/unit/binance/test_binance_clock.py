"""Server-time offset: measurement, refresh, and the -1021 resync-and-retry-once rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from treasury.adapters.binance import BinanceClient, NotSent, Reason, RetryPolicy
from treasury.adapters.binance.clock import ServerClock

QUOTA_PATH = "/sapi/v1/capital/withdraw/quota"
QUOTA_OK = httpx.Response(200, json={"wdQuota": "1", "usedWdQuota": "0"})
SKEW = httpx.Response(400, json={"code": -1021, "msg": "Timestamp outside of the recvWindow."})


class Wall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_offset_is_measured_from_the_midpoint_of_the_round_trip() -> None:
    wall = Wall(100.0)
    clock = ServerClock(wall_clock=wall)
    clock.record(server_time_ms=103_000, sent_at=100.0, received_at=100.4)
    assert clock.offset_ms == pytest.approx(2800.0)
    assert clock.rtt_ms == pytest.approx(400.0)
    wall.now = 101.0
    assert clock.now_ms() == 103_800


def test_clock_asks_for_a_refresh_after_the_interval_or_a_backward_jump() -> None:
    wall = Wall(100.0)
    clock = ServerClock(wall_clock=wall, refresh_s=300)
    assert clock.needs_sync()
    clock.record(server_time_ms=100_000, sent_at=100.0, received_at=100.0)
    wall.now = 399.0
    assert not clock.needs_sync()
    wall.now = 400.0
    assert clock.needs_sync()
    wall.now = -500.0
    assert clock.needs_sync()
    clock.invalidate()
    assert clock.needs_sync()
    assert clock.offset_ms == 0  # an invalidated clock keeps its last offset meanwhile


async def test_signed_calls_resync_when_the_offset_is_stale(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient]
) -> None:
    wall = Wall(1_000.0)
    client = make_client(wall_clock=wall, clock_refresh_s=300)
    router.get(QUOTA_PATH).mock(return_value=QUOTA_OK)
    await client.withdraw_quota()
    await client.withdraw_quota()
    assert router.routes["time"].call_count == 1
    wall.now += 301
    await client.withdraw_quota()
    assert router.routes["time"].call_count == 2


async def test_clock_skew_on_a_read_resyncs_once_and_retries_once(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient], wire: Any
) -> None:
    client = make_client(wall_clock=Wall(1_000.0))
    router.routes["time"].mock(
        side_effect=[
            httpx.Response(200, json={"serverTime": 1_000_000}),
            httpx.Response(200, json={"serverTime": 1_007_000}),  # the exchange moved on
        ]
    )
    quota = router.get(QUOTA_PATH).mock(side_effect=[SKEW, QUOTA_OK])
    await client.sync_clock()
    assert (await client.withdraw_quota()).quota == 1
    assert router.routes["time"].call_count == 2  # exactly one resync
    assert quota.call_count == 2  # exactly one retry
    first, second = (wire.params(call.request) for call in quota.calls)
    assert first["timestamp"] == "1000000"
    assert second["timestamp"] == "1007000"  # re-signed with a fresh timestamp
    assert client.clock_offset_ms == 7000


async def test_clock_skew_is_retried_only_once(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient]
) -> None:
    client = make_client(retry=RetryPolicy(max_retries=3, backoff_s=0.0))
    quota = router.get(QUOTA_PATH).mock(side_effect=[SKEW, SKEW, QUOTA_OK])
    with pytest.raises(NotSent) as caught:
        await client.withdraw_quota()
    assert caught.value.reason is Reason.CLOCK_SKEW
    assert quota.call_count == 2


async def test_clock_skew_retry_comes_on_top_of_zero_retries(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient]
) -> None:
    client = make_client(retry=RetryPolicy(max_retries=0))
    quota = router.get(QUOTA_PATH).mock(side_effect=[SKEW, QUOTA_OK])
    await client.withdraw_quota()
    assert quota.call_count == 2


async def test_failed_resync_still_reports_the_skew(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient]
) -> None:
    client = make_client(retry=RetryPolicy(max_retries=0))
    await client.sync_clock()
    router.routes["time"].mock(side_effect=httpx.ConnectError("down"))
    quota = router.get(QUOTA_PATH).mock(return_value=SKEW)
    with pytest.raises(NotSent) as caught:
        await client.withdraw_quota()
    # the one skew retry could not get a clock, so it sent nothing with a stale timestamp
    assert caught.value.reason is Reason.CONNECT_FAILED
    assert caught.value.endpoint == "/api/v3/time"
    assert quota.call_count == 1
