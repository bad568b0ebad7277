"""The answer of an accepted send is written even while the database hiccups."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from treasury.ports.store import ConcurrentChange, StoreUnavailable
from treasury.services import submit


class FlakyIntents:
    def __init__(self, failures: int, then: Exception | None = None) -> None:
        self.failures = failures
        self.then = then
        self.calls: list[dict[str, Any]] = []

    async def transition(self, intent_id: int, to: Any, **kw: Any) -> None:
        self.calls.append({"intent_id": intent_id, "to": to, **kw})
        if len(self.calls) <= self.failures:
            raise StoreUnavailable("database restarting")
        if self.then is not None:
            raise self.then


def ctx(intents: FlakyIntents) -> Any:
    woke: list[bool] = []
    return SimpleNamespace(
        ledger=SimpleNamespace(intents=intents), on_submitted=lambda: woke.append(True), woke=woke
    )


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit, "SUBMITTED_WRITE_RETRIES_S", (0.0, 0.0, 0.0))


async def test_retries_until_the_write_lands() -> None:
    intents = FlakyIntents(failures=2)
    c = ctx(intents)
    await submit._record_accepted(c, SimpleNamespace(id=5, version=3), "w-77")  # type: ignore[arg-type]
    assert len(intents.calls) == 3 and c.woke == [True]
    assert intents.calls[-1]["fields"] == {"exchange_withdraw_id": "w-77"}
    assert intents.calls[-1]["expect_version"] == 3


async def test_gives_up_after_the_retries_and_leaves_it_to_reconciliation() -> None:
    intents = FlakyIntents(failures=10)
    c = ctx(intents)
    await submit._record_accepted(c, SimpleNamespace(id=5, version=3), "w-77")  # type: ignore[arg-type]
    assert len(intents.calls) == 4 and c.woke == []


async def test_recorded_first_by_reconciliation_is_not_an_error() -> None:
    intents = FlakyIntents(failures=0, then=ConcurrentChange("adopted meanwhile"))
    c = ctx(intents)
    await submit._record_accepted(c, SimpleNamespace(id=5, version=3), "w-77")  # type: ignore[arg-type]
    assert len(intents.calls) == 1 and c.woke == []
