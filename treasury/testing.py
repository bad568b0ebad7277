"""In-package fakes for tests: a manual clock, an in-memory ledger and a scriptable exchange.

Importable by anyone's tests (``from treasury.testing import MemoryLedger, FakeExchange,
ManualClock``); nothing here touches a database, a socket or the real time unless asked.

::

    clock = ManualClock()
    clock.install(monkeypatch)       # every treasury module's ``utcnow`` now reads it
    ledger = MemoryLedger()          # a treasury.ports.store.Ledger, held in dicts
    exchange = FakeExchange(balances={"USDT": "1000"})
    exchange.add_network("USDT", "TRX")
    exchange.script("withdraw", Timeout(executed=True))  # the next send: done, answer lost

**Time.** Services call ``treasury.ports.clock.utcnow`` directly, bound by name at import
(``from treasury.ports.clock import utcnow``), so replacing it in ``treasury.ports.clock``
alone changes nothing for them. ``ManualClock.install(monkeypatch)`` replaces ``utcnow``
in ``treasury.ports.clock`` *and* in every loaded ``treasury.*`` module that imported it
(import the services before installing). ``MemoryLedger`` and ``FakeExchange`` take a
``clock`` argument; without one they read ``treasury.ports.clock.utcnow`` at each call, so
an installed ``ManualClock`` drives them too. ``ExchangeView``'s caches age by
``time.monotonic`` and are not driven by the clock (call ``view.standing_changed()`` or
``view.rules_changed()`` to make them fetch again).

**MemoryLedger: faithful** to the SQL adapter (``treasury.adapters.db``) in what services
rely on: status changes go through ``treasury.domain.machine.transition`` as a
compare-and-set on ``version`` with one ``EventRecord`` each; ``ConcurrentChange``,
``NotFound``, ``IdempotencyConflict``, ``DuplicateEntry`` and ``IllegalTransition`` are
raised in the same cases with nothing written; enqueue records its creation event as the
database trigger does; amounts stay ``Decimal`` as given (a non-``Decimal`` amount is a
``TypeError``, a naive datetime a ``ValueError``, as the column types make them); the
table's CHECKs and triggers (positive exact amounts, columns fixed after insert, an order
id fixed once set, a status change needs a version bump, unique request and order ids)
raise ``ConstraintViolation`` where SQL raises ``IntegrityError``. Every write is one
transaction under one writer lock (SQLite's ``BEGIN IMMEDIATE``): a unit of work works on
a private copy and publishes it only when it exits without an exception, so a refused
commit writes nothing and other readers never see half of one; ``transition_many`` keeps
a savepoint per change. Leases are judged by the ledger's clock (SQLite's behaviour). Every
write copies the tables: built for tests of a few hundred intents, not for load.

**MemoryLedger: not modelled.** Connection loss (``StoreUnavailable`` comes only when a test
asks for it with ``fail_transitions``), PostgreSQL's row locks and ``SKIP LOCKED`` (one
writer at a time instead), per-account advisory locks (every unit is serialised anyway),
PostgreSQL's database clock (the injected clock serves both roles), SQLite's reuse of the
highest deleted id (ids are never reused, like PostgreSQL's sequences), SQLite's
normalisation of amounts to canonical text (``Decimal("1.50")`` stays ``1.50`` here, as on
PostgreSQL), the ``LISTEN/NOTIFY`` trigger, plain-SQL inserts by operators, and the order
of ``unserved`` rows (SQL leaves it unspecified; here by id). A store write from inside an
open unit (instead of through the unit) raises ``RuntimeError`` at once; on SQL it would
wait for the unit's own lock.

**FakeExchange: faithful** in the exchange's behaviour that the worker's safety rests
on: ``withdraw`` has no deduplication (the same ``withdrawOrderId`` twice makes two
withdrawals), a signed timestamp outside ``recvWindow`` is refused (``NotSent``, -1021),
an uncovered balance is refused for now (``Rejected``, -4026), a withdrawal appears in
``withdraw_history`` only after an optional lag, with ``amount`` net of the fee (or gross),
newest first, filtered and paged as Binance does (7-day window with ``withdrawOrderId``,
90 days without), and the exchange's clock can run ahead of or behind the local one
(``now_ms`` is the estimate from the last ``sync_clock``).

**FakeExchange: not modelled.** Rate limits and weights, address and network validation on
withdraw (the pre-send checks read ``coin_configs`` and the whitelist, but ``withdraw``
itself accepts any destination), the exchange's whitelist switch, travel rule, the USD
quota's accounting, and settlement on its own: a withdrawal stays ``PROCESSING`` until the
test calls ``complete``/``fail``/``cancel``/``set_status``. Scripted answers replace the
behaviour entirely for that call (a scripted ``WithdrawAccepted`` executes nothing).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar

import anyio

from treasury.domain import machine
from treasury.domain.approval_proof import Approval
from treasury.domain.exchange import (
    AccountInfo,
    ApiRestrictions,
    Balance,
    CoinConfig,
    ExchangeWithdrawStatus,
    LocalEntityWithdrawAccepted,
    LocalEntityWithdrawalRecord,
    NetworkRule,
    SystemStatus,
    TravelRuleCountry,
    TravelRuleRegion,
    Vasp,
    WhitelistAddress,
    WithdrawAccepted,
    WithdrawalRecord,
    WithdrawQuota,
    WithdrawRequest,
)
from treasury.domain.ids import NAMESPACE_RE
from treasury.domain.intent import EventRecord, Intent
from treasury.domain.money import add, decimals
from treasury.domain.status import Status
from treasury.domain.validation import NewIntent
from treasury.domain.wallet import Wallet
from treasury.domain.webauthn import Credential, b64url
from treasury.ports import clock as clock_port
from treasury.ports.exchange import ExchangeError, NotSent, OutcomeUnknown, Reason, Rejected
from treasury.ports.store import (
    Change,
    ConcurrentChange,
    DuplicateEntry,
    Invite,
    InviteUnusable,
    Ledger,
    NotFound,
    Operator,
    Passkey,
    PauseState,
    PolicyVersion,
    ServiceEvent,
    StoreUnavailable,
    Unmatched,
    WhitelistApproval,
    WhitelistEntry,
    WhitelistEvent,
    audit_fields,
    new_intent_row,
    passkeys_by_operator,
    policy_status,
    same_request,
)

__all__ = [
    "Call",
    "ConstraintViolation",
    "FakeExchange",
    "ManualClock",
    "MemoryLedger",
    "Timeout",
    "not_sent",
    "rejected",
]

T = TypeVar("T")
_REAL_UTCNOW = clock_port.utcnow


def _port_now() -> datetime:
    """``treasury.ports.clock.utcnow`` as it is *now* (a test may have replaced it)."""
    return clock_port.utcnow()


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# ==== time ==================================================================================


class Patcher(Protocol):
    """What ``ManualClock.install`` needs of pytest's ``monkeypatch``."""

    def setattr(self, target: Any, name: str, value: Any) -> None: ...


