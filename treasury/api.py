"""The bots' API: enqueue withdrawals and read their outcome from Python code.

Example::

    from decimal import Decimal
    from treasury.api import Treasury

    async with Treasury.connect("postgresql://treasury@db/treasury") as t:
        intent = await t.enqueue(coin="USDT", network="TRX", address="T...",
                                 amount=Decimal("250"), request_id="rebalance-2026-11-21-7")
        final = await t.wait_until_settled(intent.id, timeout_s=600)
        print(final.status, final.tx_id)

``enqueue`` is idempotent by ``request_id``: calling it again after a crash or a
retry returns the intent created the first time. Bots in other languages use the
SQL route (see the README): the same table, the same guarantees.

A script without an event loop uses ``SyncTreasury``, the same methods without
``await``::

    with SyncTreasury.connect() as t:
        intent = t.enqueue(coin="USDT", network="TRX", address="T...", amount="250")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from functools import partial
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.domain.errors import InvalidField
from treasury.domain.intent import EventRecord, Intent
from treasury.domain.status import Status
from treasury.domain.travel_rule import parse_entity
from treasury.domain.validation import validate_new_intent
from treasury.ports.store import IdempotencyConflict, Ledger, NotFound
from treasury.services import admin

# A bot waits until the intent is final or a person must look at it.
SETTLED = frozenset({*(s for s in Status if s.terminal), Status.NEEDS_ATTENTION})


class Treasury:
    def __init__(
        self, ledger: Ledger, *, actor: str, local_entities: Mapping[str, str] | None = None
    ) -> None:
        """``local_entities``: per account, the Binance local entity it is held under
        (``JP``, ``EU``): a questionnaire for such an account is checked against that
        entity's form at enqueue."""
        self._ledger = ledger
        self._actor = actor
        self._entities = {
            account: parse_entity(name, field_name=f"local_entities[{account!r}]")
            for account, name in (local_entities or {}).items()
        }

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        database_url: str | None = None,
        *,
        actor: str = "api",
        local_entities: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Treasury]:
        """Open the ledger (default: ``TREASURY_DATABASE_URL``). Without a URL the
        settings are read, and with them each served account's local entity
        (``TREASURY_LOCAL_ENTITY``, ``TREASURY_ACCOUNT_<NAME>_LOCAL_ENTITY``) unless
        ``local_entities`` names them."""
        if database_url is None:
            from treasury.config import account_local_entity, load_settings

            settings = load_settings()
            database_url = settings.database_url
            if local_entities is None:
                from treasury.accounts_file import served_names

                found = {a: account_local_entity(settings, a) for a in served_names(settings)}
                local_entities = {a: e for a, e in found.items() if e is not None}
        engine = create_engine(database_url)
        try:
            yield cls(SqlLedger.over(engine), actor=actor, local_entities=local_entities)
        finally:
            await engine.dispose()

    async def enqueue(
        self,
        *,
        coin: str,
        network: str,
        address: str,
        amount: Decimal | str | int,
        address_tag: str | None = None,
        request_id: str | None = None,
        account: str = "default",
        requested_by: str | None = None,
        note: str | None = None,
        wallet: str | None = None,
        questionnaire: Mapping[str, Any] | str | None = None,
    ) -> Intent:
        """Queue a withdrawal; with a known ``request_id``, return the existing intent.

        ``wallet`` (``"spot"`` or ``"funding"``) is the wallet to debit; without it the
        account's default (``TREASURY_WALLET``) is taken when the intent is sent.
        ``questionnaire`` (a dict, or JSON text) is this withdrawal's own travel-rule
        questionnaire: it replaces the address-book entry's profile entirely, and is
        checked against the account's local entity's form when that is known (an
        ``InvalidField`` names the answer at fault, e.g. ``questionnaire.latinName``).
        ``requested_by`` defaults to this client's ``actor``: every intent names who asked
        for it, and the requester can never approve its own.

        Raises:
            InvalidField: a field is malformed (nothing written).
            IdempotencyConflict: ``request_id`` exists with different contents.
        """
        new = validate_new_intent(
            coin=coin,
            network=network,
            address=address,
            amount=amount,
            address_tag=address_tag,
            account=account,
            request_id=request_id,
            requested_by=self._actor if requested_by is None else requested_by,
            note=note,
            wallet=wallet,
            questionnaire=questionnaire,
            local_entity=self._entities.get(account),
        )
        intent, _created = await admin.enqueue(self._ledger, new, actor=self._actor)
        return intent

    async def get(self, ref: int | str) -> Intent:
        """An intent by id (int) or by request_id (str). Raises NotFound."""
        if isinstance(ref, int):
            return await self._ledger.intents.get(ref)
        return await self._ledger.intents.get_by_request_id(ref)

    async def history(self, ref: int | str) -> list[EventRecord]:
        intent = await self.get(ref)
        return await self._ledger.intents.events(intent.id)

    async def wait_until_settled(
        self, ref: int | str, *, timeout_s: float, poll_s: float = 1.0
    ) -> Intent:
        """Wait until the intent is terminal **or needs a person** (``needs_attention``:
        not terminal, but nothing more happens to it without a decision; check
        ``intent.status`` before treating the result as done).

        Raises:
            TimeoutError: still in flight after ``timeout_s`` (the intent goes on); the
                message names the intent and its status.
        """
        intent: Intent | None = None
        with anyio.move_on_after(timeout_s):
            while True:
                intent = await self.get(ref)
                if intent.status in SETTLED:
                    return intent
                await anyio.sleep(poll_s)
        where = "not read yet" if intent is None else intent.status.value
        raise TimeoutError(
            f"intent {ref!r} not settled after {timeout_s:g} s (status {where}); it goes on"
        )


