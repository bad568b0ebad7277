"""``treasury webhook add / list / remove / deliveries``: clear refusals that write
nothing, the secret printed once and never stored, every change on the record."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import text
from test_cli_admin import GOOD, as_json, cli, ok, refused
from webhook_receiver import receiver

from treasury.adapters.db.engine import create_engine
from treasury.domain import webhooks as hooks

KEY = "0123456789abcdef" * 4


async def table(url: str, name: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(text(f"SELECT * FROM {name} ORDER BY id")))
    finally:
        await engine.dispose()


@pytest.fixture
def env(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TREASURY_DATABASE_URL", migrated_url)
    monkeypatch.setenv("TREASURY_WEBHOOK_KEY", KEY)
    return migrated_url


async def test_add_prints_the_secret_once_and_stores_none_of_it(env: str) -> None:
    shown = ok(
        await cli(
            "webhook", "add", "https://hooks.example.com/t", "--events", "intent.status",
            "--as", "alice", "--reason", "ops dashboard",
        )
    )  # fmt: skip
    secret = hooks.derive_secret(KEY, 1)
    assert "subscription 1 added" in shown and secret in shown
    [sub] = await table(env, "webhook_subscriptions")
    assert (sub.url, sub.events, sub.created_by) == (
        "https://hooks.example.com/t",
        "intent.status",
        "cli:alice",
    )
    assert secret not in repr(tuple(sub)) and KEY not in repr(tuple(sub))
    [event] = await table(env, "webhook_events")
    assert (event.kind, event.actor, event.reason) == ("added", "cli:alice", "ops dashboard")
    listed = as_json(await cli("webhook", "list", "--json"))
    assert [s["url"] for s in listed] == ["https://hooks.example.com/t"]
    assert secret not in repr(listed)

    ok(await cli("webhook", "remove", "1", "--as", "bob", "--reason", "retired"))
    assert as_json(await cli("webhook", "list", "--json")) == []
    [gone] = as_json(await cli("webhook", "list", "--all", "--json"))
    assert (gone["disabled_by"], gone["disabled_reason"]) == ("cli:bob", "retired")
    assert [e.kind for e in await table(env, "webhook_events")] == ["added", "removed"]
    refused(await cli("webhook", "remove", "1", "--as", "bob", "--reason", "again"), 1, "none")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["http://example.com/h"], 2, ["URL", "loopback"]),
        (["https://example.com/h", "--events", "intent.created"], 2, ["--events", "topic"]),
        (["https://u:p@example.com/h"], 2, ["password"]),
    ],
)
async def test_bad_input_is_refused_and_nothing_written(
    env: str, args: list[str], code: int, words: list[str]
) -> None:
    err = refused(await cli("webhook", "add", *args, "--as", "a"), code, *words)
    assert "u:p@" not in err
    assert await table(env, "webhook_subscriptions") == []


async def test_add_without_the_key_names_the_variable(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TREASURY_WEBHOOK_KEY")
    refused(await cli("webhook", "add", "https://e.test/h", "--as", "a"), 3, "TREASURY_WEBHOOK_KEY")
    monkeypatch.setenv("TREASURY_WEBHOOK_KEY", "short")
    refused(await cli("webhook", "add", "https://e.test/h", "--as", "a"), 3, "TREASURY_WEBHOOK_KEY")
    assert await table(env, "webhook_subscriptions") == []


async def test_remove_needs_a_reason_and_deliveries_filters(env: str) -> None:
    ok(await cli("webhook", "add", "https://e.test/h", "--as", "a"))
    refused(await cli("webhook", "remove", "1", "--as", "a", "--reason", "  "), 2, "--reason")
    refused(await cli("webhook", "deliveries", "--status", "lost"), 2, "--status")
    assert as_json(await cli("webhook", "deliveries", "--json", "--status", "pending")) == []
    assert "delivery" in ok(await cli("webhook", "deliveries"))


async def test_webhook_run_alone_delivers_and_stops_on_sigterm(env: str, tmp_path: Path) -> None:
    """``treasury webhook run`` as a process: refuses without the key while subscriptions
    exist (naming it), delivers, and exits 0 on SIGTERM."""
    with receiver() as rx:
        ok(await cli("webhook", "add", rx.url, "--events", "intent.status", "--as", "a"))
        ok(await cli("enqueue", *GOOD, "--as", "a"))
        base = {k: v for k, v in os.environ.items() if not k.startswith("TREASURY_")}
        child = {**base, "TREASURY_DATABASE_URL": env, "TREASURY_WEBHOOK_POLL_S": "0.1"}
        refused_run = await anyio.run_process(
            [sys.executable, "-m", "treasury", "webhook", "run"], env=child, check=False
        )
        assert refused_run.returncode == 3
        assert b"TREASURY_WEBHOOK_KEY" in refused_run.stderr
        log = tmp_path / "runner.log"
        with log.open("wb") as sink:
            proc = await anyio.open_process(
                [sys.executable, "-m", "treasury", "webhook", "run"],
                env={**child, "TREASURY_WEBHOOK_KEY": KEY},
                stdout=sink,
                stderr=sink,
            )
            async with proc:
                try:
                    with anyio.fail_after(20):
                        while not rx.got:
                            await anyio.sleep(0.1)
                    proc.send_signal(signal.SIGTERM)
                    with anyio.fail_after(10):
                        code = await proc.wait()
                finally:
                    if proc.returncode is None:
                        proc.kill()
        out = log.read_bytes()
        assert code == 0, out
        assert KEY.encode() not in out
        assert rx.got[0].headers["Treasury-Event"] == "intent.status"