class ManualClock:
    """A UTC clock that moves only when told to. Call it for the time (it stands in for
    ``treasury.ports.clock.utcnow``)."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2030, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("a ManualClock starts at an aware datetime")
        self._now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self._now

    def now(self) -> datetime:
        return self._now

    def now_ms(self) -> int:
        return _ms(self._now)

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move forward by ``seconds`` (and/or ``timedelta`` keywords); returns the new time."""
        step = timedelta(seconds=seconds, **delta)
        if step < timedelta(0):
            raise ValueError("a ManualClock does not go back; use set() for a clock step")
        self._now += step
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (backwards too: a wall-clock step)."""
        if when.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        self._now = when.astimezone(UTC)

    def install(self, patcher: Patcher) -> None:
        """Make this clock the ``utcnow`` of ``treasury.ports.clock`` and of every loaded
        ``treasury.*`` module that imported it by name (``monkeypatch`` undoes it)."""
        patcher.setattr(clock_port, "utcnow", self)
        for name, module in list(sys.modules.items()):
            bound = getattr(module, "utcnow", None) if module is not None else None
            if name.startswith("treasury.") and (
                bound is _REAL_UTCNOW or isinstance(bound, ManualClock)
            ):
                patcher.setattr(module, "utcnow", self)


# ==== the ledger: tables ====================================================================


class ConstraintViolation(ValueError):
    """A write the database's constraints or triggers refuse (``IntegrityError`` on SQL);
    nothing was written."""


# The columns of withdrawal_intents: the Intent's fields and three the service keeps to itself.
INTENT_COLUMNS = frozenset(f.name for f in dataclasses.fields(Intent)) | {
    "enqueued_via",
    "claimed_by",
    "claimed_until",
}
_AMOUNTS = ("amount", "fee", "exchange_amount")
_TIMES = (
    "created_at",
    "updated_at",
    "not_before",
    "held_since",
    "claimed_until",
    "last_checked_at",
    "submitted_at",
    "settled_at",
)
_FIXED = ("coin", "network", "address", "address_tag", "amount", "account")
# What counts against the policy's 24 h caps (as treasury.adapters.db.sending.COMMITTED).
COMMITTED = frozenset(
    {Status.SUBMITTING, Status.SUBMITTED, Status.COMPLETED, Status.NEEDS_ATTENTION}
)
PAUSED = "paused"
ACCOUNT_PAUSED = "paused:"
WATERMARK = "sweep_watermark:"


@dataclass(frozen=True)
class _StateRow:
    value: str
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class _Lease:
    holder: str
    expires_at: datetime


@dataclass(frozen=True)
class _Approval:
    intent_id: int
    approver: str
    created_at: datetime
    signature: str | None = None


@dataclass
class _Tables:
    """Every table of the ledger. Rows are immutable values, except intents (column dicts)."""

    intents: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    state: dict[str, _StateRow] = field(default_factory=dict)
    leases: dict[str, _Lease] = field(default_factory=dict)
    whitelist: dict[int, WhitelistEntry] = field(default_factory=dict)
    whitelist_events: list[WhitelistEvent] = field(default_factory=list)
    whitelist_approvals: list[WhitelistApproval] = field(default_factory=list)
    approvals: list[_Approval] = field(default_factory=list)
    operators: dict[str, Operator] = field(default_factory=dict)
    passkeys: dict[int, Passkey] = field(default_factory=dict)
    invites: dict[str, Invite] = field(default_factory=dict)  # by token sha256
    policies: list[PolicyVersion] = field(default_factory=list)  # version n at n - 1
    service_events: list[ServiceEvent] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    last_id: dict[str, int] = field(default_factory=dict)

    def copy(self) -> _Tables:
        return copy.deepcopy(self)

    def restore(self, snapshot: _Tables) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, copy.deepcopy(getattr(snapshot, f.name)))

    def new_id(self, table: str) -> int:
        self.last_id[table] = self.last_id.get(table, 0) + 1
        return self.last_id[table]

    # ---- intents -----------------------------------------------------------------------

    def row(self, intent_id: int) -> dict[str, Any]:
        row = self.intents.get(intent_id)
        if row is None:
            raise NotFound(f"intent {intent_id}")
        return row

    def intent(self, intent_id: int) -> Intent:
        return to_intent(self.row(intent_id))

    def insert_intent(self, values: Mapping[str, Any]) -> dict[str, Any]:
        row = (
            {c: None for c in INTENT_COLUMNS}
            | {"version": 0, "send_count": 0, "absent_checks": 0}
            | _typed(values)
        )
        row["id"] = self.new_id("intents")
        _check_row(row)
        self._check_unique(row)
        self.intents[row["id"]] = row
        # the database's trigger: every intent's creation is its first event
        self.events.append(
            EventRecord(
                id=self.new_id("events"),
                intent_id=row["id"],
                from_status=None,
                to_status=row["status"].value,
                reason="enqueued",
                actor=row["enqueued_via"] or "sql",
                kind="status",
                created_at=row["created_at"],
            )
        )
        return row

    def update_intent(self, intent_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
        old = self.row(intent_id)
        new = {**old, **_typed(values)}
        _check_row(new)
        _check_update(old, new)
        self._check_unique(new)
        self.intents[intent_id] = new
        return new

    def _check_unique(self, row: Mapping[str, Any]) -> None:
        for column in ("request_id", "withdraw_order_id"):
            value = row[column]
            if value is not None and any(
                other[column] == value
                for other_id, other in self.intents.items()
                if other_id != row["id"]
            ):
                raise ConstraintViolation(f"withdrawal_intents.{column} {value!r} is taken")

    def add_event(self, event: machine.Event, now: datetime) -> None:
        self.events.append(
            EventRecord(
                id=self.new_id("events"),
                intent_id=event.intent_id,
                from_status=event.from_status.value if event.from_status else None,
                to_status=event.to_status.value,
                reason=event.reason,
                actor=event.actor,
                kind=event.kind,
                created_at=now,
            )
        )

    def transition(
        self,
        now: datetime,
        intent_id: int,
        to: Status,
        *,
        reason: str,
        actor: str,
        expect: Sequence[Status] | None = None,
        expect_version: int | None = None,
        fields: Mapping[str, Any] | None = None,
        locked: Intent | None = None,
    ) -> Intent:
        """The SQL adapter's ``_transition``, step for step."""
        current = locked if locked is not None else self.intent(intent_id)
        if expect is not None and current.status not in expect:
            raise ConcurrentChange(
                f"intent {intent_id} is {current.status.value}, expected "
                + " or ".join(s.value for s in expect)
            )
        if expect_version is not None and current.version != expect_version:
            raise ConcurrentChange(f"intent {intent_id} changed meanwhile")
        event = machine.transition(intent_id, current.status, to, reason=reason, actor=actor)
        values: dict[str, Any] = {
            "status": to,
            "status_reason": reason,
            "version": current.version + 1,
            "updated_at": now,
            "claimed_by": None,
            "claimed_until": None,
        }
        if to.terminal:
            values["settled_at"] = now
        values.update(fields or {})
        if self.row(intent_id)["version"] != current.version:  # UPDATE ... WHERE version = ?
            raise ConcurrentChange(f"intent {intent_id} changed meanwhile")
        row = self.update_intent(intent_id, values)
        self.add_event(event, now)
        return to_intent(row)

    def note(self, now: datetime, intent_id: int, *, reason: str, actor: str, kind: str) -> None:
        status = self.row(intent_id)["status"]
        self.add_event(machine.note(intent_id, status, reason=reason, actor=actor, kind=kind), now)

    # ---- whitelist, unmatched, state ---------------------------------------------------

    def find_entry(
        self, coin: str, network: str, address: str, address_tag: str | None, *, account: str
    ) -> WhitelistEntry | None:
        key = (coin, network, address, address_tag or "")
        return next(
            (e for e in self.whitelist.values() if e.key == key and e.account == account), None
        )

    def whitelist_event(self, entry: WhitelistEntry, kind: str, now: datetime) -> None:
        """What the SQL triggers write for each change of an entry."""
        self.whitelist_events.append(
            WhitelistEvent(
                id=self.new_id("whitelist_events"),
                entry_id=entry.id,
                account=entry.account,
                coin=entry.coin,
                network=entry.network,
                address=entry.address,
                address_tag=entry.address_tag,
                kind=kind,
                actor=entry.changed_by or "sql",
                reason=entry.change_reason or "inserted by SQL without an actor or a reason",
                version=entry.version,
                created_at=now,
            )
        )

    def refusal(self, now: datetime, account: str, holder: str) -> str | None:
        if PAUSED in self.state or ACCOUNT_PAUSED + account in self.state:
            return "paused"
        lease = self.leases.get(account)
        if lease is None or lease.holder != holder or not lease.expires_at > now:
            return "this worker is not the account's sender"
        return None


def to_intent(row: Mapping[str, Any]) -> Intent:
    return Intent(**{f.name: row[f.name] for f in dataclasses.fields(Intent)})


def _typed(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the column types do to a value on its way in (and refuse)."""
    out: dict[str, Any] = {}
    for column, value in values.items():
        if column not in INTENT_COLUMNS:
            raise ValueError(f"withdrawal_intents has no column {column!r}")
        if column in _AMOUNTS and value is not None and not isinstance(value, Decimal):
            raise TypeError(f"amounts must be Decimal, got {type(value).__name__}")
        if column in _TIMES and value is not None:
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError("naive datetime given where UTC is required")
            value = value.astimezone(UTC)
        if column == "status":
            value = Status(value)
        if column == "wallet" and isinstance(value, str) and value in set(Wallet):
            value = Wallet(value)
        out[column] = value
    return out


def _exact(value: Decimal | None, *, positive: bool) -> bool:
    if value is None:
        return not positive
    if not value.is_finite() or decimals(value) > 18:
        return False
    return value > 0 if positive else value >= 0


def _check_row(row: Mapping[str, Any]) -> None:
    """The table's CHECK constraints."""
    problems = []
    if not row["coin"] or row["coin"] != row["coin"].upper():
        problems.append("coin_upper_nonempty")
    for column in ("network", "address", "account"):
        if not row[column]:
            problems.append(f"{column}_nonempty")
    if row["address_tag"] is not None and not row["address_tag"]:
        problems.append("tag_null_or_set")
    if row["wallet"] is not None and not isinstance(row["wallet"], Wallet):
        problems.append("wallet_known")
    if not _exact(row["amount"], positive=True):
        problems.append("amount_positive_exact")
    for column in ("fee", "exchange_amount"):
        if not _exact(row[column], positive=False):
            problems.append(f"{column}_exact")
    if problems:
        raise ConstraintViolation(f"withdrawal_intents: {', '.join(problems)} violated")


def _check_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """The table's update triggers."""
    if new["status"] != old["status"] and new["version"] == old["version"]:
        raise ConstraintViolation("a status change needs a version bump")
    if any(new[c] != old[c] for c in _FIXED):
        raise ConstraintViolation(f"{', '.join(_FIXED)} are fixed once inserted")
    if (
        old["withdraw_order_id"] is not None
        and new["withdraw_order_id"] != old["withdraw_order_id"]
    ):
        raise ConstraintViolation("withdraw_order_id is fixed once set")
    if old["wallet"] is not None and new["wallet"] != old["wallet"]:
        raise ConstraintViolation("wallet is fixed once set")
    if new["questionnaire"] != old["questionnaire"]:
        raise ConstraintViolation("questionnaire is fixed once the intent is inserted")


# ==== the ledger: transactions ==============================================================


class _Database:
    """The tables, the clock, and the one writer lock every write transaction takes."""

    def __init__(self, *, namespace: str, clock: Callable[[], datetime]) -> None:
        if not NAMESPACE_RE.match(namespace):
            raise ValueError(f"bad ledger namespace {namespace!r}")
        self._clock = clock
        self.tables = _Tables()
        self.tables.state["namespace"] = _StateRow(namespace, "migration", self.now())
        self._lock: anyio.Lock | None = None
        self._owner: object = None
        self.outages = 0  # how many coming IntentStore.transition calls fail

    def outage(self, what: str) -> None:
        if self.outages > 0:
            self.outages -= 1
            raise StoreUnavailable(f"{what}: the database did not answer (simulated)")

    def now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the ledger's clock returned a naive datetime")
        return now.astimezone(UTC)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_Tables]:
        """One write transaction: wait for the writer lock, work on a copy, publish the copy
        only if the block ends without an exception."""
        if self._lock is None:
            self._lock = anyio.Lock()
        task = anyio.get_current_task().id
        if self._owner == task:
            raise RuntimeError(
                "a store write inside an open unit of work would wait for the unit's own "
                "lock: write through the unit (IntentUnit.transition/note) instead"
            )
        async with self._lock:
            self._owner = task
            try:
                working = self.tables.copy()
                yield working
                self.tables = working
            finally:
                self._owner = None


