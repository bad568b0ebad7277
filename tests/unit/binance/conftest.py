"""Fixtures for the Binance adapter tests: a respx router, a client factory, helpers."""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import respx

from treasury.adapters.binance import BinanceClient, HmacSigner, RetryPolicy
from treasury.domain.exchange import WithdrawRequest
from treasury.domain.fee_payer import FeePayer
from treasury.domain.wallet import Wallet

BASE_URL = "https://api.binance.test"
# Published test credentials from Binance's REST docs (vector H1); not a real account.
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
APPLY_PATH = "/sapi/v1/capital/withdraw/apply"
HISTORY_PATH = "/sapi/v1/capital/withdraw/history"


class Wire:
    """Helpers to read what a captured request carried, byte for byte."""

    base_url = BASE_URL
    api_key = API_KEY
    api_secret = API_SECRET
    apply_path = APPLY_PATH
    history_path = HISTORY_PATH

    @staticmethod
    def raw_query(request: httpx.Request) -> str:
        return request.url.query.decode("ascii")

    @staticmethod
    def params(request: httpx.Request) -> dict[str, str]:
        """Decoded parameters (for assertions on values, not on encoding)."""
        pairs = (part.split("=", 1) for part in Wire.raw_query(request).split("&") if part)
        return {unquote(k): unquote(v) for k, v in pairs}

    @staticmethod
    def split_signature(request: httpx.Request) -> tuple[str, str]:
        """(the signed payload, the signature as it appears on the wire)."""
        query = Wire.raw_query(request)
        payload, _, signature = query.rpartition("&signature=")
        return payload, signature

    @staticmethod
    def hmac_of(payload: str) -> str:
        return hmac.new(API_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def wire() -> type[Wire]:
    return Wire


def server_time_response(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"serverTime": int(time.time() * 1000)})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        mock.get("/api/v3/time", name="time").mock(side_effect=server_time_response)
        yield mock


@pytest.fixture(scope="session")
def ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()  # built once: loading CA certificates is slow


@pytest.fixture
async def http(
    router: respx.MockRouter, ssl_context: ssl.SSLContext
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0, verify=ssl_context) as client:
        yield client


@pytest.fixture
def make_client(http: httpx.AsyncClient) -> Callable[..., BinanceClient]:
    def make(**overrides: Any) -> BinanceClient:
        settings: dict[str, Any] = {
            "base_url": BASE_URL,
            "api_key": API_KEY,
            "signer": HmacSigner(API_SECRET),
            "retry": RetryPolicy(backoff_s=0.0),
            "withdraw_rate": 1000.0,  # pacing has its own tests; keep the others fast
        }
        settings.update(overrides)
        return BinanceClient(http, **settings)

    return make


@pytest.fixture
def client(make_client: Callable[..., BinanceClient]) -> BinanceClient:
    return make_client()


@pytest.fixture
def make_request() -> Callable[..., WithdrawRequest]:
    def make(**overrides: Any) -> WithdrawRequest:
        fields: dict[str, Any] = {
            "coin": "USDT",
            "network": "ETH",
            "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
            "address_tag": None,
            "amount": Decimal("8.91"),
            "withdraw_order_id": "intent-42_a",
            "wallet": Wallet.SPOT,
            "fee_payer": FeePayer.SENDER,
        }
        fields.update(overrides)
        return WithdrawRequest(**fields)

    return make
