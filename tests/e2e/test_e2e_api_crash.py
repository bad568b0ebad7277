"""SIGKILL ``treasury api`` while bots create intents, restart it, let the bots retry
what got no answer with the same ``Idempotency-Key``, and judge the result by the ledger
and the webhooks: one intent per key (a retry across the crash never makes a second), and
every committed status change delivered (``treasury webhook run``) with one delivery id
per change and none for a create that did not commit."""

# ruff: noqa: ASYNC240  # a harness: reads its log file when a process died

from __future__ import annotations

import contextlib
import json
import random
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from harness import USDT_TRX, HarnessError, World, wait_until, world

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from webhook_receiver import receiver

pytestmark = pytest.mark.slow
ENV = {
    "TREASURY_WEBHOOK_KEY": "e2e-api-crash-webhook-key-" + "k" * 32,
    "TREASURY_WEBHOOK_POLL_S": "0.1",
    "TREASURY_WEBHOOK_TIMEOUT_S": "2",
}
BOTS = 4
PER_BOT = 25


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(w: World, port: int, log: Path, *command: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "treasury", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=w.workdir,
            env=w.env(TREASURY_API_BIND=f"127.0.0.1:{port}"),
            start_new_session=True,
        )


async def _listening(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async def up() -> bool:
        if proc.poll() is not None:
            raise HarnessError(f"treasury api exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=1) as http:
                return (await http.get(f"{url}/openapi.json")).status_code == 200
        return False

    await wait_until(up, timeout=20, what="treasury api to listen")


async def test_a_killed_api_loses_no_webhook_and_a_retry_makes_no_second_intent(
    backend: str, tmp_path: Path
) -> None:
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    coin, network, address, _tag = USDT_TRX
    async with world(backend, tmp_path, env=ENV, whitelist="none") as w:
        made = await w.cli(
            "token", "create", "crash", "--scopes", "enqueue,read", "--as", "ops", "--json"
        )
        token = json.loads(made.stdout)["token"]
        with receiver() as rx:
            await w.cli(
                "webhook", "add", rx.url, "--events", "intent.status", "--as", "ops",
                "--reason", "api crash test",
            )  # fmt: skip
            port, log = _free_port(), tmp_path / "api.log"
            url = f"http://127.0.0.1:{port}"
            api = _start(w, port, log, "api")
            await _listening(url, api, log)
            answered: dict[str, int] = {}  # Idempotency-Key -> intent id, as answered
            keys = [f"b{b}-{i}" for b in range(BOTS) for i in range(PER_BOT)]

            async def create(http: httpx.AsyncClient, key: str) -> None:
                # the same body on every try of a key: a retry, not a new request
                amount = f"{10 + keys.index(key) % 7}.5"
                body = {"coin": coin, "network": network, "address": address, "amount": amount}
                with contextlib.suppress(httpx.TransportError):  # killed mid-request
                    got = await http.post(
                        f"{url}/v1/intents", json=body, headers={"Idempotency-Key": key}
                    )
                    assert got.status_code in (200, 201), (seed, key, got.status_code, got.text)
                    answered[key] = int(got.json()["id"])

            async def bot(b: int, http: httpx.AsyncClient) -> None:
                for i in range(PER_BOT):
                    await create(http, f"b{b}-{i}")
                    await anyio.sleep(rng.uniform(0.0, 0.05))

            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(headers=headers, timeout=5) as http:
                async with anyio.create_task_group() as tg:
                    for b in range(BOTS):
                        tg.start_soon(bot, b, http)
                    await anyio.sleep(rng.uniform(0.1, 0.6))
                    api.kill()  # SIGKILL, mid-traffic
                    api.wait(10)
                api = _start(w, port, log, "api")
                try:
                    await _listening(url, api, log)
                    # the bots retry every create that got no answer, with the same key
                    lost = [k for k in keys if k not in answered]
                    for key in keys:
                        if key not in answered:
                            await create(http, key)
                    # ... and a retry of one that was answered answers the same intent
                    for key in rng.sample(sorted(answered), k=min(5, len(answered))):
                        before = answered[key]
                        await create(http, key)
                        assert answered[key] == before, (seed, key)
                finally:
                    api.kill()
                    api.wait(10)
            assert set(answered) == set(keys), (seed, set(keys) - set(answered))
            print(f"seed {seed}: {len(lost)} of {len(keys)} creates got no answer before the kill")
            rows = await w.sql(
                "SELECT id, request_id FROM withdrawal_intents WHERE request_id LIKE 'api:crash:%'"
            )
            by_key = {r["request_id"].split(":", 2)[2]: r["id"] for r in rows}
            assert len(rows) == len(keys) and by_key == answered, (seed, rows, answered)

            runner = _start(w, _free_port(), tmp_path / "runner.log", "webhook", "run")
            try:
                events = await w.sql("SELECT id FROM intent_events WHERE kind = 'status'")
                committed = {e["id"] for e in events}

                def delivered() -> dict[str, set[int]]:
                    seen: dict[str, set[int]] = {}
                    for got in list(rx.got):
                        doc = json.loads(got.body)
                        seen.setdefault(doc["delivery_id"], set()).add(doc["data"]["event_id"])
                    return seen

                async def all_there() -> bool:
                    return {e for v in delivered().values() for e in v} >= committed

                await wait_until(all_there, timeout=30, poll=0.2, what="every change delivered")
            finally:
                runner.kill()
                runner.wait(10)
            seen = delivered()
            assert all(len(v) == 1 for v in seen.values()), (seed, seen)
            assert {e for v in seen.values() for e in v} == committed, seed
            assert len(committed) == len(keys)  # one creation event per intent, no more
