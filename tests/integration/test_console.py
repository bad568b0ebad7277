"""The operator console over real HTTP (uvicorn on a free loopback port, httpx), SQLite
and PostgreSQL: sign-in links, sessions, CSRF, headers, every page with seeded data, and
no personal travel-rule value on any page."""

from __future__ import annotations

import base64
import re
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import anyio
import httpx
import pytest
import uvicorn
from sqlalchemy import insert, text, update
from sqlalchemy.exc import DBAPIError

from treasury.adapters.db.console import ConsoleStore
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.adapters.db.tables import intent_approvals, withdrawal_intents
from treasury.domain.console import activity, activity_svg, explorer_url, parse_ttl
from treasury.domain.errors import InvalidField
from treasury.domain.travel_rule import Entity, make_profile
from treasury.domain.validation import validate_new_intent
from treasury.http.app import create_app
from treasury.http.console import HEADERS, LOOPBACK_COOKIE
from treasury.http.serve import deps_for
from treasury.ports.clock import utcnow

FIRST, LAST = "Wilhelmina", "Quastenberg"
QUESTIONNAIRE = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "bnfFirstName": FIRST,
    "bnfLastName": LAST,
    "country": "pl",
    "sendTo": 2,
    "vasp": "others",
    "vaspName": "Zyxwvut Exchange",
    "declaration": True,
}
PERSONAL = (FIRST, LAST, "Zyxwvut")
SCRIPT = "<script>alert('x')</script>"
TX = "ab" * 32
SCRIPT_TAG = '<script src="/console/static/console.js" defer>'
PAGES = ("/console", "/console/address-book", "/console/webhooks", "/console/health")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    ledger: SqlLedger
    store: ConsoleStore
    intent_id: int

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10, follow_redirects=False)

    async def link(self, ttl: timedelta = timedelta(minutes=10), name: str = "alice") -> str:
        token, _ = await self.store.create_login(name, ttl=ttl, actor="cli:root")
        return token

    async def signed_in(self) -> httpx.AsyncClient:
        token = await self.link()
        async with self.http() as login:
            r = await login.post("/console/login", data={"token": token})
        assert r.status_code == 303 and r.headers["location"] == "/console", r.text
        http = self.http()
        http.cookies.set(LOOPBACK_COOKIE, r.cookies[LOOPBACK_COOKIE])
        return http


async def _seed(ledger: SqlLedger) -> int:
    await ledger.operators.add("alice", base64.b64encode(b"a" * 32).decode(), actor="root")
    await ledger.operators.add("bob", base64.b64encode(b"b" * 32).decode(), actor="root")
    new = validate_new_intent(
        coin="USDT",
        network="TRX",
        address="TXYZ1234567890abcdefghijklmnopqrst",
        amount="25.5",
        account="default",
        request_id="r-1",
        requested_by=f"bot {SCRIPT}",
        note=f"pay {SCRIPT}",
        questionnaire=QUESTIONNAIRE,
        local_entity=Entity.EU,
    )
    intent, _ = await ledger.intents.enqueue(new, actor="cli:alice")
    await ledger.intents.record_note(
        intent.id, reason=f"looked at {SCRIPT}", actor="cli:alice", kind="note"
    )
    async with ledger.engine.begin() as conn:
        await conn.execute(
            update(withdrawal_intents)
            .where(withdrawal_intents.c.id == intent.id)
            .values(tx_id=TX, exchange_withdraw_id="w-77", exchange_tr_id=4242)
        )
        await conn.execute(
            insert(intent_approvals).values(intent_id=intent.id, approver="bob", signature=None)
        )
    profile = make_profile(Entity.EU, QUESTIONNAIRE).to_json()
    entry = await ledger.whitelist.add(
        account="default",
        coin="USDT",
        network="TRX",
        address="TXYZ1234567890abcdefghijklmnopqrst",
        address_tag=None,
        actor="cli:alice",
        reason="customer",
        label=f"label {SCRIPT}",
        travel_rule_profile=profile,
    )
    await ledger.whitelist.add_approval(
        entry.id, version=entry.version, approver="bob", signature=None, reason="ok"
    )
    await ledger.state.pause(reason="maintenance", by="cli:alice", account="default")
    return intent.id


@pytest.fixture
async def served(migrated_url: str) -> AsyncIterator[Served]:
    engine = create_engine(migrated_url)
    ledger = SqlLedger.over(engine)
    intent_id = await _seed(ledger)
    port = _free_port()
    other = create_engine(migrated_url)
    app = create_app(deps_for(SqlLedger.over(other), cooling_s=0))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await other.dispose()

    thread = threading.Thread(target=anyio.run, args=(serve,), daemon=True)
    thread.start()
    try:
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.02)
        yield Served(f"http://127.0.0.1:{port}", ledger, ConsoleStore(engine), intent_id)
    finally:
        server.should_exit = True
        await anyio.to_thread.run_sync(thread.join, 10)
        await engine.dispose()


def _headers_ok(r: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers.get(name))


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, html
    return found.group(1)


