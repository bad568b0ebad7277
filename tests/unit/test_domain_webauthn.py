"""Passkeys: registration and assertions refused for every reason that matters, challenges
bound to what is approved, and passkey approvals counted like signed ones."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from webauthn_authenticator import ORIGIN, RP_ID, UP, UV, Authenticator, cbor

from treasury.domain import webauthn as wa
from treasury.domain.approval_proof import Approval, count, count_entry, entry_statement, statement
from treasury.domain.errors import InvalidField
from treasury.domain.intent import Intent
from treasury.domain.status import Status

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
INTENT = Intent(
    id=7,
    coin="USDT",
    network="TRX",
    address="TXyzAbc123",
    address_tag=None,
    amount=Decimal("500.10"),
    account="default",
    request_id="r-7",
    requested_by="alice",
    note=None,
    status=Status.AWAITING_APPROVAL,
    status_reason=None,
    withdraw_order_id=None,
    exchange_withdraw_id=None,
    tx_id=None,
    fee=None,
    created_at=T0,
    updated_at=T0,
)
CHALLENGE = b"c" * 32


def register(auth: Authenticator, **kw: object) -> wa.Credential:
    cdj, att = auth.register(CHALLENGE, **kw)  # type: ignore[arg-type]
    return wa.parse_registration(cdj, att, expected_challenge=CHALLENGE, origin=ORIGIN, rp_id=RP_ID)


def refused_registration(match: str, cdj: bytes, att: bytes) -> None:
    with pytest.raises(wa.WebAuthnError, match=match):
        wa.parse_registration(cdj, att, expected_challenge=CHALLENGE, origin=ORIGIN, rp_id=RP_ID)


# ---- CBOR --------------------------------------------------------------------------------


def test_cbor_roundtrip_of_the_subset() -> None:
    value = {1: 2, -1: [b"x", "y", True, False, None, -300, 2**40], "k": {}}
    assert wa.cbor_decode(cbor(value)) == value


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (cbor(1) + b"\x00", "trailing bytes"),
        (b"\x5a\xff\xff\xff\xff", "announced"),  # a byte string of 4 GiB
        (b"\x9b" + b"\xff" * 8, "too many"),  # an array of 2**64 - 1 items
        (b"\xfb" + b"\0" * 8, "float"),
        (b"\xc0\x00", "tag"),
        (b"\x5f\x41\x00\xff", "indefinite"),
        (b"\x81" * 20 + b"\x00", "deeper"),
        (b"\xa2\x01\x00\x01\x00", "duplicate"),
        (b"\x63\xff\xfe\xfd", "UTF-8"),
        (b"", "announced"),
    ],
)
def test_malformed_cbor_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(wa.WebAuthnError, match=match):
        wa.cbor_decode(data)


def test_webauthn_error_is_an_invalid_field() -> None:
    assert issubclass(wa.WebAuthnError, InvalidField)


# ---- registration ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", [wa.ES256, wa.EDDSA])
def test_registration_of_es256_and_eddsa(alg: int) -> None:
    auth = Authenticator(alg=alg)
    cred = register(auth)
    assert (cred.credential_id, cred.alg, cred.sign_count) == (auth.credential_id, alg, 1)
    assert cred.user_verified and (cred.rp_id, cred.origin) == (RP_ID, ORIGIN)


def test_packed_self_attestation_is_accepted_and_checked() -> None:
    auth = Authenticator()
    assert register(auth, fmt="packed").alg == wa.ES256
    cdj, att = auth.register(CHALLENGE, fmt="packed")
    doc = wa.cbor_decode(att)
    doc["attStmt"]["sig"] = auth.sign(b"something else")
    refused_registration("self-attestation: the signature", cdj, cbor(doc))
    doc["attStmt"] = {"alg": wa.ES256, "sig": b"x", "x5c": [b"cert"]}
    refused_registration("certificate chain", cdj, cbor(doc))


def test_registration_refusals() -> None:
    auth = Authenticator()
    refused_registration("type is 'webauthn.get'", *auth.register(CHALLENGE, kind="webauthn.get"))
    refused_registration("challenge", *auth.register(b"other"))
    refused_registration("origin", *auth.register(CHALLENGE, origin="https://evil.example"))
    refused_registration("relying party", *auth.register(CHALLENGE, rp_id="evil.example"))
    refused_registration("presence", *auth.register(CHALLENGE, flags=UV))
    refused_registration("verification", *auth.register(CHALLENGE, flags=UP))
    refused_registration("'fido-u2f' is not accepted", *auth.register(CHALLENGE, fmt="fido-u2f"))
    rs256 = {1: 3, 3: -257, -1: b"n", -2: b"\x01\0\x01"}
    refused_registration("algorithm -257", *auth.register(CHALLENGE, cose_key=rs256))
    cdj, att = auth.register(CHALLENGE)
    refused_registration("trailing", cdj, att + b"\0")
    doc = wa.cbor_decode(att)
    doc["authData"] = doc["authData"][:32] + bytes([UP | UV]) + doc["authData"][33:37]
    refused_registration("attested credential data", cdj, cbor(doc))
    refused_registration("not UTF-8 JSON", b"\xff", att)


def test_bad_cose_keys_are_refused() -> None:
    auth = Authenticator()
    key = auth.cose_key()
    off_curve = {**key, -3: bytes(32)}
    refused_registration("not a point", *auth.register(CHALLENGE, cose_key=off_curve))
    wrong_curve = {**key, -1: 2}
    refused_registration("P-256", *auth.register(CHALLENGE, cose_key=wrong_curve))


# ---- assertions --------------------------------------------------------------------------


def verify(cred: wa.Credential, cdj: bytes, auth_data: bytes, sig: bytes) -> int:
    return wa.verify_assertion(
        cred,
        client_data_json=cdj,
        authenticator_data=auth_data,
        signature=sig,
        expected_challenge=CHALLENGE,
        origin=ORIGIN,
        rp_id=RP_ID,
    )


@pytest.mark.parametrize("alg", [wa.ES256, wa.EDDSA])
def test_an_assertion_verifies_and_returns_the_new_sign_count(alg: int) -> None:
    auth = Authenticator(alg=alg)
    cred = register(auth)
    assert verify(cred, *auth.get_assertion(CHALLENGE)) == 2


def test_assertion_refusals() -> None:
    auth = Authenticator()
    cred = register(auth)
    cases = [
        ("type is 'webauthn.create'", auth.get_assertion(CHALLENGE, kind="webauthn.create")),
        ("challenge", auth.get_assertion(b"another challenge")),
        ("origin", auth.get_assertion(CHALLENGE, origin="https://evil.example")),
        ("relying party", auth.get_assertion(CHALLENGE, rp_id="evil.example")),
        ("presence", auth.get_assertion(CHALLENGE, flags=UV)),
        ("verification", auth.get_assertion(CHALLENGE, flags=UP)),
    ]
    for match, (cdj, data, sig) in cases:
        with pytest.raises(wa.WebAuthnError, match=match):
            verify(cred, cdj, data, sig)
    cdj, data, sig = auth.get_assertion(CHALLENGE)
    with pytest.raises(wa.WebAuthnError, match="signature does not verify"):
        verify(cred, cdj, data, Authenticator().sign(data + hashlib.sha256(cdj).digest()))
    with pytest.raises(wa.WebAuthnError, match="signature does not verify"):
        verify(cred, cdj, data, b"\x30\x00")
    with pytest.raises(wa.WebAuthnError, match="trailing"):
        verify(cred, cdj, data + b"\0", sig)
    with pytest.raises(wa.WebAuthnError, match="at least 37"):
        verify(cred, cdj, data[:36], sig)


def test_a_sign_count_that_does_not_grow_is_refused() -> None:
    auth = Authenticator()
    cred = register(auth)
    first = auth.get_assertion(CHALLENGE)
    second = auth.get_assertion(CHALLENGE)
    seen = dataclasses.replace(cred, sign_count=verify(cred, *second))
    with pytest.raises(wa.WebAuthnError, match="cloned"):
        verify(seen, *first)  # an older count: a cloned authenticator or a replay
    with pytest.raises(wa.WebAuthnError, match="cloned"):
        verify(seen, *second)  # the same count again


def test_an_authenticator_without_a_counter_passes_with_zero() -> None:
    auth = Authenticator(counts=False)
    cred = register(auth)
    assert cred.sign_count == 0
    assert verify(cred, *auth.get_assertion(CHALLENGE)) == 0


def test_secrets_are_not_in_reprs() -> None:
    auth = Authenticator()
    proof = auth.approve(b"s", T0)
    assert proof.signature.hex() not in repr(proof)
    assert "public_key" not in repr(register(auth))


# ---- challenges bound to what is approved ------------------------------------------------


def test_the_challenge_format() -> None:
    expected = hashlib.sha256(
        b"treasury webauthn approval v1\n2026-11-30T12:00:00.000000Z\nSTATEMENT"
    ).digest()
    assert wa.approval_challenge(b"STATEMENT", T0) == expected
    assert wa.approval_challenge(b"STATEMENT", T0 + timedelta(microseconds=1)) != expected
    with pytest.raises(wa.WebAuthnError, match="time zone"):
        wa.approval_challenge(b"x", datetime(2026, 1, 1))


def test_freshness() -> None:
    s = statement(INTENT)
    c = wa.approval_challenge(s, T0)
    assert wa.challenge_is_fresh(s, c, issued_at=T0, recorded_at=T0 + timedelta(minutes=9))
    assert not wa.challenge_is_fresh(s, c, issued_at=T0, recorded_at=T0 + timedelta(minutes=11))
    assert not wa.challenge_is_fresh(s, c, issued_at=T0, recorded_at=T0 - timedelta(seconds=1))
    changed = statement(dataclasses.replace(INTENT, amount=Decimal("500.11")))
    assert not wa.challenge_is_fresh(changed, c, issued_at=T0, recorded_at=T0)
    assert "stale challenge" in (wa.freshness_problem(T0, T0 + timedelta(hours=1)) or "")


def test_a_proof_roundtrips_through_json() -> None:
    proof = Authenticator().approve(b"s", T0)
    assert wa.parse_proof(proof.to_json()) == proof
    assert wa.is_passkey_proof(proof.to_json())
    for bad, match in [
        ("{", "not JSON"),
        ('{"webauthn": 2}', "version 1"),
        ('{"webauthn": 1, "credential_id": 5}', "credential_id"),
    ]:
        with pytest.raises(wa.WebAuthnError, match=match):
            wa.parse_proof(bad)


# ---- counting passkey approvals ----------------------------------------------------------

BOB, CAROL = Authenticator(), Authenticator()
CREDS = {"bob": [BOB.credential()], "carol": [CAROL.credential()], "alice": []}
OPS = {"alice": b"a" * 32, "bob": b"b" * 32, "carol": b"c" * 32}


def by_passkey(
    who: str,
    auth: Authenticator,
    *,
    intent: Intent = INTENT,
    issued: datetime = T0,
    recorded: datetime | None = None,
) -> Approval:
    proof = auth.approve(statement(intent), issued)
    return Approval(who, proof.to_json(), recorded or issued + timedelta(minutes=1))


def test_two_passkey_approvals_count() -> None:
    c = count(INTENT, [by_passkey("bob", BOB), by_passkey("carol", CAROL)], OPS, CREDS)
    assert c.valid == ("bob", "carol") and not c.ignored


def test_a_passkey_approval_is_stale_when_the_intent_changed() -> None:
    changed = dataclasses.replace(INTENT, address="TOther")
    c = count(changed, [by_passkey("bob", BOB)], OPS, CREDS)
    assert c.valid == () and "stale challenge" in c.ignored[0]


def test_a_passkey_approval_is_stale_when_issued_too_long_before_it_was_recorded() -> None:
    late = by_passkey("bob", BOB, recorded=T0 + timedelta(minutes=11))
    early = by_passkey("bob", BOB, recorded=T0 - timedelta(minutes=1))
    for a in (late, early):
        c = count(INTENT, [a], OPS, CREDS)
        assert c.valid == () and "stale challenge" in c.ignored[0]


def test_an_approval_made_for_another_intent_does_not_count() -> None:
    other = dataclasses.replace(INTENT, id=8, request_id="r-8")
    c = count(INTENT, [by_passkey("bob", BOB, intent=other)], OPS, CREDS)
    assert c.valid == () and "stale challenge" in c.ignored[0]


def test_the_same_assertion_twice_counts_once() -> None:
    a = by_passkey("bob", BOB)
    c = count(INTENT, [a, a], OPS, CREDS)
    assert c.valid == ("bob",) and "approved twice" in c.ignored[0]


def test_someone_elses_passkey_does_not_count() -> None:
    c = count(INTENT, [by_passkey("carol", BOB)], OPS, CREDS)
    assert c.valid == () and "not one of theirs" in c.ignored[0]
    c = count(INTENT, [by_passkey("bob", BOB)], OPS, {"bob": []})  # removed
    assert c.valid == () and "not one of theirs" in c.ignored[0]


def test_the_requester_never_counts_even_with_a_passkey() -> None:
    alice = Authenticator()
    creds = {**CREDS, "alice": [alice.credential()]}
    c = count(INTENT, [by_passkey("alice", alice)], OPS, creds)
    assert c.valid == () and "requested" in c.ignored[0]


def test_one_person_counts_once_whatever_mix_of_keys() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    import base64

    signed = Approval("bob", base64.b64encode(key.sign(statement(INTENT))).decode())
    c = count(INTENT, [signed, by_passkey("bob", BOB)], {**OPS, "bob": raw}, CREDS)
    assert c.valid == ("bob",) and "approved twice" in c.ignored[0]


def test_a_tampered_proof_does_not_count() -> None:
    a = by_passkey("bob", BOB)
    proof = wa.parse_proof(a.signature or "")
    tampered = dataclasses.replace(proof, issued_at=T0 + timedelta(seconds=1))
    c = count(INTENT, [Approval("bob", tampered.to_json(), a.recorded_at)], OPS, CREDS)
    assert c.valid == ()
    c = count(INTENT, [Approval("bob", "{not json", a.recorded_at)], OPS, CREDS)
    assert c.valid == () and "not JSON" in c.ignored[0]


def test_entry_approvals_by_passkey() -> None:
    from treasury.ports.store import WhitelistEntry

    entry = WhitelistEntry(
        id=3,
        coin="USDT",
        network="TRX",
        address="TX",
        address_tag=None,
        label="",
        source="manual",
        enabled=True,
        usable_from=None,
        created_at=T0,
        updated_at=T0,
        account="default",
        version=2,
        changed_by=None,
        change_reason=None,
    )
    proof = BOB.approve(entry_statement(entry), T0)
    a = Approval("bob", proof.to_json(), T0)
    assert count_entry(entry, [a], OPS, makers=["carol"], passkeys=CREDS).valid == ("bob",)
    newer = dataclasses.replace(entry, version=3)
    assert count_entry(newer, [a], OPS, makers=["carol"], passkeys=CREDS).valid == ()


def test_random_bytes_never_crash_the_decoder() -> None:
    for _ in range(300):
        data = os.urandom(int.from_bytes(os.urandom(1), "big"))
        with contextlib.suppress(wa.WebAuthnError):
            wa.cbor_decode(data)
