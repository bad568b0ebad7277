"""Webhook alerts: formats, redaction, retries, the bounded queue, shutdown flush.

The receiver here is ``httpx.MockTransport``; tests/integration/test_ops_server.py
delivers to a real HTTP server, and to a dead and a hanging one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from treasury.adapters.alerts import AlertRecord, WebhookAlerts, from_settings, payload
from treasury.config import load_settings
from treasury.logs import REDACTED, register_secret, scrub_text

URL = "https://hooks.example.test/services/T000/B000/abcdefghijklmnopqrstuvwx"
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Receiver:
    """A MockTransport handler answering from a script of status codes (then 200)."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.bodies: list[dict[str, object]] = []
        self.delivered = anyio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.delivered.set()
        return httpx.Response(status, headers=self.headers, text="nope" if status >= 300 else "ok")


def sink(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> WebhookAlerts:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    options: dict[str, object] = {"backoff_s": 0.001, "max_backoff_s": 0.01, **kwargs}
    return WebhookAlerts(URL, http=http, **options)  # type: ignore[arg-type]


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
    with pytest.raises(ValueError, match="chat id"):
        WebhookAlerts(URL, "telegram")
    with pytest.raises(ValueError, match="format"):
        WebhookAlerts(URL, "xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http"):
        WebhookAlerts("ftp://example.test/x")


# ---- delivery ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "slack", "telegram"])
async def test_delivers_in_each_format(fmt: str) -> None:
    receiver = Receiver()
    alerts = sink(receiver, fmt=fmt, telegram_chat_id="42")
    async with anyio.create_task_group() as tg:
        await tg.start(alerts.run)
        await alerts("needs_attention", "intent 3: look at it", 3)
        await receiver.delivered.wait()
        tg.cancel_scope.cancel()
    body = receiver.bodies[0]
    if fmt == "json":
        assert body["kind"] == "needs_attention" and body["intent_id"] == 3
        assert body["service"] == "treasury" and body["message"] == "intent 3: look at it"
        datetime.fromisoformat(str(body["at"]))
    elif fmt == "slack":
        assert body == {"text": "[treasury] needs_attention (intent 3): intent 3: look at it"}
    else:
        assert body == {
            "chat_id": "42",
            "text": "[treasury] needs_attention (intent 3): intent 3: look at it",
        }
    assert alerts.delivered == 1


async def test_secrets_are_redacted_before_leaving() -> None:
    secret = "s3cr3t-hmac-value-0123456789"
    register_secret(secret)
    receiver = Receiver()
    alerts = sink(receiver)
    async with anyio.create_task_group() as tg:
        await tg.start(alerts.run)
        await alerts("failed", f"signature mismatch for {secret}", 1)
        await receiver.delivered.wait()
        tg.cancel_scope.cancel()
    sent = json.dumps(receiver.bodies)
    assert secret not in sent and REDACTED in sent


async def test_retries_transient_failures_then_delivers() -> None:
    receiver = Receiver(503, 429, 500)
    results: list[str] = []
    alerts = sink(receiver, on_result=results.append)
    async with anyio.create_task_group() as tg:
        await tg.start(alerts.run)
        await alerts("failed", "x", None)
        await receiver.delivered.wait()
        tg.cancel_scope.cancel()
    assert len(receiver.bodies) == 4
    assert results == ["delivered"]


async def test_gives_up_after_the_retries_and_goes_on_with_the_next() -> None:
    receiver = Receiver(*([500] * 3))
    results: list[str] = []
    alerts = sink(receiver, retries=2, on_result=results.append)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            await tg.start(alerts.run)
            await alerts("failed", "first", None)
            await alerts("failed", "second", None)
            await receiver.delivered.wait()
            tg.cancel_scope.cancel()
    assert results == ["failed", "delivered"]
    assert [b["message"] for b in receiver.bodies] == ["first"] * 3 + ["second"]
    assert sum(1 for e in logs if e["event"] == "alert.retry") == 2
    undelivered = [e for e in logs if e["event"] == "alert.undelivered"]
    assert len(undelivered) == 1 and "500" in undelivered[0]["error"]
    assert all(URL not in json.dumps(e, default=str) for e in logs)


async def test_a_client_error_is_not_retried() -> None:
    receiver = Receiver(404)
    results: list[str] = []
    finished = anyio.Event()

    def on_result(result: str) -> None:
        results.append(result)
        finished.set()

    alerts = sink(receiver, on_result=on_result)
    async with anyio.create_task_group() as tg:
        await tg.start(alerts.run)
        await alerts("failed", "x", None)
        with anyio.fail_after(5):
            await finished.wait()
        tg.cancel_scope.cancel()
    assert results == ["failed"] and len(receiver.bodies) == 1


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    receiver = Receiver(429, headers={"Retry-After": "0.2"})
    alerts = sink(receiver, max_backoff_s=0.3)
    async with anyio.create_task_group() as tg:
        await tg.start(alerts.run)
        started = anyio.current_time()
        await alerts("failed", "x", None)
        await receiver.delivered.wait()
        took = anyio.current_time() - started
        tg.cancel_scope.cancel()
    assert 0.15 <= took < 2


# ---- the queue -----------------------------------------------------------------------


async def test_full_queue_drops_the_oldest_with_a_counted_warning() -> None:
    results: list[str] = []
    alerts = sink(Receiver(), max_queue=2, on_result=results.append)
    with capture_logs() as logs:
        for i in range(4):
            await alerts("failed", f"m{i}", i)  # nothing delivers: run() is not started
    assert alerts.pending == 2 and alerts.dropped == 2
    assert results == ["dropped", "dropped"]
    drops = [e for e in logs if e["event"] == "alert.dropped"]
    assert [d["intent_id"] for d in drops] == [0, 1]
    assert drops[-1]["dropped_total"] == 2 and drops[-1]["log_level"] == "warning"


async def test_calling_never_raises() -> None:
    alerts = sink(Receiver())

    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("cannot render")

    with capture_logs() as logs:
        await alerts("failed", Weird(), None)  # type: ignore[arg-type]
    assert alerts.pending == 0
    assert logs[0]["event"] == "alert.enqueue_failed"


async def test_queued_alerts_are_flushed_on_shutdown() -> None:
    receiver = Receiver()
    alerts = sink(receiver)
    for i in range(3):
        await alerts("failed", f"m{i}", i)
    with anyio.CancelScope() as scope:
        scope.cancel()  # cancelled before run() delivers anything
        await alerts.run()
    assert [b["intent_id"] for b in receiver.bodies] == [0, 1, 2]
    assert alerts.pending == 0


# ---- settings ------------------------------------------------------------------------


def test_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_settings(load_settings()) is None
    token = "bot123456789:AAE-secret-bot-token-value"
    url = f"https://api.telegram.org/{token}/sendMessage"
    monkeypatch.setenv("TREASURY_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("TREASURY_ALERT_FORMAT", "telegram")
    monkeypatch.setenv("TREASURY_ALERT_TELEGRAM_CHAT_ID", "-1001")
    alerts = from_settings(load_settings())
    assert alerts is not None and alerts.fmt == "telegram"
    assert token not in scrub_text(f"POST {url} failed; token {token}")
    assert token not in repr(alerts)