@contextmanager
def _savepoint(tables: _Tables) -> Iterator[None]:
    """Undo what the block wrote to ``tables`` if it raises."""
    snapshot = tables.copy()
    try:
        yield
    except BaseException:
        tables.restore(snapshot)
        raise


# ==== the ledger: stores ====================================================================


class MemoryIntentStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    # ---- reads ---------------------------------------------------------------------------

    async def namespace(self) -> str:
        row = self._db.tables.state.get("namespace")
        if row is None:
            raise RuntimeError("the ledger has no namespace: run `treasury migrate`")
        return row.value

    async def get(self, intent_id: int) -> Intent:
        return self._db.tables.intent(intent_id)

    async def get_by_request_id(self, request_id: str) -> Intent:
        for row in self._db.tables.intents.values():
            if row["request_id"] == request_id:
                return to_intent(row)
        raise NotFound(f"intent with request_id {request_id!r}")

    async def get_by_order_ids(self, order_ids: Sequence[str]) -> dict[str, Intent]:
        wanted = set(order_ids)
        return {
            r["withdraw_order_id"]: to_intent(r)
            for r in self._rows()
            if r["withdraw_order_id"] in wanted
        }

    async def get_many(self, intent_ids: Sequence[int]) -> dict[int, Intent]:
        rows = self._db.tables.intents
        return {i: to_intent(rows[i]) for i in set(intent_ids) if i in rows}

    async def earliest_created_ms(self, account: str) -> int | None:
        times = [r["created_at"] for r in self._rows() if r["account"] == account]
        return _ms(min(times)) if times else None

    async def search(
        self,
        *,
        statuses: Sequence[Status] = (),
        coin: str | None = None,
        account: str | None = None,
        limit: int = 50,
        requested_by: str | None = None,
        accounts: Sequence[str] | None = None,
        before_id: int | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[Intent]:
        rows = [
            r
            for r in reversed(self._rows())
            if (not statuses or r["status"] in statuses)
            and (not coin or r["coin"] == coin)
            and (not account or r["account"] == account)
            and (requested_by is None or r["requested_by"] == requested_by)
            and (accounts is None or r["account"] in accounts)
            and (before_id is None or r["id"] < before_id)
            and (created_after is None or r["created_at"] >= created_after)
            and (created_before is None or r["created_at"] < created_before)
        ]
        return [to_intent(r) for r in rows[:limit]]

    async def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._rows():
            counts[r["status"].value] = counts.get(r["status"].value, 0) + 1
        return counts

    async def events(self, intent_id: int) -> list[EventRecord]:
        return [e for e in self._db.tables.events if e.intent_id == intent_id]

    async def in_status(
        self, status: Status, *, account: str | None = None, limit: int = 1000
    ) -> list[Intent]:
        rows = [
            r
            for r in self._rows()
            if r["status"] is status and (account is None or r["account"] == account)
        ]
        return [to_intent(r) for r in rows[:limit]]

    async def last_send_ms(self, account: str) -> int | None:
        sent = [
            r["send_timestamp_ms"]
            for r in self._rows()
            if r["account"] == account and r["send_timestamp_ms"] is not None
        ]
        return max(sent) if sent else None

    async def unserved(
        self, *, older_than_s: float, skip_reason_prefix: str | None = None, limit: int = 500
    ) -> list[tuple[int, str]]:
        t = self._db.tables
        now = self._db.now()
        served = {a for a, lease in t.leases.items() if lease.expires_at > now}
        rows = [
            r
            for r in self._rows()
            if r["status"] is Status.QUEUED
            and r["created_at"] < now - timedelta(seconds=older_than_s)
            and r["account"] not in served
            and (
                skip_reason_prefix is None
                or r["status_reason"] is None
                or not r["status_reason"].startswith(skip_reason_prefix)
            )
        ]
        return [(r["id"], r["account"]) for r in rows[:limit]]

    def _rows(self) -> list[dict[str, Any]]:
        return [self._db.tables.intents[i] for i in sorted(self._db.tables.intents)]

    # ---- writes --------------------------------------------------------------------------

    async def enqueue(self, new: NewIntent, *, actor: str) -> tuple[Intent, bool]:
        async with self._db.write() as t:
            for row in t.intents.values():
                if new.request_id is not None and row["request_id"] == new.request_id:
                    return same_request(to_intent(row), new), False
            now = self._db.now()
            row = t.insert_intent(new_intent_row(new, actor=actor, now=now))
        return to_intent(row), True

    async def transition(
        self,
        intent_id: int,
        to: Status,
        *,
        reason: str,
        actor: str,
        expect: Sequence[Status] | None = None,
        expect_version: int | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> Intent:
        self._db.outage(f"intent {intent_id}")
        async with self._db.write() as t:
            return t.transition(
                self._db.now(),
                intent_id,
                to,
                reason=reason,
                actor=actor,
                expect=expect,
                expect_version=expect_version,
                fields=fields,
            )

    async def transition_many(self, changes: Sequence[Change]) -> list[Intent | ConcurrentChange]:
        results: list[Intent | ConcurrentChange] = []
        async with self._db.write() as t:
            now = self._db.now()
            for c in changes:
                try:
                    with _savepoint(t):
                        results.append(
                            t.transition(
                                now,
                                c.intent_id,
                                c.to,
                                reason=c.reason,
                                actor=c.actor,
                                expect=c.expect,
                                expect_version=c.expect_version,
                                fields=c.fields,
                            )
                        )
                except ConcurrentChange as exc:
                    results.append(exc)
        return results

    async def record_note(self, intent_id: int, *, reason: str, actor: str, kind: str) -> None:
        async with self._db.write() as t:
            t.note(self._db.now(), intent_id, reason=reason, actor=actor, kind=kind)

    async def update_fields(
        self,
        intent_id: int,
        *,
        expect_status: Status,
        fields: Mapping[str, Any],
        expect_version: int | None = None,
    ) -> Intent:
        async with self._db.write() as t:
            row = t.intents.get(intent_id)
            if (
                row is None
                or row["status"] is not expect_status
                or (expect_version is not None and row["version"] != expect_version)
            ):
                raise ConcurrentChange(f"intent {intent_id} is no longer {expect_status.value}")
            values: dict[str, Any] = {"updated_at": self._db.now(), **fields}
            if expect_version is not None:
                values["version"] = expect_version + 1
            return to_intent(t.update_intent(intent_id, values))

    async def hold(
        self, intent: Intent, *, reason: str, retry_at: datetime, start_clock: bool = True
    ) -> Intent:
        async with self._db.write() as t:
            now = self._db.now()
            row = t.intents.get(intent.id)
            if row is None or row["status"] is not Status.QUEUED:
                raise ConcurrentChange(f"intent {intent.id} is no longer queued")
            row = t.update_intent(
                intent.id,
                {
                    "status_reason": reason,
                    "not_before": retry_at,
                    "held_since": intent.held_since or (now if start_clock else None),
                    "claimed_by": None,
                    "claimed_until": None,
                    "updated_at": now,
                },
            )
            if reason != intent.status_reason:
                t.note(now, intent.id, reason=f"held: {reason}", actor="worker", kind="hold")
        return to_intent(row)

    async def release(self, intent: Intent) -> None:
        async with self._db.write() as t:
            row = t.intents.get(intent.id)
            if row is not None and row["claimed_by"] is not None:
                t.update_intent(intent.id, {"claimed_by": None, "claimed_until": None})

    async def claim_queued(
        self, *, account: str, worker: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[Intent]:
        async with self._db.write() as t:
            due = [
                i
                for i in sorted(t.intents)
                if (r := t.intents[i])["status"] is Status.QUEUED
                and r["account"] == account
                and (r["not_before"] is None or r["not_before"] <= now)
                and (
                    r["claimed_until"] is None
                    or r["claimed_until"] < now
                    or r["claimed_by"] == worker
                )
            ][:limit]
            return [
                to_intent(t.update_intent(i, {"claimed_by": worker, "claimed_until": lease_until}))
                for i in due
            ]

    async def next_due(self, *, account: str, worker: str, now: datetime) -> datetime | None:
        times = [
            when
            for r in self._rows()
            if r["status"] is Status.QUEUED and r["account"] == account
            for when in (
                r["not_before"],
                r["claimed_until"] if r["claimed_by"] != worker else None,
            )
            if when is not None and when > now
        ]
        return min(times, default=None)

    async def release_claims(self, *, account: str, keep: str) -> int:
        async with self._db.write() as t:
            freed = [
                i
                for i, r in t.intents.items()
                if r["account"] == account
                and r["status"] is Status.QUEUED
                and r["claimed_by"] is not None
                and r["claimed_by"] != keep
            ]
            for i in freed:
                t.update_intent(i, {"claimed_by": None, "claimed_until": None})
        return len(freed)

    async def set_reason(self, intent_id: int, reason: str, *, kind: str = "hold") -> bool:
        async with self._db.write() as t:
            row = t.intents.get(intent_id)
            if row is None or row["status"] is not Status.QUEUED:
                return False
            now = self._db.now()
            t.update_intent(intent_id, {"status_reason": reason, "updated_at": now})
            t.note(now, intent_id, reason=reason, actor="worker", kind=kind)
        return True


class MemoryAccountState:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def pause_state(self, account: str | None = None) -> PauseState:
        keys = [PAUSED] if account is None else [PAUSED, ACCOUNT_PAUSED + account]
        for key in keys:
            row = self._db.tables.state.get(key)
            if row is not None:
                return PauseState(
                    paused=True, reason=row.value, by=row.updated_by, at=row.updated_at
                )
        return PauseState(paused=False, reason="", by="", at=None)

    async def account_pauses(self) -> dict[str, PauseState]:
        return {
            key.removeprefix(ACCOUNT_PAUSED): PauseState(
                paused=True, reason=row.value, by=row.updated_by, at=row.updated_at
            )
            for key, row in self._db.tables.state.items()
            if key.startswith(ACCOUNT_PAUSED)
        }

    async def pause(self, *, reason: str, by: str, account: str | None = None) -> bool:
        key = PAUSED if account is None else ACCOUNT_PAUSED + account
        async with self._db.write() as t:
            if key in t.state:
                return False
            t.state[key] = _StateRow(reason, by, self._db.now())
        return True

    async def resume(self, account: str | None = None) -> bool:
        key = PAUSED if account is None else ACCOUNT_PAUSED + account
        async with self._db.write() as t:
            return t.state.pop(key, None) is not None

    async def watermark(self, account: str) -> int | None:
        row = self._db.tables.state.get(WATERMARK + account)
        return int(row.value) if row is not None else None

    async def set_watermark(self, account: str, ms: int, *, by: str) -> None:
        async with self._db.write() as t:
            t.state[WATERMARK + account] = _StateRow(str(ms), by, self._db.now())

    async def publish(self, key: str, value: str, *, by: str) -> None:
        async with self._db.write() as t:
            t.state[key] = _StateRow(value, by, self._db.now())

    async def published(self, key: str) -> str | None:
        async with self._db.write() as t:
            row = t.state.get(key)
        return None if row is None else row.value

    async def acquire_lease(self, account: str, holder: str, ttl_s: float) -> bool:
        async with self._db.write() as t:
            now = self._db.now()
            lease = t.leases.get(account)
            if lease is not None and lease.holder != holder and not lease.expires_at < now:
                return False
            t.leases[account] = _Lease(holder, now + timedelta(seconds=ttl_s))
        return True

    async def release_lease(self, account: str, holder: str) -> None:
        async with self._db.write() as t:
            lease = t.leases.get(account)
            if lease is not None and lease.holder == holder:
                del t.leases[account]


class MemoryAddressBook:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        account: str,
        coin: str,
        network: str,
        address: str,
        address_tag: str | None,
        actor: str,
        reason: str,
        label: str = "",
        source: str = "manual",
        usable_from: datetime | None = None,
        travel_rule_profile: str | None = None,
    ) -> WhitelistEntry:
        actor, reason = audit_fields(actor, reason)
        if source not in ("exchange", "manual"):
            raise ConstraintViolation("whitelist_entries: source_known violated")
        if not account:
            raise ConstraintViolation("whitelist_entries: account_nonempty violated")
        async with self._db.write() as t:
            if t.find_entry(coin, network, address, address_tag, account=account) is not None:
                raise DuplicateEntry(
                    f"{coin}/{network} {address}"
                    + (f" tag {address_tag}" if address_tag else "")
                    + f" is already in the whitelist of account {account}"
                )
            now = self._db.now()
            entry = WhitelistEntry(
                id=t.new_id("whitelist"),
                account=account,
                coin=coin,
                network=network,
                address=address,
                address_tag=address_tag,
                label=label,
                source=source,
                enabled=True,
                usable_from=usable_from,
                created_at=now,
                updated_at=now,
                version=1,
                changed_by=actor,
                change_reason=reason,
                travel_rule_profile=travel_rule_profile,
            )
            t.whitelist[entry.id] = entry
            t.whitelist_event(entry, "add", now)
        return entry

    async def get(self, entry_id: int) -> WhitelistEntry:
        entry = self._db.tables.whitelist.get(entry_id)
        if entry is None:
            raise NotFound(f"whitelist entry {entry_id}")
        return entry

    async def all(self, account: str | None = None) -> list[WhitelistEntry]:
        return sorted(
            (
                e
                for e in self._db.tables.whitelist.values()
                if account is None or e.account == account
            ),
            key=lambda e: (e.account, e.coin, e.network, e.id),
        )

    async def find(
        self, coin: str, network: str, address: str, address_tag: str | None, *, account: str
    ) -> WhitelistEntry | None:
        return self._db.tables.find_entry(coin, network, address, address_tag, account=account)

    async def set_enabled(
        self, entry_id: int, enabled: bool, *, actor: str, reason: str, label: str | None = None
    ) -> WhitelistEntry:
        actor, reason = audit_fields(actor, reason)
        async with self._db.write() as t:
            entry = t.whitelist.get(entry_id)
            if entry is None:
                raise NotFound(f"whitelist entry {entry_id}")
            if entry.enabled == enabled and (label is None or label == entry.label):
                return entry
            now = self._db.now()
            changed = dataclasses.replace(
                entry,
                enabled=enabled,
                updated_at=now,
                label=entry.label if label is None else label,
                version=entry.version + 1,
                changed_by=actor,
                change_reason=reason,
            )
            t.whitelist[entry_id] = changed
            kind = "edit" if enabled == entry.enabled else ("enable" if enabled else "disable")
            t.whitelist_event(changed, kind, now)
        return changed

    async def set_profile(
        self, entry_id: int, profile: str | None, *, version: int, actor: str, reason: str
    ) -> WhitelistEntry:
        actor, reason = audit_fields(actor, reason)
        async with self._db.write() as t:
            entry = t.whitelist.get(entry_id)
            if entry is None:
                raise NotFound(f"whitelist entry {entry_id}")
            if entry.version != version:
                raise ConcurrentChange(
                    f"whitelist entry {entry_id} is at version {entry.version} now, not {version}"
                )
            now = self._db.now()
            changed = dataclasses.replace(
                entry,
                travel_rule_profile=profile,
                updated_at=now,
                version=entry.version + 1,
                changed_by=actor,
                change_reason=reason,
            )
            t.whitelist[entry_id] = changed
            t.whitelist_event(changed, "edit", now)
        return changed

    async def history(
        self, *, account: str | None = None, entry_id: int | None = None, limit: int = 1000
    ) -> list[WhitelistEvent]:
        return [
            e
            for e in self._db.tables.whitelist_events
            if (account is None or e.account == account)
            and (entry_id is None or e.entry_id == entry_id)
        ][:limit]

    async def add_approval(
        self,
        entry_id: int,
        *,
        version: int,
        approver: str,
        signature: str | None,
        reason: str | None,
        at: datetime | None = None,
        sign_count: tuple[bytes, int] | None = None,
    ) -> bool:
        if not approver.strip():
            raise ConstraintViolation("whitelist_approvals: approver_nonempty violated")
        async with self._db.write() as t:
            entry = t.whitelist.get(entry_id)
            if entry is None:
                raise NotFound(f"whitelist entry {entry_id}")
            if entry.version != version:
                raise ConcurrentChange(
                    f"whitelist entry {entry_id} is at version {entry.version} now, not {version}"
                )
            if sign_count is not None:
                cid, count = b64url(sign_count[0]), sign_count[1]
                found = [
                    p for p in t.passkeys.values() if p.credential_id == cid and not p.removed_at
                ]
                if not found or (count == 0 and found[0].sign_count != 0):
                    return False
                if count and count <= found[0].sign_count:
                    return False
                if count:
                    t.passkeys[found[0].id] = dataclasses.replace(found[0], sign_count=count)
            t.whitelist_approvals.append(
                WhitelistApproval(
                    id=t.new_id("whitelist_approvals"),
                    entry_id=entry_id,
                    entry_version=version,
                    approver=approver,
                    signature=signature,
                    reason=reason,
                    created_at=at or self._db.now(),
                )
            )
        return True

    async def approvals(
        self, *, account: str | None = None, entry_id: int | None = None
    ) -> list[WhitelistApproval]:
        t = self._db.tables
        return [
            a
            for a in t.whitelist_approvals
            if (account is None or t.whitelist[a.entry_id].account == account)
            and (entry_id is None or a.entry_id == entry_id)
        ]


def _operator_keys(operators: Iterable[Operator]) -> dict[str, bytes] | None:
    listed = list(operators)
    if not listed:
        return None
    return {o.name: base64.b64decode(o.public_key) for o in listed if o.removed_at is None}


class MemoryOperators:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def add(self, name: str, public_key: str, *, actor: str) -> Operator:
        async with self._db.write() as t:
            if name in t.operators or any(o.public_key == public_key for o in t.operators.values()):
                raise DuplicateEntry(f"operator {name!r} or that public key is registered")
            op = Operator(name, public_key, actor, self._db.now())
            t.operators[name] = op
        return op

    async def remove(self, name: str, *, actor: str, reason: str) -> Operator:
        async with self._db.write() as t:
            op = t.operators.get(name)
            if op is None or op.removed_at is not None:
                raise NotFound(f"operator {name!r} (not registered, or removed already)")
            op = dataclasses.replace(
                op, removed_by=actor, removed_at=self._db.now(), removed_reason=reason
            )
            t.operators[name] = op
        return op

    async def all(self) -> list[Operator]:
        return sorted(self._db.tables.operators.values(), key=lambda o: o.added_at)


class MemoryPasskeys:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def invite(
        self, operator: str, token_sha256: str, *, created_by: str, expires_at: datetime
    ) -> Invite:
        async with self._db.write() as t:
            op = t.operators.get(operator)
            if op is None or op.removed_at is not None:
                raise NotFound(f"operator {operator!r} (not registered, or removed)")
            if token_sha256 in t.invites:
                raise ConstraintViolation("operator_invites.token_sha256 is unique")
            invite = Invite(
                id=t.new_id("operator_invites"),
                operator=operator,
                created_by=created_by,
                created_at=self._db.now(),
                expires_at=expires_at,
            )
            t.invites[token_sha256] = invite
        return invite

    async def invite_for(self, token_sha256: str) -> Invite | None:
        return self._db.tables.invites.get(token_sha256)

    async def register(
        self, token_sha256: str, credential: Credential, *, now: datetime
    ) -> Passkey:
        async with self._db.write() as t:
            invite = t.invites.get(token_sha256)
            if invite is None:
                raise InviteUnusable("no such invite")
            if invite.used_at is not None:
                raise InviteUnusable("the invite was used already (an invite is single use)")
            if invite.expires_at <= now:
                raise InviteUnusable("the invite expired: ask an admin for a new one")
            if t.operators[invite.operator].removed_at is not None:
                raise InviteUnusable(f"operator {invite.operator!r} was removed")
            cid = b64url(credential.credential_id)
            if any(p.credential_id == cid for p in t.passkeys.values()):
                raise DuplicateEntry("that passkey is registered already")
            passkey = Passkey(
                id=t.new_id("operator_passkeys"),
                operator=invite.operator,
                credential_id=cid,
                public_key=base64.b64encode(credential.public_key).decode(),
                alg=credential.alg,
                sign_count=credential.sign_count,
                rp_id=credential.rp_id,
                origin=credential.origin,
                created_at=now,
            )
            t.passkeys[passkey.id] = passkey
            t.invites[token_sha256] = dataclasses.replace(invite, used_at=now)
        return passkey

    async def all(self, operator: str | None = None) -> list[Passkey]:
        return [
            p
            for p in sorted(self._db.tables.passkeys.values(), key=lambda p: p.id)
            if operator is None or p.operator == operator
        ]

    async def remove(self, passkey_id: int, *, actor: str, reason: str) -> Passkey:
        async with self._db.write() as t:
            p = t.passkeys.get(passkey_id)
            if p is None or p.removed_at is not None:
                raise NotFound(f"passkey {passkey_id} (no such passkey, or removed already)")
            p = dataclasses.replace(
                p, removed_by=actor, removed_at=self._db.now(), removed_reason=reason
            )
            t.passkeys[passkey_id] = p
        return p


class MemoryPolicies:
    """``policy_versions``: the triggers' refusals (self-approval, approving a version
    that is not the newest pending one) are ``ConstraintViolation`` here."""

    def __init__(self, db: _Database) -> None:
        self._db = db

    async def current_version(self) -> int | None:
        return _current_policy(self._db.tables.policies)

    async def current(self) -> PolicyVersion | None:
        version = await self.current_version()
        return None if version is None else await self.get(version)

    async def get(self, version: int) -> PolicyVersion:
        rows = self._db.tables.policies
        if not 1 <= version <= len(rows):
            raise NotFound(f"policy version {version}")
        return _with_status(rows, rows[version - 1])

    async def history(self, limit: int = 100) -> list[PolicyVersion]:
        rows = self._db.tables.policies
        return [_with_status(rows, r) for r in reversed(rows)][:limit]

    async def add(
        self,
        document: str,
        *,
        sha256: str,
        changes_need_approval: bool,
        applied_by: str,
        reason: str,
        activate: bool,
        after: int | None,
        audit: str,
    ) -> PolicyVersion:
        async with self._db.write() as t:
            if (len(t.policies) or None) != after:
                raise ConcurrentChange("the policy changed meanwhile; look again")
            current = _current_policy(t.policies)
            if activate and current is not None and t.policies[current - 1].changes_need_approval:
                raise ConstraintViolation("policy_versions: the version in force needs approval")
            if not applied_by.strip() or not reason.strip() or len(sha256) != 64:
                raise ConstraintViolation("policy_versions: applied_by, reason, sha256")
            now = self._db.now()
            row = PolicyVersion(
                version=len(t.policies) + 1,
                document=document,
                sha256=sha256,
                applied_by=applied_by,
                reason=reason,
                created_at=now,
                changes_need_approval=changes_need_approval,
                approved_by=None,
                activated_at=now if activate else None,
                status="",
            )
            t.policies.append(row)
            MemoryEventLog(self._db)._append(
                t, "policy_applied", f"v{row.version}", audit, applied_by
            )
        return await self.get(row.version)

    async def activate(
        self, version: int, *, approved_by: str, audit: str, signature: str | None = None
    ) -> PolicyVersion:
        async with self._db.write() as t:
            if version != len(t.policies) or t.policies[version - 1].activated_at is not None:
                raise ConcurrentChange(f"policy version {version} is not pending")
            row = t.policies[version - 1]
            if approved_by.strip().lower() == row.applied_by.strip().lower():
                raise ConstraintViolation("policy_versions: approved by its applier")
            t.policies[version - 1] = dataclasses.replace(
                row,
                approved_by=approved_by,
                approval_signature=signature,
                activated_at=self._db.now(),
            )
            MemoryEventLog(self._db)._append(
                t, "policy_approved", f"v{version}", audit, approved_by
            )
        return await self.get(version)


def _current_policy(rows: list[PolicyVersion]) -> int | None:
    return max((r.version for r in rows if r.activated_at is not None), default=None)


def _with_status(rows: list[PolicyVersion], row: PolicyVersion) -> PolicyVersion:
    status = policy_status(
        row.version,
        row.activated_at is not None,
        current=_current_policy(rows),
        latest=len(rows),
    )
    return dataclasses.replace(row, status=status)


class MemoryEventLog:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def record(self, kind: str, detail: str, *, actor: str, subject: str = "") -> None:
        async with self._db.write() as t:
            self._append(t, kind, subject, detail, actor)

    async def record_once(self, kind: str, subject: str, detail: str, *, actor: str) -> bool:
        async with self._db.write() as t:
            if any(e.kind == kind and e.subject == subject for e in t.service_events):
                return False
            self._append(t, kind, subject, detail, actor)
        return True

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[ServiceEvent]:
        events = [
            e for e in reversed(self._db.tables.service_events) if kind is None or e.kind == kind
        ]
        return events[:limit]

    def _append(self, t: _Tables, kind: str, subject: str, detail: str, actor: str) -> None:
        t.service_events.append(
            ServiceEvent(
                id=t.new_id("service_events"),
                kind=kind,
                subject=subject,
                detail=detail,
                actor=actor,
                created_at=self._db.now(),
            )
        )


class MemoryUnmatchedStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def record(
        self,
        *,
        account: str,
        record: WithdrawalRecord,
        intent_id: int | None,
        reason: str,
        found_by: str,
    ) -> bool:
        async with self._db.write() as t:
            if any(
                u.account == account and u.exchange_withdraw_id == record.id for u in t.unmatched
            ):
                return False
            t.unmatched.append(
                Unmatched(
                    account=account,
                    exchange_withdraw_id=record.id,
                    withdraw_order_id=record.withdraw_order_id or "",
                    intent_id=intent_id,
                    coin=record.coin,
                    network=record.network,
                    address=record.address,
                    address_tag=record.address_tag or None,
                    amount=record.amount,
                    fee=record.fee,
                    exchange_status=record.status,
                    apply_time=record.apply_time,
                    reason=reason,
                    found_by=found_by,
                    created_at=self._db.now(),
                )
            )
            if intent_id is not None:
                # as PostgreSQL's sequence is moved: that intent id is never handed out again
                t.last_id["intents"] = max(t.last_id.get("intents", 0), intent_id)
        return True

    async def on_file(self, account: str, exchange_ids: Sequence[str]) -> set[str]:
        wanted = set(exchange_ids)
        return {
            u.exchange_withdraw_id
            for u in self._db.tables.unmatched
            if u.account == account and u.exchange_withdraw_id in wanted
        }

    async def list(self, account: str | None = None, limit: int = 1000) -> list[Unmatched]:
        rows = [u for u in self._db.tables.unmatched if account is None or u.account == account]
        return rows[:limit]


class MemoryIntentUnit:
    """One write transaction around one intent: reads and writes go to the unit's own copy
    of the tables, published when the unit exits without an exception."""

    def __init__(self, db: _Database, tables: _Tables, intent: Intent) -> None:
        self._db = db
        self._t = tables
        self._intent = intent

    @property
    def intent(self) -> Intent:
        return self._intent

    async def send_refusal(self, worker: str) -> str | None:
        return self._t.refusal(self._db.now(), self._intent.account, worker)

    async def address_book_entry(self) -> WhitelistEntry | None:
        i = self._intent
        return self._t.find_entry(i.coin, i.network, i.address, i.address_tag, account=i.account)

    async def usage_24h(self, now: datetime) -> tuple[Decimal, Decimal]:
        i = self._intent
        rows = [
            r
            for r in self._t.intents.values()
            if r["account"] == i.account
            and r["coin"] == i.coin
            and r["status"] in COMMITTED
            and r["id"] != i.id
            and r["submitted_at"] is not None
            and r["submitted_at"] > now - timedelta(hours=24)
        ]
        same = [
            r
            for r in rows
            if (r["network"], r["address"], r["address_tag"])
            == (i.network, i.address, i.address_tag)
        ]
        return add(*(r["amount"] for r in rows)), add(*(r["amount"] for r in same))

    async def approvers(self) -> tuple[str, ...]:
        return tuple(a.approver for a in self._t.approvals if a.intent_id == self._intent.id)

    async def approvals(self) -> tuple[Approval, ...]:
        return tuple(
            Approval(a.approver, a.signature, a.created_at)
            for a in self._t.approvals
            if a.intent_id == self._intent.id
        )

    async def operator_keys(self) -> dict[str, bytes] | None:
        return _operator_keys(self._t.operators.values())

    async def passkeys(self) -> dict[str, tuple[Credential, ...]]:
        return passkeys_by_operator(
            list(self._t.passkeys.values()), list(self._t.operators.values())
        )

    async def advance_sign_count(self, credential_id: bytes, sign_count: int) -> bool:
        cid = b64url(credential_id)
        for p in self._t.passkeys.values():
            if p.credential_id == cid and p.removed_at is None:
                if sign_count == 0:
                    return p.sign_count == 0
                if sign_count <= p.sign_count:
                    return False
                self._t.passkeys[p.id] = dataclasses.replace(p, sign_count=sign_count)
                return True
        return False

    async def add_approval(
        self, approver: str, signature: str | None = None, *, at: datetime | None = None
    ) -> bool:
        if approver in await self.approvers():
            return False
        self._t.approvals.append(
            _Approval(self._intent.id, approver, at or self._db.now(), signature)
        )
        return True

    async def entry_approvals(self, entry: WhitelistEntry) -> tuple[Approval, ...]:
        return tuple(
            Approval(a.approver, a.signature, a.created_at)
            for a in self._t.whitelist_approvals
            if (a.entry_id, a.entry_version) == (entry.id, entry.version)
        )

    async def entry_added_by(self, entry_id: int) -> str | None:
        return next(
            (
                e.actor
                for e in self._t.whitelist_events
                if e.entry_id == entry_id and e.kind == "add"
            ),
            None,
        )

    async def burned_order_ids(self) -> set[str]:
        return {u.withdraw_order_id for u in self._t.unmatched if u.intent_id == self._intent.id}

    async def note(self, *, reason: str, actor: str, kind: str) -> None:
        self._t.note(self._db.now(), self._intent.id, reason=reason, actor=actor, kind=kind)

    async def transition(
        self, to: Status, *, reason: str, actor: str, fields: Mapping[str, Any] | None = None
    ) -> Intent:
        self._intent = self._t.transition(
            self._db.now(),
            self._intent.id,
            to,
            reason=reason,
            actor=actor,
            fields=fields,
            locked=self._intent,
        )
        return self._intent


class MemoryUnits:
    def __init__(self, db: _Database) -> None:
        self._db = db

    @asynccontextmanager
    async def open(
        self, intent_id: int, *, serialize_account: str | None = None
    ) -> AsyncIterator[MemoryIntentUnit]:
        # serialize_account: every unit is serialised by the one writer lock already
        async with self._db.write() as t:
            yield MemoryIntentUnit(self._db, t, t.intent(intent_id))


class MemoryLedger(Ledger):
    """A ``Ledger`` held in Python dicts, with the SQL adapter's semantics (see the module
    docstring for what is and is not modelled).

    Args:
        namespace: the ledger's order-id namespace (``trs-NAMESPACE-ID``).
        clock: where the stores read "now" (created_at, leases, events...); by default
            ``treasury.ports.clock.utcnow`` as it is at each call.
    """

    def __init__(
        self, *, namespace: str = "memtest1", clock: Callable[[], datetime] | None = None
    ) -> None:
        self._db = db = _Database(namespace=namespace, clock=clock or _port_now)
        super().__init__(
            intents=MemoryIntentStore(db),
            state=MemoryAccountState(db),
            whitelist=MemoryAddressBook(db),
            events=MemoryEventLog(db),
            unmatched=MemoryUnmatchedStore(db),
            units=MemoryUnits(db),
            operators=MemoryOperators(db),
            policies=MemoryPolicies(db),
            passkeys=MemoryPasskeys(db),
        )

    def fail_transitions(self, times: int = 1) -> None:
        """Make the next ``times`` calls of ``intents.transition`` raise ``StoreUnavailable``
        with nothing written (a lost connection; the SQL adapter reports one as that from
        ``transition`` only)."""
        self._db.outages += times


# ==== the exchange ==========================================================================

APPLY = "/sapi/v1/capital/withdraw/apply"
HISTORY = "/sapi/v1/capital/withdraw/history"
DAY_MS = 24 * 3600 * 1000
_METHODS = frozenset(
    {
        "sync_clock",
        "system_status",
        "account",
        "api_restrictions",
        "coin_configs",
        "whitelist_addresses",
        "withdraw_quota",
        "withdraw",
        "withdraw_history",
        "travel_rule_requirement",
        "vasps",
        "countries",
        "regions",
        "withdraw_local_entity",
        "local_entity_history",
    }
)
LOCAL_APPLY = "/sapi/v1/localentity/withdraw/apply"
LOCAL_HISTORY = "/sapi/v2/localentity/withdraw/history"
TR_ID_BASE = 765_000_000  # trId = base + the withdrawal's sequence number (as the sandbox)
_DEFAULT = object()  # "no scripted answer: behave as the exchange would"
_REFUNDED = frozenset(
    {
        ExchangeWithdrawStatus.CANCELLED,
        ExchangeWithdrawStatus.REJECTED,
        ExchangeWithdrawStatus.FAILURE,
    }
)


@dataclass(frozen=True)
class Timeout:
    """A scripted ``withdraw`` answer: the connection is lost before the answer arrives.

    The caller gets ``OutcomeUnknown`` carrying its own signed timestamp and order id.
    ``executed``: whether the exchange acted on the request before the answer was lost
    (the withdrawal then exists and shows in history, after the lag, like any other).
    """

    executed: bool = False


@dataclass(frozen=True)
class Call:
    """One call the code under test made, with its arguments and the exchange's time."""

    method: str
    args: Mapping[str, Any]
    at_ms: int


def not_sent(
    detail: str = "connection refused (fake)",
    *,
    endpoint: str = APPLY,
    reason: Reason = Reason.CONNECT_FAILED,
    code: int | None = None,
    retry_after_s: float | None = None,
) -> NotSent:
    return NotSent(detail, endpoint=endpoint, reason=reason, code=code, retry_after_s=retry_after_s)


def rejected(
    detail: str = "refused (fake)",
    *,
    permanent: bool,
    endpoint: str = APPLY,
    reason: Reason = Reason.ADDRESS,
    code: int | None = None,
) -> Rejected:
    return Rejected(detail, endpoint=endpoint, reason=reason, permanent=permanent, code=code)


def _fake_tx_id(w: _Withdrawal) -> str:
    """Binance's txId of an internal transfer is its own "Off-chain transfer <digits>"."""
    if w.record.internal:
        return f"Off-chain transfer {w.seq:010d}"
    return f"0xfake{w.seq:04d}"


@dataclass
class _Withdrawal:
    record: WithdrawalRecord  # as history shows it (amount net or gross already)
    applied_ms: int
    visible_ms: int
    seq: int
    debited: Decimal  # what the balance lost (given back if it fails or is cancelled)
    tr_id: int | None = None  # made through withdraw_local_entity
    travel_rule_status: int = 0  # TravelRuleStatus; set_travel_rule_status changes it
    only_in: str | None = None  # "capital" / "localentity": the one history it shows in


class FakeExchange:
    """A scriptable ``treasury.ports.exchange.Exchange`` (see the module docstring).

    Args:
        clock: the local clock (default ``treasury.ports.clock.utcnow`` at each call); the
            exchange's own clock is that plus ``server_offset_ms``.
        balances: free balance per coin of the spot wallet; withdrawals debit it.
        funding: free balance per coin of the funding wallet (``walletType`` 1).
        fee: the fee of every withdrawal (and of networks added without one).
        history_amount: ``"net"`` (amount less the fee, Binance's most likely form) or
            ``"gross"`` (the amount requested).
        history_lag_s: how long a new withdrawal stays out of history.
        recv_window_ms: the recvWindow the client signs with.

    ``internal_addresses``: destinations that belong to Binance accounts. A withdrawal to
    one is an internal transfer (``transferType`` 1) charged ``fee``: with
    ``transactionFeeFlag`` false (the sender pays) the wallet is debited the amount plus
    the fee and history's net amount is the whole amount; with true (the recipient pays)
    the wallet is debited the amount and the net amount is the amount less the fee.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        balances: Mapping[str, Decimal | str | int] | None = None,
        funding: Mapping[str, Decimal | str | int] | None = None,
        fee: Decimal | str = "1",
        history_amount: Literal["net", "gross"] = "net",
        history_lag_s: float = 0.0,
        recv_window_ms: int = 5000,
        server_offset_ms: int = 0,
    ) -> None:
        self._clock = clock or _port_now
        self.balances = {c: Decimal(v) for c, v in (balances or {}).items()}
        self.funding = {c: Decimal(v) for c, v in (funding or {}).items()}
        self.status_text = "Normal"  # what account/status answers
        self.fee = Decimal(fee)
        self.history_amount = history_amount
        self.history_lag_s = history_lag_s
        self.recv_window_ms = recv_window_ms
        self.server_offset_ms = server_offset_ms  # the truth
        self._known_offset_ms = server_offset_ms  # what now_ms uses: the last sync's view
        self.system = SystemStatus(normal=True, message="")
        self.can_withdraw = True
        self.restrictions = ApiRestrictions(
            ip_restrict=True, enable_withdrawals=True, enable_reading=True
        )
        self.quota = WithdrawQuota(quota=Decimal(8_000_000), used=Decimal(0))
        self.networks: dict[str, list[NetworkRule]] = {}
        self.whitelist: list[WhitelistAddress] = []
        self.internal_addresses: set[str] = set()
        self.calls: list[Call] = []
        self._scripts: dict[str, deque[object]] = {}
        self._withdrawals: list[_Withdrawal] = []
        # travel rule: the questionnaire country code the account is held under (None:
        # capital withdrawals, as usual; set: ``withdraw`` is refused with -4104), an
        # optional questionnaire check (returns Binance's refusal text, or None to pass),
        # and the fixed lists
        self.local_entity: str | None = None
        self.questionnaire_check: Callable[[Mapping[str, object]], str | None] | None = None
        self.vasp_list: list[Vasp] = [Vasp(name="Binance", code="BINANCE", identifier="BINANCE")]
        self.country_list: list[TravelRuleCountry] = [
            TravelRuleCountry(
                code=c, name=c.upper(), block_type="supported",
                deposit_allowed=True, withdrawal_allowed=True,
            )
            for c in ("fr", "jp", "pl")
        ]  # fmt: skip
        self.region_list: dict[str, list[TravelRuleRegion]] = {}

    # ---- set-up and control --------------------------------------------------------------

    def script(self, method: str, *answers: object) -> None:
        """Queue answers for the next calls of ``method``, one per call, in order: an
        exception is raised, ``Timeout`` (withdraw only) loses the answer, any other value
        is returned as it is. When the queue is empty the exchange behaves normally."""
        if method not in _METHODS:
            raise ValueError(f"the exchange has no scriptable method {method!r}")
        self._scripts.setdefault(method, deque()).extend(answers)

    def scripted(self, method: str) -> int:
        """How many scripted answers for ``method`` are still waiting."""
        return len(self._scripts.get(method, ()))

    def add_network(
        self,
        coin: str,
        network: str,
        *,
        withdraw_min: Decimal | str = "0",
        withdraw_max: Decimal | str = "0",
        multiple: Decimal | str = "0",
        fee: Decimal | str | None = None,
        enabled: bool = True,
        address_regex: str = "",
        memo_regex: str = "",
        memo_required: bool | None = False,
    ) -> NetworkRule:
        """Let ``coin`` be withdrawn on ``network`` (``coin_configs`` shows it)."""
        rule = NetworkRule(
            coin=coin,
            network=network,
            withdraw_enable=enabled,
            withdraw_min=Decimal(withdraw_min),
            withdraw_max=Decimal(withdraw_max),
            withdraw_multiple=Decimal(multiple),
            withdraw_fee=self.fee if fee is None else Decimal(fee),
            address_regex=address_regex,
            memo_regex=memo_regex,
            memo_required=memo_required,
        )
        self.networks.setdefault(coin, []).append(rule)
        return rule

    def server_ms(self) -> int:
        """The exchange's own clock."""
        return _ms(self._clock()) + self.server_offset_ms

    def move_server_clock(self, delta_ms: int) -> None:
        """Step the exchange's clock against the local one (seen after ``sync_clock``)."""
        self.server_offset_ms += delta_ms

    def add_record(self, record: WithdrawalRecord, *, visible_after_s: float = 0.0) -> None:
        """Put a withdrawal the code under test did not make into history (another ledger's,
        a leaked key's, one sent before a ledger was restored from backup)."""
        applied = _ms(record.apply_time) if record.apply_time else self.server_ms()
        self._withdrawals.append(
            _Withdrawal(
                record=dataclasses.replace(record, apply_time=_at(applied)),
                applied_ms=applied,
                visible_ms=self.server_ms() + int(visible_after_s * 1000),
                seq=len(self._withdrawals) + 1,
                debited=Decimal(0),
            )
        )

    def set_status(
        self, ref: str, status: int, *, info: str = "", tx_id: str | None = None
    ) -> WithdrawalRecord:
        """Move a withdrawal (by exchange id or order id) to an exchange status code."""
        w = self._find(ref)
        completed = status == ExchangeWithdrawStatus.COMPLETED
        if status in _REFUNDED and w.record.status not in _REFUNDED and w.debited:
            coin = w.record.coin
            wallet = self.funding if w.record.wallet_type == 1 else self.balances
            wallet[coin] = add(wallet.get(coin, Decimal(0)), w.debited)
        w.record = dataclasses.replace(
            w.record,
            status=status,
            info=info,
            tx_id=(tx_id or _fake_tx_id(w)) if completed else w.record.tx_id,
            complete_time=_at(self.server_ms()) if completed else w.record.complete_time,
        )
        return w.record

    def complete(self, ref: str, *, tx_id: str | None = None) -> WithdrawalRecord:
        return self.set_status(ref, ExchangeWithdrawStatus.COMPLETED, tx_id=tx_id)

    def fail(self, ref: str, *, info: str = "failed (fake)") -> WithdrawalRecord:
        return self.set_status(ref, ExchangeWithdrawStatus.FAILURE, info=info)

    def cancel(self, ref: str, *, info: str = "cancelled (fake)") -> WithdrawalRecord:
        return self.set_status(ref, ExchangeWithdrawStatus.CANCELLED, info=info)

    # ---- what happened -------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def withdraw_requests(self, order_id: str | None = None) -> list[WithdrawRequest]:
        """Every withdraw call made (whatever its answer), optionally for one order id."""
        requests = [c.args["request"] for c in self.calls_to("withdraw")]
        return [r for r in requests if order_id is None or r.withdraw_order_id == order_id]

    def executed(self, order_id: str | None = None) -> list[WithdrawalRecord]:
        """The withdrawals the exchange holds (visible in history yet or not)."""
        return [
            w.record
            for w in self._withdrawals
            if order_id is None or w.record.withdraw_order_id == order_id
        ]

    # ---- the Exchange protocol -----------------------------------------------------------

    def now_ms(self) -> int:
        return _ms(self._clock()) + self._known_offset_ms

    async def sync_clock(self) -> None:
        """Learn the exchange's clock offset (a scripted ``None`` answers without learning)."""
        answer = self._answer("sync_clock", {})
        if isinstance(answer, BaseException):
            raise answer
        if answer is _DEFAULT:
            self._known_offset_ms = self.server_offset_ms

    async def system_status(self) -> SystemStatus:
        return _resolve(self._answer("system_status", {}), SystemStatus, lambda: self.system)

    async def account(self) -> AccountInfo:
        return _resolve(
            self._answer("account", {}),
            AccountInfo,
            lambda: AccountInfo(
                can_withdraw=self.can_withdraw,
                can_trade=True,
                can_deposit=True,
                balances={
                    c: Balance(asset=c, free=v, locked=Decimal(0)) for c, v in self.balances.items()
                },
            ),
        )

    async def funding_balances(self) -> dict[str, Balance]:
        return _resolve(
            self._answer("funding_balances", {}),
            dict,
            lambda: {
                c: Balance(asset=c, free=v, locked=Decimal(0)) for c, v in self.funding.items()
            },
        )

    async def account_status(self) -> str:
        return _resolve(self._answer("account_status", {}), str, lambda: self.status_text)

    async def api_restrictions(self) -> ApiRestrictions:
        return _resolve(
            self._answer("api_restrictions", {}), ApiRestrictions, lambda: self.restrictions
        )

    async def coin_configs(self) -> dict[str, CoinConfig]:
        return _resolve(
            self._answer("coin_configs", {}),
            dict,
            lambda: {
                coin: CoinConfig(
                    coin=coin,
                    withdraw_all_enable=True,
                    free=self.balances.get(coin, Decimal(0)),
                    networks=tuple(rules),
                )
                for coin, rules in self.networks.items()
            },
        )

    async def whitelist_addresses(self) -> list[WhitelistAddress]:
        return _resolve(self._answer("whitelist_addresses", {}), list, lambda: list(self.whitelist))

    async def withdraw_quota(self) -> WithdrawQuota:
        return _resolve(self._answer("withdraw_quota", {}), WithdrawQuota, lambda: self.quota)

    async def withdraw(
        self, request: WithdrawRequest, *, timestamp_ms: int | None = None
    ) -> WithdrawAccepted:
        answer = self._answer("withdraw", {"request": request, "timestamp_ms": timestamp_ms})
        if answer is _DEFAULT and self.local_entity is not None:
            raise Rejected(
                "withdrawals are not permitted due to travel rule restrictions (fake)",
                endpoint=APPLY,
                reason=Reason.TRAVEL_RULE,
                permanent=True,
                code=-4104,
                http_status=400,
            )
        if isinstance(answer, Timeout):
            signed = timestamp_ms if timestamp_ms is not None else self.now_ms()
            if answer.executed:
                with suppress(ExchangeError):  # refused: then it was not executed
                    self._execute(request, signed)
            raise OutcomeUnknown(
                "no answer: the connection was lost (fake timeout)",
                endpoint=APPLY,
                reason=Reason.TIMEOUT,
                timestamp_ms=signed,
                recv_window_ms=self.recv_window_ms,
                withdraw_order_id=request.withdraw_order_id,
            )
        return _resolve(
            answer,
            WithdrawAccepted,
            lambda: self._execute(
                request, timestamp_ms if timestamp_ms is not None else self.now_ms()
            ),
        )

    async def withdraw_history(
        self,
        *,
        withdraw_order_id: str | None = None,
        id_list: Sequence[str] | None = None,
        coin: str | None = None,
        status: int | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[WithdrawalRecord]:
        args: dict[str, Any] = {
            "withdraw_order_id": withdraw_order_id,
            "id_list": id_list,
            "coin": coin,
            "status": status,
            "start_time_ms": start_time_ms,
            "end_time_ms": end_time_ms,
            "offset": offset,
            "limit": limit,
        }
        return _resolve(self._answer("withdraw_history", args), list, lambda: self._history(**args))

    # ---- travel rule (local entities) -------------------------------------------------

    def set_travel_rule_status(self, ref: str, status: int, *, fail: bool = False) -> None:
        """Set a local-entity withdrawal's ``travelRuleStatus`` (``ref``: its id, order id
        or ``str(trId)``); ``fail`` also cancels it and gives the amount back, as the
        sandbox does when the check fails."""
        found = [
            w
            for w in self._withdrawals
            if ref in (w.record.id, w.record.withdraw_order_id, str(w.tr_id))
        ]
        if len(found) != 1 or found[0].tr_id is None:
            raise ValueError(f"no single local-entity withdrawal matches {ref!r}")
        w = found[0]
        w.travel_rule_status = status
        if fail:
            self.set_status(w.record.id, ExchangeWithdrawStatus.CANCELLED)

    def show_only_in(self, ref: str, history: Literal["capital", "localentity"]) -> None:
        """Let one withdrawal show in one of the two histories only (Binance's warning)."""
        self._find(ref).only_in = history

    async def travel_rule_requirement(self) -> str | None:
        answer = self._answer("travel_rule_requirement", {})
        if answer is _DEFAULT:
            return self.local_entity
        if isinstance(answer, BaseException):
            raise answer
        if answer is not None and not isinstance(answer, str):
            raise TypeError(f"scripted answer {answer!r} is not a str or None")
        return answer

    async def vasps(self) -> list[Vasp]:
        return _resolve(self._answer("vasps", {}), list, lambda: list(self.vasp_list))

    async def countries(self) -> list[TravelRuleCountry]:
        return _resolve(self._answer("countries", {}), list, lambda: list(self.country_list))

    async def regions(self, country_code: str) -> list[TravelRuleRegion]:
        answer = self._answer("regions", {"country_code": country_code})
        return _resolve(answer, list, lambda: list(self.region_list.get(country_code, [])))

    async def withdraw_local_entity(
        self,
        request: WithdrawRequest,
        questionnaire: Mapping[str, object],
        *,
        timestamp_ms: int | None = None,
    ) -> LocalEntityWithdrawAccepted:
        """As ``withdraw``, through the local-entity endpoint: a scripted ``Timeout`` loses
        the answer (after executing, with ``executed``); by default the account must be
        under a local entity and ``questionnaire_check`` must pass (a refusal is a
        permanent travel-rule ``Rejected`` carrying the check's text)."""
        args = {"request": request, "questionnaire": questionnaire, "timestamp_ms": timestamp_ms}
        answer = self._answer("withdraw_local_entity", args)
        signed = timestamp_ms if timestamp_ms is not None else self.now_ms()
        if isinstance(answer, Timeout):
            if answer.executed:
                with suppress(ExchangeError):
                    self._execute_local(request, questionnaire, signed)
            raise OutcomeUnknown(
                "no answer: the connection was lost (fake timeout)",
                endpoint=LOCAL_APPLY,
                reason=Reason.TIMEOUT,
                timestamp_ms=signed,
                recv_window_ms=self.recv_window_ms,
                withdraw_order_id=request.withdraw_order_id,
            )
        return _resolve(
            answer,
            LocalEntityWithdrawAccepted,
            lambda: self._execute_local(request, questionnaire, signed),
        )

    async def local_entity_history(
        self,
        *,
        tr_ids: Sequence[int] | None = None,
        withdraw_order_id: str | None = None,
        coin: str | None = None,
        travel_rule_status: int | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> list[LocalEntityWithdrawalRecord]:
        args: dict[str, Any] = {
            "tr_ids": tr_ids,
            "withdraw_order_id": withdraw_order_id,
            "coin": coin,
            "travel_rule_status": travel_rule_status,
            "start_time_ms": start_time_ms,
            "end_time_ms": end_time_ms,
            "offset": offset,
            "limit": limit,
        }
        return _resolve(
            self._answer("local_entity_history", args), list, lambda: self._local_history(**args)
        )

    def _execute_local(
        self, request: WithdrawRequest, questionnaire: Mapping[str, object], timestamp_ms: int
    ) -> LocalEntityWithdrawAccepted:
        refusal = None
        if self.local_entity is None:
            refusal = "Travel rule questionnaire is not required for this account."
        elif self.questionnaire_check is not None:
            refusal = self.questionnaire_check(questionnaire)
        if refusal is not None:
            raise Rejected(
                f"questionnaire refused; Binance says {refusal!r}",
                endpoint=LOCAL_APPLY,
                reason=Reason.TRAVEL_RULE,
                permanent=True,
            )
        accepted = self._execute(request, timestamp_ms)
        w = self._withdrawals[-1]
        w.tr_id = TR_ID_BASE + w.seq
        return LocalEntityWithdrawAccepted(
            tr_id=w.tr_id,
            info="Withdraw request accepted",
            timestamp_ms=accepted.timestamp_ms,
            recv_window_ms=accepted.recv_window_ms,
        )

    def _local_history(
        self,
        *,
        tr_ids: Sequence[int] | None,
        withdraw_order_id: str | None,
        coin: str | None,
        travel_rule_status: int | None,
        start_time_ms: int | None,
        end_time_ms: int | None,
        offset: int,
        limit: int,
    ) -> list[LocalEntityWithdrawalRecord]:
        capital = self._history(
            withdraw_order_id=withdraw_order_id,
            id_list=None,
            coin=coin,
            status=None,
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            offset=0,
            limit=1000,
            only_in="localentity",
        )
        by_id = {w.record.id: w for w in self._withdrawals}
        rows: list[LocalEntityWithdrawalRecord] = []
        for record in capital:
            w = by_id[record.id]
            if w.tr_id is None or (tr_ids is not None and w.tr_id not in tr_ids):
                continue
            if travel_rule_status is not None and w.travel_rule_status != travel_rule_status:
                continue
            rows.append(
                LocalEntityWithdrawalRecord(
                    tr_id=w.tr_id,
                    id=record.id,
                    withdraw_order_id=record.withdraw_order_id,
                    coin=record.coin,
                    network=record.network,
                    address=record.address,
                    amount=record.amount,
                    fee=record.fee,
                    withdrawal_status=record.status,
                    travel_rule_status=w.travel_rule_status,
                    tx_id=record.tx_id,
                    apply_time=record.apply_time,
                    complete_time=record.complete_time,
                    info=record.info,
                    transfer_type=record.transfer_type,
                    wallet_type=record.wallet_type,
                )
            )
        return rows[offset : offset + limit]

    # ---- inside the exchange -------------------------------------------------------------

    def _answer(self, method: str, args: dict[str, Any]) -> object:
        self.calls.append(Call(method, args, self.server_ms()))
        queue = self._scripts.get(method)
        return queue.popleft() if queue else _DEFAULT

    def _execute(self, request: WithdrawRequest, timestamp_ms: int) -> WithdrawAccepted:
        now = self.server_ms()
        if timestamp_ms > now + 1000 or now - timestamp_ms > self.recv_window_ms:
            raise NotSent(
                "Timestamp for this request is outside of the recvWindow.",
                endpoint=APPLY,
                reason=Reason.CLOCK_SKEW,
                code=-1021,
                http_status=400,
            )
        wallet = self.balances if request.wallet is Wallet.SPOT else self.funding
        free = wallet.get(request.coin, Decimal(0))
        internal = request.address in self.internal_addresses
        sender_pays = internal and not request.fee_payer.transaction_fee_flag
        debit = request.amount + self.fee if sender_pays else request.amount
        if free < debit:
            raise Rejected(
                "Insufficient balance (fake).",
                endpoint=APPLY,
                reason=Reason.BALANCE,
                permanent=False,
                code=-4026,
                http_status=400,
            )
        wallet[request.coin] = free - debit
        seq = len(self._withdrawals) + 1
        received = request.amount if sender_pays else request.amount - self.fee
        shown = request.amount if self.history_amount == "gross" else received
        record = WithdrawalRecord(
            id=f"fakewd{seq:06d}",
            withdraw_order_id=request.withdraw_order_id,
            coin=request.coin,
            network=request.network,
            address=request.address,
            address_tag=request.address_tag,
            amount=shown,
            fee=self.fee,
            status=ExchangeWithdrawStatus.PROCESSING,
            tx_id=None,
            apply_time=_at(now),
            complete_time=None,
            wallet_type=request.wallet.wallet_type,
            transfer_type=1 if internal else 0,
        )
        self._withdrawals.append(
            _Withdrawal(
                record=record,
                applied_ms=now,
                visible_ms=now + int(self.history_lag_s * 1000),
                seq=seq,
                debited=debit,
            )
        )
        return WithdrawAccepted(
            id=record.id, timestamp_ms=timestamp_ms, recv_window_ms=self.recv_window_ms
        )

    def _history(
        self,
        *,
        withdraw_order_id: str | None,
        id_list: Sequence[str] | None,
        coin: str | None,
        status: int | None,
        start_time_ms: int | None,
        end_time_ms: int | None,
        offset: int,
        limit: int,
        only_in: str = "capital",
    ) -> list[WithdrawalRecord]:
        """The history named by ``only_in`` (a withdrawal marked for the other one is left
        out); the local-entity view also goes through here for its windows."""
        now = self.server_ms()
        window = (7 if withdraw_order_id is not None else 90) * DAY_MS
        end = (
            end_time_ms
            if end_time_ms is not None
            else (now if start_time_ms is None else max(now, start_time_ms))
        )
        start = start_time_ms if start_time_ms is not None else end - window + 1
        if not 1 <= limit <= 1000 or offset < 0:
            raise _bad_request("limit or offset out of range", -1130)
        if start > end:
            raise _bad_request("startTime must not be after endTime.", -1128)
        if end - start > window:  # as the sandbox and Binance: exactly the window is allowed
            raise _bad_request("Lookup interval is too big.", -1127)
        rows = [
            w
            for w in self._withdrawals
            if start <= w.applied_ms <= end
            and w.visible_ms <= now
            and w.only_in in (None, only_in)
            and (withdraw_order_id is None or w.record.withdraw_order_id == withdraw_order_id)
            and (id_list is None or w.record.id in id_list)
            and (coin is None or w.record.coin == coin)
            and (status is None or w.record.status == status)
        ]
        rows.sort(key=lambda w: (w.applied_ms, w.seq), reverse=True)
        return [w.record for w in rows[offset : offset + limit]]

    def _find(self, ref: str) -> _Withdrawal:
        found = [w for w in self._withdrawals if ref in (w.record.id, w.record.withdraw_order_id)]
        if len(found) != 1:
            raise ValueError(f"{len(found)} withdrawals match {ref!r}; name one by its id")
        return found[0]


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _bad_request(detail: str, code: int) -> Rejected:
    return Rejected(
        detail,
        endpoint=HISTORY,
        reason=Reason.BAD_REQUEST,
        permanent=True,
        code=code,
        http_status=400,
    )


def _resolve(answer: object, kind: type[T], default: Callable[[], T]) -> T:
    """A scripted answer (raised if an exception), else the exchange's own."""
    if answer is _DEFAULT:
        return default()
    if isinstance(answer, BaseException):
        raise answer
    if not isinstance(answer, kind):
        raise TypeError(f"scripted answer {answer!r} is not a {kind.__name__}")
    return answer
