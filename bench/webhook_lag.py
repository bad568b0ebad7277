"""Webhook delivery lag: the time from a status change's commit to its arrival at a
loopback receiver, over N changes, with the runner as ``treasury run`` starts it.

    python bench/webhook_lag.py [sqlite|postgresql+asyncpg://.../SCRATCH_DB] [N] [poll_s]

The database is migrated and written to: give a scratch one (sqlite: a temporary file).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "integration"))
from webhook_receiver import receiver

from treasury.adapters import webhook_http
from treasury.adapters.db import migrate
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.adapters.db.webhooks import SqlWebhooks
from treasury.domain.validation import validate_new_intent
from treasury.services.webhooks import WebhookRunner


async def main(url: str, n: int, poll_s: float) -> None:
    await migrate.upgrade(url)
    engine = create_engine(url)
    ledger = SqlLedger.over(engine)
    store = SqlWebhooks(engine)
    committed: dict[int, float] = {}
    with receiver() as rx:
        arrived: dict[int, float] = {}

        class Stamped(list):  # type: ignore[type-arg]
            def append(self, item: object) -> None:
                body = json.loads(item.body)  # type: ignore[attr-defined]
                arrived.setdefault(body["data"]["intent_id"], time.monotonic())
                super().append(item)

        rx.got = Stamped()
        await store.add(url=rx.url, topics=("intent.status",), actor="bench", reason="lag")
        async with webhook_http.client(10) as http:
            runner = WebhookRunner(
                store, webhook_http.HttpPoster(http), key="k" * 40, poll_s=poll_s
            )
            async with anyio.create_task_group() as tg:
                await tg.start(runner.run)
                for i in range(n):
                    new = validate_new_intent(
                        coin="USDT", network="TRX", address="TXyzAbc123", amount="1",
                        request_id=f"lag-{time.time_ns()}-{i}",
                    )  # fmt: skip
                    intent, _ = await ledger.intents.enqueue(new, actor="bench")
                    committed[intent.id] = time.monotonic()
                    await anyio.sleep(0.02)
                with anyio.fail_after(60):
                    while len(arrived) < n:  # noqa: ASYNC110 - the receiver thread fills it
                        await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
    await engine.dispose()
    lags = sorted((arrived[i] - committed[i]) * 1000 for i in committed)
    q = statistics.quantiles(lags, n=100)
    print(
        f"{url.split(':')[0]} n={n} poll={poll_s}s lag ms: p50={q[49]:.0f} p90={q[89]:.0f} "
        f"p99={q[98]:.0f} max={lags[-1]:.0f}"
    )


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    if target == "sqlite":
        target = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/lag.sqlite3"
    anyio.run(main, target, int(sys.argv[2]) if len(sys.argv) > 2 else 300,
              float(sys.argv[3]) if len(sys.argv) > 3 else 1.0)  # fmt: skip
