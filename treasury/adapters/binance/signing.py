"""Request signers: HMAC-SHA256 (hex), Ed25519 and RSA PKCS#1 v1.5 SHA-256 (base64).

A signer turns the exact payload bytes (the percent-encoded query string, plus the body,
which this adapter always leaves empty) into the signature *text*; ``encoding`` puts it in
the query, percent-encoded. Signers hold key material, so none of them can be printed,
compared by value or pickled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import NoReturn, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

MIN_RSA_BITS = 2048  # Binance accepts 2048- and 4096-bit RSA keys (KEYS)


class Signer(Protocol):
    def sign(self, payload: bytes) -> str:
        """The signature of ``payload`` as text, before percent-encoding."""
        ...


class SupportsSecretValue(Protocol):
    """Anything like pydantic's ``SecretStr``."""

    def get_secret_value(self) -> str: ...


class SigningKeyError(ValueError):
    """The configured key cannot be used. The message never contains key material."""


class _KeyHolder:
    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} holds a secret key and cannot be pickled")


class HmacSigner(_KeyHolder):
    """HMAC-SHA256 with the API secret; the signature is lower-case hex."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | SupportsSecretValue) -> None:
        value = secret if isinstance(secret, str) else secret.get_secret_value()
        if not value:
            raise SigningKeyError("the API secret is empty")
        self._key = value.encode("utf-8")

    def sign(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()


class Ed25519Signer(_KeyHolder):
    """Pure Ed25519 (RFC 8032); the signature is standard base64."""

    __slots__ = ("_key",)

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._key.sign(payload)).decode("ascii")


class RsaSigner(_KeyHolder):
    """RSASSA-PKCS1-v1_5 with SHA-256; the signature is standard base64."""

    __slots__ = ("_key",)

    def __init__(self, private_key: RSAPrivateKey) -> None:
        if private_key.key_size < MIN_RSA_BITS:
            raise SigningKeyError(
                f"RSA key has {private_key.key_size} bits; Binance needs at least {MIN_RSA_BITS}"
            )
        self._key = private_key

    def sign(self, payload: bytes) -> str:
        raw = self._key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode("ascii")


def load_signer(
    *,
    api_secret: str | SupportsSecretValue | None,
    private_key_pem: bytes | None,
    passphrase: bytes | None,
) -> Signer:
    """Build the signer the settings ask for: an HMAC secret or a PEM private key.

    Args:
        api_secret: the HMAC secret key (Binance calls HMAC keys deprecated).
        private_key_pem: a PEM private key, Ed25519 or RSA (PKCS#8 or traditional).
        passphrase: the PEM's passphrase when it is encrypted.

    Raises:
        SigningKeyError: both or neither key given, a passphrase without a PEM, an
            encrypted PEM without (or with a wrong) passphrase, or an unsupported key type.
    """
    if api_secret is not None and private_key_pem is not None:
        raise SigningKeyError("configure either an API secret (HMAC) or a private key, not both")
    if private_key_pem is None:
        if api_secret is None:
            raise SigningKeyError("no signing key configured: need an API secret or a private key")
        if passphrase is not None:
            raise SigningKeyError("a passphrase applies to a private key, not to an API secret")
        return HmacSigner(api_secret)
    key = _load_private_key(private_key_pem, passphrase)
    if isinstance(key, Ed25519PrivateKey):
        return Ed25519Signer(key)
    if isinstance(key, RSAPrivateKey):
        return RsaSigner(key)
    raise SigningKeyError(
        f"unsupported private key type {type(key).__name__}: Binance accepts Ed25519 or RSA"
    )


def _load_private_key(pem: bytes, passphrase: bytes | None) -> object:
    # cryptography's own messages are safe, but ``from None`` keeps its frames (and the
    # key bytes in their locals) out of any traceback renderer that shows locals.
    try:
        return serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError:
        if passphrase:
            problem = "a passphrase was given but the private key is not encrypted"
        else:
            problem = "the private key is encrypted: a passphrase is required"
        raise SigningKeyError(problem) from None
    except UnsupportedAlgorithm:
        raise SigningKeyError("the private key uses an unsupported algorithm") from None
    except ValueError:
        if passphrase:
            problem = "cannot decrypt the private key: wrong passphrase or corrupt PEM"
        else:
            problem = "cannot load the private key: not a valid PEM private key"
        raise SigningKeyError(problem) from None
