"""Internal transfers: a withdrawal to a Binance account's deposit address (another sandbox
account's, or one listed in ``internal_addresses``) is ``transferType`` 1, settles at once
off chain, needs ``withdrawInternalMin``, and charges its fee per ``transactionFeeFlag``:
false (the default) the sender pays on top, true the recipient gets the amount less it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_testkit import (
    BASE_CONFIG,
    START_MS,
    Client,
    default_accounts,
    error_code,
    usdt_trx,
)

from treasury.sandbox import (
    SUB_API_KEY,
    SUB_API_SECRET,
    ConfigError,
    ManualClock,
    RunningSandbox,
    default_config,
    parse_config,
    read_ledger,
    running_sandbox,
)

SUB_TRX = next(
    d.address for d in default_config().accounts["treasury-sub"].deposit_addresses
    if d.network == "TRX"
)  # fmt: skip
SUB_ETH = next(
    d.address for d in default_config().accounts["treasury-sub"].deposit_addresses
    if d.network == "ETH"
)  # fmt: skip
OUTSIDE_TRX = "TVjsyZ7fYF3qLF6BQgPmTEZy1xrNNyVAAA"  # a Binance account the sandbox lacks
SPOT_USDT = Decimal("2500000")  # account default's
SUB_USDT = Decimal("250000")  # account treasury-sub's
FEE = Decimal("1")  # USDT on TRX


def book(coin: str, network: str, address: str, name: str) -> dict[str, Any]:
    return {"coin": coin, "network": network, "address": address, "name": name}


def internal_accounts() -> list[dict[str, Any]]:
    """The built-in accounts, with default's address book holding treasury-sub's deposit
    addresses and one of an account outside the sandbox."""
    accounts = default_accounts()
    accounts[0]["whitelist"] += [
        book("USDT", "TRX", SUB_TRX, "sub-deposit"),
        book("USDT", "TRX", OUTSIDE_TRX, "outside"),
        book("USDT", "ETH", SUB_ETH.upper().replace("0X", "0x"), "sub-deposit-eth"),
    ]
    return accounts


def internal_config(**extra: Any) -> dict[str, Any]:
    return {
        **BASE_CONFIG,
        "accounts": internal_accounts(),
        "internal_addresses": [{"network": "TRX", "address": OUTSIDE_TRX}],
        **extra,
    }


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return internal_config()


@pytest.fixture
def sub(http: httpx.AsyncClient, clock: ManualClock) -> Client:
    return Client(http, clock.now_ms, key=SUB_API_KEY, secret=SUB_API_SECRET)


def to_sub(amount: str = "25", **extra: object) -> dict[str, object]:
    return usdt_trx(amount, address=SUB_TRX, **extra)


@pytest.mark.parametrize("flag", [None, "false", "FALSE"])
async def test_the_sender_pays_by_default_and_the_recipient_gets_the_whole_amount(
    client: Client, sub: Client, flag: str | None
) -> None:
    extra = {} if flag is None else {"transactionFeeFlag": flag}
    response = await client.apply(**to_sub("25", **extra))
    assert response.status_code == 200, response.text
    assert await client.free("USDT") == SPOT_USDT - 25 - FEE
    assert await sub.free("USDT") == SUB_USDT + 25
    [item] = await client.history()
    assert (item["transferType"], item["status"], item["confirmNo"]) == (1, 6, 0)
    assert (item["amount"], item["transactionFee"]) == ("25", "1")  # net: all of it arrived
    assert item["txId"].startswith("Off-chain transfer ")
    assert item["txId"].removeprefix("Off-chain transfer ").isdigit()


async def test_the_recipient_pays_with_the_flag_true(client: Client, sub: Client) -> None:
    response = await client.apply(**to_sub("25", transactionFeeFlag="true"))
    assert response.status_code == 200, response.text
    assert await client.free("USDT") == SPOT_USDT - 25
    assert await sub.free("USDT") == SUB_USDT + 25 - FEE
    [item] = await client.history()
    assert (item["transferType"], item["amount"], item["transactionFee"]) == (1, "24", "1")


@pytest.mark.parametrize(("flag", "shown"), [("false", "25"), ("true", "25")])
async def test_gross_history_shows_the_requested_amount(
    client: Client, http: httpx.AsyncClient, flag: str, shown: str
) -> None:
    await http.post("/_sandbox/faults", json={"history_amount": "gross"})
    assert (await client.apply(**to_sub("25", transactionFeeFlag=flag))).status_code == 200
    [item] = await client.history()
    assert item["amount"] == shown


async def test_on_chain_the_flag_changes_nothing(client: Client) -> None:
    assert (await client.apply(**usdt_trx("25", transactionFeeFlag="true"))).status_code == 200
    assert (await client.apply(**usdt_trx("25", transactionFeeFlag="false"))).status_code == 200
    assert await client.free("USDT") == SPOT_USDT - 50
    items = await client.history()
    assert {(i["transferType"], i["amount"], i["status"]) for i in items} == {(0, "24", 4)}
    assert all(i["txId"] == "" for i in items)  # not completed yet: on chain takes time


async def test_a_bad_flag_is_1100(client: Client) -> None:
    response = await client.apply(**to_sub("25", transactionFeeFlag="yes"))
    assert error_code(response) == -1100
    assert "transactionFeeFlag" in response.json()["msg"]


async def test_an_address_outside_the_sandbox_is_internal_and_credits_nobody(
    client: Client, sub: Client
) -> None:
    assert (await client.apply(**usdt_trx("25", address=OUTSIDE_TRX))).status_code == 200
    assert await client.free("USDT") == SPOT_USDT - 26
    assert await sub.free("USDT") == SUB_USDT
    [item] = await client.history()
    assert item["transferType"] == 1


async def test_an_evm_deposit_address_is_recognised_whatever_its_casing(
    client: Client, sub: Client
) -> None:
    upper = SUB_ETH.upper().replace("0X", "0x")
    response = await client.apply(coin="USDT", network="ETH", address=upper, amount="20")
    assert response.status_code == 200, response.text
    [item] = await client.history()
    assert (item["transferType"], item["transactionFee"]) == (1, "3.5")  # ETH's withdrawFee
    assert await sub.free("USDT") == SUB_USDT + 20


async def test_the_internal_minimum_applies_instead_of_the_on_chain_one(
    client: Client, http: httpx.AsyncClient
) -> None:
    """withdrawMin is 10 on TRX. With withdrawInternalMin 30 an internal 25 is -4022 while
    an on-chain 25 passes; with withdrawInternalMin 2 an internal 5 passes."""
    changed = await http.post(
        "/_sandbox/network", json={"coin": "USDT", "network": "TRX", "withdrawInternalMin": "30"}
    )
    assert changed.status_code == 200, changed.text
    getall = (await client.get("/sapi/v1/capital/config/getall")).json()
    [trx] = [n for c in getall if c["coin"] == "USDT" for n in c["networkList"]
             if n["network"] == "TRX"]  # fmt: skip
    assert trx["withdrawInternalMin"] == "30"
    below = await client.apply(**to_sub("25"))
    assert error_code(below) == -4022
    assert (await client.apply(**usdt_trx("25"))).status_code == 200
    await http.post(
        "/_sandbox/network", json={"coin": "USDT", "network": "TRX", "withdrawInternalMin": "2"}
    )
    assert (await client.apply(**to_sub("5"))).status_code == 200
    assert error_code(await client.apply(**usdt_trx("5"))) == -4022  # on chain: min 10


async def test_a_sender_paying_the_fee_needs_it_in_the_wallet(
    client: Client, http: httpx.AsyncClient
) -> None:
    await http.post("/_sandbox/account", json={"balances": {"USDT": "25.5"}})
    assert error_code(await client.apply(**to_sub("25"))) == -4026  # 25 + 1 > 25.5
    assert (await client.apply(**to_sub("25", transactionFeeFlag="true"))).status_code == 200
    assert await client.free("USDT") == Decimal("0.5")


async def test_the_internal_fee_is_a_setting_of_the_network(
    client: Client, sub: Client, http: httpx.AsyncClient
) -> None:
    changed = await http.post(
        "/_sandbox/network", json={"coin": "USDT", "network": "TRX", "internal_fee": "0"}
    )
    assert changed.status_code == 200, changed.text
    assert (await client.apply(**to_sub("25", transactionFeeFlag="true"))).status_code == 200
    assert await sub.free("USDT") == SUB_USDT + 25
    [item] = await client.history()
    assert (item["amount"], item["transactionFee"]) == ("25", "0")
    getall = json.dumps((await client.get("/sapi/v1/capital/config/getall")).json())
    assert "internal_fee" not in getall  # the sandbox's own knob, not Binance's field


async def test_the_recipient_is_credited_in_its_deposit_wallet(
    client: Client, sub: Client, http: httpx.AsyncClient
) -> None:
    await http.post(
        "/_sandbox/account", json={"account": "treasury-sub", "default_wallet": "funding"}
    )
    assert (await client.apply(**to_sub("25"))).status_code == 200
    assert await sub.funding("USDT") == Decimal("25")
    assert await sub.free("USDT") == SUB_USDT


async def test_a_failed_internal_transfer_refunds_amount_and_fee_and_credits_nobody() -> None:
    config = parse_config(internal_config(timings={**BASE_CONFIG["timings"], "failure_share": "1"}))
    clock = ManualClock(START_MS)
    async with (
        running_sandbox(config=config, clock=clock) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        sub = Client(http, clock.now_ms, key=SUB_API_KEY, secret=SUB_API_SECRET)
        assert (await client.apply(**to_sub("25"))).status_code == 200
        [item] = await client.history()
        assert (item["transferType"], item["status"], item["txId"]) == (1, 5, "")
        assert await client.free("USDT") == SPOT_USDT  # 26 taken, 26 given back
        assert await sub.free("USDT") == SUB_USDT


async def test_internal_transfers_replay_exactly(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    config = parse_config(internal_config())

    async def balances(sb: RunningSandbox) -> tuple[Decimal, Decimal]:
        async with httpx.AsyncClient(base_url=sb.url) as http:
            return (
                await Client(http, clock.now_ms).free("USDT"),
                await Client(http, clock.now_ms, key=SUB_API_KEY, secret=SUB_API_SECRET).free(
                    "USDT"
                ),
            )

    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        await http.post(
            "/_sandbox/account", json={"account": "treasury-sub", "default_wallet": "funding"}
        )
        assert (await client.apply(**to_sub("25"))).status_code == 200
        await http.post(
            "/_sandbox/account", json={"account": "treasury-sub", "default_wallet": "spot"}
        )
        assert (await client.apply(**to_sub("30", transactionFeeFlag="true"))).status_code == 200
        assert (await client.apply(**usdt_trx("40", transactionFeeFlag="true"))).status_code == 200
        live_history = await client.history()
        live = await balances(sb)
    assert live == (SPOT_USDT - 26 - 30 - 40, SUB_USDT + 29)
    ledger = read_ledger(state)
    assert [(w.transfer_type, w.fee_to_recipient, w.recipient) for w in ledger.withdrawals] == [
        (1, False, "treasury-sub"),
        (1, True, "treasury-sub"),
        (0, True, None),
    ]
    assert [(w.debited, w.received) for w in ledger.withdrawals] == [
        (Decimal(26), Decimal(25)),
        (Decimal(30), Decimal(29)),
        (Decimal(40), Decimal(39)),
    ]
    async with running_sandbox(config=config, clock=clock, state_path=state) as sb:
        assert await balances(sb) == live
        async with httpx.AsyncClient(base_url=sb.url) as http:
            assert await Client(http, clock.now_ms).history() == live_history
            sub = Client(http, clock.now_ms, key=SUB_API_KEY, secret=SUB_API_SECRET)
            assert await sub.funding("USDT") == Decimal("25")  # the wallet journaled with it


async def test_a_journal_from_before_internal_transfers_replays_on_chain(tmp_path: Path) -> None:
    """A record without transferType/transactionFeeFlag (an older journal) is an on-chain
    withdrawal, whatever the address is today: amount debited, nobody credited."""
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    config = parse_config(internal_config())
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        assert (await Client(http, clock.now_ms).apply(**to_sub("25"))).status_code == 200
    old = []
    for line in state.read_text().splitlines():
        record = json.loads(line)
        if record["type"] == "withdrawal":
            for key in ("transferType", "transactionFeeFlag", "recipient", "recipientWalletType"):
                del record[key]
            record["txId"] = "ab" * 32
            record["confirmNo"] = 1
        old.append(json.dumps(record))
    state.write_text("\n".join(old) + "\n")
    clock.advance_s(10)
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        sub = Client(http, clock.now_ms, key=SUB_API_KEY, secret=SUB_API_SECRET)
        assert await client.free("USDT") == SPOT_USDT - 25
        assert await sub.free("USDT") == SUB_USDT
        [item] = await client.history()
        assert (item["transferType"], item["amount"], item["confirmNo"]) == (0, "24", 1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"internal_addresses": [{"network": "TRX", "address": "0xabc"}]},
            "internal_addresses[0].address",
        ),
        (
            {"internal_addresses": [{"network": "DOGE", "address": OUTSIDE_TRX}]},
            "internal_addresses[0].network",
        ),
        (
            {"internal_addresses": [{"network": "TRX", "address": SUB_TRX}]},
            "internal_addresses[0].address",
        ),
        (
            {"internal_addresses": [{"network": "TRX", "address": OUTSIDE_TRX, "tag": "1"}]},
            "internal_addresses[0].tag",
        ),
    ],
)
def test_bad_internal_addresses_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE_CONFIG, **change})
    assert caught.value.field == field, caught.value


def test_a_deposit_address_has_one_owner() -> None:
    accounts = default_accounts()
    accounts[0]["deposit_addresses"] = [{"network": "TRX", "address": SUB_TRX}]
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE_CONFIG, "accounts": accounts})
    assert caught.value.field == "accounts[1].deposit_addresses[0].address"
    assert "accounts[0].deposit_addresses[0]" in caught.value.problem


def test_the_internal_fee_defaults_to_the_withdraw_fee() -> None:
    config = default_config()
    trx = config.coins["USDT"].network("TRX")
    assert trx is not None and trx.internal_fee is None
    assert trx.internal_transfer_fee == trx.withdraw_fee == FEE
    coins = json.loads(json.dumps(_coins_with_internal_fee("0.1")))
    parsed = parse_config({**BASE_CONFIG, "coins": coins}).coins["USDT"].network("TRX")
    assert parsed is not None and parsed.internal_transfer_fee == Decimal("0.1")


def _coins_with_internal_fee(fee: str) -> list[dict[str, Any]]:
    from importlib import resources

    text = resources.files("treasury.sandbox").joinpath("default_config.json").read_text("utf-8")
    coins: list[dict[str, Any]] = json.loads(text)["coins"]
    for c in coins:
        for n in c["networks"]:
            if (c["coin"], n["network"]) == ("USDT", "TRX"):
                n["internal_fee"] = fee
    return coins
