"""Passkeys (WebAuthn): registering an operator's credential and checking their assertions.

An operator registers a passkey (``parse_registration``: attestation ``none`` or ``packed``
self-attestation; the key ES256 on P-256, or EdDSA on Ed25519) and approves by signing,
in their browser, a challenge bound to exactly what is approved: ``approval_challenge`` is
the sha256 of a domain-separated encoding of the approval statement
(``approval_proof.statement`` and its kin) and the time the challenge was issued. The
assertion (``verify_assertion``) is checked like a CLI signature: when it is recorded
(with the authenticator's sign count, which must grow) and again, inside the transaction
that commits the send, against the statement as it is then, so an assertion made for an
older version of the intent, or issued more than ``MAX_AGE`` before it was recorded, does
not count ("stale challenge").

User presence and user verification (a PIN or a biometric on the authenticator) are both
required, at registration and at every assertion.

Pure: a small CBOR decoder of our own (the subset attestation objects and COSE keys use)
and the ``cryptography`` package; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from treasury.domain.errors import InvalidField

ES256 = -7
EDDSA = -8
ALGORITHMS = {ES256: "ES256", EDDSA: "EdDSA"}
MAX_AGE = timedelta(minutes=10)  # issued at most this long before it is recorded
CHALLENGE_PREFIX = b"treasury webauthn approval v1\n"
PROOF_VERSION = 1

FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified
FLAG_AT = 0x40  # attested credential data included
FLAG_ED = 0x80  # extension data included

MAX_CBOR_DEPTH = 8
MAX_CBOR_ITEMS = 256  # per array or map
MAX_INPUT = 64 * 1024  # clientDataJSON, attestation object, authenticator data
MAX_CREDENTIAL_ID = 1023  # WebAuthn's own bound


class WebAuthnError(InvalidField):
    """A registration or an assertion that is refused; the message names what failed
    (never key material nor a signature)."""

    def __init__(self, problem: str) -> None:
        super().__init__("passkey", problem)


# ---- CBOR (the subset WebAuthn uses) -----------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise WebAuthnError(
                f"malformed CBOR: {n} bytes announced at offset {self.pos}, "
                f"{len(self.data) - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def item(self, depth: int = 0) -> Any:
        if depth > MAX_CBOR_DEPTH:
            raise WebAuthnError(f"malformed CBOR: nested deeper than {MAX_CBOR_DEPTH}")
        start = self.pos
        head = self.take(1)[0]
        major, info = head >> 5, head & 0x1F
        if major == 7:
            simple = {20: False, 21: True, 22: None}
            if info not in simple:
                raise WebAuthnError(
                    f"malformed CBOR: simple value or float {info} at offset {start} "
                    "is not accepted"
                )
            return simple[info]
        if info < 24:
            arg = info
        elif info <= 27:
            size = 1 << (info - 24)
            arg = int.from_bytes(self.take(size), "big")
        else:
            raise WebAuthnError(
                f"malformed CBOR: indefinite or reserved length at offset {start} is not accepted"
            )
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            raw = self.take(arg)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise WebAuthnError(
                    f"malformed CBOR: text at offset {start} is not UTF-8"
                ) from None
        if major == 4:
            self._count(arg, start)
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            self._count(arg, start)
            out: dict[Any, Any] = {}
            for _ in range(arg):
                key = self.item(depth + 1)
                if not isinstance(key, int | str) or isinstance(key, bool):
                    raise WebAuthnError(
                        f"malformed CBOR: a map key at offset {start} is not an integer or text"
                    )
                if key in out:
                    raise WebAuthnError(f"malformed CBOR: duplicate map key {key!r}")
                out[key] = self.item(depth + 1)
            return out
        raise WebAuthnError(f"malformed CBOR: tag (major type 6) at offset {start} is not accepted")

    def _count(self, n: int, start: int) -> None:
        if n > MAX_CBOR_ITEMS or n > len(self.data) - self.pos:
            raise WebAuthnError(f"malformed CBOR: {n} items announced at offset {start} (too many)")


def cbor_decode_prefix(data: bytes) -> tuple[Any, int]:
    """The first CBOR item of ``data`` and where it ends."""
    if len(data) > MAX_INPUT:
        raise WebAuthnError(f"malformed CBOR: {len(data)} bytes, more than {MAX_INPUT}")
    reader = _Reader(data)
    return reader.item(), reader.pos


def cbor_decode(data: bytes) -> Any:
    """Exactly one CBOR item: unsigned and negative integers, byte and text strings,
    arrays, maps (integer or text keys, no duplicates), true, false and null. Floats,
    tags, indefinite lengths and trailing bytes are refused (``WebAuthnError``)."""
    value, end = cbor_decode_prefix(data)
    if end != len(data):
        raise WebAuthnError(f"malformed CBOR: {len(data) - end} trailing bytes")
    return value


# ---- values ------------------------------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def from_b64url(text: str, what: str) -> bytes:
    if not isinstance(text, str) or len(text) > 4 * MAX_INPUT:
        raise WebAuthnError(f"{what} is not base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise WebAuthnError(f"{what} is not base64url text") from None


@dataclass(frozen=True)
class Credential:
    """A registered passkey: its id, public key (SubjectPublicKeyInfo DER), COSE algorithm
    and the last sign count seen; ``rp_id`` and ``origin`` as registered (an assertion of
    it is checked against them)."""

    credential_id: bytes
    public_key: bytes = dataclasses.field(repr=False)
    alg: int
    sign_count: int
    user_verified: bool = True
    rp_id: str = ""
    origin: str = ""


@dataclass(frozen=True)
class _AuthData:
    rp_id_hash: bytes
    flags: int
    sign_count: int
    credential_id: bytes | None = None
    cose_key: dict[Any, Any] | None = None


def _auth_data(data: bytes) -> _AuthData:
    if len(data) > MAX_INPUT:
        raise WebAuthnError(f"authenticator data is {len(data)} bytes, more than {MAX_INPUT}")
    if len(data) < 37:
        raise WebAuthnError(f"authenticator data is {len(data)} bytes, at least 37 expected")
    rp_id_hash, flags = data[:32], data[32]
    sign_count = int.from_bytes(data[33:37], "big")
    rest = data[37:]
    credential_id = cose_key = None
    if flags & FLAG_AT:
        if len(rest) < 18:
            raise WebAuthnError("attested credential data is truncated")
        n = int.from_bytes(rest[16:18], "big")
        if n == 0 or n > MAX_CREDENTIAL_ID or len(rest) < 18 + n:
            raise WebAuthnError(f"attested credential data: a credential id of {n} bytes")
        credential_id = rest[18 : 18 + n]
        key, end = cbor_decode_prefix(rest[18 + n :])
        if not isinstance(key, dict):
            raise WebAuthnError("the credential public key is not a COSE key (a CBOR map)")
        cose_key = key
        rest = rest[18 + n + end :]
    if flags & FLAG_ED:
        if not isinstance(cbor_decode(rest), dict):
            raise WebAuthnError("extension data is not a CBOR map")
        rest = b""
    if rest:
        raise WebAuthnError(f"authenticator data has {len(rest)} trailing bytes")
    return _AuthData(rp_id_hash, flags, sign_count, credential_id, cose_key)


def _cose_public_key(key: dict[Any, Any]) -> tuple[int, bytes]:
    """(alg, SPKI DER) of a COSE key: EC2 P-256 ES256, or OKP Ed25519 EdDSA."""
    alg = key.get(3)
    if alg == ES256:
        x, y = key.get(-2), key.get(-3)
        if key.get(1) != 2 or key.get(-1) != 1:
            raise WebAuthnError("an ES256 key must be EC2 on curve P-256 (COSE kty 2, crv 1)")
        if not (isinstance(x, bytes) and isinstance(y, bytes) and len(x) == len(y) == 32):
            raise WebAuthnError("the ES256 key's coordinates are not 32 bytes each")
        try:
            public: Any = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b"\x04" + x + y
            )
        except ValueError:
            raise WebAuthnError("the ES256 key is not a point on P-256") from None
    elif alg == EDDSA:
        x = key.get(-2)
        if key.get(1) != 1 or key.get(-1) != 6:
            raise WebAuthnError("an EdDSA key must be OKP Ed25519 (COSE kty 1, crv 6)")
        if not (isinstance(x, bytes) and len(x) == 32):
            raise WebAuthnError("the Ed25519 key is not 32 bytes")
        public = Ed25519PublicKey.from_public_bytes(x)
    else:
        raise WebAuthnError(
            f"COSE algorithm {alg!r} is not accepted (ES256 = -7 or EdDSA = -8 only)"
        )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return alg, der


def _signature_ok(alg: int, public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        key: Any = serialization.load_der_public_key(public_key)
        if alg == ES256 and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif alg == EDDSA and isinstance(key, Ed25519PublicKey):
            key.verify(signature, message)
        else:
            return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True


def _client_data(raw: bytes, *, kind: str, expected_challenge: bytes, origin: str) -> None:
    if len(raw) > MAX_INPUT:
        raise WebAuthnError(f"clientDataJSON is {len(raw)} bytes, more than {MAX_INPUT}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebAuthnError("clientDataJSON is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise WebAuthnError("clientDataJSON is not a JSON object")
    if data.get("type") != kind:
        raise WebAuthnError(f"clientDataJSON type is {data.get('type')!r}, {kind!r} expected")
    challenge = data.get("challenge")
    if not isinstance(challenge, str) or from_b64url(challenge, "the challenge") != (
        expected_challenge
    ):
        raise WebAuthnError("the challenge is not the one issued (stale challenge)")
    if data.get("origin") != origin:
        raise WebAuthnError(f"origin is {data.get('origin')!r}, {origin!r} expected")
    if data.get("crossOrigin") is True:
        raise WebAuthnError("a cross-origin ceremony is not accepted")


def _flags(auth: _AuthData, rp_id: str) -> None:
    if auth.rp_id_hash != hashlib.sha256(rp_id.encode()).digest():
        raise WebAuthnError(f"the authenticator data is not for relying party {rp_id!r}")
    if not auth.flags & FLAG_UP:
        raise WebAuthnError("user presence (UP) flag is not set")
    if not auth.flags & FLAG_UV:
        raise WebAuthnError(
            "user verification (UV) flag is not set: a PIN or biometric on the "
            "authenticator is required"
        )


def parse_registration(
    client_data_json: bytes,
    attestation_object: bytes,
    *,
    expected_challenge: bytes,
    origin: str,
    rp_id: str,
) -> Credential:
    """The credential a browser's ``navigator.credentials.create`` made, once every check
    passed: ``webauthn.create``, the issued challenge, the origin, the relying party's id
    hash, user presence and verification, attested credential data, attestation ``none``
    or ``packed`` self-attestation, and an ES256 or EdDSA key.

    Raises:
        WebAuthnError: naming the first check that failed.
    """
    _client_data(
        client_data_json,
        kind="webauthn.create",
        expected_challenge=expected_challenge,
        origin=origin,
    )
    attestation = cbor_decode(attestation_object)
    if not isinstance(attestation, dict):
        raise WebAuthnError("the attestation object is not a CBOR map")
    fmt, statement, raw_auth = (attestation.get(k) for k in ("fmt", "attStmt", "authData"))
    if not isinstance(raw_auth, bytes) or not isinstance(statement, dict):
        raise WebAuthnError("the attestation object lacks authData or attStmt")
    auth = _auth_data(raw_auth)
    _flags(auth, rp_id)
    if auth.credential_id is None or auth.cose_key is None:
        raise WebAuthnError("the authenticator data has no attested credential data (AT)")
    alg, public_key = _cose_public_key(auth.cose_key)
    if fmt == "none":
        if statement:
            raise WebAuthnError("attestation 'none' with a non-empty statement")
    elif fmt == "packed":
        if "x5c" in statement or "ecdaaKeyId" in statement:
            raise WebAuthnError(
                "attestation 'packed' with a certificate chain is not accepted: ask for "
                "attestation 'none' (or packed self-attestation)"
            )
        sig = statement.get("sig")
        if statement.get("alg") != alg or not isinstance(sig, bytes):
            raise WebAuthnError("packed self-attestation: alg or sig missing or mismatched")
        message = raw_auth + hashlib.sha256(client_data_json).digest()
        if not _signature_ok(alg, public_key, sig, message):
            raise WebAuthnError("packed self-attestation: the signature does not verify")
    else:
        raise WebAuthnError(
            f"attestation format {fmt!r} is not accepted (none, or packed self-attestation)"
        )
    return Credential(
        credential_id=auth.credential_id,
        public_key=public_key,
        alg=alg,
        sign_count=auth.sign_count,
        user_verified=bool(auth.flags & FLAG_UV),
        rp_id=rp_id,
        origin=origin,
    )


def verify_assertion(
    credential: Credential,
    *,
    client_data_json: bytes,
    authenticator_data: bytes,
    signature: bytes,
    expected_challenge: bytes,
    origin: str,
    rp_id: str,
) -> int:
    """The authenticator's new sign count, once the assertion of ``credential`` passed
    every check: ``webauthn.get``, the challenge, the origin, the relying party's id
    hash, user presence and verification, the signature over ``authenticator_data ||
    sha256(client_data_json)``, and a sign count that grew (when the authenticator keeps
    one: if the stored or the new count is non-zero, the new must be greater, else the
    authenticator may have been cloned).

    Raises:
        WebAuthnError: naming the first check that failed.
    """
    _client_data(
        client_data_json,
        kind="webauthn.get",
        expected_challenge=expected_challenge,
        origin=origin,
    )
    auth = _auth_data(authenticator_data)
    _flags(auth, rp_id)
    message = authenticator_data + hashlib.sha256(client_data_json).digest()
    if not _signature_ok(credential.alg, credential.public_key, signature, message):
        raise WebAuthnError("the assertion's signature does not verify with that passkey")
    if (credential.sign_count or auth.sign_count) and auth.sign_count <= credential.sign_count:
        raise WebAuthnError(
            f"sign count {auth.sign_count} does not exceed the {credential.sign_count} "
            "seen before: the authenticator may have been cloned (or the assertion replayed)"
        )
    return auth.sign_count


# ---- challenges bound to what is approved ------------------------------------------------


def _instant(at: datetime) -> str:
    if at.tzinfo is None:
        raise WebAuthnError("issued_at has no time zone")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def approval_challenge(statement: bytes, issued_at: datetime) -> bytes:
    """The challenge an approver's passkey signs: ``sha256(b"treasury webauthn approval
    v1\\n" + issued_at + b"\\n" + statement)``, ``issued_at`` in UTC as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. ``statement`` is ``approval_proof.statement`` (or
    ``entry_statement``): the challenge changes with anything approved."""
    return hashlib.sha256(
        CHALLENGE_PREFIX + _instant(issued_at).encode() + b"\n" + statement
    ).digest()


def freshness_problem(
    issued_at: datetime, recorded_at: datetime, max_age: timedelta = MAX_AGE
) -> str | None:
    """Why a challenge issued at ``issued_at`` was not fresh when the approval was recorded
    at ``recorded_at`` (``None``: it was). ``issued_at <= recorded_at <= issued_at +
    max_age``."""
    if recorded_at < issued_at:
        return "stale challenge: issued after the approval was recorded"
    if recorded_at - issued_at > max_age:
        return (
            f"stale challenge: issued {recorded_at - issued_at} before it was recorded "
            f"(at most {max_age})"
        )
    return None


def challenge_is_fresh(
    statement: bytes,
    client_challenge: bytes,
    *,
    issued_at: datetime,
    recorded_at: datetime,
    max_age: timedelta = MAX_AGE,
) -> bool:
    """Whether ``client_challenge`` is the challenge for ``statement`` as it is now,
    issued at most ``max_age`` before the approval was recorded."""
    return (
        client_challenge == approval_challenge(statement, issued_at)
        and freshness_problem(issued_at, recorded_at, max_age) is None
    )


# ---- a passkey approval, as stored in an approval's ``signature`` column ------------------


@dataclass(frozen=True)
class PasskeyProof:
    credential_id: bytes
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes = dataclasses.field(repr=False)
    issued_at: datetime

    def to_json(self) -> str:
        """``{"webauthn": 1, "credential_id", "authenticator_data", "client_data_json",
        "signature", "issued_at"}``: base64url fields, issued_at as in the challenge."""
        return json.dumps(
            {
                "webauthn": PROOF_VERSION,
                "credential_id": b64url(self.credential_id),
                "authenticator_data": b64url(self.authenticator_data),
                "client_data_json": b64url(self.client_data_json),
                "signature": b64url(self.signature),
                "issued_at": _instant(self.issued_at),
            },
            sort_keys=True,
            separators=(",", ":"),
        )


def is_passkey_proof(signature: str | None) -> bool:
    """Whether an approval's ``signature`` holds a passkey proof (a JSON object) rather
    than a base64 Ed25519 signature."""
    return signature is not None and signature.lstrip().startswith("{")


def parse_proof(text: str) -> PasskeyProof:
    """Raises: WebAuthnError, naming the field that is wrong."""
    if len(text) > 4 * MAX_INPUT:
        raise WebAuthnError("the passkey proof is too long")
    try:
        doc = json.loads(text)
    except ValueError:
        raise WebAuthnError("the passkey proof is not JSON") from None
    if not isinstance(doc, dict) or doc.get("webauthn") != PROOF_VERSION:
        raise WebAuthnError(f"the passkey proof is not a version {PROOF_VERSION} document")
    fields = ("credential_id", "authenticator_data", "client_data_json", "signature")
    raw = {f: from_b64url(doc.get(f), f) for f in fields}  # type: ignore[arg-type]
    issued = doc.get("issued_at")
    try:
        issued_at = datetime.strptime(str(issued), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise WebAuthnError("issued_at is not YYYY-MM-DDTHH:MM:SS.ffffffZ") from None
    return PasskeyProof(issued_at=issued_at, **raw)


def proof_problem(
    message: bytes,
    proof_text: str,
    credentials: Sequence[Credential],
    *,
    recorded_at: datetime | None,
    max_age: timedelta = MAX_AGE,
) -> str | None:
    """Why a recorded passkey approval does not prove its approver approved ``message``
    (the statement as it is now), or ``None`` when it does. ``credentials`` are the
    approver's registered, not removed, passkeys. The sign count was checked when the
    approval was recorded; this re-checks the rest: the credential is the approver's,
    the assertion verifies, its challenge is the one for ``message`` at ``issued_at``,
    and ``issued_at <= recorded_at <= issued_at + max_age``."""
    try:
        proof = parse_proof(proof_text)
    except WebAuthnError as exc:
        return str(exc)
    match = [c for c in credentials if c.credential_id == proof.credential_id]
    if not match:
        return "the passkey is not one of theirs (or it was removed)"
    if recorded_at is None:
        return "no recording time"
    stale = freshness_problem(proof.issued_at, recorded_at, max_age)
    if stale:
        return stale
    credential = dataclasses.replace(match[0], sign_count=0)
    try:
        verify_assertion(
            credential,
            client_data_json=proof.client_data_json,
            authenticator_data=proof.authenticator_data,
            signature=proof.signature,
            expected_challenge=approval_challenge(message, proof.issued_at),
            origin=credential.origin,
            rp_id=credential.rp_id,
        )
    except WebAuthnError as exc:
        if "challenge" in exc.problem:
            return "stale challenge: the passkey signed another statement or version of it"
        return exc.problem
    return None
