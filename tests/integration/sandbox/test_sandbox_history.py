"""withdraw/history filters and windows (reference §2)."""

from __future__ import annotations

import httpx
from sandbox_testkit import Client, error_code, usdt_trx

from treasury.sandbox import ManualClock

DAY_MS = 86_400_000
HISTORY = "/sapi/v1/capital/withdraw/history"


async def _apply(client: Client, **extra: object) -> str:
    response = await client.apply(**usdt_trx(**extra))
    assert response.status_code == 200, response.text
    wid: str = response.json()["id"]
    return wid


async def test_newest_first_with_offset_and_limit(client: Client, clock: ManualClock) -> None:
    ids = []
    for i in range(5):
        ids.append(await _apply(client, withdrawOrderId=f"o-{i}"))
        clock.advance(1000)
    assert [i["id"] for i in await client.history()] == ids[::-1]
    page = await client.history(offset=1, limit=2)
    assert [i["id"] for i in page] == [ids[3], ids[2]]
    assert len(await client.history(limit=1000)) == 5
    assert error_code(await client.get(HISTORY, {"limit": 1001})) == -1130
    assert error_code(await client.get(HISTORY, {"limit": "ten"})) == -1100


async def test_filter_by_coin_status_and_id_list(client: Client, clock: ManualClock) -> None:
    first = await _apply(client)
    clock.advance_s(5)  # the first one completes (processing takes 2 s)
    second = await _apply(client)
    assert [i["id"] for i in await client.history(status=6)] == [first]
    assert [i["id"] for i in await client.history(status=4)] == [second]
    assert await client.history(coin="BTC") == []
    assert len(await client.history(coin="USDT")) == 2
    assert [i["id"] for i in await client.history(idList=f"{second}, nope")] == [second]
    assert error_code(await client.get(HISTORY, {"status": 9})) == -1130


async def test_id_list_takes_at_most_45(client: Client) -> None:
    wid = await _apply(client)
    ids = [wid] + [f"{n:032x}" for n in range(44)]
    assert [i["id"] for i in await client.history(idList=",".join(ids))] == [wid]
    too_many = await client.get(HISTORY, {"idList": ",".join([*ids, "f" * 32])})
    assert too_many.status_code == 400
    assert error_code(too_many) == -1130


async def test_withdraw_order_id_defaults_to_last_7_days(
    client: Client, clock: ManualClock
) -> None:
    start = clock.now_ms()
    old = await _apply(client, withdrawOrderId="seven")
    clock.advance(8 * DAY_MS)
    new = await _apply(client, withdrawOrderId="seven")
    assert [i["id"] for i in await client.history(withdrawOrderId="seven")] == [new]
    in_window = await client.history(
        withdrawOrderId="seven", startTime=start, endTime=start + 7 * DAY_MS - 1
    )
    assert [i["id"] for i in in_window] == [old]
    # exactly 7 days is still "less than 7 days" (as Binance reads its 90-day rule)
    exactly = await client.history(
        withdrawOrderId="seven", startTime=start, endTime=start + 7 * DAY_MS
    )
    assert [i["id"] for i in exactly] == [old]
    too_wide = await client.get(
        HISTORY,
        {"withdrawOrderId": "seven", "startTime": start, "endTime": start + 7 * DAY_MS + 1},
    )
    assert error_code(too_wide) == -1127
    # without withdrawOrderId the default window is 90 days: both show
    assert len(await client.history()) == 2


async def test_ninety_day_window(client: Client, clock: ManualClock) -> None:
    start = clock.now_ms()
    first = await _apply(client)
    clock.advance(91 * DAY_MS)
    second = await _apply(client)
    assert [i["id"] for i in await client.history()] == [second]
    now = clock.now_ms()
    old = await client.history(startTime=start, endTime=start + 90 * DAY_MS - 1)
    assert [i["id"] for i in old] == [first]
    # exactly 90 days is answered (real Binance does; ccxt's fetchWithdrawals asks for it)
    exactly = await client.history(startTime=start, endTime=start + 90 * DAY_MS)
    assert [i["id"] for i in exactly] == [first]
    too_wide = {"startTime": start, "endTime": start + 90 * DAY_MS + 1}
    assert error_code(await client.get(HISTORY, too_wide)) == -1127
    assert error_code(await client.get(HISTORY, {"startTime": start})) == -1127
    assert error_code(await client.get(HISTORY, {"startTime": now, "endTime": now - 1})) == -1128


async def test_history_is_per_account(client: Client, http: httpx.AsyncClient) -> None:
    await _apply(client)
    from treasury.sandbox import SUB_API_KEY, SUB_API_SECRET

    sub = Client(http, client.now_ms, SUB_API_KEY, SUB_API_SECRET)
    wid = (await client.history())[0]["id"]
    assert await sub.history(idList=wid) == []
