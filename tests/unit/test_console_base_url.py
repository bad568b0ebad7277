"""The console's base URL (``TREASURY_CONSOLE_BASE_URL``, ``treasury api --base-url``):
the passkeys' origin and relying party id come from it, so it is checked strictly."""

from __future__ import annotations

import pytest

from treasury.config import SettingsError, load_settings
from treasury.netaddr import console_base_url, default_console_base_url


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("http://localhost:7465", "http://localhost:7465"),
        ("http://localhost:7465/", "http://localhost:7465"),
        ("https://Treasury.Example.com", "https://treasury.example.com"),
        ("https://treasury.example.com:8443/", "https://treasury.example.com:8443"),
    ],
)
def test_a_base_url_is_normalised_to_its_origin(given: str, origin: str) -> None:
    assert console_base_url(given) == origin


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("http://treasury.example.com", "plain http only on a loopback"),
        ("http://127.0.0.1:7465", "IP address"),
        ("https://10.0.0.5", "IP address"),
        ("https://treasury.example.com/console", "no path"),
        ("https://treasury.example.com?x=1", "no path, query"),
        ("https://treasury.example.com#x", "no path, query or fragment"),
        ("https://user:pw@treasury.example.com", "no user info"),
        ("ftp://treasury.example.com", "https://HOST"),
        ("treasury.example.com", "https://HOST"),
        ("https://treasury.example.com:99999", "not a URL"),
    ],
)
def test_a_base_url_that_cannot_carry_passkeys_is_refused(given: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        console_base_url(given)


def test_the_setting_defaults_to_localhost_on_the_api_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert default_console_base_url("127.0.0.1:8000") == "http://localhost:8000"
    monkeypatch.setenv("TREASURY_API_BIND", "127.0.0.1:7999")
    assert load_settings().console_base == "http://localhost:7999"
    monkeypatch.setenv("TREASURY_CONSOLE_BASE_URL", "https://treasury.example.com/")
    assert load_settings().console_base == "https://treasury.example.com"
    monkeypatch.setenv("TREASURY_CONSOLE_BASE_URL", "http://treasury.example.com")
    with pytest.raises(SettingsError, match="TREASURY_CONSOLE_BASE_URL"):
        load_settings()