async def test_a_login_link_works_once_and_expires(served: Served) -> None:
    token = await served.link()
    async with served.http() as http:
        shown = await http.get("/console/login", params={"token": token})
        assert shown.status_code == 200 and "alice" in shown.text
        _headers_ok(shown)
        # showing the link spends nothing; the POST does, once
        first = await http.post("/console/login", data={"token": token})
        assert first.status_code == 303
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        again = await http.post("/console/login", data={"token": token})
        assert again.status_code == 403 and "used already" in again.text
        assert (await http.get("/console/login", params={"token": token})).status_code == 403
        bad = await http.post("/console/login", data={"token": "nope"})
        assert bad.status_code == 403 and "treasury console login" in bad.text
    short = await served.link(ttl=timedelta(seconds=1))
    await anyio.sleep(1.2)
    async with served.http() as http:
        late = await http.post("/console/login", data={"token": short})
        assert late.status_code == 403 and "expired" in late.text
    events = await served.ledger.events.recent()
    kinds = [e.kind for e in events]
    assert "console_login_created" in kinds and "console_signed_in" in kinds
    assert all(token not in e.detail and short not in e.detail for e in events)
    with pytest.raises(Exception, match="not registered"):
        await served.link(name="mallory")


async def test_pages_need_a_live_session(served: Served) -> None:
    async with served.http() as http:
        for path in (
            *PAGES,
            f"/console/intents/{served.intent_id}",
            "/console/charts/activity.svg",
        ):
            r = await http.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/console/signed-out"), path
            _headers_ok(r)
        gone = await http.get("/console/signed-out?why=expired")
        assert gone.status_code == 200 and "treasury console login" in gone.text
        http.cookies.set(LOOPBACK_COOKIE, "forged")
        assert (await http.get("/console")).headers["location"].endswith("why=unknown")
    # an expired session
    token = await served.link()
    secret, _ = await served.store.sign_in(token, now=utcnow() - timedelta(hours=9))
    async with served.http() as http:
        http.cookies.set(LOOPBACK_COOKIE, secret)
        r = await http.get("/console")
        assert r.status_code == 303 and r.headers["location"].endswith("why=expired")


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(served: Served) -> None:
    http = await served.signed_in()
    async with http:
        page = await http.get("/console")
        assert page.status_code == 200
        csrf = _csrf(page.text)
        assert (await http.post("/console/logout")).status_code == 403
        wrong = await http.post("/console/logout", data={"csrf": "0" * 64})
        assert wrong.status_code == 403
        _headers_ok(wrong)
        assert (await http.get("/console")).status_code == 200  # still signed in
        out = await http.post("/console/logout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"].endswith("why=ended")
        after = await http.get("/console")
        assert after.status_code == 303 and after.headers["location"].endswith("why=ended")
    assert "console_signed_out" in [e.kind for e in await served.ledger.events.recent()]


async def test_every_page_renders_escaped_with_no_personal_data(served: Served) -> None:
    http = await served.signed_in()
    async with http:
        pages = {}
        for path in (
            *PAGES,
            f"/console/intents/{served.intent_id}",
            "/console?status=queued&account=default&coin=usdt",
            "/console/intents/999999",
            "/console?status=bogus",
            "/console/static/console.css",
        ):
            r = await http.get(path)
            _headers_ok(r)
            pages[path] = r
        assert pages["/console/intents/999999"].status_code == 404
        bogus = pages["/console?status=bogus"]
        assert bogus.status_code == 422 and "is not a status" in bogus.text
        for path in (*PAGES, f"/console/intents/{served.intent_id}"):
            r = pages[path]
            assert r.status_code == 200, (path, r.text)
            assert r.headers["content-type"].startswith("text/html")
            # the note's tag arrived escaped; the one script is the console's own file
            assert re.findall(r"<script[^>]*>", r.text) == [SCRIPT_TAG], path
            assert " style=" not in r.text, path  # no inline styles (the CSP refuses them)
            for value in PERSONAL:
                assert value not in r.text, (path, value)
        queue = pages["/console"].text
        assert "&lt;script&gt;" in queue and "awaiting_approval" in queue
        assert f'href="/console/intents/{served.intent_id}"' in queue
        filtered = pages["/console?status=queued&account=default&coin=usdt"].text
        assert f'href="/console/intents/{served.intent_id}"' in filtered
        one = pages[f"/console/intents/{served.intent_id}"].text
        assert f"https://tronscan.org/#/transaction/{TX}" in one
        assert "4242" in one and "w-77" in one and "bob" in one and "looked at" in one
        assert "&lt;redacted&gt;" in one or "redacted" in one
        book = pages["/console/address-book"].text
        assert "bob" in book and "label &lt;script&gt;" in book and "redacted" in book
        assert "maintenance" in pages["/console/health"].text
        chart = await http.get("/console/charts/activity.svg")
        assert chart.status_code == 200
        assert chart.headers["content-type"].startswith("image/svg+xml")
        _headers_ok(chart)
        root = ElementTree.fromstring(chart.text)  # noqa: S314 (our own output)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "script" not in chart.text and "style" not in chart.text


