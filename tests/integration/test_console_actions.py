"""The console's passkeys and actions over HTTP (httpx's ASGI transport, the real app),
SQLite and PostgreSQL, with the software authenticator: registration with an invite,
sign-in (origin, replay, unknown credential, rate limit), link sessions that cannot act,
CSRF, approving intents and address-book entries with passkeys (counted as the worker
counts them), and cancel / resolve / pause / resume recorded with the operator."""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from treasury.adapters.db.console import ConsoleStore
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.domain import approval_proof as proof
from treasury.domain.rules import Pass
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.http.app import create_app
from treasury.http.console import LOOPBACK_COOKIE, READ_ONLY
from treasury.http.serve import deps_for
from treasury.ports.clock import utcnow
from treasury.ports.store import InviteUnusable
from treasury.services import operators
from treasury.services.address_book import ExchangeSeen, Trust, entry_verdict
from treasury.services.admin import Refused
from treasury.services.policy import adopt_file

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from webauthn_authenticator import Authenticator, b64url

BASE = "http://localhost:7465"
TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"
POLICY = (
    "address_book_approvals_required = 1\n"
    '[coins.USDT]\napproval_threshold = "100"\napprovals_required = 2\n'
)


def public_key() -> str:
    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


@dataclass
class Console:
    ledger: SqlLedger
    app: Any
    passkeys: dict[str, Authenticator] = field(default_factory=dict)

    def http(self, *, ip: str = "192.0.2.10", cookie: str | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        headers = {} if cookie is None else {"Cookie": f"{LOOPBACK_COOKIE}={cookie}"}
        return httpx.AsyncClient(
            transport=transport, base_url=BASE, headers=headers, follow_redirects=False
        )

    async def invite(self, name: str) -> str:
        return (await operators.invite(self.ledger, name, actor="cli:root")).token

    async def register(self, name: str) -> Authenticator:
        token = await self.invite(name)
        auth = Authenticator(origin=BASE, rp_id="localhost")
        async with self.http() as http:
            r = await register(http, auth, token)
        assert r.status_code == 200, r.text
        self.passkeys[name] = auth
        return auth

    async def sign_in(self, name: str) -> httpx.AsyncClient:
        async with self.http() as http:
            r = await sign_in(http, self.passkeys[name])
        assert r.status_code == 200, r.text
        return self.http(cookie=session_cookie(r))

    async def link_session(self, name: str) -> httpx.AsyncClient:
        token, _ = await ConsoleStore(self.ledger.engine).create_login(
            name, ttl=timedelta(minutes=5), actor="cli:root"
        )
        async with self.http() as http:
            r = await http.post("/console/login", data={"token": token})
        assert r.status_code == 303, r.text
        return self.http(cookie=session_cookie(r))


def session_cookie(r: httpx.Response) -> str:
    found = re.search(rf"{LOOPBACK_COOKIE}=([^;]+)", r.headers.get("set-cookie", ""))
    assert found, r.headers
    return found.group(1)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, html
    return found.group(1)


def outcome_of(html: str) -> str:
    found = re.search(r'<p id="outcome"[^>]*>(.*?)</p>', html, re.S)
    assert found, html
    return found.group(1).strip()


async def register(http: httpx.AsyncClient, auth: Authenticator, token: str) -> httpx.Response:
    options = await http.post("/console/register/options", json={"token": token})
    if options.status_code != 200:
        return options
    challenge = base64.urlsafe_b64decode(options.json()["challenge"] + "==")
    cdj, att = auth.register(challenge)
    return await http.post(
        "/console/register",
        json={"token": token, "clientDataJSON": b64url(cdj), "attestationObject": b64url(att)},
    )


async def sign_in_body(http: httpx.AsyncClient, auth: Authenticator, **kw: Any) -> dict[str, Any]:
    options = await http.post("/console/sign-in/options", json={})
    assert options.status_code == 200, options.text
    o = options.json()
    assert o["rpId"] == "localhost" and o["allowCredentials"] == []
    cdj, data, sig = auth.get_assertion(base64.urlsafe_b64decode(o["challenge"] + "=="), **kw)
    return {
        "challengeId": o["challengeId"],
        "credentialId": b64url(auth.credential_id),
        "clientDataJSON": b64url(cdj),
        "authenticatorData": b64url(data),
        "signature": b64url(sig),
        "userHandle": None,
    }


async def sign_in(http: httpx.AsyncClient, auth: Authenticator, **kw: Any) -> httpx.Response:
    return await http.post("/console/sign-in", json=await sign_in_body(http, auth, **kw))


async def approve_body(
    http: httpx.AsyncClient, auth: Authenticator, path: str, csrf: str, *, mine: bool = True
) -> dict[str, Any]:
    options = await http.post(f"{path}/approve/options", json={}, headers={"X-CSRF-Token": csrf})
    assert options.status_code == 200, options.text
    o = options.json()
    # the options offer the session's operator's passkeys
    assert (b64url(auth.credential_id) in [c["id"] for c in o["allowCredentials"]]) is mine
    cdj, data, sig = auth.get_assertion(base64.urlsafe_b64decode(o["challenge"] + "=="))
    return {
        "issuedAt": o["issuedAt"],
        "credentialId": b64url(auth.credential_id),
        "clientDataJSON": b64url(cdj),
        "authenticatorData": b64url(data),
        "signature": b64url(sig),
    }


async def approve(
    http: httpx.AsyncClient, auth: Authenticator, path: str, csrf: str
) -> httpx.Response:
    body = await approve_body(http, auth, path, csrf)
    return await http.post(f"{path}/approve", json=body, headers={"X-CSRF-Token": csrf})


async def enqueue(ledger: SqlLedger, amount: str, *, status: Status | None = None) -> int:
    new = validate_new_intent(
        coin="USDT", network="TRX", address=TRX, amount=amount, requested_by="alice"
    )
    intent, _ = await ledger.intents.enqueue(new, actor="cli:alice")
    if status is not None:
        await ledger.intents.transition(
            intent.id, status, reason="as the worker would", actor="worker", expect=None
        )
    return int(intent.id)


async def page_csrf(http: httpx.AsyncClient, path: str = "/console") -> str:
    r = await http.get(path)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)


