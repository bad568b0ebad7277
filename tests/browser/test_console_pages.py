"""The operator console in a real headless Chromium against a real ``treasury api``
process: sign in with a link from ``treasury console login``, every page with seeded
data (what a person sees, a screenshot of each, axe-core finding no violation), the
filter form by keyboard alone with a visible focus, and reading with JavaScript off."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from browsing import (
    ROOT,
    SCREENSHOTS,
    Api,
    api_env,
    axe_report,
    axe_violations,
    child_env,
    free_port,
    need_browser,
    new_browser,
    screenshot,
    start_api,
    treasury_cli,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.ports.clock import utcnow

pytestmark = [pytest.mark.slow, pytest.mark.browser]
TX = "7c" * 32
TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"
TRX_2 = "T2WouRpQKa1QRj1xs34r742gcgx1APB6g2"
HOOK = "https://hooks.example.com/treasury/payouts?token=s3cret-in-query"


@dataclass
class Seeded:
    queued: int
    awaiting: int
    attention: int
    completed: int
    cancelled: int
    entry: int
    pending_entry: int
    subscription: int


async def _seed(url: str) -> Seeded:
    """A ledger a person would find interesting: intents in five statuses, an approved
    and a pending address-book entry, a webhook subscription with a delivery, a paused
    account."""
    from treasury.adapters.db import migrate
    from treasury.adapters.db.engine import create_engine
    from treasury.adapters.db.ledger import SqlLedger
    from treasury.adapters.db.webhooks import SqlWebhooks
    from treasury.domain.webhooks import Outcome
    from treasury.ports.webhooks import PostResult

    await migrate.upgrade(url)
    engine = create_engine(url)
    try:
        ledger = SqlLedger.over(engine)
        for name, byte in (("alice", b"a"), ("bob", b"b")):
            await ledger.operators.add(name, base64.b64encode(byte * 32).decode(), actor="root")
        hooks = SqlWebhooks(engine)
        subscription = await hooks.add(
            url=HOOK, topics=("intent.status",), actor="cli:alice", reason="payouts bot"
        )
        intents = ledger.intents

        async def enqueue(amount: str, address: str, rid: str, by: str, note: str) -> int:
            new = validate_new_intent(
                coin="USDT",
                network="TRX",
                address=address,
                amount=amount,
                request_id=rid,
                requested_by=by,
                note=note,
            )
            intent, _ = await intents.enqueue(new, actor=f"cli:{by}")
            return int(intent.id)

        async def move(intent_id: int, *path: tuple[Status, str, dict[str, Any]]) -> None:
            for to, reason, fields in path:
                await intents.transition(
                    intent_id, to, reason=reason, actor="worker:w1", fields=fields
                )

        now = utcnow()
        completed = await enqueue("12.5", TRX, "payout-1001", "payouts-bot", "march payout")
        await move(
            completed,
            (Status.SUBMITTING, "committed to send", {"withdraw_order_id": "tr-1001-a"}),
            (
                Status.SUBMITTED,
                "the exchange accepted it",
                {"exchange_withdraw_id": "b-9911", "submitted_at": now - timedelta(minutes=40)},
            ),
            (
                Status.COMPLETED,
                "the exchange reports it completed",
                {"tx_id": TX, "fee": Decimal("1"), "settled_at": now - timedelta(minutes=31)},
            ),
        )
        cancelled = await enqueue("40", TRX_2, "payout-1002", "payouts-bot", "duplicate")
        await move(cancelled, (Status.CANCELLED, "duplicate of payout-1001", {}))
        attention = await enqueue("75", TRX, "payout-1003", "payouts-bot", "supplier invoice")
        await move(
            attention,
            (Status.SUBMITTING, "committed to send", {"withdraw_order_id": "tr-1003-a"}),
            (
                Status.NEEDS_ATTENTION,
                "two withdrawals on the exchange carry this intent's id",
                {},
            ),
        )
        awaiting = await enqueue("2500", TRX_2, "payout-1004", "alice", "quarterly settlement")
        await move(
            awaiting,
            (Status.AWAITING_APPROVAL, "policy v1: 2 approvals above 1000 USDT", {}),
        )
        queued = await enqueue("10", TRX, "payout-1005", "payouts-bot", "refund of order 7731")

        book = ledger.whitelist
        entry = await book.add(
            account="default",
            coin="USDT",
            network="TRX",
            address=TRX,
            address_tag=None,
            actor="cli:alice",
            reason="supplier",
            label="Supplier hot wallet",
        )
        await book.add_approval(
            entry.id, version=entry.version, approver="bob", signature=None, reason="checked"
        )
        pending = await book.add(
            account="default",
            coin="USDT",
            network="TRX",
            address=TRX_2,
            address_tag=None,
            actor="cli:alice",
            reason="new customer",
            label="Customer 88",
        )
        await ledger.state.pause(reason="exchange maintenance", by="cli:alice", account="default")

        await hooks.fan_out(now=utcnow())
        claimed = await hooks.claim_due(now=utcnow(), lease_s=30, limit=2)
        assert claimed, "the subscription got no delivery to show"
        await hooks.record(
            claimed[0],
            Outcome(status="delivered", next_attempt_at=None),
            PostResult(status_code=200, error=None),
            now=utcnow(),
        )
        if len(claimed) > 1:
            await hooks.record(
                claimed[1],
                Outcome(status="pending", next_attempt_at=utcnow() + timedelta(minutes=5)),
                PostResult(status_code=503, error="HTTP 503 from the receiver"),
                now=utcnow(),
            )
        return Seeded(
            queued, awaiting, attention, completed, cancelled, entry.id, pending.id, subscription
        )
    finally:
        await engine.dispose()


@dataclass
class Console:
    api: Api
    env: dict[str, str]
    workdir: Path
    seeded: Seeded

    def login_path(self, name: str = "alice") -> str:
        """A fresh single-use link from ``treasury console login``, as a path on
        :attr:`api`'s URL (the link names the bind's address; the browser uses localhost)."""
        link = treasury_cli(self.env, self.workdir, "console", "login", name, "--as", "root")
        parts = urlsplit(link.strip().splitlines()[-1])
        assert parts.path == "/console/login" and parts.query.startswith("token="), link
        return f"{parts.path}?{parts.query}"

    def open(self, driver: WebDriver, path: str) -> None:
        driver.get(self.api.url + path)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    need_browser()  # no ledger and no process when the tests would skip anyway
    workdir = tmp_path_factory.mktemp("console")
    url = f"sqlite+aiosqlite:///{workdir / 'ledger.sqlite3'}"
    seeded = asyncio.run(_seed(url))
    port = free_port()
    env = child_env({"TREASURY_DATABASE_URL": url, **api_env(port)})
    api = start_api(env, workdir, port)
    try:
        yield Console(api, env, workdir, seeded)
    finally:
        api.stop()


def text_of(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def no_violations(driver: WebDriver, page: str) -> None:
    violations = axe_violations(driver)
    assert not violations, axe_report(page, violations)


def rows(driver: WebDriver, css: str) -> list[list[str]]:
    return [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in driver.find_elements(By.CSS_SELECTOR, css)
    ]


@pytest.fixture(scope="module")
def signed_in(browser: WebDriver, console: Console) -> WebDriver:
    """The module's browser, signed in as alice through a link: the link's page (checked
    and screenshotted on the way), its button, then the queue."""
    console.open(browser, console.login_path())
    assert browser.title.startswith("Sign in")
    assert "This link signs in alice" in text_of(browser)
    screenshot(browser, "login")
    no_violations(browser, "/console/login")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(browser, 10).until(ec.title_contains("Queue"))
    assert urlsplit(browser.current_url).path == "/console"
    return browser


def test_the_queue(signed_in: WebDriver, console: Console) -> None:
    s, b = console.seeded, signed_in
    if urlsplit(b.current_url).path != "/console" or urlsplit(b.current_url).query:
        console.open(b, "/console")
    header = b.find_element(By.TAG_NAME, "header").text
    assert "alice" in header and "Sign out" in header
    cards = b.find_element(By.CSS_SELECTOR, "section[aria-labelledby=attention] ul.cards").text
    assert "1 needs_attention" in cards.replace("\n", " ")
    assert "1 awaiting_approval" in cards.replace("\n", " ")
    listed = {r[0]: r for r in rows(b, "section[aria-labelledby=intents] tbody tr")}
    assert set(listed) == {
        str(i) for i in (s.queued, s.awaiting, s.attention, s.completed, s.cancelled)
    }
    assert listed[str(s.attention)][1] == "needs_attention"
    assert listed[str(s.awaiting)][1] == "awaiting_approval"
    assert listed[str(s.completed)][1:4] == ["completed", "default", "12.5 USDT"]
    assert listed[str(s.queued)][8] == "refund of order 7731"
    chart = b.find_element(By.CSS_SELECTOR, "img[src='/console/charts/activity.svg']")
    assert b.execute_script("return arguments[0].complete && arguments[0].naturalWidth", chart)
    shot = screenshot(b, "queue")
    no_violations(b, "/console")
    docs = ROOT / "docs" / "console-queue.png"
    if os.environ.get("TREASURY_REFRESH_DOCS") == "1" or not docs.exists():
        shutil.copyfile(shot, docs)  # the README's picture (a tracked file: on request)


@pytest.mark.parametrize("which", ["attention", "awaiting", "completed"])
def test_an_intent(signed_in: WebDriver, console: Console, which: str) -> None:
    intent_id = getattr(console.seeded, which)
    console.open(signed_in, f"/console/intents/{intent_id}")
    heading = signed_in.find_element(By.TAG_NAME, "h1").text
    body = text_of(signed_in)
    if which == "attention":
        assert heading == f"Intent {intent_id} needs_attention"
        assert "two withdrawals on the exchange carry this intent's id" in body
        assert "tr-1003-a" in body and "supplier invoice" in body
    elif which == "awaiting":
        assert heading == f"Intent {intent_id} awaiting_approval"
        assert "policy v1: 2 approvals above 1000 USDT" in body
        assert "2,500 USDT" in body or "2500 USDT" in body
    else:
        assert heading == f"Intent {intent_id} completed"
        link = signed_in.find_element(By.LINK_TEXT, TX)
        assert link.get_attribute("href") == f"https://tronscan.org/#/transaction/{TX}"
        assert "b-9911" in body and "tr-1001-a" in body
    timeline = rows(signed_in, "main table:last-of-type tbody tr")
    assert timeline[0][2] == "queued" and timeline[-1][2].endswith(heading.split()[-1])
    screenshot(signed_in, f"intent-{which}")
    no_violations(signed_in, f"/console/intents/{intent_id} ({which})")


def test_the_address_book(signed_in: WebDriver, console: Console) -> None:
    console.open(signed_in, "/console/address-book")
    body = text_of(signed_in)
    entries = {r[0]: r for r in rows(signed_in, "main table:first-of-type tbody tr")}
    assert entries[str(console.seeded.entry)][5] == "Supplier hot wallet"
    assert entries[str(console.seeded.entry)][10] == "bob (by name)"
    assert f"Entry {console.seeded.pending_entry} (default, USDT on TRX, Customer 88)" in body
    assert f"treasury whitelist approve {console.seeded.pending_entry}" in body
    screenshot(signed_in, "address-book")
    no_violations(signed_in, "/console/address-book")


def test_webhooks(signed_in: WebDriver, console: Console) -> None:
    console.open(signed_in, "/console/webhooks")
    body = text_of(signed_in)
    assert "https://hooks.example.com/treasury/payouts (query hidden)" in body
    assert "s3cret" not in signed_in.page_source  # the receiver's token never shows
    deliveries = rows(signed_in, "main table:nth-of-type(2) tbody tr")
    statuses = {r[2] for r in deliveries}
    assert "delivered" in statuses, deliveries
    delivered = next(r for r in deliveries if r[2] == "delivered")
    assert delivered[1] == str(console.seeded.subscription) and delivered[4] == "200"
    screenshot(signed_in, "webhooks")
    no_violations(signed_in, "/console/webhooks")


def test_health(signed_in: WebDriver, console: Console) -> None:
    console.open(signed_in, "/console/health")
    body = text_of(signed_in)
    assert "The kill switch is off." in body
    [account] = rows(signed_in, "main tbody tr")
    assert account[0] == "default"
    assert account[3].startswith("yes, since") and "exchange maintenance" in account[3]
    screenshot(signed_in, "health")
    no_violations(signed_in, "/console/health")


def test_the_filter_form_by_keyboard_with_a_visible_focus(
    signed_in: WebDriver, console: Console
) -> None:
    """From the top of the queue: Tab to the coin field, type, Tab to Filter, Enter. Each
    control shows a focus outline of at least 2 px while it has the keyboard's focus."""
    b = signed_in
    console.open(b, "/console")
    b.find_element(By.TAG_NAME, "body").click()
    b.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    seen = []
    for _ in range(60):
        b.switch_to.active_element.send_keys(Keys.TAB)
        focused = b.switch_to.active_element
        seen.append(focused.get_attribute("id") or focused.tag_name)
        style = b.execute_script(
            "const s = getComputedStyle(arguments[0]);"
            "return [s.outlineStyle, parseFloat(s.outlineWidth), s.outlineColor];",
            focused,
        )
        assert style[0] != "none" and style[1] >= 2, (seen[-1], style)
        if focused.get_attribute("id") == "f-coin":
            break
    else:
        pytest.fail(f"Tab never reached the coin filter: {seen}")
    assert "f-status" in seen and "f-account" in seen  # in reading order
    b.switch_to.active_element.send_keys("usdt")
    b.switch_to.active_element.send_keys(Keys.TAB)
    button = b.switch_to.active_element
    assert button.tag_name == "button" and button.text == "Filter"
    button.send_keys(Keys.ENTER)
    WebDriverWait(b, 10).until(ec.url_contains("coin=usdt"))
    assert b.find_element(By.ID, "f-coin").get_attribute("value") == "USDT"
    assert len(rows(b, "section[aria-labelledby=intents] tbody tr")) == 5


