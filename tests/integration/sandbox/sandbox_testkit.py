"""Helpers for the sandbox tests: a raw signed-request client and a few constants.

The client signs by hand (HMAC-SHA256 over the percent-encoded query it sends) on
purpose: these tests pin the sandbox to Binance's documented behaviour, independently of
the project's own Binance client.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from treasury.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    default_config,
)

START_MS = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC, on a minute boundary

# Fast, deterministic, no limits: most tests are about semantics, not rate limits.
BASE_CONFIG: dict[str, Any] = {
    "timings": {"processing_s": "2", "failure_share": "0", "rejection_share": "0", "seed": 7},
    "rate_limits": {"enabled": False},
    "journal_fsync": False,
}

WL = default_config().accounts["default"]
USDT_TRX = WL.whitelisted("USDT", "TRX")[0].address
USDT_ETH = WL.whitelisted("USDT", "ETH")[0].address
XRP_ENTRY = WL.whitelisted("XRP", "XRP")[0]


def default_accounts() -> list[dict[str, Any]]:
    """A fresh copy of the built-in config's ``accounts`` section, to change in a test."""
    text = resources.files("treasury.sandbox").joinpath("default_config.json").read_text("utf-8")
    accounts: list[dict[str, Any]] = json.loads(text)["accounts"]
    return copy.deepcopy(accounts)


def accounts_with(**changes: object) -> list[dict[str, Any]]:
    """The built-in accounts with ``changes`` merged into account ``default``."""
    accounts = default_accounts()
    accounts[0].update(changes)
    return accounts


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def encode(params: Mapping[str, object] | list[tuple[str, object]]) -> str:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    return urlencode([(k, str(v)) for k, v in pairs], quote_via=quote)


class Client:
    """Raw Binance-style requests against a sandbox."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        now_ms: Callable[[], int],
        key: str = DEFAULT_API_KEY,
        secret: str = DEFAULT_API_SECRET,
    ) -> None:
        self.http = http
        self.now_ms = now_ms
        self.key = key
        self.secret = secret

    def signed_query(
        self,
        params: Mapping[str, object] | None = None,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> str:
        query = encode({**(params or {}), "timestamp": timestamp or self.now_ms()})
        return f"{query}&signature={sign(secret or self.secret, query)}"

    async def get(
        self, path: str, params: Mapping[str, object] | None = None, **kw: Any
    ) -> httpx.Response:
        headers = kw.pop("headers", {"X-MBX-APIKEY": self.key})
        return await self.http.get(f"{path}?{self.signed_query(params, **kw)}", headers=headers)

    async def post(
        self, path: str, params: Mapping[str, object] | None = None, **kw: Any
    ) -> httpx.Response:
        headers = kw.pop("headers", {"X-MBX-APIKEY": self.key})
        return await self.http.post(f"{path}?{self.signed_query(params, **kw)}", headers=headers)

    async def apply(self, **params: object) -> httpx.Response:
        return await self.post("/sapi/v1/capital/withdraw/apply", params)

    async def history(self, **params: object) -> list[dict[str, Any]]:
        response = await self.get("/sapi/v1/capital/withdraw/history", params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()
        return items

    async def free(self, coin: str) -> Decimal:
        """The spot wallet's free balance (``GET /api/v3/account``)."""
        response = await self.get("/api/v3/account")
        balances = {b["asset"]: Decimal(b["free"]) for b in response.json()["balances"]}
        return balances.get(coin, Decimal(0))

    async def funding_assets(self, **params: object) -> list[dict[str, Any]]:
        response = await self.post("/sapi/v1/asset/get-funding-asset", params)
        assert response.status_code == 200, response.text
        assets: list[dict[str, Any]] = response.json()
        return assets

    async def funding(self, coin: str) -> Decimal:
        """The funding wallet's free balance (``get-funding-asset``; absent means zero)."""
        rows = await self.funding_assets(asset=coin)
        return Decimal(rows[0]["free"]) if rows else Decimal(0)


def usdt_trx(amount: str = "25", **extra: object) -> dict[str, object]:
    return {"coin": "USDT", "network": "TRX", "address": USDT_TRX, "amount": amount, **extra}


def error_code(response: httpx.Response) -> int:
    code: int = response.json()["code"]
    return code
