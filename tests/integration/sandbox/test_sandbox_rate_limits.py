"""Rate limits counted as Binance counts them: pools, weights, 429, Retry-After, 418."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sandbox_testkit import BASE_CONFIG, START_MS, Client, error_code, usdt_trx

from treasury.sandbox import ManualClock, parse_config, running_sandbox


@asynccontextmanager
async def limited(
    rate_limits: dict[str, Any], multiplier: str
) -> AsyncIterator[tuple[Client, ManualClock]]:
    clock = ManualClock(START_MS)
    config = parse_config(
        {
            **BASE_CONFIG,
            "rate_limits": {"enabled": True, **rate_limits},
            "rate_limit_multiplier": multiplier,
        }
    )
    async with (
        running_sandbox(config=config, clock=clock) as sandbox,
        httpx.AsyncClient(base_url=sandbox.url) as http,
    ):
        yield Client(http, clock.now_ms), clock


async def test_uid_pool_answers_429_with_retry_after() -> None:
    async with limited({}, "0.01") as (client, clock):  # UID pool: 1,800 per minute
        first = await client.apply(**usdt_trx())
        assert first.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "900"
        second = await client.apply(**usdt_trx())
        assert second.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "1800"
        clock.advance_s(10)
        third = await client.apply(**usdt_trx())
        assert third.status_code == 429
        assert error_code(third) == -1003
        assert third.headers["Retry-After"] == "50"
        assert third.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "1800"
        # still 429 (never 418 on /sapi), and nothing was booked
        again = await client.apply(**usdt_trx())
        assert again.status_code == 429
        ledger = (await client.http.get("/_sandbox/ledger")).json()
        assert len(ledger["withdrawals"]) == 2
        assert [r["http"] for r in ledger["apply_requests"]] == [200, 200, 429, 429]
        clock.advance_s(50)  # the next minute: a fresh window
        assert (await client.apply(**usdt_trx())).status_code == 200


async def test_history_is_capped_at_10_per_second() -> None:
    weights = {"weights": {"withdraw_history": 1}}
    async with limited(weights, "1") as (client, clock):
        for _ in range(10):
            assert (await client.get("/sapi/v1/capital/withdraw/history")).status_code == 200
        eleventh = await client.get("/sapi/v1/capital/withdraw/history")
        assert eleventh.status_code == 429
        assert error_code(eleventh) == -1003
        assert eleventh.headers["Retry-After"] == "1"
        clock.advance(1000)
        assert (await client.get("/sapi/v1/capital/withdraw/history")).status_code == 200


async def test_history_counts_per_second_and_apply_keeps_its_own_minute_pool() -> None:
    async with limited({}, "1") as (client, clock):
        for n in range(1, 11):  # 180,000 a second: ten history calls fill it
            response = await client.get("/sapi/v1/capital/withdraw/history")
            assert response.status_code == 200
            assert response.headers["X-SAPI-USED-UID-WEIGHT-1S"] == str(18_000 * n)
            assert "X-SAPI-USED-UID-WEIGHT-1M" not in response.headers
        over = await client.get("/sapi/v1/capital/withdraw/history")
        assert over.status_code == 429 and over.headers["Retry-After"] == "1"
        applied = await client.apply(**usdt_trx())  # history took nothing from apply's pool
        assert applied.status_code == 200
        assert applied.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "900"
        for _ in range(5):  # a minute of history at 10 a second is 108 calls and more
            clock.advance(1000)
            for _ in range(10):
                ok = await client.get("/sapi/v1/capital/withdraw/history")
                assert ok.status_code == 200


async def test_the_stricter_readings_stay_available() -> None:
    # one per-minute pool for apply and history, history booked into it too
    async with limited({"uid_pool": "account", "history_pool": "minute"}, "1") as (client, clock):
        for _ in range(10):
            response = await client.get("/sapi/v1/capital/withdraw/history")
            clock.advance(1000)
        assert response.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "180000"
        assert response.headers["X-SAPI-USED-UID-WEIGHT-1S"] == "18000"
        assert (await client.apply(**usdt_trx())).status_code == 429
    # history booked per minute in a pool of its own: apply is untouched
    async with limited({"history_pool": "minute"}, "1") as (client, clock):
        for _ in range(10):
            await client.get("/sapi/v1/capital/withdraw/history")
            clock.advance(1000)
        assert (await client.get("/sapi/v1/capital/withdraw/history")).status_code == 429
        assert (await client.apply(**usdt_trx())).status_code == 200


async def test_api_pool_escalates_to_418_ban() -> None:
    async with limited({"ban_s": 120}, "0.01") as (client, clock):  # /api: 60 per minute
        for used in ("20", "40", "60"):
            response = await client.get("/api/v3/account")
            assert response.headers["X-MBX-USED-WEIGHT-1M"] == used
        for _ in range(2):
            over = await client.get("/api/v3/account")
            assert over.status_code == 429 and over.headers["Retry-After"] == "60"
        banned = await client.get("/api/v3/account")
        assert banned.status_code == 418
        assert banned.headers["Retry-After"] == "120"
        assert error_code(banned) == -1003
        assert (await client.http.get("/api/v3/time")).status_code == 418
        # /sapi pools are separate and never ban
        assert (await client.http.get("/sapi/v1/system/status")).status_code == 200
        clock.advance_s(60)
        assert (await client.http.get("/api/v3/time")).headers["Retry-After"] == "60"
        clock.advance_s(60)
        assert (await client.http.get("/api/v3/time")).status_code == 200


async def test_sapi_ip_pools_are_per_endpoint_and_never_ban() -> None:
    async with limited({}, "0.01") as (client, _):  # 120 per endpoint per minute
        for _ in range(12):
            ok = await client.get("/sapi/v1/capital/config/getall")
            assert ok.status_code == 200
        assert ok.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "120"
        for _ in range(5):
            over = await client.get("/sapi/v1/capital/config/getall")
            assert over.status_code == 429
        other = await client.get("/sapi/v1/capital/withdraw/address/list")
        assert other.status_code == 200
        assert other.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "10"
