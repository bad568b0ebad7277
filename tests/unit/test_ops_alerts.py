"""Alerts to the configured webhook: formats, redaction, and (since the outbox) the path
an alert takes: written as an ``alert`` outbox row when raised, delivered by the webhook
runner to the channel in its format, retried with the runner's backoff until the bound.

The receiver here is ``httpx.MockTransport`` and the store is in memory
(``webhook_memory``); tests/integration/test_webhooks.py runs the same path over the
database, and tests/integration/test_ops_server.py to real, dead and hanging receivers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from structlog.testing import capture_logs
from webhook_memory import MemoryStore

from treasury.adapters.alerts import (
    AlertRecord,
    AlertWebhook,
    channel_from_settings,
    outbox_alert,
    payload,
)
from treasury.adapters.webhook_http import HttpPoster
from treasury.config import load_settings
from treasury.logs import REDACTED, register_secret, scrub_text
from treasury.services.webhooks import WebhookRunner

URL = "https://hooks.example.test/services/T000/B000/abcdefghijklmnopqrstuvwx"
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Receiver:
    """A MockTransport handler answering from a script of status codes (then 200)."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.bodies: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, headers=self.headers, text="nope" if status >= 300 else "ok")


def channel(
    handler: Callable[[httpx.Request], httpx.Response], fmt: str = "json", **kwargs: object
) -> AlertWebhook:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AlertWebhook(URL, fmt, http=http, **kwargs)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def delivered_through_the_outbox(
    receiver: Receiver,
    *raised: tuple[str, str, int | None],
    max_retry_s: float = 3600,
    rounds: int = 20,
) -> tuple[MemoryStore, list[str], Clock]:
    """Raise ``raised`` as the daemon does, then run the runner's rounds, moving its clock
    to each next attempt; the store, the alert metric's results and the clock."""
    store, clock, results = MemoryStore(), Clock(), []
    runner = WebhookRunner(
        store,
        HttpPoster(httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))),
        key=None,
        alerts=channel(receiver),
        max_retry_s=max_retry_s,
        clock=clock,
        on_alert_result=results.append,
    )
    await runner.prepare()

    async def write(kind: str, message: str, intent_id: int | None) -> None:
        store.write("alert", {"kind": kind, "message": message, "intent_id": intent_id})

    alert = outbox_alert(write)
    for kind, message, intent_id in raised:
        await alert(kind, message, intent_id)
    for _ in range(rounds):
        await runner.step()
        pending = [d for d in store.deliveries.values() if d.status == "pending"]
        if not pending:
            break
        clock.now = max(clock.now, min(d.next_attempt_at for d in pending))
    return store, results, clock


# ---- bodies --------------------------------------------------------------------------


def test_payloads() -> None:
    alert = AlertRecord(kind="failed", message="intent 7 <refused> & gone", intent_id=7, at=AT)
    assert payload("json", alert) == {
        "kind": "failed",
        "message": "intent 7 <refused> & gone",
        "intent_id": 7,
        "service": "treasury",
        "at": "2024-05-01T12:00:00+00:00",
    }
    assert payload("slack", alert) == {
        "text": "[treasury] failed (intent 7): intent 7 &lt;refused&gt; &amp; gone"
    }
    assert payload("telegram", alert, chat_id="-100") == {
        "chat_id": "-100",
        "text": "[treasury] failed (intent 7): intent 7 <refused> & gone",
    }
    no_intent = AlertRecord(kind="paused", message="m", intent_id=None, at=AT)
    assert payload("slack", no_intent) == {"text": "[treasury] paused: m"}


def test_bad_configuration_is_refused() -> None:
    http = httpx.AsyncClient()
    with pytest.raises(ValueError, match="chat id"):
        AlertWebhook(URL, "telegram", http=http)
    with pytest.raises(ValueError, match="format"):
        AlertWebhook(URL, "xml", http=http)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http"):
        AlertWebhook("ftp://example.test/x", http=http)


# ---- delivery ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "slack", "telegram"])
async def test_delivers_in_each_format(fmt: str) -> None:
    receiver = Receiver()
    sent = await channel(receiver, fmt, telegram_chat_id="42").send(
        kind="needs_attention", message="intent 3: look at it", intent_id=3, at=AT
    )
    assert sent.ok and sent.status_code == 200
    body = receiver.bodies[0]
    if fmt == "json":
        assert body["kind"] == "needs_attention" and body["intent_id"] == 3
        assert body["service"] == "treasury" and body["message"] == "intent 3: look at it"
        assert body["at"] == AT.isoformat()
    elif fmt == "slack":
        assert body == {"text": "[treasury] needs_attention (intent 3): intent 3: look at it"}
    else:
        assert body == {
            "chat_id": "42",
            "text": "[treasury] needs_attention (intent 3): intent 3: look at it",
        }


