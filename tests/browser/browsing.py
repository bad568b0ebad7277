"""Helpers of the browser suite: a headless Chromium driven by Selenium, a real
``treasury api`` process serving the console, axe-core and screenshots.

The browser is the system's (Debian's ``chromium`` and ``chromium-driver``), started
through ``/usr/bin/chromedriver`` named explicitly: Selenium Manager is never asked to
download a driver or a browser (there is no internet). Without them the tests skip with
a message saying how to install them, unless ``TREASURY_REQUIRE_BROWSER=1`` (CI), where
they fail instead.

One browser per module (starting Chromium costs about a second); the console is opened
at ``http://localhost:PORT``: WebAuthn takes a host name as relying party id, never an IP.
Every module here marks its tests ``slow`` and ``browser`` (``pytest -m "not browser"``
leaves them out).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
from harness import HarnessError, _child_env  # the e2e suite's process helpers

ROOT = Path(__file__).parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER = "/usr/bin/chromedriver"
HOW = (
    "the browser tests need Chromium and its driver: apt-get install chromium "
    "chromium-driver (Debian/Ubuntu), giving /usr/bin/chromium and /usr/bin/chromedriver"
)


def chromium_binary() -> str | None:
    found = [p for p in CHROMIUM if os.access(p, os.X_OK)]
    return found[0] if found else shutil.which("chromium")


def need_browser() -> tuple[str, str]:
    binary = chromium_binary()
    driver = CHROMEDRIVER if os.access(CHROMEDRIVER, os.X_OK) else shutil.which("chromedriver")
    if binary and driver:
        return binary, driver
    missing = "Chromium" if not binary else "chromedriver"
    msg = f"{missing} not found; {HOW}"
    if os.environ.get("TREASURY_REQUIRE_BROWSER") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_browser(*, javascript: bool = True) -> Any:
    """A headless Chromium (selenium WebDriver) with the system's driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = need_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
        "--lang=en-US",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        "--password-store=basic",
    ):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    service = Service(executable_path=driver, log_output=subprocess.DEVNULL)
    browser = webdriver.Chrome(service=service, options=options)
    browser.set_page_load_timeout(30)
    browser.set_script_timeout(30)
    return browser


# ---- treasury api as a process ---------------------------------------------------------


@dataclass
class Api:
    """A running ``treasury api``; open the console at :attr:`url` (``localhost``)."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def api_env(port: int) -> dict[str, str]:
    """What ``treasury api`` and the CLI need to agree on the console's address: the bind
    (``treasury console login`` prints links with it) and the base URL WebAuthn's origin
    comes from (``TREASURY_CONSOLE_BASE_URL``, README and the console UI contract)."""
    return {
        "TREASURY_API_BIND": f"127.0.0.1:{port}",
        "TREASURY_CONSOLE_BASE_URL": f"http://localhost:{port}",
    }


def start_api(env: Mapping[str, str], workdir: Path, port: int) -> Api:
    """``treasury api`` on ``port`` with ``env`` (a full child environment); returns once
    it answers, or fails with its log."""
    log = workdir / f"api-{port}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "treasury", "api"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=dict(env),
            start_new_session=True,
        )
    api = Api(proc, port, log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise HarnessError(f"treasury api exited {proc.poll()}: {api.logs()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200:
                return api
        if time.monotonic() > deadline:
            api.stop()
            raise HarnessError(f"treasury api did not listen in 30 s: {api.logs()[-3000:]}")
        time.sleep(0.1)


def treasury_cli(env: Mapping[str, str], workdir: Path, *args: str) -> str:
    """``treasury ARGS`` as an operator runs it; its stdout (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-m", "treasury", *args],
        env=dict(env),
        cwd=workdir,
        capture_output=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise HarnessError(
            f"treasury {' '.join(args)} exited {done.returncode}: "
            f"{done.stdout.decode(errors='replace')} {done.stderr.decode(errors='replace')}"
        )
    return done.stdout.decode()


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    return _child_env(extra)


# ---- what the pages are checked with ---------------------------------------------------


def axe_script() -> str:
    """axe-core as bundled by axe-selenium-python (``TREASURY_AXE_SCRIPT`` may name another
    build of axe.min.js, e.g. a newer axe-core, to check the pages against its rules)."""
    override = os.environ.get("TREASURY_AXE_SCRIPT")
    if override:
        return Path(override).read_text(encoding="utf-8")
    import axe_selenium_python

    bundled = Path(axe_selenium_python.__file__).parent / "node_modules/axe-core/axe.min.js"
    return bundled.read_text(encoding="utf-8")


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the current page (WCAG 2 A/AA and best practices)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(axe_script())
    results: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r), e => done({error: String(e)}));"
    )
    assert "error" not in results, results
    assert results["passes"], "axe-core checked nothing on this page"
    violations: list[dict[str, Any]] = results["violations"]
    return violations


def axe_report(page: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"{page}: {len(violations)} axe-core violation(s)"]
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v['help']}")
        for node in v["nodes"][:10]:
            summary = node.get("failureSummary", "").replace("\n", " ")
            lines.append(f"    {', '.join(map(str, node['target']))}: {summary}")
            lines.append(f"      {node.get('html', '')[:200]}")
    return "\n".join(lines)


def screenshot(driver: Any, name: str) -> Path:
    """The whole page (beyond the viewport) as ``artifacts/screenshots/NAME.png``."""
    import base64

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": 0,
                "y": 0,
                "width": max(1, int(size["width"])),
                "height": max(1, min(int(size["height"]), 8000)),
                "scale": 1,
            },
        },
    )
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
