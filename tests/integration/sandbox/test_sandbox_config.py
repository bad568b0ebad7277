"""The config: the built-in default is usable as documented, and bad files say what is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from treasury.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    ConfigError,
    default_config,
    load_config,
    parse_config,
)


def test_default_accounts_and_credentials() -> None:
    config = default_config()
    assert set(config.accounts) == {"default", "treasury-sub"}
    default = config.accounts["default"]
    assert (default.api_key, default.hmac_secret) == (DEFAULT_API_KEY, DEFAULT_API_SECRET)
    assert default.ed25519_public_key is not None
    assert config.account_by_key("treasury-sub-api-key") is config.accounts["treasury-sub"]


def test_default_whitelist_covers_every_network_with_valid_addresses() -> None:
    config = default_config()
    default = config.accounts["default"]
    for coin in config.coins.values():
        for network in coin.networks:
            entries = default.whitelisted(coin.coin, network.network)
            assert entries, f"{coin.coin}/{network.network} has no whitelisted address"
            for entry in entries:
                assert re.fullmatch(network.address_regex, entry.address)
                if network.withdraw_tag:
                    assert entry.address_tag and re.fullmatch(network.memo_regex, entry.address_tag)


def test_default_rules_are_binance_like() -> None:
    coins = default_config().coins
    trx = coins["USDT"].network("TRX")
    assert trx is not None
    assert (str(trx.withdraw_min), str(trx.withdraw_fee)) == ("10", "1")
    assert str(trx.withdraw_integer_multiple) == "0.000001"
    assert coins["XRP"].default_network.withdraw_tag is True
    assert coins["BTC"].default_network.network == "BTC"


def test_partial_file_keeps_default_sections(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    path.write_text(
        json.dumps({"timings": {"processing_s": 0.5, "seed": 1}, "rate_limit_multiplier": "10"})
    )
    config = load_config(path)
    assert config.timings.processing_s == 0.5 and config.timings.seed == 1
    assert config.rate_limits.scaled(config.rate_limits.uid_weight_per_min) == 1_800_000
    assert config.accounts == default_config().accounts


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"timings": {"processing_s": "soon"}}, "timings.processing_s"),
        ({"timings": {"failure_share": "1.5"}}, "timings.failure_share"),
        ({"rate_limits": {"uid_pool": "ip"}}, "rate_limits.uid_pool"),
        ({"rate_limits": {"history_pool": "hour"}}, "rate_limits.history_pool"),
        ({"rate_limit_multiplier": 0}, "rate_limit_multiplier"),
        ({"surprise": 1}, "surprise"),
        ({"history_amount": "after_fee"}, "history_amount"),
        ({"history_amount": True}, "history_amount"),
        ({"coins": [{"coin": "USDT", "networks": []}]}, "coins[0].networks"),
        ({"coins": "USDT"}, "coins"),
        (
            {
                "coins": [
                    {
                        "coin": "X",
                        "networks": [
                            {
                                "network": "N",
                                "isDefault": True,
                                "withdrawFee": "0.5",
                                "withdrawMin": "1",
                                "addressRegex": "(",
                            }
                        ],
                    }
                ]
            },
            "coins[0].networks[0].addressRegex",
        ),
    ],
)
def test_invalid_config_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_history_amount_defaults_to_net() -> None:
    assert default_config().history_amount == "net"
    assert parse_config({"history_amount": "gross"}).history_amount == "gross"
    with pytest.raises(ConfigError, match="must be 'net' or 'gross'"):
        parse_config({"history_amount": "GROSS"})


def test_a_binary_float_amount_is_refused() -> None:
    network = {"network": "N", "isDefault": True, "withdrawFee": 0.5, "withdrawMin": "1",
               "addressRegex": "^x$"}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse_config({"coins": [{"coin": "X", "networks": [network]}]})
    assert caught.value.field == "coins[0].networks[0].withdrawFee"


def _account(**changes: object) -> dict[str, Any]:
    return {"name": "a", "api_key": "k", "hmac_secret": "s", **changes}


@pytest.mark.parametrize(
    ("account", "field"),
    [
        (_account(apy_key="x"), "accounts[0].apy_key"),
        (_account(hmac_secret=None), "accounts[0]"),
        (_account(balances={"USDT": "lots"}), "accounts[0].balances.USDT"),
        (_account(ed25519_public_key="not a pem"), "accounts[0].ed25519_public_key"),
        (
            _account(apiRestrictions={"enableWithdrawal": True}),
            "accounts[0].apiRestrictions.enableWithdrawal",
        ),
        (
            _account(whitelist=[{"coin": "USDT", "network": "TRX", "address": "0xabc"}]),
            "accounts[0].whitelist[0].address",
        ),
        (
            _account(whitelist=[{"coin": "USDT", "network": "SOL", "address": "x"}]),
            "accounts[0].whitelist[0].network",
        ),
    ],
)
def test_invalid_account_names_the_field(account: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"accounts": [account]})
    assert caught.value.field == field


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)


def test_amounts_are_decimals_never_floats(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"accounts": [{"name": "a", "api_key": "k", "hmac_secret": "s", '
                    '"balances": {"USDT": 0.1}}]}')  # fmt: skip
    balance = load_config(path).accounts["a"].balances["USDT"]
    assert str(balance) == "0.1"
