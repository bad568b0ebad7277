"""Passkeys in the console, in a real headless Chromium with its virtual authenticator
(CTAP2, internal transport, resident keys, user verification), against a real
``treasury api``, the sandbox exchange and a real ``treasury run``: an operator invited
with ``treasury operator invite`` registers a passkey and signs in with it; the requester
of an intent needing two approvals is refused; two other operators approve it in the
browser, and the intent page shows it ``completed`` once the daemon has sent it.

Written against the console UI contract (the URLs and element ids of
``/console/register``, ``/console/sign-in``, ``#approve-passkey``, ``#outcome``,
``#approvals``, ``#operator``). Until the console serves those routes, ``GET
/console/sign-in`` answers 404 and the tests skip, so they run for real as soon as the
routes exist.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browsing import (
    Api,
    api_env,
    axe_report,
    axe_violations,
    free_port,
    need_browser,
    screenshot,
    start_api,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from harness import USDT_TRX, World, world
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.slow, pytest.mark.browser]
POLICY = '[coins.USDT]\napproval_threshold = "100"\napprovals_required = 2\n'
NO_ROUTES = "needs the console's passkey routes"
WAIT = 15  # seconds for one browser step (a WebAuthn ceremony and two requests)


@dataclass
class Setup:
    world: World
    api: Api

    @property
    def url(self) -> str:
        return self.api.url

    def path(self, link: str) -> str:
        """A link the CLI printed (a path, or a URL on whatever host it names) as a path."""
        parts = urlsplit(link)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path


@asynccontextmanager
async def passkey_world(tmp_path: Path) -> AsyncIterator[Setup]:
    """A world (SQLite, the sandbox, its whitelist synced) with a two-approval policy,
    operators alice, bob and carol, ``treasury api`` and ``treasury run``; skips when
    the console has no passkey routes."""
    need_browser()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    port = free_port()
    env = {"TREASURY_POLICY_FILE": str(policy), **api_env(port)}
    async with world("sqlite", tmp_path, env=env) as w:
        await register_operators(w, ("alice", "bob", "carol"))
        api = start_api(w.env(), tmp_path, port)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                probe = await http.get(f"http://127.0.0.1:{port}/console/sign-in")
            if probe.status_code == 404:
                pytest.skip(NO_ROUTES)
            await w.start_daemon()
            yield Setup(w, api)
        finally:
            api.stop()


async def register_operators(w: World, names: tuple[str, ...]) -> None:
    from treasury.adapters.db.ledger import SqlLedger
    from treasury.services import operators

    ledger = SqlLedger.over(w.engine)
    for name in names:
        raw = (
            Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        await operators.add(ledger, name, base64.b64encode(raw).decode(), actor="cli:admin")


async def invite(s: Setup, name: str) -> str:
    """``treasury operator invite NAME --as admin``: the registration page's path."""
    done = await s.world.cli("operator", "invite", name, "--as", "admin")
    printed = done.stdout.decode()
    found = re.search(r"(\S*/console/register\?token=\S+)", printed)
    assert found, printed
    return s.path(found.group(1))


async def enqueue_as(s: Setup, requester: str, amount: str) -> int:
    coin, network, address, _ = USDT_TRX
    done = await s.world.cli(
        "enqueue", "--coin", coin, "--network", network, "--address", address,
        "--amount", amount, "--as", requester, "--json",
    )  # fmt: skip
    return int(json.loads(done.stdout)["id"])


def authenticator(driver: WebDriver) -> None:
    """A fresh virtual authenticator (the previous one, if any, and its keys removed):
    one person's phone or laptop."""
    if driver.virtual_authenticator_id is not None:
        driver.remove_virtual_authenticator()
    driver.add_virtual_authenticator(
        VirtualAuthenticatorOptions(
            protocol=VirtualAuthenticatorOptions.Protocol.CTAP2,
            transport=VirtualAuthenticatorOptions.Transport.INTERNAL,
            has_resident_key=True,
            has_user_verification=True,
            is_user_verified=True,
        )
    )


def outcome(driver: WebDriver) -> str:
    """The script's status line, or "" while there is none (or the page is navigating)."""
    try:
        found = driver.find_elements(By.ID, "outcome")
        return str(found[0].text) if found else ""
    except StaleElementReferenceException:
        return ""


def wait(driver: WebDriver, what: str, done: Callable[[WebDriver], Any]) -> Any:
    """Until ``done`` is truthy; a failure says what was awaited, the page, the outcome.

    An element found just before the page navigates goes stale when it is read (the
    script redirects after an approval); that is a poll to retry, not a failure."""
    try:
        return WebDriverWait(
            driver, WAIT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
        ).until(done)
    except Exception as exc:
        raise AssertionError(
            f"waited {WAIT} s for {what}; at {driver.current_url}, #outcome "
            f"{outcome(driver)!r}, page:\n{driver.find_element(By.TAG_NAME, 'body').text}"
        ) from exc


def path_is(path: str) -> Callable[[WebDriver], bool]:
    return lambda d: urlsplit(d.current_url).path == path


def accessible(driver: WebDriver, page: str) -> None:
    violations = axe_violations(driver)
    assert not violations, axe_report(page, violations)


