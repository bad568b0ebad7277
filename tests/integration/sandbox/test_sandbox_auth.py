"""Signature, API-key and timing checks, exactly as Binance answers them."""

from __future__ import annotations

import base64
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from sandbox_testkit import BASE_CONFIG, START_MS, Client, encode, error_code, sign, usdt_trx

from treasury.sandbox import (
    DEFAULT_API_SECRET,
    DEMO_ED25519_PRIVATE_KEY_PEM,
    ConfigError,
    ManualClock,
    parse_config,
    running_sandbox,
)
from treasury.sandbox.signing import hmac_sha256_hex

ACCOUNT = "/api/v3/account"


def test_hmac_matches_binance_published_vector() -> None:
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    assert hmac_sha256_hex(secret, payload.encode()) == (
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


async def test_valid_signature_is_accepted(client: Client) -> None:
    response = await client.get(ACCOUNT)
    assert response.status_code == 200, response.text
    assert response.json()["canWithdraw"] is True


async def test_signature_is_case_insensitive_hex(client: Client, http: httpx.AsyncClient) -> None:
    query = encode({"timestamp": client.now_ms()})
    url = f"{ACCOUNT}?{query}&signature={sign(DEFAULT_API_SECRET, query).upper()}"
    response = await http.get(url, headers={"X-MBX-APIKEY": client.key})
    assert response.status_code == 200, response.text


async def test_wrong_secret_is_1022(client: Client) -> None:
    response = await client.get(ACCOUNT, secret="not-the-secret")
    assert response.status_code == 400
    assert response.json() == {"code": -1022, "msg": "Signature for this request is not valid."}


async def test_missing_api_key_is_2014(client: Client) -> None:
    response = await client.get(ACCOUNT, headers={})
    assert response.status_code == 401
    assert response.json() == {"code": -2014, "msg": "API-key format invalid."}


async def test_unknown_api_key_is_2015(client: Client) -> None:
    response = await client.get(ACCOUNT, headers={"X-MBX-APIKEY": "who-is-this"})
    assert response.status_code == 401
    assert response.json()["code"] == -2015
    assert response.json()["msg"] == "Invalid API-key, IP, or permissions for action."


async def test_missing_signature_and_timestamp(client: Client, http: httpx.AsyncClient) -> None:
    headers = {"X-MBX-APIKEY": client.key}
    no_sig = await http.get(f"{ACCOUNT}?timestamp={client.now_ms()}", headers=headers)
    assert error_code(no_sig) == -1102
    query = "recvWindow=5000"
    no_ts = await http.get(
        f"{ACCOUNT}?{query}&signature={sign(DEFAULT_API_SECRET, query)}", headers=headers
    )
    assert error_code(no_ts) == -1102
    assert "timestamp" in no_ts.json()["msg"]


async def test_stale_timestamp_is_1021(client: Client, clock: ManualClock) -> None:
    response = await client.get(ACCOUNT, timestamp=clock.now_ms() - 5001)
    assert response.status_code == 400
    assert response.json() == {
        "code": -1021,
        "msg": "Timestamp for this request is outside of the recvWindow.",
    }
    edge = await client.get(ACCOUNT, timestamp=clock.now_ms() - 5000)
    assert edge.status_code == 200


async def test_recv_window_widens_and_caps(client: Client, clock: ManualClock) -> None:
    old = clock.now_ms() - 30_000
    assert (await client.get(ACCOUNT, {"recvWindow": 60000}, timestamp=old)).status_code == 200
    too_big = await client.get(ACCOUNT, {"recvWindow": 60001})
    assert error_code(too_big) == -1131


async def test_future_timestamp_is_1021(client: Client, clock: ManualClock) -> None:
    response = await client.get(ACCOUNT, timestamp=clock.now_ms() + 1000)
    assert response.json() == {
        "code": -1021,
        "msg": "Timestamp for this request was 1000ms ahead of the server's time.",
    }
    assert (await client.get(ACCOUNT, timestamp=clock.now_ms() + 999)).status_code == 200


async def test_signature_must_be_last_in_query(client: Client, http: httpx.AsyncClient) -> None:
    query = encode({"timestamp": client.now_ms()})
    url = f"{ACCOUNT}?signature={sign(DEFAULT_API_SECRET, query)}&{query}"
    response = await http.get(url, headers={"X-MBX-APIKEY": client.key})
    assert error_code(response) == -1022


async def test_signing_the_unencoded_payload_is_1022(
    client: Client, http: httpx.AsyncClient
) -> None:
    params = usdt_trx(withdrawOrderId="intent 7/a+b", timestamp=client.now_ms())
    sent = encode(params)
    raw = "&".join(f"{k}={v}" for k, v in params.items())
    assert raw != sent
    response = await http.post(
        f"/sapi/v1/capital/withdraw/apply?{sent}&signature={sign(DEFAULT_API_SECRET, raw)}",
        headers={"X-MBX-APIKEY": client.key},
    )
    assert error_code(response) == -1022
    good = await http.post(
        f"/sapi/v1/capital/withdraw/apply?{sent}&signature={sign(DEFAULT_API_SECRET, sent)}",
        headers={"X-MBX-APIKEY": client.key},
    )
    assert good.status_code == 200, good.text


async def test_params_in_form_body_with_mixed_query(
    client: Client, http: httpx.AsyncClient
) -> None:
    query = encode({"timestamp": client.now_ms(), "recvWindow": 5000})
    body = encode(usdt_trx(withdrawOrderId="body-1"))
    signature = sign(DEFAULT_API_SECRET, query + body)
    response = await http.post(
        f"/sapi/v1/capital/withdraw/apply?{query}",
        content=f"{body}&signature={signature}",
        headers={
            "X-MBX-APIKEY": client.key,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 200, response.text
    [item] = await client.history(withdrawOrderId="body-1")
    assert (item["amount"], item["transactionFee"]) == ("24", "1")  # net: 25 asked, fee 1


async def test_ed25519_signature(client: Client, http: httpx.AsyncClient) -> None:
    key = load_pem_private_key(DEMO_ED25519_PRIVATE_KEY_PEM.encode(), None)
    query = encode({"omitZeroBalances": "true", "timestamp": client.now_ms()})
    signature = base64.b64encode(key.sign(query.encode())).decode()  # type: ignore[union-attr,call-arg]
    url = f"{ACCOUNT}?{query}&signature={quote(signature, safe='')}"
    response = await http.get(url, headers={"X-MBX-APIKEY": client.key})
    assert response.status_code == 200, response.text
    tampered = url.replace("omitZeroBalances=true", "omitZeroBalances=false")
    bad = await http.get(tampered, headers={"X-MBX-APIKEY": client.key})
    assert error_code(bad) == -1022


async def test_duplicate_query_parameter_is_1101(client: Client, http: httpx.AsyncClient) -> None:
    query = f"timestamp={client.now_ms()}&timestamp={client.now_ms()}"
    url = f"{ACCOUNT}?{query}&signature={sign(DEFAULT_API_SECRET, query)}"
    response = await http.get(url, headers={"X-MBX-APIKEY": client.key})
    assert error_code(response) == -1101


@pytest.mark.parametrize("path", ["/api/v3/time", "/sapi/v1/system/status"])
async def test_unsigned_endpoints_need_no_key(http: httpx.AsyncClient, path: str) -> None:
    assert (await http.get(path)).status_code == 200


def test_withdraw_payload_vector_h3() -> None:
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = (
        "coin=USDT&address=0x94df8b352de7f46f64b01d3666bf6e936e44ce60&amount=8.91"
        "&withdrawOrderId=WITHDRAWtest123&network=ETH&recvWindow=5000&timestamp=1499827319559"
    )
    assert sign(secret, payload) == (
        "5bb188f6d14157e778270c5e7f93a66d397596ded2871daa4deca24db63020dd"
    )


# -- RSA keys -----------------------------------------------------------------------------

RSA_KEY = "rsa-api-key"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _rsa_signature(key: rsa.RSAPrivateKey, payload: str) -> str:
    """Binance's RSA form: base64 of PKCS#1 v1.5 / SHA-256, percent-encoded for the query."""
    raw = key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())
    return quote(base64.b64encode(raw).decode("ascii"), safe="")


def _rsa_account(public_pem: str) -> dict[str, object]:
    return {
        "name": "rsa", "api_key": RSA_KEY, "rsa_public_key": public_pem,
        "balances": {"USDT": "100"}, "whitelist_enabled": False,
    }  # fmt: skip


async def test_rsa_signature(rsa_key: rsa.RSAPrivateKey) -> None:
    config = parse_config({**BASE_CONFIG, "accounts": [_rsa_account(_public_pem(rsa_key))]})
    clock = ManualClock(START_MS)
    headers = {"X-MBX-APIKEY": RSA_KEY}
    async with (
        running_sandbox(config=config, clock=clock) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        query = encode({"omitZeroBalances": "true", "timestamp": clock.now_ms()})
        url = f"{ACCOUNT}?{query}&signature={_rsa_signature(rsa_key, query)}"
        response = await http.get(url, headers=headers)
        assert response.status_code == 200, response.text
        tampered = url.replace("omitZeroBalances=true", "omitZeroBalances=false")
        assert error_code(await http.get(tampered, headers=headers)) == -1022
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = f"{ACCOUNT}?{query}&signature={_rsa_signature(stranger, query)}"
        assert (await http.get(forged, headers=headers)).json() == {
            "code": -1022,
            "msg": "Signature for this request is not valid.",
        }
        hmac_style = f"{ACCOUNT}?{query}&signature={sign('anything', query)}"
        assert error_code(await http.get(hmac_style, headers=headers)) == -1022
        # a POST signed over query + body, as for HMAC and Ed25519
        query = encode({"timestamp": clock.now_ms()})
        body = encode(usdt_trx("20", withdrawOrderId="rsa-1"))
        applied = await http.post(
            f"/sapi/v1/capital/withdraw/apply?{query}",
            content=f"{body}&signature={_rsa_signature(rsa_key, query + body)}",
            headers=headers | {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert applied.status_code == 200, applied.text
        assert [w.withdraw_order_id for w in sb.ledger().withdrawals] == ["rsa-1"]


def test_an_account_may_have_an_rsa_key_only(rsa_key: rsa.RSAPrivateKey) -> None:
    account = parse_config({"accounts": [_rsa_account(_public_pem(rsa_key))]}).accounts["rsa"]
    assert account.hmac_secret is None and account.ed25519_public_key is None
    assert account.rsa_public_key == _public_pem(rsa_key)


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("not-pem", "is not a PEM public key"),
        ("ed25519", "is not an RSA public key"),
        ("rsa-1024", "must have at least 2048 bits (Binance's minimum), has 1024"),
    ],
)
def test_a_bad_rsa_key_names_the_field(kind: str, problem: str) -> None:
    pem = {
        "not-pem": lambda: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
        "ed25519": lambda: _public_pem(ed25519.Ed25519PrivateKey.generate()),
        "rsa-1024": lambda: _public_pem(
            rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
        ),
    }[kind]()
    with pytest.raises(ConfigError) as caught:
        parse_config({"accounts": [_rsa_account(pem)]})
    assert (caught.value.field, caught.value.problem) == ("accounts[0].rsa_public_key", problem)
