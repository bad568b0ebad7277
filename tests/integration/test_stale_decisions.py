"""A decision taken on an old read of an intent never lands on a newer send attempt.

Found in review: daemon A reads attempt 1 while reconciling; daemon B proves attempt 1
absent, re-queues and sends attempt 2; A's late decision must fail, not move attempt 2
back to queued (which would lead to a third send).
"""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest

from treasury.adapters.db.repository import ConcurrentChange, utcnow
from treasury.domain.fee_payer import FeePayer
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.domain.wallet import Wallet
from treasury.services import reconcile, submit
from treasury.services.admin import Ledger
from treasury.services.context import WorkerConfig, WorkerContext

DESTINATION = {
    "account": "default",
    "coin": "USDT",
    "network": "TRX",
    "address": "TXyz",
    "address_tag": None,
    "actor": "test",
    "reason": "the test's destination",
}


class Clock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)


async def test_stale_reconcile_decision_cannot_requeue_a_newer_attempt(ledger: Ledger) -> None:
    ctx = WorkerContext(
        ledger=ledger,
        exchange=Clock(),
        view=None,  # type: ignore[arg-type]
        config=WorkerConfig(
            worker_id="B", history_lag_allowance_s=30, manual_whitelist_cooling_s=0
        ),
    )
    new = validate_new_intent(coin="USDT", network="TRX", address="TXyz", amount=Decimal(10))
    intent, _ = await ledger.intents.enqueue(new, actor="test")
    await ledger.whitelist.add(**DESTINATION)
    assert await ledger.state.acquire_lease("default", "B", 60)
    now = Clock().now_ms()
    first = await submit.commit_to_send(
        ctx.ledger,
        intent,
        worker="B",
        order_id="trs-x-1",
        timestamp_ms=now - 100_000,
        recv_window_ms=5000,
        policy=None,
        wallet=Wallet.SPOT,
        fee_payer=FeePayer.SENDER,
        trust=ctx.trust,
    )
    await ledger.intents.update_fields(
        first.id,
        expect_status=Status.SUBMITTING,
        expect_version=first.version,
        fields={"absent_checks": 1, "last_checked_at": utcnow() - timedelta(seconds=60)},
    )
    stale = await ledger.intents.get(first.id)  # daemon A's snapshot of attempt 1
    await reconcile.decide_one(ctx, stale, [], now)  # daemon B proves it absent
    requeued = await ledger.intents.get(first.id)
    assert requeued.status is Status.QUEUED
    second = await submit.commit_to_send(
        ctx.ledger,
        requeued,
        worker="B",
        order_id="trs-x-1",
        timestamp_ms=Clock().now_ms(),
        recv_window_ms=5000,
        policy=None,
        wallet=Wallet.SPOT,
        fee_payer=FeePayer.SENDER,
        trust=ctx.trust,
    )
    with pytest.raises(ConcurrentChange):
        await reconcile.decide_one(ctx, stale, [], now)  # A's late decision
    after = await ledger.intents.get(first.id)
    assert (after.status, after.version, after.send_count) == (Status.SUBMITTING, second.version, 2)
    assert after.absent_checks == 0  # the stale absence was not counted on attempt 2


async def test_commit_refuses_a_destination_disabled_after_the_checks(ledger: Ledger) -> None:
    ctx = WorkerContext(
        ledger=ledger,
        exchange=Clock(),
        view=None,  # type: ignore[arg-type]
        config=WorkerConfig(
            worker_id="B", history_lag_allowance_s=30, manual_whitelist_cooling_s=0
        ),
    )
    new = validate_new_intent(coin="USDT", network="TRX", address="TXyz", amount=Decimal(10))
    intent, _ = await ledger.intents.enqueue(new, actor="test")
    entry = await ledger.whitelist.add(**DESTINATION)
    assert await ledger.state.acquire_lease("default", "B", 60)
    # between the checks and the commit
    await ledger.whitelist.set_enabled(entry.id, False, actor="cli:ops", reason="not ours")
    from treasury.services.submit import SendRefused

    with pytest.raises(SendRefused, match="disabled"):
        await submit.commit_to_send(
            ctx.ledger,
            intent,
            worker="B",
            order_id="trs-x-1",
            timestamp_ms=Clock().now_ms(),
            recv_window_ms=5000,
            policy=None,
            wallet=Wallet.SPOT,
            fee_payer=FeePayer.SENDER,
            trust=ctx.trust,
        )
    assert (await ledger.intents.get(intent.id)).status is Status.QUEUED
