"""Signers against published vectors, and key loading that never shows key material."""

from __future__ import annotations

import base64
import pickle
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from treasury.adapters.binance.encoding import ParamValue, encode_query, sign_query
from treasury.adapters.binance.signing import (
    Ed25519Signer,
    HmacSigner,
    RsaSigner,
    SigningKeyError,
    load_signer,
)

ParamList = list[tuple[str, ParamValue]]

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
H1_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
H2_PAYLOAD = (
    "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT"
    "&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
)
H3_PAYLOAD = (
    "coin=USDT&address=0x94df8b352de7f46f64b01d3666bf6e936e44ce60&amount=8.91"
    "&withdrawOrderId=WITHDRAWtest123&network=ETH&recvWindow=5000&timestamp=1499827319559"
)
E1_KEY_BASE64 = "MC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u"
E1_PEM = (f"-----BEGIN PRIVATE KEY-----\n{E1_KEY_BASE64}\n-----END PRIVATE KEY-----\n").encode()
E1_SIGNATURE = (
    "4MHXelVVcpkdwuLbl6n73HQUXUf1dse2PCgT1DYqW9w8AVZ1RACFGM+5UdlGPrQHrgtS3CvsRURC1oj73j8gCA=="
)
E2_PAYLOAD = (
    "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=1&price=0.2"
    "&timestamp=1668481559918&recvWindow=5000"
)
E2_SIGNATURE = (
    "inDT086KVIP8vgUfw5sV3VTkescWztiAGlf4x8FLKHM4NInsn0c1kYVLoGMO8cyjfR6vmTku2YQE0gtfVVlfCw=="
)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(
            H1_PAYLOAD, "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71", id="H1"
        ),
        pytest.param(
            H2_PAYLOAD, "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3", id="H2"
        ),
        pytest.param(
            H3_PAYLOAD, "5bb188f6d14157e778270c5e7f93a66d397596ded2871daa4deca24db63020dd", id="H3"
        ),
    ],
)
def test_hmac_vectors(payload: str, expected: str) -> None:
    assert HmacSigner(SECRET).sign(payload.encode()) == expected


