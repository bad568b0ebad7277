"""A software WebAuthn authenticator (and browser) for tests: a P-256 (or Ed25519) key
made with ``cryptography``, clientDataJSON, authenticator data with its rpIdHash, flags,
sign count and attested credential data, a CBOR encoder for the attestation object
(``fmt`` none, or packed self-attestation) and assertions."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from treasury.domain import webauthn as wa

RP_ID = "treasury.example"
ORIGIN = "https://treasury.example"
UP, UV, AT, ED = 0x01, 0x04, 0x40, 0x80


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError(n)


def cbor(value: Any) -> bytes:
    """The canonical-enough CBOR of ints, bytes, text, lists, dicts, bools and None."""
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


def client_data(
    kind: str,
    challenge: bytes,
    origin: str = ORIGIN,
    **extra: Any,
) -> bytes:
    return json.dumps(
        {"type": kind, "challenge": b64url(challenge), "origin": origin, **extra}
    ).encode()


@dataclass
class Authenticator:
    alg: int = wa.ES256
    rp_id: str = RP_ID
    origin: str = ORIGIN
    sign_count: int = 0
    counts: bool = True  # keeps a sign count (synced passkeys send 0 always)
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))

    def __post_init__(self) -> None:
        self.key: Any = (
            ec.generate_private_key(ec.SECP256R1())
            if self.alg == wa.ES256
            else Ed25519PrivateKey.generate()
        )

    def cose_key(self) -> dict[int, Any]:
        if self.alg == wa.ES256:
            nums = self.key.public_key().public_numbers()
            return {
                1: 2,
                3: wa.ES256,
                -1: 1,
                -2: nums.x.to_bytes(32, "big"),
                -3: nums.y.to_bytes(32, "big"),
            }
        from cryptography.hazmat.primitives import serialization

        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {1: 1, 3: wa.EDDSA, -1: 6, -2: raw}

    def sign(self, message: bytes) -> bytes:
        if self.alg == wa.ES256:
            return self.key.sign(message, ec.ECDSA(hashes.SHA256()))
        return self.key.sign(message)

    def auth_data(
        self,
        *,
        flags: int = UP | UV,
        rp_id: str | None = None,
        attested: bool = False,
        cose_key: dict[int, Any] | None = None,
    ) -> bytes:
        if self.counts:
            self.sign_count += 1
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        data = rp_hash + bytes([flags | (AT if attested else 0)])
        data += struct.pack(">I", self.sign_count if self.counts else 0)
        if attested:
            data += b"\0" * 16 + struct.pack(">H", len(self.credential_id)) + self.credential_id
            data += cbor(cose_key or self.cose_key())
        return data

    def register(
        self,
        challenge: bytes,
        *,
        fmt: str = "none",
        flags: int = UP | UV,
        kind: str = "webauthn.create",
        origin: str | None = None,
        rp_id: str | None = None,
        cose_key: dict[int, Any] | None = None,
    ) -> tuple[bytes, bytes]:
        """(clientDataJSON, attestationObject) of ``navigator.credentials.create``."""
        cdj = client_data(kind, challenge, origin or self.origin)
        auth = self.auth_data(flags=flags, rp_id=rp_id, attested=True, cose_key=cose_key)
        statement: dict[str, Any] = {}
        if fmt == "packed":
            sig = self.sign(auth + hashlib.sha256(cdj).digest())
            statement = {"alg": self.alg, "sig": sig}
        return cdj, cbor({"fmt": fmt, "attStmt": statement, "authData": auth})

    def get_assertion(
        self,
        challenge: bytes,
        *,
        flags: int = UP | UV,
        kind: str = "webauthn.get",
        origin: str | None = None,
        rp_id: str | None = None,
    ) -> tuple[bytes, bytes, bytes]:
        """(clientDataJSON, authenticatorData, signature) of ``navigator.credentials.get``."""
        cdj = client_data(kind, challenge, origin or self.origin)
        auth = self.auth_data(flags=flags, rp_id=rp_id)
        return cdj, auth, self.sign(auth + hashlib.sha256(cdj).digest())

    def approve(self, statement: bytes, issued_at: datetime) -> wa.PasskeyProof:
        """The proof of an approval of ``statement``, challenge issued at ``issued_at``."""
        cdj, auth, sig = self.get_assertion(wa.approval_challenge(statement, issued_at))
        return wa.PasskeyProof(self.credential_id, auth, cdj, sig, issued_at)

    def credential(self) -> wa.Credential:
        """Registered as the browser would (fmt none)."""
        challenge = os.urandom(32)
        cdj, att = self.register(challenge)
        return wa.parse_registration(
            cdj, att, expected_challenge=challenge, origin=self.origin, rp_id=self.rp_id
        )
