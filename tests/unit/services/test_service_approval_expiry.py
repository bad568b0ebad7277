"""An intent awaiting approval does not wait forever: one alert when a quarter of the
policy's window (at most a day) is left, then it fails with the reason; an approval that
comes too late is refused; one approved in time is not touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from services_world import World

from treasury.domain.policy import ApprovalClock, CoinPolicy, Policy
from treasury.domain.policy_text import canonical
from treasury.domain.status import Status
from treasury.services import approvals, watch
from treasury.services.admin import Refused
from treasury.services.policy import PolicySource, apply_text

POLICY = Policy(
    default=CoinPolicy(approval_threshold=Decimal(5), approvals_required=1),
    approval_expiry_hours=8,
)


async def awaiting(world: World, amount: str = "10", **fields: str) -> int:
    intent = await world.enqueue(amount, **fields)
    await world.ledger.intents.transition(
        intent.id, Status.AWAITING_APPROVAL, reason="needs approval", actor="test"
    )
    return intent.id


@pytest.fixture
async def with_policy(world: World) -> World:
    """POLICY in force in the ledger, read by the worker as the daemon reads it."""
    await apply_text(world.ledger, canonical(POLICY), actor="cli:admin", reason="test")
    world.ctx.policy = PolicySource(world.ledger.policies).current
    return world


def test_the_clock_warns_a_quarter_before_at_most_a_day() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    eight = ApprovalClock.of(t0, 8)
    assert (eight.warn_at, eight.expires_at) == (t0 + timedelta(hours=6), t0 + timedelta(hours=8))
    week = ApprovalClock.of(t0, 168)
    assert week.expires_at - week.warn_at == timedelta(days=1)
    assert [eight.state(t0 + timedelta(hours=h)) for h in (0, 5.9, 6, 7.9, 8, 100)] == [
        None,
        None,
        "expiring",
        "expiring",
        "expired",
        "expired",
    ]


async def test_one_alert_before_the_end_then_it_fails_with_the_reason(with_policy: World) -> None:
    w = with_policy
    intent_id = await awaiting(w)
    assert await watch.expire_approvals(w.ctx) == 0 and w.alerts == []

    w.clock.advance(hours=6, minutes=1)
    assert await watch.expire_approvals(w.ctx) == 0
    assert await watch.expire_approvals(w.ctx) == 0  # the alert is sent once
    [(kind, message, about)] = w.alerts
    assert (kind, about) == ("approval_expiring", intent_id)
    assert f"treasury approve {intent_id}" in message
    assert (await w.get(intent_id)).status is Status.AWAITING_APPROVAL

    w.clock.advance(hours=2)
    assert await watch.expire_approvals(w.ctx) == 1
    failed = await w.get(intent_id)
    assert failed.status is Status.FAILED
    assert "8 h (approval_expiry_hours)" in (failed.status_reason or "")
    assert [k for k, _m, _i in w.alerts] == ["approval_expiring", "approval_expired"]
    assert (await w.events(intent_id))[-1][1] == "failed"  # the status change is an event
    assert await watch.expire_approvals(w.ctx) == 0  # nothing more to do


async def test_an_approval_past_the_window_is_refused_one_in_time_is_kept(
    with_policy: World,
) -> None:
    w = with_policy
    late = await awaiting(w, requested_by="alice")
    w.clock.advance(hours=4)
    on_time = await awaiting(w, amount="11", requested_by="alice")
    done = await approvals.approve(w.ledger, on_time, approver="bob")
    assert done.released and (await w.get(on_time)).status is Status.QUEUED

    w.clock.advance(hours=4)  # `late` is 8 h old now; the daemon has not run yet
    with pytest.raises(Refused, match="can no longer be approved"):
        await approvals.approve(w.ledger, late, approver="bob")
    assert (await w.get(late)).status is Status.AWAITING_APPROVAL
    assert await watch.expire_approvals(w.ctx) == 1
    assert (await w.get(late)).status is Status.FAILED
    assert (await w.get(on_time)).status is Status.QUEUED  # released before: not touched


async def test_without_a_policy_nothing_expires(world: World) -> None:
    intent_id = await awaiting(world)
    world.clock.advance(hours=10_000)
    assert await watch.expire_approvals(world.ctx) == 0
    assert (await world.get(intent_id)).status is Status.AWAITING_APPROVAL


async def test_only_this_accounts_intents_are_expired(with_policy: World) -> None:
    w = with_policy
    other = await awaiting(w, account="desk-2")
    w.clock.advance(hours=9)
    assert await watch.expire_approvals(w.ctx) == 0
    assert (await w.get(other)).status is Status.AWAITING_APPROVAL