class SyncTreasury:
    """``Treasury`` for code that does not run an event loop (scripts, notebooks, a
    Django view): every method blocks until done. One event loop runs in a thread of its
    own for as long as the ``connect`` block lasts; the methods may be called from any
    thread, but not from inside a running event loop (use ``Treasury`` there)."""

    def __init__(self, portal: BlockingPortal, treasury: Treasury) -> None:
        self._portal = portal
        self._treasury = treasury

    @classmethod
    @contextmanager
    def connect(
        cls,
        database_url: str | None = None,
        *,
        actor: str = "api",
        local_entities: Mapping[str, str] | None = None,
    ) -> Iterator[SyncTreasury]:
        """Open the ledger (default: ``TREASURY_DATABASE_URL``) for a ``with`` block."""
        opened = Treasury.connect(database_url, actor=actor, local_entities=local_entities)
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(opened) as t,
        ):
            yield cls(portal, t)

    def enqueue(self, **fields: Any) -> Intent:
        """``Treasury.enqueue``: the same keyword arguments, the same errors."""
        return self._portal.call(partial(self._treasury.enqueue, **fields))

    def get(self, ref: int | str) -> Intent:
        return self._portal.call(self._treasury.get, ref)

    def history(self, ref: int | str) -> list[EventRecord]:
        return self._portal.call(self._treasury.history, ref)

    def wait_until_settled(
        self, ref: int | str, *, timeout_s: float, poll_s: float = 1.0
    ) -> Intent:
        """``Treasury.wait_until_settled``: returns on terminal or ``needs_attention``."""
        return self._portal.call(
            partial(self._treasury.wait_until_settled, ref, timeout_s=timeout_s, poll_s=poll_s)
        )


# what a bot catches: a bad field, a request_id reused with other fields, an unknown intent
__all__ = [
    "EventRecord",
    "IdempotencyConflict",
    "Intent",
    "InvalidField",
    "NotFound",
    "Status",
    "SyncTreasury",
    "Treasury",
]
