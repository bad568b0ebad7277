"""In-process worker fixtures: the sandbox exchange and the daemon in the test's loop."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import structlog

from treasury.bootstrap import Runtime, adopt_policy_file, runtime
from treasury.config import load_settings
from treasury.domain.status import Status
from treasury.logs import _RedactingFormatter
from treasury.runtime.daemon import Daemon
from treasury.sandbox.config import SandboxConfig, default_config
from treasury.sandbox.server import RunningSandbox, running_sandbox
from treasury.services.whitelist_sync import sync_whitelist

SETTLED = {s for s in Status if s.terminal} | {Status.NEEDS_ATTENTION}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A CLI command run in process logs to the runner's (then closed) stderr: undo that."""
    saved = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    yield
    root.handlers[:] = [
        h for h in root.handlers if not isinstance(h.formatter, _RedactingFormatter)
    ]
    root.setLevel(level)
    structlog.configure(**saved)


@dataclass
class Stack:
    rt: Runtime
    sandbox: RunningSandbox
    journal: Path
    alerts: list[tuple[str, str, int | None]]

    @asynccontextmanager
    async def daemon(self) -> AsyncIterator[Daemon]:
        daemon = Daemon(self.rt.ctx, pace=self.rt.exchange.apply_limiter.note_sent_at)
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            try:
                yield daemon
            finally:
                daemon.stop()

    @asynccontextmanager
    async def sender(self) -> AsyncIterator[Daemon]:
        """``daemon()`` once it is the sender and has swept: intents enqueued from here on
        are not held by the startup hold (which is for what a new sender inherits)."""
        async with self.daemon() as daemon:
            with anyio.fail_after(15):
                while not (daemon.is_sender and daemon.swept):
                    await anyio.sleep(0.05)
            yield daemon

    async def admin(self, path: str, body: object) -> Any:
        """POST to the sandbox's admin API (``/_sandbox/<path>``); it must answer 200."""
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{self.sandbox.url}/_sandbox/{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    async def sandbox_state(self) -> Any:
        """``GET /_sandbox/ledger``: balances, withdrawals and calls as the exchange sees them."""
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.sandbox.url}/_sandbox/ledger")
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_settled(self, ids: list[int], timeout: float = 60) -> list[Any]:
        with anyio.fail_after(timeout):
            while True:
                intents = [await self.rt.ledger.intents.get(i) for i in ids]
                if all(i.status in SETTLED for i in intents):
                    return intents
                await anyio.sleep(0.1)

    async def wait_status(self, intent_id: int, status: Status, timeout: float = 30) -> Any:
        with anyio.fail_after(timeout):
            while True:
                intent = await self.rt.ledger.intents.get(intent_id)
                if intent.status is status:
                    return intent
                await anyio.sleep(0.05)


@pytest.fixture
def stack_factory(migrated_url: str, tmp_path: Path) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(
        *, sandbox: Callable[[SandboxConfig], SandboxConfig] | None = None, **overrides: Any
    ) -> AsyncIterator[Stack]:
        """``overrides``: settings; ``sandbox``: a change to the sandbox's config."""
        base = default_config()
        config = dataclasses.replace(
            base,
            timings=dataclasses.replace(
                base.timings,
                processing_s=0.5,
                processing_jitter_s=0.0,
                failure_share=0.0,
                rejection_share=0.0,
                seed=1,
            ),
            rate_limits=dataclasses.replace(base.rate_limits, multiplier=100),
            journal_fsync=False,
        )
        if sandbox is not None:
            config = sandbox(config)
        journal = tmp_path / "sandbox.jsonl"
        alerts: list[tuple[str, str, int | None]] = []

        async def alert(kind: str, message: str, intent_id: int | None) -> None:
            alerts.append((kind, message, intent_id))

        async with running_sandbox(config=config, state_path=journal) as sb:
            settings = load_settings(
                **{
                    "database_url": migrated_url,
                    "binance_base_url": sb.url,
                    "binance_api_key": "sandbox-api-key",
                    "binance_api_secret": "sandbox-api-secret",
                    "withdraw_rate": 20,
                    "exchange_limit_multiplier": 100,
                    "poll_interval_s": 0.3,
                    "intake_interval_s": 0.05,
                    "reconcile_interval_s": 0.3,
                    "history_lag_allowance_s": 0.5,
                    "hold_backoff_s": 0.2,
                    "apply_recv_window_ms": 1000,
                    "lease_ttl_s": 2,
                    **overrides,
                }
            )
            async with runtime(settings, alert=alert, worker="test-worker") as rt:
                await adopt_policy_file(settings, rt.ledger)  # as `treasury run` does
                await sync_whitelist(
                    rt.exchange,
                    rt.ledger.whitelist,
                    account=rt.ctx.config.account,
                    seen=rt.ctx.seen,
                )
                yield Stack(rt=rt, sandbox=sb, journal=journal, alerts=alerts)

    return make
