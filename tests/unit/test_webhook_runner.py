"""The webhook runner over an in-memory store and a recording poster: what it signs and
sends, to whom, and what it records; the refusal to start without the key."""

from __future__ import annotations

import json
import time

import pytest
from webhook_memory import MemoryStore

from treasury.domain import webhooks as hooks
from treasury.ports.webhooks import PostResult
from treasury.services.webhooks import MissingKey, WebhookRunner

KEY = "k" * 40


class Poster:
    def __init__(self, *answers: PostResult) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult:
        self.sent.append((url, body, headers))
        return self.answers.pop(0) if self.answers else PostResult(204, None)


async def test_rows_go_to_the_subscriptions_that_want_them_signed() -> None:
    store, poster = MemoryStore(), Poster()
    store.write("intent.status", {"intent_id": 1, "to_status": "queued"})  # before any
    status_only = store.subscribe("https://a.test/h", ("intent.status",))
    both = store.subscribe("https://b.test/h", hooks.TOPICS)
    store.write("intent.status", {"intent_id": 2, "to_status": "queued"})
    store.write("alert", {"kind": "paused", "message": "m", "intent_id": None})
    runner = WebhookRunner(store, poster, key=KEY)
    await runner.prepare()
    assert await runner.step() == 3
    assert await runner.step() == 0  # each once
    sent = sorted((url, json.loads(body)["delivery_id"]) for url, body, _ in poster.sent)
    assert sent == [
        ("https://a.test/h", f"2.{status_only}"),
        ("https://b.test/h", f"2.{both}"),
        ("https://b.test/h", f"3.{both}"),
    ]
    for url, body, headers in poster.sent:
        sub = status_only if url.startswith("https://a") else both
        doc = json.loads(body)
        assert headers["Treasury-Delivery"] == doc["delivery_id"]
        assert headers["Treasury-Event"] == doc["topic"]
        assert hooks.verify(
            hooks.derive_secret(KEY, sub), headers["Treasury-Signature"], body, now=int(time.time())
        )
    assert {d.status for d in store.deliveries.values()} == {"delivered"}


async def test_a_failed_attempt_is_recorded_and_retried_later() -> None:
    store = MemoryStore()
    store.subscribe("https://a.test/h", ("intent.status",))
    store.write("intent.status", {"intent_id": 1})
    runner = WebhookRunner(store, Poster(PostResult(None, "ConnectError")), key=KEY)
    await runner.step()
    [d] = store.deliveries.values()
    assert (d.status, d.attempts, d.last_error, d.last_status_code) == (
        "pending",
        1,
        "ConnectError",
        None,
    )
    assert d.next_attempt_at > d.created_at
    assert await runner.step() == 0  # not yet due


async def test_no_key_means_no_start_while_subscriptions_exist() -> None:
    store = MemoryStore()
    runner = WebhookRunner(store, Poster(), key=None)
    await runner.prepare()  # none: fine (the alert channel needs no key)
    store.subscribe("https://a.test/h", ("alert",))
    with pytest.raises(MissingKey, match="TREASURY_WEBHOOK_KEY"):
        await runner.prepare()


async def test_the_alert_channel_gets_alert_rows_unsigned_through_its_own_sender() -> None:
    class Channel:
        def __init__(self) -> None:
            self.got: list[tuple[str, str, int | None]] = []

        async def send(
            self, *, kind: str, message: str, intent_id: int | None, at: object
        ) -> PostResult:
            self.got.append((kind, message, intent_id))
            return PostResult(200, None)

    store, poster, channel = MemoryStore(), Poster(), Channel()
    runner = WebhookRunner(store, poster, key=None, alerts=channel)
    await runner.prepare()
    store.write("alert", {"kind": "paused", "message": "account 'x' paused", "intent_id": None})
    store.write("intent.status", {"intent_id": 1})  # not the channel's topic
    await runner.step()
    assert channel.got == [("paused", "account 'x' paused", None)]
    assert poster.sent == []
