"""Weight budgets: waiting instead of exceeding, header reconciliation, 429 and 418."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from treasury.adapters.binance import BinanceClient, RateLimiter, RateLimits
from treasury.adapters.binance import endpoints as ep
from treasury.adapters.binance.limits import HISTORY_PER_SECOND_KEY, IpBudgets
from treasury.adapters.binance.pacing import MARGIN, ApplyLimiter


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def limiter(fake: FakeTime, **limits: int | float) -> RateLimiter:
    return RateLimiter(RateLimits(**limits), monotonic=fake, sleep=fake.sleep)  # type: ignore[arg-type]


async def test_calls_within_budget_do_not_wait(fake: FakeTime) -> None:
    limits = limiter(fake)
    for _ in range(10):
        await limits.acquire(ep.COIN_CONFIG)
    assert fake.sleeps == []
    assert limits.used_weight() == {f"sapi-ip:{ep.COIN_CONFIG.path}": 100}


async def test_over_budget_waits_until_enough_weight_ages_out(fake: FakeTime) -> None:
    limits = limiter(fake, api_ip_weight=50)
    await limits.acquire(ep.ACCOUNT)  # 20 at t=1000
    fake.now += 10
    await limits.acquire(ep.ACCOUNT)  # 40 at t=1010
    fake.now += 10
    await limits.acquire(ep.ACCOUNT)  # 60 > 50: waits until the first entry expires
    assert fake.sleeps == [pytest.approx(40.0)]
    assert fake.now == pytest.approx(1060.0)
    assert limits.waited_s == pytest.approx(40.0)
    assert limits.used_weight()["api-ip"] == 40


async def test_pools_are_separate(fake: FakeTime) -> None:
    limits = limiter(fake, sapi_ip_weight=10)
    await limits.acquire(ep.COIN_CONFIG)
    await limits.acquire(ep.ADDRESS_LIST)  # another IP /sapi endpoint: its own budget
    await limits.acquire(ep.WITHDRAW_QUOTA)
    assert fake.sleeps == []


APPLY_POOL = f"sapi-uid:{ep.WITHDRAW_APPLY.path}"
HISTORY_MINUTE_POOL = f"sapi-uid:{ep.WITHDRAW_HISTORY.path}"


async def test_apply_has_its_own_minute_pool_and_history_the_per_second_limit(
    fake: FakeTime,
) -> None:
    limits = limiter(fake, sapi_uid_weight=1_800)
    for _ in range(10):  # ten history calls a second, and none of apply's budget
        await limits.acquire(ep.WITHDRAW_HISTORY)
    await limits.acquire(ep.WITHDRAW_APPLY)
    await limits.acquire(ep.WITHDRAW_APPLY)  # 1,800: apply's pool is full
    assert fake.sleeps == []
    assert limits.used_weight()["sapi-uid-1s"] == 180_000
    assert limits.used_weight()[APPLY_POOL] == 1_800
    assert HISTORY_MINUTE_POOL not in limits.used_weight()
    await limits.acquire(ep.WITHDRAW_APPLY)
    assert fake.sleeps == [pytest.approx(60.0)]


async def test_a_weight_above_the_limit_passes_an_empty_window(fake: FakeTime) -> None:
    limits = limiter(fake, sapi_uid_weight_per_second=1_000)
    await limits.acquire(ep.WITHDRAW_HISTORY)
    await limits.acquire(ep.WITHDRAW_HISTORY)
    assert fake.sleeps == [pytest.approx(1.0)]


async def test_history_is_also_limited_by_request_count(fake: FakeTime) -> None:
    limits = limiter(fake, sapi_uid_weight_per_second=10**9)
    for _ in range(10):
        await limits.acquire(ep.WITHDRAW_HISTORY)
    assert fake.sleeps == []
    await limits.acquire(ep.WITHDRAW_HISTORY)
    assert fake.sleeps == [pytest.approx(1.0)]
    assert limits.used_weight()[HISTORY_PER_SECOND_KEY] == 1  # the first ten aged out


async def test_a_thousand_history_calls_take_a_hundred_seconds_not_a_hundred_minutes(
    fake: FakeTime,
) -> None:
    limits = limiter(fake)
    for _ in range(1_000):
        await limits.acquire(ep.WITHDRAW_HISTORY)
    assert fake.now - 1000.0 == pytest.approx(99.0, abs=1.0)


async def test_history_follows_the_server_when_it_reports_a_minute_figure(
    fake: FakeTime,
) -> None:
    """Binance's pages disagree on whether history also counts per minute: once an answer
    says it does, history draws on a minute pool of its own (10 calls a minute)."""
    limits = limiter(fake)
    await limits.acquire(ep.WITHDRAW_HISTORY)
    limits.observe(ep.WITHDRAW_HISTORY, {"x-sapi-used-uid-weight-1s": "18000"})
    assert HISTORY_MINUTE_POOL not in limits.used_weight()
    limits.observe(ep.WITHDRAW_HISTORY, {"x-sapi-used-uid-weight-1m": "18000"})
    for _ in range(9):
        fake.now += 1.0
        await limits.acquire(ep.WITHDRAW_HISTORY)
    assert limits.used_weight()[HISTORY_MINUTE_POOL] == 180_000
    await limits.acquire(ep.WITHDRAW_HISTORY)  # the eleventh in a minute waits
    assert fake.sleeps and sum(fake.sleeps) == pytest.approx(51.0)
    assert APPLY_POOL not in limits.used_weight()  # apply's budget is untouched


async def test_server_figure_raises_the_used_weight_never_lowers_it(fake: FakeTime) -> None:
    limits = limiter(fake)
    await limits.acquire(ep.WITHDRAW_APPLY)
    limits.observe(ep.WITHDRAW_APPLY, {"x-sapi-used-uid-weight-1m": "150000"})
    assert limits.used_weight()[APPLY_POOL] == 150_000
    limits.observe(ep.WITHDRAW_APPLY, {"x-sapi-used-uid-weight-1m": "5"})
    assert limits.used_weight()[APPLY_POOL] == 150_000
    limits.observe(ep.ACCOUNT, {"x-mbx-used-weight-1m": "5999"})
    limits.observe(ep.COIN_CONFIG, {"x-sapi-used-ip-weight-1m": "11990"})
    limits.observe(ep.ACCOUNT, {"x-mbx-used-weight-1m": "garbage"})
    assert limits.used_weight()["api-ip"] == 5999
    assert limits.used_weight()[f"sapi-ip:{ep.COIN_CONFIG.path}"] == 11990
    await limits.acquire(ep.COIN_CONFIG)  # 11,990 + 10 = 12,000: fits
    await limits.acquire(ep.COIN_CONFIG)
    assert fake.sleeps == [pytest.approx(60.0)]


async def test_a_429_blocks_only_that_pool(fake: FakeTime) -> None:
    limits = limiter(fake)
    limits.block(ep.COIN_CONFIG, 30)
    await limits.acquire(ep.ADDRESS_LIST)
    assert fake.sleeps == []
    await limits.acquire(ep.COIN_CONFIG)
    assert fake.sleeps == [pytest.approx(30.0)]


async def test_a_ban_pauses_every_pool(fake: FakeTime) -> None:
    limits = limiter(fake)
    limits.ban(120)
    assert limits.banned_for_s() == pytest.approx(120)
    await limits.acquire(ep.SERVER_TIME)
    await limits.acquire(ep.WITHDRAW_APPLY)
    assert fake.now == pytest.approx(1120.0)
    assert limits.banned_for_s() == 0


async def test_accounts_of_one_process_share_the_ip_pools_and_the_ban(fake: FakeTime) -> None:
    """Binance counts /api and IP-limited /sapi weight per IP whichever key signs, and
    bans the IP: two accounts' limiters with one IpBudgets draw on one budget (found by
    bench/fleet_bench.py: 100 accounts each budgeting 6,000 a minute got the IP banned).
    Their UID pools stay their own."""
    ip = IpBudgets()
    a = RateLimiter(RateLimits(api_ip_weight=50), monotonic=fake, sleep=fake.sleep, ip=ip)
    b = RateLimiter(RateLimits(api_ip_weight=50), monotonic=fake, sleep=fake.sleep, ip=ip)
    await a.acquire(ep.ACCOUNT)  # 20
    await b.acquire(ep.ACCOUNT)  # 40
    assert fake.sleeps == []
    await a.acquire(ep.ACCOUNT)  # 60 > 50 on the shared pool: waits for the first to age
    assert fake.sleeps == [pytest.approx(60.0)]
    assert a.used_weight()["api-ip"] == b.used_weight()["api-ip"] == 20  # one pool, seen by both
    # the UID pools are each account's: b's apply does not count against a's
    await b.acquire(ep.WITHDRAW_APPLY)
    assert f"sapi-uid:{ep.WITHDRAW_APPLY.path}" not in a.used_weight()
    # an IP ban seen by one account's client stops every account's calls
    b.ban(120)
    assert a.banned_for_s() == pytest.approx(120.0)
    # without a shared IpBudgets each limiter keeps its own (a single account's client)
    alone = limiter(fake, api_ip_weight=50)
    await alone.acquire(ep.ACCOUNT)
    assert alone.used_weight()["api-ip"] == 20 and alone.banned_for_s() == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sapi_uid_weight"):
        RateLimits(sapi_uid_weight=0)
    with pytest.raises(ValueError, match="window_s"):
        RateLimits(window_s=0)


async def test_apply_limiter_with_a_fake_clock(fake: FakeTime) -> None:
    pacer = ApplyLimiter(2.0, monotonic=fake, wall_clock=lambda: 5000.0, sleep=fake.sleep)
    await pacer.wait_turn()
    await pacer.wait_turn()
    assert fake.sleeps == [pytest.approx(0.5 * (1 + MARGIN))]  # 1/rate plus the margin
    pacer.defer_until(5010.0)  # wall reads 5000 at monotonic 1000.5: 10 s from now
    await pacer.wait_turn()
    assert fake.now == pytest.approx(1000 + 0.5 * (1 + MARGIN) + 10)
    with pytest.raises(ValueError, match="positive"):
        ApplyLimiter(0)


# -- through the client, with real (short) waits ------------------------------------------------


async def test_second_history_call_waits_for_a_tiny_per_second_budget(
    router: respx.MockRouter, make_client: Callable[..., BinanceClient], wire: Any
) -> None:
    client = make_client(limits=RateLimits(sapi_uid_weight_per_second=20_000))
    seen: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        return httpx.Response(200, json=[])

    router.get(wire.history_path).mock(side_effect=record)
    await client.withdraw_history()
    await client.withdraw_history()
    assert seen[1] - seen[0] >= 0.95
    assert client.rate_limiter.waited_s >= 0.9


async def test_headers_reconcile_the_budget(
    router: respx.MockRouter, client: BinanceClient, wire: Any
) -> None:
    router.get(wire.history_path).mock(
        return_value=httpx.Response(200, json=[], headers={"X-SAPI-USED-UID-WEIGHT-1S": "162000"})
    )
    router.get("/api/v3/account").mock(
        return_value=httpx.Response(
            200,
            json={"canTrade": True, "canWithdraw": True, "canDeposit": True, "balances": []},
            headers={"X-MBX-USED-WEIGHT-1M": "1234"},
        )
    )
    await client.withdraw_history()
    await client.account()
    used = client.rate_limiter.used_weight()
    assert used["sapi-uid-1s"] == 162_000
    assert f"sapi-uid:{ep.WITHDRAW_HISTORY.path}" not in used  # no minute figure was sent
    assert used["api-ip"] == 1234


async def test_a_process_sharing_the_ip_reads_the_servers_total_as_its_share(
    fake: FakeTime,
) -> None:
    """Three processes on one address, each planning on 2,000 of the IP's 6,000: the
    server's figure is everyone's, so each counts a third of it against its 2,000."""
    limits = limiter(fake, api_ip_weight=2_000, ip_shared_by=3)
    await limits.acquire(ep.ACCOUNT)  # ours: 20
    limits.observe(ep.ACCOUNT, {"x-mbx-used-weight-1m": "1500"})  # the others are busy
    assert limits.used_weight()["api-ip"] == 500  # a third: not 1,500 against our 2,000
    await limits.acquire(ep.ACCOUNT)
    assert fake.sleeps == []
    limits.observe(ep.ACCOUNT, {"x-mbx-used-weight-1m": "6000"})  # the IP's total is spent
    assert limits.used_weight()["api-ip"] == 2_000
    await limits.acquire(ep.ACCOUNT)
    assert len(fake.sleeps) == 1  # waits, as every process on the address does
    # the account's own (UID) figures are its own, whoever shares the IP
    limits.observe(ep.WITHDRAW_APPLY, {"x-sapi-used-uid-weight-1m": "1500"})
    assert limits.used_weight()[f"sapi-uid:{ep.WITHDRAW_APPLY.path}"] == 1500