@pytest.fixture
async def console(migrated_url: str) -> AsyncIterator[Console]:
    engine = create_engine(migrated_url)
    ledger = SqlLedger.over(engine)
    await adopt_file(ledger, POLICY, path="test-policy.toml")
    for name in ("alice", "bob", "carol"):
        await operators.add(ledger, name, public_key(), actor="cli:root")
    app = create_app(deps_for(ledger, cooling_s=0, console_base_url=BASE))
    try:
        yield Console(ledger, app)
    finally:
        await engine.dispose()


async def test_a_passkey_registers_once_with_an_invite_that_has_not_expired(
    console: Console,
) -> None:
    token = await console.invite("bob")
    auth = Authenticator(origin=BASE, rp_id="localhost")
    async with console.http() as http:
        page = await http.get("/console/register", params={"token": token})
        assert page.status_code == 200 and 'id="register-passkey"' in page.text
        assert f'data-token="{token}"' in page.text and "bob" in page.text
        done = await register(http, auth, token)
        assert done.status_code == 200, done.text
        assert done.json() == {
            "message": "Passkey registered for bob",
            "redirect": "/console/sign-in",
        }
        again = await register(http, Authenticator(origin=BASE, rp_id="localhost"), token)
        assert again.status_code == 403 and "used already" in again.json()["message"]
        gone = await http.get("/console/register", params={"token": token})
        assert gone.status_code == 403 and "used already" in outcome_of(gone.text)

        # an expired invite (made in the past: the CLI's shortest is 1 minute)
        old = "expired-invite-token"
        await console.ledger.passkeys.invite(
            "carol",
            operators.token_digest(old),
            created_by="cli:root",
            expires_at=utcnow() - timedelta(seconds=1),
        )
        late = Authenticator(origin=BASE, rp_id="localhost")
        shown = await http.get("/console/register", params={"token": old})
        assert shown.status_code == 403 and "expired" in outcome_of(shown.text)
        cdj, att = late.register(operators.registration_challenge(old))
        refused = await http.post(
            "/console/register",
            json={"token": old, "clientDataJSON": b64url(cdj), "attestationObject": b64url(att)},
        )
        assert refused.status_code == 403 and "expired" in refused.json()["message"]
        # and below the page: the service and the store refuse it too
        with pytest.raises(Refused, match="expired"):
            await operators.register_passkey(
                console.ledger,
                old,
                client_data_json=cdj,
                attestation_object=att,
                origin=BASE,
                rp_id="localhost",
            )
        with pytest.raises(InviteUnusable, match="expired"):
            await console.ledger.passkeys.register(
                operators.token_digest(old), late.credential(), now=utcnow()
            )
        # a registration made for another origin, or posted from one
        other = await console.invite("carol")
        elsewhere = Authenticator(origin="http://localhost:9999", rp_id="localhost")
        wrong = await register(http, elsewhere, other)
        assert wrong.status_code == 403 and "origin" in wrong.json()["message"]
        cross = await http.post(
            "/console/register/options",
            json={"token": other},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
    assert [p.operator for p in await console.ledger.passkeys.all()] == ["bob"]


async def test_sign_in_with_a_passkey_and_what_is_refused(console: Console) -> None:
    bob = await console.register("bob")
    async with console.http() as http:
        body = await sign_in_body(http, bob)
        ok = await http.post("/console/sign-in", json=body)
        assert ok.status_code == 200, ok.text
        assert ok.json() == {
            "message": "Signed in as bob with a passkey",
            "redirect": "/console",
        }
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        # the same assertion again: its challenge is spent
        replay = await http.post("/console/sign-in", json=body)
        assert replay.status_code == 401 and "used already" in replay.json()["message"]
        # a signature made for another origin
        wrong = await sign_in(http, bob, origin="https://evil.example")
        assert wrong.status_code == 401 and "origin" in wrong.json()["message"]
        # posted from another origin
        cross = await http.post(
            "/console/sign-in",
            json=await sign_in_body(http, bob),
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        # a passkey treasury does not know
        stranger = Authenticator(origin=BASE, rp_id="localhost")
        unknown = await sign_in(http, stranger)
        assert unknown.status_code == 401 and "not registered" in unknown.json()["message"]
        # a cloned authenticator (its sign count went back)
        bob.sign_count = 0
        cloned = await sign_in(http, bob)
        assert cloned.status_code == 401 and "sign count" in cloned.json()["message"]
    async with console.http(cookie=session_cookie(ok)) as http:
        page = await http.get("/console")
        assert page.status_code == 200
        assert '<strong id="operator">bob</strong>' in page.text
        assert '<span id="signed-in-with">passkey</span>' in page.text
    events = [e for e in await console.ledger.events.recent() if e.kind == "console_signed_in"]
    assert len(events) == 1 and "passkey" in events[0].detail
    assert events[0].actor == "console:bob"
    # the challenges and sessions are append-only
    for sql in (
        "DELETE FROM console_challenges",
        "UPDATE console_challenges SET used_at = NULL",
        "DELETE FROM console_passkey_sessions",
        "UPDATE console_passkey_sessions SET operator = 'carol'",
    ):
        with pytest.raises(DBAPIError, match="console_"):
            async with console.ledger.engine.begin() as conn:
                await conn.execute(text(sql))


async def test_failed_sign_ins_are_rate_limited_per_ip(console: Console) -> None:
    bob = await console.register("bob")
    stranger = Authenticator(origin=BASE, rp_id="localhost")
    async with console.http(ip="198.51.100.7") as http:
        bodies = []
        with capture_logs() as logs:
            for _ in range(10):
                bodies.append(await sign_in_body(http, stranger))
                r = await http.post("/console/sign-in", json=bodies[-1])
                assert r.status_code == 401
        failures = [e for e in logs if e["event"] == "console.auth_failed"]
        assert len(failures) == 10 and failures[0]["client_ip"] == "198.51.100.7"
        logged = repr(logs)
        for body in bodies:  # no credential material in the log
            for key in ("credentialId", "clientDataJSON", "authenticatorData", "signature"):
                assert body[key] not in logged
        blocked = await http.post("/console/sign-in", json={})
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
        # even a good assertion waits
        options = await http.post("/console/sign-in/options", json={})
        assert options.status_code == 429
    async with console.http(ip="198.51.100.8") as http:  # another client is not
        assert (await sign_in(http, bob)).status_code == 200


async def test_a_link_session_reads_but_cannot_act(console: Console) -> None:
    await console.register("bob")
    intent_id = await enqueue(console.ledger, "500", status=Status.AWAITING_APPROVAL)
    http = await console.link_session("bob")
    async with http:
        page = await http.get(f"/console/intents/{intent_id}")
        assert page.status_code == 200
        assert '<span id="signed-in-with">link</span>' in page.text
        assert READ_ONLY in page.text
        assert 'id="approve-passkey"' not in page.text and 'id="cancel-form"' not in page.text
        csrf = csrf_of(page.text)
        cancel = await http.post(
            f"/console/intents/{intent_id}/cancel", data={"csrf": csrf, "reason": "x"}
        )
        assert cancel.status_code == 403 and "read-only" in outcome_of(cancel.text)
        options = await http.post(
            f"/console/intents/{intent_id}/approve/options",
            json={},
            headers={"X-CSRF-Token": csrf},
        )
        assert options.status_code == 403 and "read-only" in options.json()["message"]
        pause = await http.post("/console/accounts/default/pause", data={"csrf": csrf})
        assert pause.status_code == 403
    assert (await console.ledger.intents.get(intent_id)).status is Status.AWAITING_APPROVAL
    assert not await console.ledger.state.account_pauses()


async def test_every_action_needs_the_csrf_token(console: Console) -> None:
    await console.register("bob")
    intent_id = await enqueue(console.ledger, "500", status=Status.AWAITING_APPROVAL)
    http = await console.sign_in("bob")
    async with http:
        page = await http.get(f"/console/intents/{intent_id}")
        assert 'id="approve-passkey"' in page.text and 'id="cancel-form"' in page.text
        csrf = csrf_of(page.text)
        path = f"/console/intents/{intent_id}"
        for data in ({"reason": "x"}, {"reason": "x", "csrf": "0" * 64}):
            r = await http.post(f"{path}/cancel", data=data)
            assert r.status_code == 403 and "CSRF" in outcome_of(r.text)
        for headers in ({}, {"X-CSRF-Token": "0" * 64}):
            r = await http.post(f"{path}/approve/options", json={}, headers=headers)
            assert r.status_code == 403 and "CSRF" in r.json()["message"]
        ok = await http.post(f"{path}/approve/options", json={}, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200
    assert (await console.ledger.intents.get(intent_id)).status is Status.AWAITING_APPROVAL


async def test_two_operators_approve_an_intent_with_their_passkeys(console: Console) -> None:
    bob, carol, alice = [await console.register(n) for n in ("bob", "carol", "alice")]
    intent_id, other_id = [
        await enqueue(console.ledger, a, status=Status.AWAITING_APPROVAL) for a in ("500", "600")
    ]
    path = f"/console/intents/{intent_id}"
    async with await console.sign_in("bob") as http:
        csrf = await page_csrf(http)
        # a challenge issued for another intent
        stale = await approve_body(http, bob, f"/console/intents/{other_id}", csrf)
        r = await http.post(f"{path}/approve", json=stale, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 409 and "stale challenge" in r.json()["message"]
        body = await approve_body(http, bob, path, csrf)
        first = await http.post(f"{path}/approve", json=body, headers={"X-CSRF-Token": csrf})
        assert first.status_code == 200, first.text
        assert "approved (1/2)" in first.json()["message"]
        assert first.json()["redirect"] == path
        replay = await http.post(f"{path}/approve", json=body, headers={"X-CSRF-Token": csrf})
        assert replay.status_code == 409
        assert re.search(r"sign count|already approved", replay.json()["message"])
        twice = await approve(http, bob, path, csrf)
        assert twice.status_code == 409 and "already approved" in twice.json()["message"]
        shown = await http.get(path)
        assert re.search(r'<ul id="approvals">\s*<li>bob,', shown.text)
    async with await console.sign_in("alice") as http:  # the requester
        r = await approve(http, alice, path, await page_csrf(http))
        assert r.status_code == 409 and "requested this withdrawal" in r.json()["message"]
    async with await console.sign_in("carol") as http:
        csrf = await page_csrf(http)
        # carol cannot approve with bob's passkey in her session
        bobs = await approve_body(http, bob, path, csrf, mine=False)
        r = await http.post(f"{path}/approve", json=bobs, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 409 and "not carol's" in r.json()["message"]
        second = await approve(http, carol, path, csrf)
        assert second.status_code == 200, second.text
        assert "approved (2/2)" in second.json()["message"]
    assert (await console.ledger.intents.get(intent_id)).status is Status.QUEUED
    # counted as the worker counts them in the commit transaction
    async with console.ledger.units.open(intent_id) as unit:
        keys = await unit.operator_keys()
        counted = proof.count(unit.intent, await unit.approvals(), keys, await unit.passkeys())
    assert counted.valid == ("bob", "carol") and not counted.ignored
    actors = {e.actor for e in await console.ledger.intents.events(intent_id) if e.kind}
    assert {"console:bob", "console:carol"} <= actors


async def test_an_address_book_entry_approved_with_a_passkey_counts_for_a_send(
    console: Console,
) -> None:
    bob = await console.register("bob")
    await console.register("alice")
    entry = await console.ledger.whitelist.add(
        account="default",
        coin="USDT",
        network="TRX",
        address=TRX,
        address_tag=None,
        actor="cli:alice",
        reason="a customer",
        label="customer",
    )
    intent_id = await enqueue(console.ledger, "50")
    trust = Trust(ExchangeSeen(), cooling_s=0)

    async def verdict() -> Any:
        async with console.ledger.units.open(intent_id) as unit:
            current = await unit.address_book_entry()  # as the commit reads it
            assert current is not None and current.id == entry.id
            return await entry_verdict(
                unit, trust, unit.intent, current, utcnow(), approvals_required=1
            )

    assert not isinstance(await verdict(), Pass)  # waits for a second person
    path = f"/console/address-book/{entry.id}"
    async with await console.sign_in("alice") as http:  # who added it
        csrf = await page_csrf(http, "/console/address-book")
        r = await approve(http, console.passkeys["alice"], path, csrf)
        assert r.status_code == 409 and "second person" in r.json()["message"]
    async with await console.sign_in("bob") as http:
        page = await http.get("/console/address-book")
        assert f'id="approve-entry-{entry.id}"' in page.text
        csrf = csrf_of(page.text)
        body = await approve_body(http, bob, path, csrf)
        ok = await http.post(f"{path}/approve", json=body, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200, ok.text
        assert "approved (1/1) by bob" in ok.json()["message"]
        replay = await http.post(f"{path}/approve", json=body, headers={"X-CSRF-Token": csrf})
        assert replay.status_code == 409
        after = await http.get("/console/address-book")
        assert f'id="approve-entry-{entry.id}"' not in after.text
    assert isinstance(await verdict(), Pass)
    [approval] = await console.ledger.whitelist.approvals(entry_id=entry.id)
    assert approval.approver == "bob" and approval.signature.startswith("{")
    [passkey] = await console.ledger.passkeys.all("bob")
    assert passkey.sign_count == bob.sign_count
    events = [e for e in await console.ledger.events.recent() if e.kind == "whitelist_approved"]
    assert [e.actor for e in events] == ["console:bob"]


async def test_cancel_resolve_pause_and_resume_are_recorded_with_the_operator(
    console: Console,
) -> None:
    await console.register("bob")
    queued = await enqueue(console.ledger, "5")
    stuck = await enqueue(console.ledger, "6", status=Status.NEEDS_ATTENTION)
    async with await console.sign_in("bob") as http:
        csrf = await page_csrf(http)
        r = await http.post(
            f"/console/intents/{queued}/cancel", data={"csrf": csrf, "reason": "wrong amount"}
        )
        assert r.status_code == 303 and r.headers["location"].endswith("?done=cancelled")
        shown = await http.get(r.headers["location"])
        assert outcome_of(shown.text) == "Intent cancelled."
        again = await http.post(
            f"/console/intents/{queued}/cancel", data={"csrf": csrf, "reason": "again"}
        )
        assert again.status_code == 409 and "already cancelled" in outcome_of(again.text)

        page = await http.get(f"/console/intents/{stuck}")
        assert 'id="resolve-form"' in page.text and 'id="resolve-outcome"' in page.text
        form = {"csrf": csrf, "outcome": "completed", "reason": "seen on the exchange"}
        missing = await http.post(f"/console/intents/{stuck}/resolve", data=form)
        assert missing.status_code == 409 and "withdrawal id" in outcome_of(missing.text)
        done = await http.post(
            f"/console/intents/{stuck}/resolve", data={**form, "exchange_id": "w-1"}
        )
        assert done.status_code == 303, done.text

        health = await http.get("/console/health")
        assert 'id="pause-default"' in health.text and 'id="pause-reason-default"' in health.text
        paused = await http.post(
            "/console/accounts/default/pause", data={"csrf": csrf, "reason": "audit"}
        )
        assert paused.status_code == 303
        shown = await http.get(paused.headers["location"])
        assert 'id="resume-default"' in shown.text and outcome_of(shown.text) == "Account paused."
        twice = await http.post("/console/accounts/default/pause", data={"csrf": csrf})
        assert twice.status_code == 409
        resumed = await http.post("/console/accounts/default/resume", data={"csrf": csrf})
        assert resumed.status_code == 303
    cancelled = await console.ledger.intents.get(queued)
    resolved = await console.ledger.intents.get(stuck)
    assert cancelled.status is Status.CANCELLED and resolved.status is Status.COMPLETED
    assert resolved.exchange_withdraw_id == "w-1"
    for intent_id, to in ((queued, "cancelled"), (stuck, "completed")):
        [last] = [e for e in await console.ledger.intents.events(intent_id) if e.to_status == to]
        assert last.actor == "console:bob", last
    service = [(e.kind, e.actor, e.subject) for e in await console.ledger.events.recent()]
    assert ("paused", "console:bob", "default") in service
    assert ("resumed", "console:bob", "default") in service


async def test_a_passkey_page_opened_at_another_address_links_to_the_base_url(
    console: Console,
) -> None:
    """127.0.0.1 for localhost is the usual slip: the browser would refuse the passkey
    with an opaque error, so the page says where to go instead (421, a link there)."""
    token = await console.invite("bob")
    transport = httpx.ASGITransport(app=console.app, client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:7465") as http:
        for path in (f"/console/register?token={token}", "/console/sign-in"):
            r = await http.get(path)
            assert r.status_code == 421, (path, r.status_code)
            assert f'href="{BASE}{path}"' in r.text, r.text
            assert "register-passkey" not in r.text and "sign-in-passkey" not in r.text
    async with console.http() as http:  # at the base URL: the pages themselves
        assert (await http.get(f"/console/register?token={token}")).status_code == 200
        assert (await http.get("/console/sign-in")).status_code == 200
