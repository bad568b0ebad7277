"""The world the services' unit tests run in: a memory ledger, a scripted exchange and a
clock that moves only when a test moves it, wired into a ``WorkerContext``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from treasury.domain.intent import Intent
from treasury.domain.validation import validate_new_intent
from treasury.services import submit
from treasury.services.context import WorkerContext
from treasury.testing import FakeExchange, ManualClock, MemoryLedger

ACCOUNT = "default"
WORKER = "w1"
NAMESPACE = "unit0001"


@dataclass
class World:
    clock: ManualClock
    ledger: MemoryLedger
    exchange: FakeExchange
    ctx: WorkerContext
    alerts: list[tuple[str, str, int | None]]
    submitted_wakeups: list[bool]

    def configure(self, **knobs: Any) -> None:
        self.ctx.config = dataclasses.replace(self.ctx.config, **knobs)

    @staticmethod
    def oid(intent_id: int, suffix: str = "") -> str:
        return f"trs-{NAMESPACE}-{intent_id}{suffix}"

    async def enqueue(self, amount: str = "10", **fields: Any) -> Intent:
        spec = {"coin": "USDT", "network": "TRX", "address": "TXyz", **fields}
        intent, _ = await self.ledger.intents.enqueue(
            validate_new_intent(amount=amount, **spec), actor="test"
        )
        return intent

    async def claim(self) -> list[Intent]:
        now = self.clock()
        return await self.ledger.intents.claim_queued(
            account=ACCOUNT, worker=WORKER, now=now, lease_until=now, limit=100
        )

    async def process(self, intent_id: int) -> Intent:
        """What the sender loop does for one intent: claim it, check it, send it."""
        (claimed,) = [i for i in await self.claim() if i.id == intent_id]
        await submit.process(self.ctx, claimed)
        return await self.get(intent_id)

    async def get(self, intent_id: int) -> Intent:
        return await self.ledger.intents.get(intent_id)

    async def events(self, intent_id: int) -> list[tuple[str, str]]:
        return [(e.kind, e.to_status) for e in await self.ledger.intents.events(intent_id)]

    def alert_kinds(self) -> list[str]:
        return [kind for kind, _message, _intent in self.alerts]
