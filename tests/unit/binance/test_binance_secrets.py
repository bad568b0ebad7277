"""No secret, signature or signed query in logs, reprs or exceptions; the API key masked."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import respx
import structlog

from treasury.adapters.binance import (
    BinanceClient,
    ExchangeError,
    HmacSigner,
    RetryPolicy,
    load_signer,
    mask_api_key,
)
from treasury.domain.exchange import WithdrawRequest

E1_KEY_BASE64 = "MC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u"
E1_PEM = f"-----BEGIN PRIVATE KEY-----\n{E1_KEY_BASE64}\n-----END PRIVATE KEY-----\n".encode()


def echo_query(status: int, code: int) -> Callable[[httpx.Request], httpx.Response]:
    """A server that quotes the request back in its message (the worst case)."""

    def answer(request: httpx.Request) -> httpx.Response:
        query = request.url.query.decode()
        return httpx.Response(status, json={"code": code, "msg": f"bad: {query} {unquote(query)}"})

    return answer


def mock_session_routes(router: respx.MockRouter, wire: Any) -> None:
    account_answers: list[Any] = [
        httpx.Response(400, json={"code": -1021, "msg": "Timestamp outside of the recvWindow"}),
        httpx.Response(
            200,
            json={
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "balances": [{"asset": "BTC", "free": "1", "locked": "0"}],
            },
        ),
        echo_query(401, -2015),
    ]
    router.get("/api/v3/account").mock(side_effect=account_answers)
    router.get("/sapi/v1/system/status").mock(
        return_value=httpx.Response(200, json={"status": 0, "msg": "normal"})
    )
    router.get("/sapi/v1/capital/config/getall").mock(return_value=httpx.Response(200, json=[]))
    router.get(wire.history_path).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0"}),
            httpx.Response(200, json=[]),
        ]
    )
    router.get("/sapi/v1/capital/withdraw/quota").mock(side_effect=echo_query(200, 0))
    apply_answers: list[Any] = [
        httpx.Response(200, json={"id": "abc"}),
        echo_query(400, -4035),
        echo_query(400, -9999),
        echo_query(503, -1008),
        httpx.ReadTimeout("timed out"),
        echo_query(200, 0),
    ]
    router.post(wire.apply_path).mock(side_effect=apply_answers)


async def run_session(
    client: BinanceClient, make_request: Callable[..., Any]
) -> list[BaseException]:
    errors: list[BaseException] = []
    await client.sync_clock()
    await client.account()
    await client.system_status()
    await client.coin_configs()
    await client.withdraw_history(withdraw_order_id="wd-1")
    for call in (client.account, client.withdraw_quota):
        try:
            await call()
        except ExchangeError as exc:
            errors.append(exc)
    for i in range(6):
        try:
            await client.withdraw(make_request(withdraw_order_id=f"wd-{i}", address_tag="a+b c"))
        except ExchangeError as exc:
            errors.append(exc)
    return errors


def forbidden_strings(router: respx.MockRouter, wire: Any) -> list[str]:
    secrets = [wire.api_secret, wire.api_key, E1_KEY_BASE64]
    for call in router.calls:
        query = call.request.url.query.decode()
        if "signature=" not in query:
            continue
        _, wire_signature = wire.split_signature(call.request)
        secrets += [query, wire_signature, unquote(wire_signature)]
    return secrets


@pytest.mark.parametrize("signer_kind", ["hmac", "ed25519"])
@pytest.mark.parametrize("capture", ["structlog", "stdout"])
async def test_a_full_session_leaks_nothing(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    signer_kind: str,
    capture: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    signer = (
        HmacSigner(wire.api_secret)
        if signer_kind == "hmac"
        else load_signer(api_secret=None, private_key_pem=E1_PEM, passphrase=None)
    )
    client = make_client(signer=signer, retry=RetryPolicy(max_retries=1, backoff_s=0.0))
    mock_session_routes(router, wire)
    if capture == "structlog":
        with structlog.testing.capture_logs() as events:
            errors = await run_session(client, make_request)
        logged = "\n".join(repr(event) for event in events)
        assert any(e["event"] == "binance.call" for e in events)
    else:
        errors = await run_session(client, make_request)
        logged = capsys.readouterr().out
        assert "binance.call" in logged
    logged += "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    logged += caplog.text

    assert len(errors) == 7
    shown = [repr(client), repr(signer), str(signer), logged]
    for error in errors:
        shown += [str(error), repr(error), "".join(traceback.format_exception(error))]
    everything = "\n".join(shown)

    forbidden = forbidden_strings(router, wire)
    assert len(forbidden) > 3 * 10  # the session really signed requests
    for secret in forbidden:
        assert secret not in everything
    assert mask_api_key(wire.api_key) in repr(client)
    assert "<redacted>" in " ".join(str(e) for e in errors)  # the echoed query was scrubbed
    # httpx did log the signed URL, and the redaction filter cut the signature out
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    signed_lines = [line for line in httpx_lines if "signature=" in line]
    assert signed_lines and all("signature=<redacted>" in line for line in signed_lines)


def test_api_key_mask() -> None:
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    assert mask_api_key(key) == "vmPU…Eh8A"
    assert mask_api_key("short-key") == "…"


def test_httpx_client_with_default_params_is_refused(wire: Any) -> None:
    http = httpx.AsyncClient(params={"x": "1"})
    with pytest.raises(ValueError, match="query params"):
        BinanceClient(
            http, base_url=wire.base_url, api_key=wire.api_key, signer=HmacSigner(wire.api_secret)
        )
