"""Request parameters and signatures, checked over the raw bytes exactly as received.

Binance signs the *percent-encoded* query string concatenated (no separator) with the
raw form body, and since 2026-01-15 rejects a signature made over the un-encoded text
(reference §1). So nothing here decodes before verifying: the payload is the received
query string up to ``&signature=`` (which must be the last query parameter) plus the
received body with its ``signature=`` pair cut out. Decoding only happens afterwards, to
read parameter values; a key in both places takes the query string's value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from treasury.sandbox import errors

_SIG = b"signature="


@dataclass(frozen=True)
class ParsedRequest:
    params: dict[str, str]  # decoded, without ``signature``
    payload: bytes  # what the client must have signed
    signature: str | None  # decoded signature value
    signature_misplaced: bool  # in the query string but not last


def parse_request(query: bytes, body: bytes) -> ParsedRequest:
    """Split signature from payload and decode the parameters.

    Raises:
        ApiError: -1101 for a key given twice in one place, -1100 for undecodable text.
    """
    signature: str | None = None
    misplaced = False
    head, _, last = query.rpartition(b"&")
    query_segments = query.split(b"&") if query else []
    if last.startswith(_SIG):
        query_payload = head
        signature = _decode(last[len(_SIG) :], "signature")
        query_segments = query_segments[:-1]
    else:
        query_payload = query
        misplaced = any(seg.startswith(_SIG) for seg in query_segments)
    body_segments = body.split(b"&") if body else []
    kept = [seg for seg in body_segments if not seg.startswith(_SIG)]
    if signature is None and len(kept) != len(body_segments):
        raw = next(seg for seg in body_segments if seg.startswith(_SIG))
        signature = _decode(raw[len(_SIG) :], "signature")
        body_payload = b"&".join(kept)
    else:
        body_payload = body
    params = _decode_pairs(kept)
    params.update(_decode_pairs([s for s in query_segments if not s.startswith(_SIG)]))
    return ParsedRequest(params, query_payload + body_payload, signature, misplaced)


def _decode_pairs(segments: list[bytes]) -> dict[str, str]:
    params: dict[str, str] = {}
    for seg in segments:
        if not seg:
            continue
        raw_key, _, raw_value = seg.partition(b"=")
        key = _decode(raw_key, "parameter name")
        if key in params:
            raise errors.duplicate_parameter()
        params[key] = _decode(raw_value, key)
    return params


def _decode(raw: bytes, name: str) -> str:
    try:
        return unquote_plus(raw.decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        raise errors.illegal_characters(name, "percent-encoded UTF-8") from None


def hmac_sha256_hex(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


class Verifier:
    """Checks one account's signatures: HMAC-SHA256 (hex), Ed25519 and RSA (both base64).

    An account may hold several kinds of key; a signature is valid when any of them
    verifies it. RSA is Binance's RSASSA-PKCS1-v1_5 with SHA-256 over the same payload.
    """

    def __init__(
        self,
        hmac_secret: str | None,
        ed25519_public_pem: str | None,
        rsa_public_pem: str | None = None,
    ) -> None:
        self._secret = hmac_secret
        self._ed25519: Ed25519PublicKey | None = None
        self._rsa: RSAPublicKey | None = None
        if ed25519_public_pem is not None:
            key = load_pem_public_key(ed25519_public_pem.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 public key")
            self._ed25519 = key
        if rsa_public_pem is not None:
            rsa_key = load_pem_public_key(rsa_public_pem.encode())
            if not isinstance(rsa_key, RSAPublicKey):
                raise ValueError("not an RSA public key")
            self._rsa = rsa_key

    def verify(self, payload: bytes, signature: str) -> bool:
        return (
            self._verify_hmac(payload, signature)
            or self._verify_ed25519(payload, signature)
            or self._verify_rsa(payload, signature)
        )

    def _verify_hmac(self, payload: bytes, signature: str) -> bool:
        if self._secret is None:
            return False
        expected = hmac_sha256_hex(self._secret, payload)
        return hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8"))

    def _verify_ed25519(self, payload: bytes, signature: str) -> bool:
        if self._ed25519 is None:
            return False
        raw = _base64(signature)
        if raw is None:
            return False
        try:
            self._ed25519.verify(raw, payload)
        except (InvalidSignature, ValueError):  # ValueError: malformed signature bytes
            return False
        return True

    def _verify_rsa(self, payload: bytes, signature: str) -> bool:
        if self._rsa is None:
            return False
        raw = _base64(signature)
        if raw is None:
            return False
        try:
            self._rsa.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):  # ValueError: malformed signature bytes
            return False
        return True


def _base64(signature: str) -> bytes | None:
    """The signature's bytes, or None when it is not strict base64 (so it cannot verify)."""
    try:
        return base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