async def test_secrets_are_redacted_before_they_are_stored_and_before_they_leave() -> None:
    secret = "s3cr3t-hmac-value-0123456789"
    register_secret(secret)
    receiver = Receiver()
    store, results, _ = await delivered_through_the_outbox(
        receiver, ("failed", f"signature mismatch for {secret}", 1)
    )
    assert results == ["delivered"]
    stored = json.dumps([r.payload for r in store.rows])
    sent = json.dumps(receiver.bodies)
    assert secret not in stored and REDACTED in stored
    assert secret not in sent and REDACTED in sent
    # and the channel scrubs again what it is handed
    await channel(receiver).send(kind="failed", message=f"x {secret}", intent_id=None, at=AT)
    assert secret not in json.dumps(receiver.bodies[-1])


async def test_retries_transient_failures_then_delivers() -> None:
    receiver = Receiver(503, 429, 500)
    store, results, _ = await delivered_through_the_outbox(receiver, ("failed", "x", None))
    assert len(receiver.bodies) == 4
    assert results == ["retry", "retry", "retry", "delivered"]
    [d] = store.deliveries.values()
    assert (d.status, d.attempts, d.last_error) == ("delivered", 4, None)


async def test_gives_up_at_the_bound_with_an_error_line_and_goes_on_with_the_next() -> None:
    receiver = Receiver(*([500] * 1000))
    with capture_logs() as logs:
        store, results, clock = await delivered_through_the_outbox(
            receiver, ("failed", "first", None), max_retry_s=60, rounds=50
        )
    assert results[-1] == "failed" and set(results[:-1]) == {"retry"}
    [d] = store.deliveries.values()
    assert d.status == "failed" and d.last_error == "HTTP 500: nope"
    assert clock.now - d.created_at <= timedelta(seconds=60)
    assert all(b["message"] == "first" for b in receiver.bodies) and len(receiver.bodies) >= 3
    failed = [e for e in logs if e["event"] == "webhooks.delivery_failed"]
    assert len(failed) == 1 and "500" in failed[0]["error"]
    assert all(URL not in json.dumps(e, default=str) for e in logs)
    # the next alert is not held up by the one that failed
    receiver.statuses.clear()
    _, results2, _ = await delivered_through_the_outbox(receiver, ("failed", "second", None))
    assert results2 == ["delivered"]


async def test_a_client_error_is_retried_like_any_other() -> None:
    """A change from the in-memory queue (which gave up on a 4xx at once): every non-2xx
    is retried until the bound, and ``webhook deliveries`` shows the answer."""
    receiver = Receiver(404)
    store, results, _ = await delivered_through_the_outbox(receiver, ("failed", "x", None))
    assert results == ["retry", "delivered"] and len(receiver.bodies) == 2
    assert [d.attempts for d in store.deliveries.values()] == [2]


async def test_retry_after_is_honoured() -> None:
    receiver = Receiver(429, headers={"Retry-After": "120"})
    store, results, clock = await delivered_through_the_outbox(receiver, ("failed", "x", None))
    [d] = store.deliveries.values()
    assert results == ["retry", "delivered"] and d.attempts == 2
    assert clock.now - d.created_at >= timedelta(seconds=120)


# ---- raising one ---------------------------------------------------------------------


async def test_raising_never_raises() -> None:
    async def broken(kind: str, message: str, intent_id: int | None) -> None:
        raise OSError("the database is away")

    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("cannot render")

    with capture_logs() as logs:
        await outbox_alert(broken)("failed", "m", 1)
        await outbox_alert(broken)("failed", Weird(), None)  # type: ignore[arg-type]
    assert [e["event"] for e in logs] == ["alert.not_written"] * 2
    assert logs[0]["error"] == "OSError" and logs[0]["log_level"] == "error"


async def test_an_alert_waits_in_the_outbox_until_a_runner_delivers_it() -> None:
    """What the in-memory queue lost at a crash: the row is written when raised."""
    store = MemoryStore()
    store.subscribe("builtin:alerts", ("alert",), "alerts")

    async def write(kind: str, message: str, intent_id: int | None) -> None:
        store.write("alert", {"kind": kind, "message": message, "intent_id": intent_id})

    await outbox_alert(write)("paused", "account 'default' paused", None)
    assert [json.loads(r.payload)["kind"] for r in store.rows] == ["paused"]


# ---- settings ------------------------------------------------------------------------


def test_channel_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    http = httpx.AsyncClient()
    assert channel_from_settings(load_settings(), http=http) is None
    token = "bot123456789:AAE-secret-bot-token-value"
    url = f"https://api.telegram.org/{token}/sendMessage"
    monkeypatch.setenv("TREASURY_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("TREASURY_ALERT_FORMAT", "telegram")
    monkeypatch.setenv("TREASURY_ALERT_TELEGRAM_CHAT_ID", "-1001")
    alerts = channel_from_settings(load_settings(), http=http)
    assert alerts is not None and alerts.fmt == "telegram"
    assert token not in scrub_text(f"POST {url} failed; token {token}")
    assert token not in repr(alerts)
