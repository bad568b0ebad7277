"""The address book as Binance returns it: every entry, each with its own whiteStatus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_testkit import (
    BASE_CONFIG,
    START_MS,
    USDT_TRX,
    Client,
    accounts_with,
    default_accounts,
    error_code,
    usdt_trx,
)

from treasury.sandbox import ConfigError, ManualClock, parse_config, running_sandbox

ADDRESSES = "/sapi/v1/capital/withdraw/address/list"
BOOKED_ONLY = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"  # in the book, not on the whitelist
OTHER_TRX = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"


def _book_with_unlisted_entry() -> list[dict[str, Any]]:
    accounts = default_accounts()
    accounts[0]["whitelist"].append(
        {"coin": "USDT", "network": "TRX", "address": BOOKED_ONLY, "name": "pending review",
         "whitelisted": False}
    )  # fmt: skip
    return accounts


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"accounts": _book_with_unlisted_entry()}


def _status_of(entries: list[dict[str, Any]], address: str) -> bool:
    [entry] = [e for e in entries if e["address"] == address]
    status: bool = entry["whiteStatus"]
    return status


async def test_every_entry_is_listed_with_its_own_white_status(client: Client) -> None:
    entries = (await client.get(ADDRESSES)).json()
    assert len(entries) == len(default_accounts()[0]["whitelist"]) + 1
    assert _status_of(entries, BOOKED_ONLY) is False
    assert _status_of(entries, USDT_TRX) is True
    assert sum(not e["whiteStatus"] for e in entries) == 1


async def test_an_entry_off_the_whitelist_is_refused_with_4035(
    client: Client, http: httpx.AsyncClient
) -> None:
    refused = await client.apply(**usdt_trx(address=BOOKED_ONLY))
    assert error_code(refused) == -4035
    assert (await client.apply(**usdt_trx())).status_code == 200
    await http.post("/_sandbox/account", json={"whitelist_enabled": False})
    assert (await client.apply(**usdt_trx(address=BOOKED_ONLY))).status_code == 200


async def test_white_status_is_the_entrys_not_the_switch(
    client: Client, http: httpx.AsyncClient
) -> None:
    await http.post("/_sandbox/account", json={"whitelist_enabled": False})
    entries = (await client.get(ADDRESSES)).json()
    assert _status_of(entries, USDT_TRX) is True
    assert _status_of(entries, BOOKED_ONLY) is False


async def test_admin_adds_an_entry_off_the_whitelist_and_puts_it_on(
    client: Client, http: httpx.AsyncClient
) -> None:
    entry = {"coin": "USDT", "network": "TRX", "address": OTHER_TRX, "whitelisted": False}
    assert (await http.post("/_sandbox/whitelist", json=entry)).status_code == 200
    assert _status_of((await client.get(ADDRESSES)).json(), OTHER_TRX) is False
    assert error_code(await client.apply(**usdt_trx(address=OTHER_TRX))) == -4035
    await http.post("/_sandbox/whitelist", json={**entry, "whitelisted": True})
    entries = (await client.get(ADDRESSES)).json()
    assert _status_of(entries, OTHER_TRX) is True  # replaced, not listed twice
    assert (await client.apply(**usdt_trx(address=OTHER_TRX))).status_code == 200
    bad = await http.post("/_sandbox/whitelist", json={**entry, "whitelisted": "no"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "whitelist.whitelisted: must be true or false, got a string"


async def test_white_status_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    config = parse_config(BASE_CONFIG)
    entry = {"coin": "USDT", "network": "TRX", "address": OTHER_TRX, "whitelisted": False}
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        assert (await http.post("/_sandbox/whitelist", json=entry)).status_code == 200
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        assert _status_of((await client.get(ADDRESSES)).json(), OTHER_TRX) is False
        assert error_code(await client.apply(**usdt_trx(address=OTHER_TRX))) == -4035


def test_whitelisted_helper_skips_entries_off_the_whitelist() -> None:
    account = parse_config({"accounts": _book_with_unlisted_entry()}).accounts["default"]
    assert BOOKED_ONLY not in {e.address for e in account.whitelisted("USDT", "TRX")}
    assert BOOKED_ONLY in {e.address for e in account.whitelist}


def _trx_entries(count: int) -> list[dict[str, str]]:
    """``count`` distinct, valid TRX entries (the tag makes each one distinct)."""
    return [
        {"coin": "USDT", "network": "TRX", "address": USDT_TRX, "addressTag": str(i)}
        for i in range(count)
    ]


def test_the_address_book_holds_at_most_200_entries() -> None:
    parse_config({"accounts": accounts_with(whitelist=_trx_entries(200))})
    with pytest.raises(ConfigError) as caught:
        parse_config({"accounts": accounts_with(whitelist=_trx_entries(201))})
    assert caught.value.field == "accounts[0].whitelist"
    assert "200" in caught.value.problem


async def test_admin_cannot_add_a_201st_entry() -> None:
    config = parse_config({**BASE_CONFIG, "accounts": accounts_with(whitelist=_trx_entries(200))})
    async with (
        running_sandbox(config=config, clock=ManualClock(START_MS)) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        entry = {"coin": "USDT", "network": "TRX", "address": OTHER_TRX}
        full = await http.post("/_sandbox/whitelist", json=entry)
        assert full.status_code == 400 and "200" in full.json()["error"]
        again = {**_trx_entries(1)[0], "whitelisted": False}  # replacing one is fine
        assert (await http.post("/_sandbox/whitelist", json=again)).status_code == 200
        entries = (await Client(http, sb.clock.now_ms).get(ADDRESSES)).json()
        assert len(entries) == 200