async def test_the_queue_pages_through_intents(served: Served) -> None:
    async with served.ledger.engine.begin() as conn:
        for _ in range(60):
            await conn.execute(
                text(
                    "INSERT INTO withdrawal_intents (coin, network, address, amount, account) "
                    "VALUES ('BTC', 'BTC', 'bc1qexample', '0.1', 'other')"
                )
            )
    http = await served.signed_in()
    async with http:
        first = await http.get("/console", params={"account": "other"})
        ids = [int(i) for i in re.findall(r'href="/console/intents/(\d+)"', first.text)]
        assert len(set(ids)) == 50
        more = re.search(r'href="/console\?([^"]+)">Older intents', first.text)
        assert more, first.text
        second = await http.get("/console?" + more.group(1).replace("&amp;", "&"))
        rest = {int(i) for i in re.findall(r'href="/console/intents/(\d+)"', second.text)}
        assert len(rest) == 10 and not rest & set(ids)


async def test_logins_and_sessions_are_append_only(served: Served) -> None:
    """Whatever SQL is sent: no delete; only used_at / ended_at, set once."""
    token = await served.link()
    secret, _ = await served.store.sign_in(token, now=utcnow())
    assert await served.store.sign_out(secret, now=utcnow())
    assert not await served.store.sign_out(secret, now=utcnow())
    for sql in (
        "DELETE FROM console_logins",
        "UPDATE console_logins SET used_at = NULL",
        "UPDATE console_logins SET operator = 'bob'",
        "DELETE FROM console_sessions",
        "UPDATE console_sessions SET ended_at = NULL",
        "UPDATE console_sessions SET expires_at = created_at",
    ):
        with pytest.raises(DBAPIError, match="console_"):
            async with served.ledger.engine.begin() as conn:
                await conn.execute(text(sql))


def test_pure_parts() -> None:
    assert explorer_url("ETH", "0x" + "1" * 64) == "https://etherscan.io/tx/0x" + "1" * 64
    assert explorer_url("SOL", "1" * 64) is None
    assert explorer_url("TRX", "Internal transfer") is None
    assert parse_ttl("10m") == timedelta(minutes=10)
    for bad in ("0m", "10", "25h", "x"):
        with pytest.raises(InvalidField):
            parse_ttl(bad)
    now = utcnow()
    svg = activity_svg(
        activity(
            now=now, sent=[now - timedelta(hours=1)], settled=[(now - timedelta(hours=1), now)]
        )
    )
    assert ElementTree.fromstring(svg).tag.endswith("svg")  # noqa: S314


async def test_the_chart_counts_match_the_pure_function(served: Served) -> None:
    """The store's SQL aggregation agrees with ``activity`` over the same rows."""
    now = utcnow()
    pairs = [
        (now - timedelta(hours=h, minutes=5), now - timedelta(hours=h) + timedelta(minutes=m))
        for h, m in [(1, 0), (3, 2), (5, 30), (30, 0)]
    ]
    for sub, settled in pairs:
        async with served.ledger.engine.begin() as conn:
            await conn.execute(
                update(withdrawal_intents)
                .where(withdrawal_intents.c.id == served.intent_id)
                .values(submitted_at=sub, settled_at=settled)
            )
        got = await served.store.activity(now)
        want = activity(now=now, sent=[sub], settled=[(sub, settled)])
        assert got == want, (sub, settled)


async def test_cli_login_prints_a_link_once_and_api_needs_tls_off_loopback(
    served: Served, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from treasury.cli import app as cli_app

    runner = CliRunner()
    monkeypatch.setenv("TREASURY_DATABASE_URL", migrated_url)
    monkeypatch.setenv("TREASURY_API_BIND", served.url.removeprefix("http://"))

    def cli(*args: str) -> Any:
        return runner.invoke(cli_app, list(args))

    made = await anyio.to_thread.run_sync(lambda: cli("console", "login", "alice", "--as", "root"))
    assert made.exit_code == 0, (made.stdout, made.stderr)
    link = made.stdout.strip()
    assert link.startswith(f"{served.url}/console/login?token=")
    async with served.http() as http:
        shown = await http.get(link.removeprefix(served.url))
        assert shown.status_code == 200 and "Sign in as alice" in shown.text
    unknown = await anyio.to_thread.run_sync(lambda: cli("console", "login", "mallory"))
    assert unknown.exit_code != 0 and "not registered" in unknown.stderr
    bad = await anyio.to_thread.run_sync(
        lambda: cli("console", "login", "alice", "--expires", "3d")
    )
    assert bad.exit_code == 2 and "--expires" in bad.stderr
    remote = await anyio.to_thread.run_sync(
        lambda: cli("api", "--bind", "0.0.0.0:7465", "--allow-remote")
    )
    assert remote.exit_code != 0 and "--behind-tls-proxy" in remote.stderr
    plain = await anyio.to_thread.run_sync(
        lambda: cli("api", "--base-url", "http://treasury.example.com")
    )
    assert plain.exit_code != 0 and "--base-url" in plain.stderr and "https" in plain.stderr
