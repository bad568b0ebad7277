"""The accounts file (TREASURY_ACCOUNTS_FILE): read, and every mistake named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from treasury.accounts_file import read_accounts_file
from treasury.config import Settings, SettingsError, account_credentials

BASE = {
    "database_url": "sqlite:///x.db",
    "binance_api_key": "primary-key",
    "binance_api_secret": "primary-secret",
}


def settings(path: Path, **extra: object) -> Settings:
    return Settings(**{**BASE, "accounts_file": path, **extra})  # type: ignore[arg-type]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "a.key").write_text("key-a\n")
    (tmp_path / "a.secret").write_text("secret-a\n")
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return path


GOOD = """
[accounts.desk-a]
api_key_file = "a.key"
api_secret_file = "a.secret"
wallet = "funding"
rate = 2.5
local_entity = "eu"

[accounts.desk-b]
api_key_env = "DESK_B_KEY"
api_secret_env = "DESK_B_SECRET"

[accounts.desk-c]
api_key_file = "/nowhere/c.key"
api_secret_file = "/nowhere/c.secret"
enabled = false
"""


def test_a_complete_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_B_KEY", "key-b")
    monkeypatch.setenv("DESK_B_SECRET", "secret-b")
    s = settings(write(tmp_path, GOOD))
    accounts = read_accounts_file(s)
    assert [(a.name, a.enabled) for a in accounts] == [
        ("desk-a", True),
        ("desk-b", True),
        ("desk-c", False),  # disabled: its missing key files are not an error
    ]
    a = accounts[0].credentials
    assert a is not None
    assert a.api_key.get_secret_value() == "key-a"
    assert a.api_secret is not None and a.api_secret.get_secret_value() == "secret-a"
    assert (a.wallet, a.withdraw_rate, a.local_entity) == ("funding", 2.5, "EU")
    b = accounts[1].credentials
    assert b is not None and b.api_key.get_secret_value() == "key-b"
    assert (b.wallet, b.withdraw_rate) == ("spot", None)
    # the environment's accounts first, then the file's enabled ones
    assert [c.name for c in account_credentials(s)] == ["default", "desk-a", "desk-b"]
    assert "key-a" not in repr(accounts) and "secret-a" not in repr(a)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "[accounts.desk-a]\napi_key_file='a.key'\napi_secret_file='a.secret'\nwalet='spot'\n",
            "account 'desk-a': unknown key 'walet'",
        ),
        (
            "[accounts.desk-a]\napi_key_file='a.key'\napi_secret_file='a.secret'\nwallet='margin'\n",
            "account 'desk-a': wallet 'margin' is not a wallet",
        ),
        (
            "[accounts.desk-a]\napi_key_file='a.key'\napi_secret_file='missing.secret'\n",
            "account 'desk-a': api_secret_file: ",
        ),
        (
            "[accounts.desk-a]\napi_secret_file='a.secret'\n",
            "account 'desk-a': api_key_file (or api_key_env) is missing",
        ),
        (
            "[accounts.desk-a]\napi_key_file='a.key'\n",
            "account 'desk-a': set exactly one of api_secret_file",
        ),
        (
            "[accounts.desk-a]\napi_key_file='a.key'\napi_secret_file='a.secret'\n"
            "private_key_file='a.secret'\n",
            "set exactly one of",
        ),
        (
            "[accounts.desk-a]\napi_key_file='a.key'\napi_secret_file='a.secret'\nrate=0\n",
            "account 'desk-a': rate must be",
        ),
        (
            "[accounts.desk-a]\napi_key_file='a.key'\napi_secret_file='a.secret'\nenabled='yes'\n",
            "account 'desk-a': enabled must be true or false",
        ),
        (
            "[accounts.desk-a]\napi_key_env='NOT_SET_ANYWHERE_X'\napi_secret_file='a.secret'\n",
            "variable NOT_SET_ANYWHERE_X is unset",
        ),
        (
            "[accounts.default]\napi_key_file='a.key'\napi_secret_file='a.secret'\n",
            "account 'default': also given by the environment",
        ),
        (
            "[accounts.desk-a]\napi_key_file='a.key'\napi_secret_file='a.secret'\n"
            "[accounts.desk-a]\napi_key_file='a.key'\n",
            "not valid TOML",
        ),
        (
            "[accounts.'bad name!']\napi_key_file='a.key'\napi_secret_file='a.secret'\n",
            "not a valid account name",
        ),
        ("[desks.a]\nx=1\n", "unknown table or key 'desks'"),
        (
            "[accounts.desk-a]\napi_key_file='a.key'\napi_secret_file='a.secret'\n"
            "local_entity='US'\n",
            "local_entity 'US'",
        ),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, text: str, says: str) -> None:
    s = settings(write(tmp_path, text))
    with pytest.raises(SettingsError) as err:
        read_accounts_file(s)
    assert "TREASURY_ACCOUNTS_FILE" in str(err.value)
    assert says in str(err.value), str(err.value)
    assert "secret-a" not in str(err.value)


def test_a_name_of_extra_accounts_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[accounts.sub]\napi_key_file='a.key'\napi_secret_file='a.secret'\n")
    with pytest.raises(SettingsError, match="account 'sub': also given by the environment"):
        read_accounts_file(settings(path, extra_accounts="sub"))


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="file not found"):
        read_accounts_file(settings(tmp_path / "none.toml"))


def test_no_file_no_accounts() -> None:
    assert read_accounts_file(Settings(**BASE)) == []  # type: ignore[arg-type]