def test_reading_with_javascript_off(console: Console) -> None:
    """Sign-in, the pages and the filter work in a browser with JavaScript disabled."""
    driver = new_browser(javascript=False)
    try:
        console.open(driver, console.login_path("bob"))
        driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        WebDriverWait(driver, 10).until(ec.title_contains("Queue"))
        assert "bob" in driver.find_element(By.TAG_NAME, "header").text
        driver.find_element(By.ID, "f-status").send_keys("needs_attention")
        driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
        WebDriverWait(driver, 10).until(ec.url_contains("status=needs_attention"))
        [only] = rows(driver, "section[aria-labelledby=intents] tbody tr")
        assert only[0] == str(console.seeded.attention)
        driver.find_element(By.LINK_TEXT, only[0]).click()
        WebDriverWait(driver, 10).until(ec.title_contains(f"Intent {only[0]}"))
        assert "needs_attention" in driver.find_element(By.TAG_NAME, "h1").text
        for link, title in (("Address book", "Address book"), ("Webhooks", "Webhooks")):
            driver.find_element(By.LINK_TEXT, link).click()
            WebDriverWait(driver, 10).until(ec.title_contains(title))
        # the session's script-free sign-out works too
        driver.find_element(By.CSS_SELECTOR, "form.signout button").click()
        WebDriverWait(driver, 10).until(ec.title_contains("Not signed in"))
        assert "You signed out" in text_of(driver)
        screenshot(driver, "signed-out")
    finally:
        driver.quit()


def test_the_signed_out_page(browser: WebDriver, console: Console) -> None:
    """Run last in the module: it ends the module browser's session."""
    console.open(browser, "/console/signed-out?why=expired")
    assert "Your session has expired." in text_of(browser)
    no_violations(browser, "/console/signed-out")
    assert SCREENSHOTS.is_dir()
