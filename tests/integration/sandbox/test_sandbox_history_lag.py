"""history_lag_s drawn per withdrawal: seeded, within bounds, journaled, kept on restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, Client, usdt_trx

from treasury.sandbox import ManualClock, RunningSandbox, parse_config, read_ledger, running_sandbox

FAULTS = "/_sandbox/faults"
SPAN = {"min": 10, "max": 90}


async def _lags_ms(seed: int, count: int = 6) -> list[int]:
    """The lags of ``count`` withdrawals in a fresh sandbox started with ``seed``."""
    clock = ManualClock(START_MS)
    faults = {"history_lag_s": SPAN, "seed": seed}
    async with (
        running_sandbox(config=parse_config(BASE_CONFIG), clock=clock, faults=faults) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        for _ in range(count):
            assert (await client.apply(**usdt_trx())).status_code == 200
        return [w.visible_at_ms - w.applied_at_ms for w in sb.ledger().withdrawals]


async def test_drawn_lags_differ_stay_in_bounds_and_follow_the_seed() -> None:
    lags = await _lags_ms(seed=11)
    assert all(10_000 <= lag <= 90_000 for lag in lags), lags
    assert len(set(lags)) > 1, lags
    assert await _lags_ms(seed=11) == lags
    assert await _lags_ms(seed=12) != lags


async def test_each_withdrawal_appears_at_its_own_visible_time(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox, clock: ManualClock
) -> None:
    shown = (await http.post(FAULTS, json={"history_lag_s": SPAN, "seed": 4})).json()
    assert shown["history_lag_s"] == SPAN
    ids = [(await client.apply(**usdt_trx(withdrawOrderId=f"w{i}"))).json()["id"] for i in range(4)]
    visible = {w.id: w.visible_at_ms for w in sandbox.ledger().withdrawals}
    assert sorted(visible) == sorted(ids) and len(set(visible.values())) > 1
    for wid, at_ms in sorted(visible.items(), key=lambda kv: kv[1]):
        clock.advance(at_ms - 1 - clock.now_ms())
        assert await client.history(idList=wid) == [], wid
        clock.advance(1)
        assert [i["id"] for i in await client.history(idList=wid)] == [wid]


async def test_max_alone_draws_from_zero_and_null_clears(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    shown = (await http.post(FAULTS, json={"history_lag_s": {"max": 90}})).json()
    assert shown["history_lag_s"] == {"min": 0, "max": 90}
    assert (await http.get(FAULTS)).json()["history_lag_s"] == {"min": 0, "max": 90}
    await client.apply(**usdt_trx())
    assert 0 <= sandbox.ledger().withdrawals[0].visible_at_ms - START_MS <= 90_000
    assert (await http.post(FAULTS, json={"history_lag_s": None})).json()["history_lag_s"] == 0
    await client.apply(**usdt_trx(withdrawOrderId="now"))
    assert len(await client.history(withdrawOrderId="now")) == 1


async def test_fixed_form_is_shown_as_a_number(http: httpx.AsyncClient) -> None:
    assert (await http.post(FAULTS, json={"history_lag_s": 3})).json()["history_lag_s"] == 3
    assert (await http.post(FAULTS, json={"reset": True})).json()["history_lag_s"] == 0


@pytest.mark.parametrize(
    ("lag", "field"),
    [
        ({"min": 5, "max": 2}, "faults.history_lag_s.min"),
        ({"min": -1, "max": 2}, "faults.history_lag_s.min"),
        ({"max": -3}, "faults.history_lag_s.max"),
        ({"min": 1}, "faults.history_lag_s.max"),
        ({"max": "soon"}, "faults.history_lag_s.max"),
        ({"max": True}, "faults.history_lag_s.max"),
        ({"min": 1, "max": 2, "mode": "x"}, "faults.history_lag_s.mode"),
        (-4, "faults.history_lag_s"),
        ([1, 2], "faults.history_lag_s"),
    ],
)
async def test_bad_history_lag_names_the_field(
    http: httpx.AsyncClient, lag: object, field: str
) -> None:
    await http.post(FAULTS, json={"history_lag_s": 7})
    bad = await http.post(FAULTS, json={"history_lag_s": lag})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith(f"{field}:"), bad.json()
    assert (await http.get(FAULTS)).json()["history_lag_s"] == 7  # nothing changed


async def test_a_drawn_lag_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    config = parse_config(BASE_CONFIG)
    faults = {"history_lag_s": {"min": 20, "max": 40}, "seed": 1}
    async with (
        running_sandbox(config=config, clock=clock, state_path=state, faults=faults) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        wid = (await Client(http, clock.now_ms).apply(**usdt_trx())).json()["id"]
    [booked] = read_ledger(state).withdrawals
    assert 20_000 <= booked.visible_at_ms - START_MS <= 40_000
    clock.advance(booked.visible_at_ms - 1 - START_MS)
    # restarted without the fault: the journaled visible time still holds
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        assert await client.history(idList=wid) == []
        clock.advance(1)
        assert [i["id"] for i in await client.history(idList=wid)] == [wid]
