"""``deploy/examples/bot.sh`` run for real: curl enqueues through ``treasury api``, socat
listens for the signed webhook that ``treasury run`` delivers, openssl checks it. With the
right secret the bot prints ``<id> completed``; with a wrong one it refuses and fails."""

# ruff: noqa: ASYNC220, ASYNC230  # a harness: a quick Popen and open() of its log

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from harness import USDT_TRX, HarnessError, World, wait_until, world

pytestmark = pytest.mark.slow
BOT = Path(__file__).parents[2] / "deploy" / "examples" / "bot.sh"
ENV = {
    "TREASURY_WEBHOOK_KEY": "e2e-curl-bot-webhook-key-" + "k" * 32,
    "TREASURY_WEBHOOK_POLL_S": "0.1",
    "TREASURY_WEBHOOK_TIMEOUT_S": "2",
}
MISSING = [tool for tool in ("bash", "curl", "openssl", "socat") if shutil.which(tool) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Setup:
    world: World
    api_url: str
    token: str
    secret: str
    listen_port: int


@contextlib.asynccontextmanager
async def bot_world(tmp_path: Path) -> AsyncIterator[Setup]:
    """A world with a token, a webhook subscription, ``treasury api`` and the daemon."""
    if MISSING:
        pytest.skip(f"bot.sh needs {', '.join(MISSING)} (CI installs socat: .ci/run)")
    async with world("sqlite", tmp_path, env=ENV) as w:
        made = await w.cli(
            "token", "create", "bot", "--scopes", "enqueue,read", "--as", "ops", "--json"
        )
        token = json.loads(made.stdout)["token"]
        listen_port = _free_port()
        added = await w.cli(
            "webhook", "add", f"http://127.0.0.1:{listen_port}", "--events", "intent.status",
            "--as", "ops", "--reason", "curl bot",
        )  # fmt: skip
        found = re.search(rb"whsec_[0-9a-f]{64}", added.stdout)
        assert found, added.stdout
        api_port = _free_port()
        api_log = tmp_path / "api.log"
        with open(api_log, "wb") as log:
            api = subprocess.Popen(
                [sys.executable, "-m", "treasury", "api"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                env=w.env(TREASURY_API_BIND=f"127.0.0.1:{api_port}"),
                start_new_session=True,
            )
        api_url = f"http://127.0.0.1:{api_port}"
        try:

            async def api_up() -> bool:
                if api.poll() is not None:
                    raise HarnessError(f"treasury api exited: {api_log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    async with httpx.AsyncClient(timeout=1) as http:
                        return (await http.get(f"{api_url}/openapi.json")).status_code == 200
                return False

            await wait_until(api_up, timeout=20, what="treasury api to listen")
            await w.start_daemon()
            yield Setup(w, api_url, token, found.group().decode(), listen_port)
        finally:
            api.kill()
            api.wait(10)


async def run_bot(s: Setup, secret: str) -> tuple[int, str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TREASURY_API": s.api_url,
        "TREASURY_TOKEN": s.token,
        "WEBHOOK_SECRET": secret,
        "LISTEN_PORT": str(s.listen_port),
        "BOT_TIMEOUT_S": "40",
    }
    coin, network, address, _ = USDT_TRX
    with anyio.fail_after(50):
        done = await anyio.run_process(
            ["bash", str(BOT), coin, network, address, "10.5"], env=env, check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_bot_gets_its_intent_completed_by_webhook(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as s:
        started = time.monotonic()
        code, out, err = await run_bot(s, s.secret)
        assert code == 0, (out, err, await s.world.describe())
        [intent] = await s.world.intents()
        assert out == f"{intent['id']} completed\n", (out, err)
        assert intent["status"] == "completed" and intent["requested_by"] == "api:bot"
        assert f"intent {intent['id']} queued" in err and "refused" not in err, err
        assert time.monotonic() - started < 30, err


async def test_bot_refuses_a_bad_signature(tmp_path: Path) -> None:
    async with bot_world(tmp_path) as s:
        wrong = "whsec_" + "0" * 64
        code, out, err = await run_bot(s, wrong)
        assert code != 0, (out, err)
        assert "completed" not in out, (out, err)
        assert "refused delivery" in err and "bad signature" in err, err
        [intent] = await s.world.intents()  # the send itself went ahead
        await s.world.wait_status(intent["id"], ["completed"])
