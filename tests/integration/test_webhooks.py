"""Webhooks from the transactional outbox, on SQLite and PostgreSQL, to real receivers
on loopback: one delivery per (status change, subscription), signed; none for a change
that rolled back; raw SQL changes too; retries; a bounded give-up; the alert channel.

The runner's clock is the test's (``Clock``): retries come due by moving it, not by
waiting, while the HTTP and the database are real.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import func, select, text
from webhook_receiver import Receiver, receiver, silent_port

from treasury.adapters import alerts as ops_alerts
from treasury.adapters import webhook_http
from treasury.adapters.db.engine import transaction
from treasury.adapters.db.ledger import SqlLedger
from treasury.adapters.db.tables import outbox, webhook_deliveries
from treasury.adapters.db.webhooks import SqlWebhooks
from treasury.config import SettingsError
from treasury.domain import webhooks as hooks
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.logs import REDACTED, register_secret
from treasury.runtime import webhooks as ops_webhooks
from treasury.services.webhooks import MissingKey, WebhookRunner

KEY = "k" * 40


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with webhook_http.client(5.0) as client:
        yield client


def make_runner(
    ledger: SqlLedger,
    http: httpx.AsyncClient,
    clock: Clock,
    *,
    key: str | None = KEY,
    alerts: ops_alerts.AlertWebhook | None = None,
    max_retry_s: float = 3600,
    timeout_s: float = 5.0,
    results: list[str] | None = None,
) -> WebhookRunner:
    return WebhookRunner(
        SqlWebhooks(ledger.engine),
        webhook_http.HttpPoster(http, timeout_s=timeout_s),
        key=key,
        alerts=alerts,
        max_retry_s=max_retry_s,
        timeout_s=timeout_s,
        poll_s=0.05,
        clock=clock,
        on_alert_result=None if results is None else results.append,
    )


async def enqueue(ledger: SqlLedger, request_id: str) -> int:
    new = validate_new_intent(
        coin="USDT",
        network="TRX",
        address="TXyzAbc123",
        amount="12.50",
        request_id=request_id,
        requested_by="bot-1",
    )
    intent, _ = await ledger.intents.enqueue(new, actor="test")
    return intent.id


async def settle(runner: WebhookRunner, rounds: int = 5) -> None:
    for _ in range(rounds):
        await runner.step()


def bodies(rx: Receiver) -> list[dict[str, Any]]:
    """What ``rx`` got, in outbox order (deliveries run concurrently: no order is promised)."""
    rx.got.sort(key=lambda r: int(json.loads(r.body)["delivery_id"].split(".")[0]))
    return [json.loads(r.body) for r in rx.got]


async def deliveries(ledger: SqlLedger) -> list[Any]:
    async with ledger.engine.connect() as conn:
        return list(
            await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id))
        )


async def test_a_status_change_is_delivered_once_per_subscription_signed(
    ledger: SqlLedger, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    store = SqlWebhooks(ledger.engine)
    with receiver() as a, receiver() as b, receiver() as alerts_only:
        sub_a = await store.add(url=a.url, topics=("intent.status",), actor="t", reason="r")
        sub_b = await store.add(url=b.url, topics=hooks.TOPICS, actor="t", reason="r")
        await store.add(url=alerts_only.url, topics=("alert",), actor="t", reason="r")
        intent_id = await enqueue(ledger, "wh-1")
        await ledger.intents.transition(intent_id, Status.CANCELLED, reason="no", actor="cli:x")
        runner = make_runner(ledger, http, clock)
        await runner.prepare()
        await settle(runner)
        await settle(runner)  # nothing more comes of a second pass

        assert alerts_only.got == []
        for rx, sub in ((a, sub_a), (b, sub_b)):
            docs = bodies(rx)
            assert [d["data"]["to_status"] for d in docs] == ["queued", "cancelled"]
            assert len({d["delivery_id"] for d in docs}) == 2
            secret = hooks.derive_secret(KEY, sub)
            for got, doc in zip(rx.got, docs, strict=True):
                assert got.headers["Treasury-Delivery"] == doc["delivery_id"]
                assert doc["delivery_id"].endswith(f".{sub}")
                assert got.headers["Treasury-Event"] == "intent.status" == doc["topic"]
                assert hooks.verify(
                    secret, got.headers["Treasury-Signature"], got.body, now=int(time.time())
                )
                assert not hooks.verify(
                    hooks.derive_secret(KEY, sub + 100),
                    got.headers["Treasury-Signature"],
                    got.body,
                    now=int(time.time()),
                )
        data = bodies(a)[1]["data"]
        assert data["intent_id"] == intent_id
        assert data["from_status"] == "queued" and data["reason"] == "no"
        assert data["version"] == 1 and bodies(a)[0]["data"]["version"] == 0
        assert Decimal(data["amount"]) == Decimal("12.5") and isinstance(data["amount"], str)
        assert (data["coin"], data["network"], data["account"]) == ("USDT", "TRX", "default")
        assert (data["request_id"], data["requested_by"]) == ("wh-1", "bot-1")
        assert isinstance(data["event_id"], int) and data["created_at"].endswith("Z")
    rows = await deliveries(ledger)
    assert len(rows) == 4 and {r.status for r in rows} == {"delivered"}
    assert {r.attempts for r in rows} == {1}


async def test_a_rolled_back_change_sends_nothing(
    ledger: SqlLedger, http: httpx.AsyncClient
) -> None:
    store = SqlWebhooks(ledger.engine)
    intent_id = await enqueue(ledger, "wh-rb")  # before the subscription: not sent
    with receiver() as rx:
        await store.add(url=rx.url, topics=("intent.status",), actor="t", reason="r")

        class Boom(Exception):
            pass

        async def change_then_fail() -> None:
            async with transaction(ledger.engine) as conn:
                await ledger.intents.transition(
                    intent_id, Status.CANCELLED, reason="rolled back", actor="t", conn=conn
                )
                if conn.dialect.name == "postgresql":  # (SQLite: one writer; no peeking)
                    async with ledger.engine.connect() as other:  # not visible outside
                        assert await other.scalar(select(func.count()).select_from(outbox)) == 1
                assert await conn.scalar(select(func.count()).select_from(outbox)) == 2
                raise Boom

        with pytest.raises(Boom):
            await change_then_fail()
        runner = make_runner(ledger, http, Clock())
        await settle(runner)
        assert rx.got == []
        assert (await ledger.intents.get(intent_id)).status is Status.QUEUED
        # the same change committed is sent
        await ledger.intents.transition(intent_id, Status.CANCELLED, reason="yes", actor="t")
        await settle(runner)
        assert [d["data"]["reason"] for d in bodies(rx)] == ["yes"]
    async with ledger.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(outbox)) == 2  # enqueue, yes


async def test_a_raw_sql_status_change_is_sent_too(
    ledger: SqlLedger, http: httpx.AsyncClient
) -> None:
    store = SqlWebhooks(ledger.engine)
    intent_id = await enqueue(ledger, "wh-raw")
    with receiver() as rx:
        await store.add(url=rx.url, topics=("intent.status",), actor="t", reason="r")
        async with ledger.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO intent_events (intent_id, from_status, to_status, reason, "
                    "actor, kind, intent_version, created_at) VALUES (:i, 'queued', "
                    "'cancelled', 'by hand', 'sql:dba', 'status', 1, :now)"
                ),
                {"i": intent_id, "now": _db_time(conn.dialect.name)},
            )
            await conn.execute(
                text(
                    "UPDATE withdrawal_intents SET status = 'cancelled', version = 1 WHERE id = :i"
                ),
                {"i": intent_id},
            )
        await settle(make_runner(ledger, http, Clock()))
        docs = bodies(rx)
        assert len(docs) == 1
        assert docs[0]["data"]["actor"] == "sql:dba" and docs[0]["data"]["version"] == 1


def _db_time(dialect: str) -> Any:
    now = datetime.now(UTC)
    return now if dialect == "postgresql" else now.strftime("%Y-%m-%d %H:%M:%S.%f")


async def test_a_note_event_sends_nothing(ledger: SqlLedger, http: httpx.AsyncClient) -> None:
    store = SqlWebhooks(ledger.engine)
    intent_id = await enqueue(ledger, "wh-note")
    with receiver() as rx:
        await store.add(url=rx.url, topics=("intent.status",), actor="t", reason="r")
        await ledger.intents.record_note(intent_id, reason="held: x", actor="t", kind="hold")
        await settle(make_runner(ledger, http, Clock()))
        assert rx.got == []


async def test_500_then_200_is_retried_and_delivered_with_two_attempts(
    ledger: SqlLedger, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    store = SqlWebhooks(ledger.engine)
    with receiver(answers=[500]) as rx:
        await store.add(url=rx.url, topics=("intent.status",), actor="t", reason="r")
        await enqueue(ledger, "wh-500")
        runner = make_runner(ledger, http, clock)
        await settle(runner)
        [row] = await deliveries(ledger)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert row.last_error.startswith("HTTP 500")
        await settle(runner)  # not due yet: the backoff holds it
        assert len(rx.got) == 1
        clock.advance(hooks.BACKOFF_BASE_S + 1)
        await settle(runner)
        [row] = await deliveries(ledger)
        assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2, 200)
        assert row.last_error is None and row.delivered_at is not None
        assert len(rx.got) == 2
        assert rx.got[0].headers["Treasury-Delivery"] == rx.got[1].headers["Treasury-Delivery"]


async def test_a_receiver_that_never_answers_ends_failed_after_the_bound(
    ledger: SqlLedger, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    store = SqlWebhooks(ledger.engine)
    with silent_port() as url:
        await store.add(url=url, topics=("intent.status",), actor="t", reason="r")
        await enqueue(ledger, "wh-silent")
        runner = make_runner(ledger, http, clock, max_retry_s=60, timeout_s=0.3)
        for _ in range(20):
            await settle(runner, 1)
            [row] = await deliveries(ledger)
            if row.status != "pending":
                break
            clock.advance(30)
        assert row.status == "failed"
        assert 2 <= row.attempts <= 6
        assert row.last_error == "ReadTimeout" and row.last_status_code is None
        assert url not in row.last_error


async def test_alerts_reach_the_alert_channel_through_the_outbox_even_after_a_restart(
    ledger: SqlLedger, http: httpx.AsyncClient
) -> None:
    register_secret("sk_live_abcdefghijklmnop")
    store = SqlWebhooks(ledger.engine)
    with receiver() as rx:
        channel = ops_alerts.AlertWebhook(rx.url, "json", http=http)
        await make_runner(ledger, http, Clock(), alerts=channel).prepare()  # the first start
        alert = ops_alerts.outbox_alert(store.write_alert)
        # raised, then the process dies before delivering: only the outbox row remains
        await alert("failed", "intent 7 refused: key sk_live_abcdefghijklmnop", 7)
        assert rx.got == []
        results: list[str] = []
        restarted = make_runner(ledger, http, Clock(), alerts=channel, results=results)
        await restarted.prepare()
        await settle(restarted)
        assert results == ["delivered"]  # the metric's hook
        [doc] = [json.loads(r.body) for r in rx.got]
        assert doc["kind"] == "failed" and doc["intent_id"] == 7 and doc["service"] == "treasury"
        assert REDACTED in doc["message"] and "sk_live" not in doc["message"]
        assert "Treasury-Signature" not in rx.got[0].headers  # the channel's own format
        async with ledger.engine.connect() as conn:
            payload = await conn.scalar(select(outbox.c.payload))
        assert "sk_live" not in payload
    # the channel unset: its subscription is retired, nothing else is asked for
    runner = make_runner(ledger, http, Clock(), key=None)
    await runner.prepare()
    assert await store.alert_channel(enabled=False, now=datetime.now(UTC)) is None
    assert [s for s in await store.subscriptions() if s.builtin] == []


async def test_the_runner_refuses_to_start_without_the_key_when_subscriptions_exist(
    ledger: SqlLedger, http: httpx.AsyncClient
) -> None:
    runner = make_runner(ledger, http, Clock(), key=None)
    await runner.prepare()  # nothing to sign for: fine
    await SqlWebhooks(ledger.engine).add(
        url="https://example.test/h", topics=("alert",), actor="t", reason="r"
    )
    with pytest.raises(MissingKey, match="TREASURY_WEBHOOK_KEY"):
        await runner.prepare()
    # as treasury webhook run prepares it: a configuration error naming the variable
    with pytest.raises(SettingsError, match="TREASURY_WEBHOOK_KEY"):
        await ops_webhooks.prepare(runner)
    # beside the daemon: sends matter more than notifications; alerted, not fatal
    said: list[tuple[str, str]] = []

    async def alert(kind: str, message: str, _intent: int | None) -> None:
        said.append((kind, message))

    await ops_webhooks.prepare(runner, alert=alert)
    [(kind, message)] = said
    assert kind == "webhook_key_missing" and "TREASURY_WEBHOOK_KEY" in message


async def test_a_removed_subscription_gets_nothing_more(
    ledger: SqlLedger, http: httpx.AsyncClient
) -> None:
    store = SqlWebhooks(ledger.engine)
    with receiver(answers=[500]) as rx:
        sub = await store.add(url=rx.url, topics=("intent.status",), actor="t", reason="r")
        await enqueue(ledger, "wh-rm1")
        clock = Clock()
        runner = make_runner(ledger, http, clock)
        await settle(runner)  # one attempt, 500: pending
        await store.remove(sub, actor="cli:x", reason="gone")
        await enqueue(ledger, "wh-rm2")
        clock.advance(3600)
        await settle(runner)
        assert len(rx.got) == 1
        [row] = await deliveries(ledger)
        assert (row.status, row.last_error) == ("failed", "subscription removed")
    async with ledger.engine.connect() as conn:
        kinds = (await conn.execute(text("SELECT kind, actor FROM webhook_events"))).all()
    assert [tuple(k) for k in kinds] == [("added", "t"), ("removed", "cli:x")]


async def test_two_runners_deliver_each_once(ledger: SqlLedger, http: httpx.AsyncClient) -> None:
    store = SqlWebhooks(ledger.engine)
    with receiver() as rx:
        await store.add(url=rx.url, topics=("intent.status",), actor="t", reason="r")
        for i in range(10):
            await enqueue(ledger, f"wh-two-{i}")
        one, two = make_runner(ledger, http, Clock()), make_runner(ledger, http, Clock())
        async with anyio.create_task_group() as tg:
            tg.start_soon(settle, one)
            tg.start_soon(settle, two)
        ids = [r.headers["Treasury-Delivery"] for r in rx.got]
        assert len(ids) == 10 and len(set(ids)) == 10


async def test_webhook_events_are_append_only(ledger: SqlLedger) -> None:
    from sqlalchemy.exc import DBAPIError

    await SqlWebhooks(ledger.engine).add(
        url="https://e.test/h", topics=("alert",), actor="t", reason="r"
    )
    for sql in ("DELETE FROM webhook_events", "UPDATE webhook_events SET actor = 'x'"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with ledger.engine.begin() as conn:
                await conn.execute(text(sql))
