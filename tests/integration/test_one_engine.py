"""One engine per process: each command opens the database once, whatever it does.

A command that talked to the exchange used to open a second engine for its runtime, and
the preflight a third for the schema probe; ``migrate`` opened one per step. Every
engine construction goes through ``create_engine``, so counting its calls is the check.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from treasury.adapters.db import engine as engine_module
from treasury.cli import app
from treasury.sandbox.config import default_config
from treasury.sandbox.server import running_sandbox

runner = CliRunner()


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    real = engine_module.create_async_engine

    def counting(url: Any, **kwargs: Any) -> Any:
        made.append(str(url))
        return real(url, **kwargs)

    monkeypatch.setattr(engine_module, "create_async_engine", counting)
    return made


@pytest.mark.parametrize(
    "args",
    [
        ["migrate"],
        ["check"],
        ["whitelist", "sync"],
        ["reconcile"],
        ["reconcile", "--apply", "--as", "alice"],
        ["list"],
        ["whitelist", "list"],
    ],
    ids=lambda a: " ".join(a),
)
async def test_a_command_opens_one_engine(
    args: list[str], migrated_url: str, engines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = default_config()
    account = config.accounts["default"]
    async with running_sandbox(config=config) as sb:
        for name, value in {
            "TREASURY_DATABASE_URL": migrated_url,
            "TREASURY_BINANCE_BASE_URL": sb.url,
            "TREASURY_BINANCE_API_KEY": account.api_key,
            "TREASURY_BINANCE_API_SECRET": account.hmac_secret,
        }.items():
            monkeypatch.setenv(name, value)
        engines.clear()  # the fixture's migration is not the command's
        result = await anyio.to_thread.run_sync(lambda: runner.invoke(app, args))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert len(engines) == 1, engines
