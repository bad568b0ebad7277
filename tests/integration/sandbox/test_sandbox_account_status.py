"""GET /sapi/v1/account/status: "Normal" by default, any text an account is given."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, Client, accounts_with, error_code

from treasury.sandbox import ConfigError, ManualClock, parse_config, running_sandbox

STATUS = "/sapi/v1/account/status"
RESTRICTED = "Withdrawals restricted: under review"


async def test_normal_by_default(client: Client) -> None:
    response = await client.get(STATUS)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": "Normal"}
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"


async def test_is_signed(client: Client) -> None:
    assert error_code(await client.get(STATUS, secret="wrong")) == -1022
    assert error_code(await client.get(STATUS, headers={})) == -2014


async def test_the_config_sets_the_text() -> None:
    config = parse_config({**BASE_CONFIG, "accounts": accounts_with(account_status=RESTRICTED)})
    clock = ManualClock(START_MS)
    async with (
        running_sandbox(config=config, clock=clock) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        assert (await Client(http, clock.now_ms).get(STATUS)).json() == {"data": RESTRICTED}


async def test_admin_sets_the_text_and_it_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    config = parse_config(BASE_CONFIG)
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        changed = await http.post("/_sandbox/account", json={"account_status": RESTRICTED})
        assert changed.status_code == 200, changed.text
        assert (await Client(http, clock.now_ms).get(STATUS)).json() == {"data": RESTRICTED}
        bad = await http.post("/_sandbox/account", json={"account_status": 3})
        assert bad.status_code == 400
        assert bad.json()["error"] == "account.account_status: must be a string, got a number"
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        assert (await client.get(STATUS)).json() == {"data": RESTRICTED}


async def test_each_account_has_its_own(client: Client, http: httpx.AsyncClient) -> None:
    from treasury.sandbox import SUB_API_KEY, SUB_API_SECRET

    await http.post("/_sandbox/account", json={"account": "treasury-sub", "account_status": "X"})
    sub = Client(http, client.now_ms, SUB_API_KEY, SUB_API_SECRET)
    assert (await sub.get(STATUS)).json() == {"data": "X"}
    assert (await client.get(STATUS)).json() == {"data": "Normal"}


@pytest.mark.parametrize("value", ["", 7, None])
def test_bad_config_text_names_the_field(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"accounts": accounts_with(account_status=value)})
    assert caught.value.field == "accounts[0].account_status"
    assert caught.value.problem != "unknown field"