def register_and_sign_in(driver: WebDriver, s: Setup, name: str, register: str) -> None:
    """On a fresh authenticator and without a session: register NAME's passkey from the
    invite's page, then sign in with it; ends on the queue, signed in as NAME."""
    driver.delete_all_cookies()
    authenticator(driver)
    driver.get(s.url + register)
    button = driver.find_element(By.ID, "register-passkey")
    if name == "alice":
        screenshot(driver, "register")
        accessible(driver, "/console/register")
    button.click()
    wait(
        driver,
        f"{name}'s passkey to be registered",
        lambda d: f"Passkey registered for {name}" in outcome(d) or path_is("/console/sign-in")(d),
    )
    wait(driver, "the redirect to /console/sign-in", path_is("/console/sign-in"))
    [credential] = driver.get_credentials()
    assert credential.is_resident_credential
    if name == "alice":
        screenshot(driver, "sign-in")
        accessible(driver, "/console/sign-in")
    driver.find_element(By.ID, "sign-in-passkey").click()
    wait(driver, f"{name} to be signed in", path_is("/console"))
    who = driver.find_element(By.ID, "operator").text
    header = driver.find_element(By.TAG_NAME, "header").text
    assert name in who, (who, header)
    assert "passkey" in header.lower(), header  # how the session was opened


def approve(driver: WebDriver, s: Setup, intent_id: int) -> str:
    """Open the intent and press its passkey button; returns ``#outcome`` as it was."""
    driver.get(f"{s.url}/console/intents/{intent_id}")
    button = driver.find_element(By.ID, "approve-passkey")
    assert button.get_attribute("data-intent-id") == str(intent_id)
    before = outcome(driver)
    button.click()
    return before


def approvers(driver: WebDriver) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#approvals li")]


async def test_register_sign_in_and_approve_with_passkeys_to_completed(
    browser: WebDriver, tmp_path: Path
) -> None:
    async with passkey_world(tmp_path) as s:
        intent_id = await enqueue_as(s, "alice", "150")
        await s.world.wait_status(intent_id, ["awaiting_approval"], timeout=30)
        invites = {name: await invite(s, name) for name in ("alice", "bob", "carol")}

        # a session opened by a link reads only: no action control on the intent page
        login = await s.world.cli("console", "login", "carol", "--as", "admin")
        browser.delete_all_cookies()
        browser.get(s.url + s.path(login.stdout.decode().strip().splitlines()[-1]))
        browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        wait(browser, "the link sign-in", path_is("/console"))
        browser.get(f"{s.url}/console/intents/{intent_id}")
        assert not browser.find_elements(By.ID, "approve-passkey")
        assert not browser.find_elements(By.ID, "cancel-form")

        # the requester registers and signs in with a passkey, and is refused
        register_and_sign_in(browser, s, "alice", invites["alice"])
        before = approve(browser, s, intent_id)
        refusal = wait(
            browser,
            "alice's refusal",
            lambda d: (
                outcome(d).strip() not in (before.strip(), "")
                and not outcome(d).startswith("Waiting for your passkey")
            ),
        )
        refusal = outcome(browser)
        assert "requested" in refusal.lower() and "approved (" not in refusal, refusal
        browser.get(f"{s.url}/console/intents/{intent_id}")
        assert approvers(browser) == [], approvers(browser)
        screenshot(browser, "intent-refused")
        accessible(browser, f"/console/intents/{intent_id} (awaiting approval, passkey)")

        # two other people, each with their own authenticator and session
        for name, count in (("bob", "(1/2)"), ("carol", "(2/2)")):
            register_and_sign_in(browser, s, name, invites[name])
            approve(browser, s, intent_id)
            seen: list[str] = []

            def approved(d: WebDriver, name: str = name, seen: list[str] = seen) -> bool:
                seen.append(outcome(d))
                return path_is(f"/console/intents/{intent_id}")(d) and any(
                    name in a for a in approvers(d)
                )

            wait(browser, f"{name}'s approval to be listed", approved)
            # the script says it waits for the passkey, then what was recorded
            messages = [m for m in seen if m and not m.startswith("Waiting for your passkey")]
            assert all("approved" in m for m in messages), messages
            assert not messages or any(count in m for m in messages), (count, messages)

        # the daemon sends it; the intent page says so
        await s.world.wait_status(intent_id, ["completed"], timeout=60)
        browser.get(f"{s.url}/console/intents/{intent_id}")
        assert "completed" in browser.find_element(By.TAG_NAME, "h1").text
        listed = approvers(browser)
        assert len(listed) == 2 and any("bob" in a for a in listed), listed
        assert any("carol" in a for a in listed), listed
        screenshot(browser, "intent-approved-completed")
        rows = await s.world.sql(
            "SELECT approver, signature FROM intent_approvals WHERE intent_id = :i", i=intent_id
        )
        assert sorted(r["approver"] for r in rows) == ["bob", "carol"], rows
        assert all(r["signature"] for r in rows), rows  # passkey proofs, not names
        row = await s.world.intent(intent_id)
        sent = s.world.sandbox.ledger().withdrawals
        assert [w.withdraw_order_id for w in sent] == [row["withdraw_order_id"]], sent
        assert sent[0].amount == 150
