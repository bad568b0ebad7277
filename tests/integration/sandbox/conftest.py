"""Fixtures for the sandbox tests: an in-process sandbox on a manual clock, and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, Client

from treasury.sandbox import ManualClock, RunningSandbox, SandboxTask, parse_config


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_MS)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module to change the sandbox's config."""
    return {}


@pytest.fixture
async def sandbox(
    clock: ManualClock, config_overrides: dict[str, Any]
) -> AsyncIterator[RunningSandbox]:
    config = parse_config({**BASE_CONFIG, **config_overrides})
    # its own task: pytest-asyncio tears a fixture down in another task than set it up
    owner = await SandboxTask.start(config=config, clock=clock)
    try:
        yield owner.running
    finally:
        await owner.stop()


@pytest.fixture
async def http(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, clock: ManualClock) -> Client:
    return Client(http, clock.now_ms)
