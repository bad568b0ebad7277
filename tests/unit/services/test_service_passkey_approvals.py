"""Passkey approvals through the services, on the memory ledger with a manual clock:
invites expire and are single use, a stale challenge (too old, or the intent changed) and
a sign count that does not grow are refused at recording, two passkeys release the intent
and one does not."""

from __future__ import annotations

import base64
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from services_world import World

from treasury.domain.policy import CoinPolicy, Policy
from treasury.domain.policy_text import canonical
from treasury.domain.status import Status
from treasury.services import operators
from treasury.services.admin import Refused
from treasury.services.approvals import (
    PasskeyAssertion,
    passkey_challenge,
    record_passkey_approval,
)
from treasury.services.policy import apply_text

sys.path.insert(0, str(Path(__file__).parents[1]))
from webauthn_authenticator import ORIGIN, RP_ID, Authenticator

POLICY = Policy(default=CoinPolicy(approval_threshold=Decimal(5), approvals_required=2))


def public_key() -> str:
    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


async def enrol(world: World, name: str) -> Authenticator:
    await operators.add(world.ledger, name, public_key(), actor="cli:admin")
    made = await operators.invite(world.ledger, name, actor="cli:admin")
    auth = Authenticator()
    cdj, att = auth.register(operators.registration_challenge(made.token))
    await operators.register_passkey(
        world.ledger,
        made.token,
        client_data_json=cdj,
        attestation_object=att,
        origin=ORIGIN,
        rp_id=RP_ID,
    )
    return auth


async def awaiting(world: World, amount: str = "10") -> int:
    intent = await world.enqueue(amount, requested_by="alice")
    await world.ledger.intents.transition(
        intent.id, Status.AWAITING_APPROVAL, reason="needs approval", actor="test"
    )
    return intent.id


async def assertion(world: World, auth: Authenticator, intent_id: int) -> PasskeyAssertion:
    challenge, issued_at = await passkey_challenge(world.ledger, intent_id)
    cdj, data, sig = auth.get_assertion(challenge)
    return PasskeyAssertion(auth.credential_id, cdj, data, sig, issued_at)


@pytest.fixture
async def with_policy(world: World) -> World:
    await apply_text(world.ledger, canonical(POLICY), actor="cli:admin", reason="test")
    return world


async def test_two_passkeys_release_one_does_not(with_policy: World) -> None:
    w = with_policy
    bob, carol = await enrol(w, "bob"), await enrol(w, "carol")
    intent_id = await awaiting(w)
    first = await record_passkey_approval(w.ledger, intent_id, await assertion(w, bob, intent_id))
    assert (first.approvers, first.released) == (("bob",), False)
    second = await record_passkey_approval(
        w.ledger, intent_id, await assertion(w, carol, intent_id)
    )
    assert second.released and second.approvers == ("bob", "carol")
    assert (await w.ledger.intents.get(intent_id)).status is Status.QUEUED


async def test_a_challenge_issued_too_long_ago_is_stale(with_policy: World) -> None:
    w = with_policy
    bob = await enrol(w, "bob")
    intent_id = await awaiting(w)
    late = await assertion(w, bob, intent_id)
    w.clock.advance(minutes=11)
    with pytest.raises(Refused, match="stale challenge"):
        await record_passkey_approval(w.ledger, intent_id, late)


async def test_an_assertion_for_the_intent_before_it_changed_is_stale(with_policy: World) -> None:
    w = with_policy
    bob = await enrol(w, "bob")
    intent_id = await awaiting(w)
    before = await assertion(w, bob, intent_id)
    await w.ledger.intents.update_fields(
        intent_id, expect_status=Status.AWAITING_APPROVAL, fields={"wallet": "funding"}
    )
    with pytest.raises(Refused, match="stale challenge"):
        await record_passkey_approval(w.ledger, intent_id, before)


async def test_a_sign_count_that_does_not_grow_is_refused(with_policy: World) -> None:
    w = with_policy
    bob = await enrol(w, "bob")
    one, two = await awaiting(w), await awaiting(w)
    older = await assertion(w, bob, one)
    newer = await assertion(w, bob, two)
    await record_passkey_approval(w.ledger, two, newer)
    with pytest.raises(Refused, match="sign count"):
        await record_passkey_approval(w.ledger, one, older)
    [stored] = await w.ledger.passkeys.all("bob")
    assert stored.sign_count == bob.sign_count


async def test_invites_expire_and_are_single_use(with_policy: World) -> None:
    w = with_policy
    await operators.add(w.ledger, "bob", public_key(), actor="cli:admin")
    made = await operators.invite(w.ledger, "bob", actor="cli:admin")
    cdj, att = Authenticator().register(operators.registration_challenge(made.token))
    w.clock.advance(minutes=31)
    with pytest.raises(Refused, match="expired"):
        await operators.register_passkey(
            w.ledger,
            made.token,
            client_data_json=cdj,
            attestation_object=att,
            origin=ORIGIN,
            rp_id=RP_ID,
        )
    with pytest.raises(Refused, match="outside"):
        await operators.invite(
            w.ledger,
            "bob",
            actor="cli:admin",
            expires=made.invite.expires_at - made.invite.expires_at,
        )
    assert made.token not in repr(made)
