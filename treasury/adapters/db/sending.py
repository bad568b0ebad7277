"""The transaction that commits an intent to being sent, and the holds before it.

``commit_to_send`` is the point of no return: in ONE transaction it checks the kill
switch, the sender lease (a fence: a process whose lease ran out cannot commit), the
intent's status and version, and the policy's rolling caps against what is already
committed, then fixes the ``withdrawOrderId`` and the signed timestamp and moves the
intent to ``submitting``. Only after that commit may the request leave.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from treasury.adapters.db.repository import ConcurrentChange, IntentRepository, to_intent, utcnow
from treasury.adapters.db.state import ServiceState
from treasury.adapters.db.tables import intent_approvals, whitelist_entries, withdrawal_intents
from treasury.adapters.db.unmatched import UnmatchedWithdrawals
from treasury.domain.decisions import Pass, Verdict
from treasury.domain.ids import next_free_order_id
from treasury.domain.intent import Intent
from treasury.domain.money import add
from treasury.domain.rules import check_whitelist
from treasury.domain.status import Status

T = withdrawal_intents
W = whitelist_entries
COMMITTED = (Status.SUBMITTING, Status.SUBMITTED, Status.COMPLETED, Status.NEEDS_ATTENTION)


def account_lock_key(account: str) -> int:
    """A stable signed 64-bit advisory-lock key for an account."""
    digest = hashlib.sha256(f"treasury:sender:{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SendRefused(Exception):
    """The commit did not happen; nothing will be sent.

    ``verdict`` is the policy's word when the policy refused, else None (paused, lease
    lost, changed meanwhile: the worker simply lets go of the intent).
    """

    def __init__(self, reason: str, verdict: Verdict | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.verdict = verdict


# (intent, coin usage 24h, destination usage 24h, approvals) -> the policy's verdict
PolicyGate = Callable[[Intent, Decimal, Decimal, int], Verdict]


async def usage_24h(
    conn: AsyncConnection, intent: Intent, now: datetime
) -> tuple[Decimal, Decimal]:
    """Amounts of the intent's coin committed in the last 24 h: per account, per destination.

    Summed in Python: on SQLite amounts are text, and SQL's SUM would go through float.
    """
    rows = (
        await conn.execute(
            select(T.c.amount, T.c.network, T.c.address, T.c.address_tag).where(
                and_(
                    T.c.account == intent.account,
                    T.c.coin == intent.coin,
                    T.c.status.in_([s.value for s in COMMITTED]),
                    T.c.submitted_at > now - timedelta(hours=24),
                    T.c.id != intent.id,
                )
            )
        )
    ).all()
    coin_total = add(*(r.amount for r in rows))
    dest_total = add(*(
        r.amount for r in rows
        if (r.network, r.address, r.address_tag) == (intent.network, intent.address,
                                                     intent.address_tag)
    ))
    return coin_total, dest_total


async def approvals_count(conn: AsyncConnection, intent_id: int) -> int:
    rows = await conn.execute(
        select(intent_approvals.c.id).where(intent_approvals.c.intent_id == intent_id)
    )
    return len(rows.all())


async def _whitelist_verdict(conn: AsyncConnection, intent: Intent) -> Verdict:
    row = (
        await conn.execute(
            select(W.c.enabled, W.c.usable_from).where(
                and_(W.c.coin == intent.coin, W.c.network == intent.network,
                     W.c.address == intent.address, W.c.tag_key == (intent.address_tag or ""))
            )
        )
    ).first()
    return check_whitelist(
        intent, None if row is None else bool(row.enabled),
        None if row is None else row.usable_from, utcnow(),
    )


class SendLedger:
    def __init__(self, repo: IntentRepository, state: ServiceState,
                 unmatched: UnmatchedWithdrawals) -> None:
        self.repo = repo
        self.state = state
        self.unmatched = unmatched

    async def commit_to_send(
        self,
        intent: Intent,
        *,
        worker: str,
        order_id: str,
        timestamp_ms: int,
        recv_window_ms: int,
        policy_gate: PolicyGate | None,
    ) -> Intent:
        """Commit ``intent`` to ``submitting`` (see the module docstring).

        Raises:
            SendRefused: paused, lease lost, changed meanwhile, or the policy says no now.
        """
        async with self.repo.engine.begin() as conn:
            if self.repo.is_postgres:
                # Serialise commits per account across processes (caps are summed in this
                # transaction); transaction-scoped, so it can never leak with a pooled
                # connection. SQLite's BEGIN IMMEDIATE already serialises writers.
                key = account_lock_key(intent.account)
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            refusal = await ServiceState.send_refusal(conn, intent.account, worker)
            if refusal is not None:
                raise SendRefused(refusal)
            current = await self.repo.lock(conn, intent.id)
            if current.status is not Status.QUEUED or current.version != intent.version:
                raise SendRefused(f"intent changed meanwhile ({current.status.value})")
            if current.withdraw_order_id not in (None, order_id):
                raise SendRefused("withdraw_order_id differs from the one on record")
            if current.withdraw_order_id is None:
                # An id the exchange has already seen for another withdrawal (a restored
                # ledger handed the intent id out again) is never sent: take the next free.
                burned = await self.unmatched.burned_order_ids(current.id, conn)
                order_id = next_free_order_id(order_id, burned)
            # The whitelist again, inside the commit: an entry disabled or removed since
            # the checks ran must stop the send (invariant 2), not only the next one.
            verdict = await _whitelist_verdict(conn, current)
            if not isinstance(verdict, Pass):
                raise SendRefused(getattr(verdict, "reason", "whitelist"), verdict)
            if policy_gate is not None:
                coin_used, dest_used = await usage_24h(conn, current, utcnow())
                approvals = await approvals_count(conn, current.id)
                verdict = policy_gate(current, coin_used, dest_used, approvals)
                if not isinstance(verdict, Pass):
                    raise SendRefused(getattr(verdict, "reason", "policy"), verdict)
            reason = f"committed to send as {order_id} (signed timestamp {timestamp_ms})"
            sent = await self.repo.transition(
                current.id, Status.SUBMITTING, reason=reason, actor="worker",
                expect=(Status.QUEUED,), expect_version=current.version, conn=conn,
                locked=current,
                fields={
                    "withdraw_order_id": order_id,
                    "send_timestamp_ms": timestamp_ms,
                    "send_recv_window_ms": recv_window_ms,
                    "send_count": current.send_count + 1,
                    "absent_checks": 0,
                    "last_checked_at": None,
                    "submitted_at": utcnow(),
                },
            )
            return sent

    async def hold(
        self, intent: Intent, *, reason: str, retry_at: datetime, max_hold_s: float,
        start_clock: bool = True,
    ) -> Intent:
        """Keep a queued intent back with a reason; after ``max_hold_s`` it fails.

        An event is written when the reason changes, not on every retry. With
        ``start_clock=False`` the hold does not count towards ``max_hold_s``.
        """
        now = utcnow()
        held_since = intent.held_since or (now if start_clock else None)
        if held_since is not None and (now - held_since).total_seconds() > max_hold_s:
            return await self.repo.transition(
                intent.id, Status.FAILED, actor="worker", expect=(Status.QUEUED,),
                reason=f"held for more than {int(max_hold_s)} s; last reason: {reason}",
            )
        values: dict[str, Any] = {
            "status_reason": reason, "not_before": retry_at, "held_since": held_since,
            "claimed_by": None, "claimed_until": None, "updated_at": now,
        }
        async with self.repo.engine.begin() as conn:
            result = await conn.execute(
                update(T)
                .where(and_(T.c.id == intent.id, T.c.status == Status.QUEUED.value))
                .values(**values)
                .returning(T)
            )
            row = result.first()
            if row is None:
                raise ConcurrentChange(f"intent {intent.id} is no longer queued")
            if reason != intent.status_reason:
                await self.repo.record_note(
                    intent.id, reason=f"held: {reason}", actor="worker", kind="hold", conn=conn
                )
        return to_intent(row)

    async def release(self, intent: Intent) -> None:
        async with self.repo.engine.begin() as conn:
            await conn.execute(
                update(T).where(and_(T.c.id == intent.id, T.c.claimed_by.is_not(None)))
                .values(claimed_by=None, claimed_until=None)
            )
