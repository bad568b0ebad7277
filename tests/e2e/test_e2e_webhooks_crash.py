"""SIGKILL ``treasury run`` at a random moment while intents move, restart it, and check
the webhooks: every committed status change (``intent_events``) reached the subscribed
receiver at least once, each ``delivery_id`` always names the same (outbox row,
subscription), and nothing was sent for a change that did not commit."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import anyio
import pytest
from harness import BTC_BTC, USDT_BSC, USDT_ETH, USDT_TRX, USDT_TRX_2, XRP_1, wait_until, world

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from webhook_receiver import receiver

from treasury.domain import webhooks as hooks

pytestmark = pytest.mark.slow
KEY = "e2e-webhook-key-" + "x" * 32
ENV = {
    "TREASURY_WEBHOOK_KEY": KEY,
    "TREASURY_WEBHOOK_POLL_S": "0.1",
    "TREASURY_WEBHOOK_TIMEOUT_S": "1",
}


async def test_webhooks_survive_a_sigkill(backend: str, tmp_path: Path) -> None:
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    async with world(backend, tmp_path, env=ENV) as w:
        with receiver() as rx:
            added = await w.cli(
                "webhook", "add", rx.url, "--events", "intent.status", "--as", "e2e",
                "--reason", "crash test",
            )  # fmt: skip
            assert b"signing secret" in added.stdout
            [sub] = await w.sql("SELECT id FROM webhook_subscriptions")
            secret = hooks.derive_secret(KEY, sub["id"])

            daemon = await w.start_daemon()
            ids = [
                await w.insert_sql(*dest, amount)
                for dest, amount in (
                    (USDT_TRX, "10.5"),
                    (USDT_ETH, "11.25"),
                    (XRP_1, "40"),
                    (BTC_BTC, "0.001"),
                    (USDT_BSC, "12"),
                    (USDT_TRX_2, "13"),
                )
            ]
            await anyio.sleep(rng.uniform(0.2, 2.5))  # intents move meanwhile
            daemon.sigkill()
            await w.start_daemon()
            rows = await w.wait_settled(ids, timeout=40)
            assert all(r["status"] == "completed" for r in rows), (seed, rows)

            events = await w.sql("SELECT id FROM intent_events WHERE kind = 'status'")
            committed = {e["id"] for e in events}

            def seen() -> dict[str, set[int]]:
                by_delivery: dict[str, set[int]] = {}
                for got in list(rx.got):
                    doc = json.loads(got.body)
                    by_delivery.setdefault(doc["delivery_id"], set()).add(doc["data"]["event_id"])
                return by_delivery

            async def all_delivered() -> bool:
                return {e for ids_ in seen().values() for e in ids_} >= committed

            await wait_until(all_delivered, timeout=20, poll=0.2, what="every change delivered")
            by_delivery = seen()
            # each delivery id: one (outbox row, subscription), however often it came
            assert all(len(v) == 1 for v in by_delivery.values()), (seed, by_delivery)
            assert all(d.endswith(f".{sub['id']}") for d in by_delivery)
            delivered = {e for v in by_delivery.values() for e in v}
            assert delivered == committed, (seed, delivered ^ committed)  # none invented
            for got in rx.got:
                assert hooks.verify(
                    secret, got.headers["Treasury-Signature"], got.body,
                    now=int(__import__("time").time()), tolerance_s=600,
                )  # fmt: skip
            outbox = await w.sql("SELECT count(*) AS n FROM outbox WHERE topic = 'intent.status'")
            assert outbox[0]["n"] == len(committed)
