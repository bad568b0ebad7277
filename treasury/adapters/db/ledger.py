"""The ledger's stores over one SQLAlchemy engine (SQLite or PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters.db.operators import OperatorRepository
from treasury.adapters.db.passkeys import PasskeyRepository
from treasury.adapters.db.policies import PolicyRepository
from treasury.adapters.db.repository import IntentRepository
from treasury.adapters.db.service_events import ServiceEvents
from treasury.adapters.db.state import ServiceState
from treasury.adapters.db.units import SqlUnits
from treasury.adapters.db.unmatched import UnmatchedWithdrawals
from treasury.adapters.db.whitelist import WhitelistRepository
from treasury.ports.store import Ledger


@dataclass
class SqlLedger(Ledger):
    engine: AsyncEngine  # for health pings and tests that type SQL

    @classmethod
    def over(cls, engine: AsyncEngine) -> SqlLedger:
        intents = IntentRepository(engine)
        return cls(
            intents=intents,
            state=ServiceState(engine),
            whitelist=WhitelistRepository(engine),
            events=ServiceEvents(engine),
            unmatched=UnmatchedWithdrawals(engine),
            units=SqlUnits(intents),
            operators=OperatorRepository(engine),
            policies=PolicyRepository(engine),
            passkeys=PasskeyRepository(engine),
            engine=engine,
        )