def test_h2_payload_is_what_the_encoder_builds_from_unicode() -> None:
    params: ParamList = [
        ("symbol", "１２３４５６"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", 1),
        ("price", Decimal("0.1")),
        ("recvWindow", 5000),
        ("timestamp", 1499827319559),
    ]
    assert encode_query(params) == H2_PAYLOAD
    signed = sign_query(params, HmacSigner(SECRET))
    assert signed.text == (
        H2_PAYLOAD + "&signature=e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    )


def test_h3_withdraw_payload_matches_the_encoder() -> None:
    params: ParamList = [
        ("coin", "USDT"),
        ("address", "0x94df8b352de7f46f64b01d3666bf6e936e44ce60"),
        ("amount", Decimal("8.910")),
        ("withdrawOrderId", "WITHDRAWtest123"),
        ("network", "ETH"),
        ("recvWindow", 5000),
        ("timestamp", 1499827319559),
    ]
    assert encode_query(params) == H3_PAYLOAD


def test_hmac_accepts_a_secret_str() -> None:
    assert HmacSigner(SecretStr(SECRET)).sign(b"x") == HmacSigner(SECRET).sign(b"x")


def test_ed25519_fix_vector_e1() -> None:
    signer = load_signer(api_secret=None, private_key_pem=E1_PEM, passphrase=None)
    assert isinstance(signer, Ed25519Signer)
    payload = b"\x01".join([b"A", b"EXAMPLE", b"SPOT", b"1", b"20240627-11:17:25.223"])
    assert signer.sign(payload) == E1_SIGNATURE


def test_ed25519_rest_vector_e2_is_percent_encoded_on_the_wire() -> None:
    signer = load_signer(api_secret=None, private_key_pem=E1_PEM, passphrase=None)
    assert signer.sign(E2_PAYLOAD.encode()) == E2_SIGNATURE
    params: ParamList = [
        ("symbol", "BTCUSDT"),
        ("side", "SELL"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", 1),
        ("price", Decimal("0.2")),
        ("timestamp", 1668481559918),
        ("recvWindow", 5000),
    ]
    signed = sign_query(params, signer)
    assert signed.text.startswith(E2_PAYLOAD + "&signature=")
    assert signed.text.endswith("VVlfCw%3D%3D")
    assert signed.signature == E2_SIGNATURE


def test_rsa_signature_verifies_and_is_percent_encoded(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = RsaSigner(rsa_key)
    seen_plus = seen_slash = False
    for n in range(40):
        params: ParamList = [
            ("coin", "BTC"),
            ("amount", Decimal(n + 1)),
            ("timestamp", 1700000000000 + n),
        ]
        signed = sign_query(params, signer)
        payload, _, wire_signature = signed.text.rpartition("&signature=")
        assert signed.signature is not None
        raw = base64.b64decode(signed.signature)
        rsa_key.public_key().verify(raw, payload.encode(), padding.PKCS1v15(), hashes.SHA256())
        assert "+" not in wire_signature and "/" not in wire_signature
        assert "=" not in wire_signature  # the 256-byte signature ends in "==" → %3D%3D
        assert wire_signature.endswith("%3D%3D")
        assert wire_signature == (
            signed.signature.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        )
        seen_plus |= "+" in signed.signature
        seen_slash |= "/" in signed.signature
        if seen_plus and seen_slash:
            break
    assert seen_plus and seen_slash


def test_rsa_key_loads_from_pkcs8_pem(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = load_signer(api_secret=None, private_key_pem=pem, passphrase=None)
    assert isinstance(signer, RsaSigner)


def test_small_rsa_key_is_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    with pytest.raises(SigningKeyError, match="1024 bits"):
        RsaSigner(small)


def _encrypted_pem(passphrase: bytes) -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    return key, pem


def test_passphrase_protected_pem_loads_with_the_right_passphrase() -> None:
    key, pem = _encrypted_pem(b"correct horse")
    signer = load_signer(api_secret=None, private_key_pem=pem, passphrase=b"correct horse")
    signature = base64.b64decode(signer.sign(b"payload"))
    key.public_key().verify(signature, b"payload")


@pytest.mark.parametrize(
    ("passphrase", "message"),
    [(b"wrong", "wrong passphrase"), (None, "passphrase is required")],
)
def test_passphrase_problems_are_named_without_key_material(
    passphrase: bytes | None, message: str
) -> None:
    _, pem = _encrypted_pem(b"correct horse")
    with pytest.raises(SigningKeyError, match=message) as caught:
        load_signer(api_secret=None, private_key_pem=pem, passphrase=passphrase)
    text = str(caught.value)
    assert "correct horse" not in text
    assert not any(line in text for line in pem.decode().splitlines()[1:-1])
    assert caught.value.__suppress_context__


def test_passphrase_for_an_unencrypted_key_is_an_error() -> None:
    with pytest.raises(SigningKeyError, match="not encrypted"):
        load_signer(api_secret=None, private_key_pem=E1_PEM, passphrase=b"x")


def test_unsupported_key_type_is_named() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(SigningKeyError, match="unsupported private key type EC") as caught:
        load_signer(api_secret=None, private_key_pem=pem, passphrase=None)
    assert "Ed25519 or RSA" in str(caught.value)
    assert pem.decode().splitlines()[1] not in str(caught.value)


def test_garbage_pem_is_refused() -> None:
    with pytest.raises(SigningKeyError, match="not a valid PEM"):
        load_signer(api_secret=None, private_key_pem=b"not a key", passphrase=None)


@pytest.mark.parametrize(
    ("secret", "pem", "passphrase", "message"),
    [
        (SECRET, E1_PEM, None, "not both"),
        (None, None, None, "no signing key"),
        (SECRET, None, b"pw", "passphrase applies to a private key"),
        ("", None, None, "empty"),
    ],
)
def test_settings_combinations_are_checked(
    secret: str | None, pem: bytes | None, passphrase: bytes | None, message: str
) -> None:
    with pytest.raises(SigningKeyError, match=message):
        load_signer(api_secret=secret, private_key_pem=pem, passphrase=passphrase)


def test_hmac_secret_loads_as_hmac_signer() -> None:
    signer = load_signer(api_secret=SECRET, private_key_pem=None, passphrase=None)
    assert isinstance(signer, HmacSigner)


def test_signers_never_show_or_pickle_their_key(rsa_key: rsa.RSAPrivateKey) -> None:
    signers = [
        HmacSigner(SECRET),
        load_signer(api_secret=None, private_key_pem=E1_PEM, passphrase=None),
        RsaSigner(rsa_key),
    ]
    for signer in signers:
        shown = f"{signer!r} {signer}"
        assert "<redacted>" in shown
        assert SECRET not in shown and E1_KEY_BASE64 not in shown
        assert not hasattr(signer, "__dict__")
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(signer)
