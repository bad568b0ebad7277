"""The exchange as the record of truth, against the sandbox over HTTP, on both databases.

Each test builds a disagreement between the ledger and the exchange that a restore, a
late history record or a mistake produces, and checks that nothing is sent twice, that
what the exchange did is adopted or handed to a person, and that the account stops
sending when the ledger is behind.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import httpx

from treasury.domain.fee_payer import FeePayer
from treasury.domain.ids import withdraw_order_id
from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.domain.wallet import Wallet
from treasury.sandbox.ledger import read_ledger
from treasury.services import admin as admin_cases
from treasury.services import reconcile, submit
from treasury.services.truth import sweep

TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"
OTHER = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"


async def sandbox_admin(stack: Any, path: str, body: dict[str, object]) -> Any:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{stack.sandbox.url}/_sandbox/{path}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def enqueue(stack: Any, amount: str = "20", address: str = TRX) -> Intent:
    new = validate_new_intent(coin="USDT", network="TRX", address=address, amount=amount)
    intent, _ = await stack.rt.ledger.intents.enqueue(new, actor="test")
    return intent


async def exchange_has(
    stack: Any, order_id: str, amount: str = "20", address: str = TRX, **extra: object
) -> str:
    """A withdrawal under ``order_id`` on the exchange, as if sent before a restore."""
    body: dict[str, object] = {
        "account": "default",
        "coin": "USDT",
        "network": "TRX",
        "address": address,
        "amount": amount,
        "withdrawOrderId": order_id,
        **extra,
    }
    return str((await sandbox_admin(stack, "foreign-withdrawal", body))["id"])


async def order_id(stack: Any, intent_id: int) -> str:
    return withdraw_order_id(await stack.rt.ledger.intents.namespace(), intent_id)


def applies_for(stack: Any, oid: str) -> int:
    return len(read_ledger(stack.journal).apply_calls_for(oid))


async def test_restored_queued_intent_is_adopted_not_sent_again(stack_factory: Any) -> None:
    """The restore case: the intent is ``queued`` in the ledger, but the exchange already
    has its withdrawal (sent after the backup was taken). It must never be sent."""
    async with stack_factory() as stack:
        intent = await enqueue(stack)
        oid = await order_id(stack, intent.id)
        wid = await exchange_has(stack, oid, status=6)
        async with stack.daemon():
            [done] = await stack.wait_settled([intent.id])
            await anyio.sleep(0.5)
        pause = await stack.rt.ledger.state.pause_state("default")
    assert applies_for(stack, oid) == 0
    assert done.status is Status.COMPLETED
    assert done.exchange_withdraw_id == wid and done.withdraw_order_id == oid
    # history reports the amount net of the fee; the intent keeps what was requested
    assert done.amount == Decimal("20") and done.exchange_amount == Decimal("20") - done.fee
    assert not pause.paused


async def test_unknown_order_id_pauses_the_account_and_is_never_reused(
    stack_factory: Any, migrated_url: str
) -> None:
    """The exchange has a withdrawal of our namespace for an intent id the ledger does not
    have (created and sent after the backup). Sending stops for the account; the id, and
    so the order id, is never handed to a new intent."""
    async with stack_factory() as stack:
        waiting = await enqueue(stack)
        ghost_id = waiting.id + 1
        ghost_oid = await order_id(stack, ghost_id)
        wid = await exchange_has(stack, ghost_oid, amount="33")
        async with stack.daemon():
            with anyio.fail_after(10):
                while not (await stack.rt.ledger.state.pause_state("default")).paused:
                    await anyio.sleep(0.05)
            await anyio.sleep(1.0)  # the daemon must not send while paused
            still = await stack.rt.ledger.intents.get(waiting.id)
            later = await enqueue(stack, amount="21")  # an intent created after the restore
            pause = await stack.rt.ledger.state.pause_state("default")
            # a restarted daemon sweeps again: the withdrawal on file is not pinned on the
            # new intent, even where SQLite handed it the same id
            again = await sweep(stack.rt.ctx, found_by="test")
            await admin_cases.resume(stack.rt.ledger, actor="cli:test", account="default")
            [sent] = await stack.wait_settled([later.id], timeout=20)
        unmatched = await stack.rt.ledger.unmatched.list()
    assert still.status is Status.QUEUED  # held back by the pause, not sent
    assert again.findings == []
    assert wid in pause.reason and "treasury resume --account default" in pause.reason
    assert [(u.exchange_withdraw_id, u.intent_id) for u in unmatched] == [(wid, ghost_id)]
    assert any(a[0] == "ledger_behind_exchange" for a in stack.alerts)
    assert sent.status is Status.COMPLETED
    # never twice on the exchange: either a fresh intent id, or a fresh order id for it
    assert sent.withdraw_order_id != ghost_oid
    assert applies_for(stack, ghost_oid) == 0
    if migrated_url.startswith("postgresql"):
        assert later.id > ghost_id


async def test_burned_order_id_is_skipped_when_the_intent_id_comes_back(
    stack_factory: Any,
) -> None:
    """SQLite hands out ``max(id) + 1``: after a restore a new intent can get an id whose
    order id the exchange has already seen. The commit takes the next free one."""
    async with stack_factory() as stack:
        intent = await enqueue(stack)
        oid = await order_id(stack, intent.id)
        await stack.rt.ledger.unmatched.record(
            account="default",
            record=_record(oid),
            intent_id=intent.id,
            reason="seen before",
            found_by="test",
        )
        async with stack.daemon():
            [done] = await stack.wait_settled([intent.id])
    assert done.status is Status.COMPLETED
    assert done.withdraw_order_id == f"{oid}-2"
    assert applies_for(stack, oid) == 0 and applies_for(stack, f"{oid}-2") == 1


async def test_contradicting_record_sends_the_intent_to_a_person(stack_factory: Any) -> None:
    async with stack_factory() as stack:
        intent = await enqueue(stack)
        oid = await order_id(stack, intent.id)
        await exchange_has(stack, oid, address=OTHER)
        async with stack.daemon():
            [held] = await stack.wait_settled([intent.id])
        pause = await stack.rt.ledger.state.pause_state("default")
    assert held.status is Status.NEEDS_ATTENTION
    assert OTHER in (held.status_reason or "") and TRX in (held.status_reason or "")
    assert pause.paused and applies_for(stack, oid) == 0


async def test_cancelled_here_completed_there_is_an_alarm_with_both_sides(
    stack_factory: Any,
) -> None:
    async with stack_factory() as stack:
        intent = await enqueue(stack)
        await admin_cases.cancel(stack.rt.ledger, intent.id, actor="cli:test", reason="x")
        oid = await order_id(stack, intent.id)
        wid = await exchange_has(stack, oid, status=6)
        result = await sweep(stack.rt.ctx, found_by="test")
        events = await stack.rt.ledger.intents.events(intent.id)
        pause = await stack.rt.ledger.state.pause_state("default")
    [finding] = result.findings
    assert finding.kind == "disagreement" and finding.exchange_withdraw_id == wid
    assert "cancelled" in finding.detail and wid in finding.detail
    assert any(e.kind == "alarm" and wid in e.reason for e in events)
    assert any(a[0] == "exchange_disagrees" for a in stack.alerts)
    assert pause.paused is True


async def test_dry_run_changes_nothing(stack_factory: Any) -> None:
    async with stack_factory() as stack:
        intent = await enqueue(stack)
        await exchange_has(stack, await order_id(stack, intent.id))
        result = await sweep(stack.rt.ctx, apply=False, found_by="test")
        after = await stack.rt.ledger.intents.get(intent.id)
        mark = await stack.rt.ledger.state.watermark("default")
    assert [f.kind for f in result.findings] == ["adopt"]
    assert after.status is Status.QUEUED and after.version == intent.version
    assert mark is None


async def proven_absent(stack: Any, intent: Intent) -> Intent:
    """Drive an intent to 'sent once, then proven absent': back in queued, send_count 1."""
    ctx = stack.rt.ctx
    assert await ctx.ledger.state.acquire_lease("default", ctx.config.worker_id, 60)
    old = ctx.exchange.now_ms() - 120_000
    committed = await submit.commit_to_send(
        ctx.ledger,
        intent,
        worker=ctx.config.worker_id,
        order_id=await order_id(stack, intent.id),
        timestamp_ms=old,
        recv_window_ms=1000,
        policy=None,
        wallet=Wallet.SPOT,
        fee_payer=FeePayer.SENDER,
        trust=ctx.trust,
    )
    for _ in range(2):
        current = await ctx.ledger.intents.get(committed.id)
        await ctx.ledger.intents.update_fields(
            current.id,
            expect_status=current.status,
            expect_version=current.version,
            fields={"last_checked_at": None},
        )
        current = await ctx.ledger.intents.get(committed.id)
        if current.status is Status.SUBMITTING:
            await reconcile.decide_one(ctx, current, [], ctx.exchange.now_ms())
    return await ctx.ledger.intents.get(committed.id)


async def test_look_up_before_a_resend_adopts_a_late_record(stack_factory: Any) -> None:
    """History was late: absence was 'proven', then the record showed up. The look-up
    immediately before the re-send finds it; nothing is sent."""
    async with stack_factory() as stack:
        intent = await enqueue(stack)
        requeued = await proven_absent(stack, intent)
        assert requeued.status is Status.QUEUED and requeued.send_count == 1
        oid = requeued.withdraw_order_id
        assert oid is not None
        wid = await exchange_has(stack, oid)  # the late record
        await submit.send(stack.rt.ctx, requeued, debit=requeued.amount)
        after = await stack.rt.ledger.intents.get(intent.id)
    assert applies_for(stack, oid) == 0
    assert after.status in (Status.SUBMITTED, Status.COMPLETED)
    assert after.exchange_withdraw_id == wid


async def test_manual_resend_waits_for_a_person(stack_factory: Any) -> None:
    async with stack_factory(resend="manual") as stack:
        intent = await enqueue(stack)
        held = await proven_absent(stack, intent)
        assert held.status is Status.NEEDS_ATTENTION
        assert f"treasury resend {intent.id}" in (held.status_reason or "")
        again = await admin_cases.resend(
            stack.rt.ledger, intent.id, actor="cli:bob", reason="not in the history on binance.com"
        )
        async with stack.daemon():
            [done] = await stack.wait_settled([intent.id])
        events = await stack.rt.ledger.intents.events(intent.id)
    assert again.status is Status.QUEUED
    assert done.status is Status.COMPLETED and applies_for(stack, held.withdraw_order_id) == 1
    assert any(e.actor == "cli:bob" and e.to_status == "queued" for e in events)


async def test_unknown_outcome_with_net_history_is_adopted(stack_factory: Any) -> None:
    """The answer to the apply is lost; history shows the amount net of the fee. The
    reconciler must recognise it (before: every such intent went to needs_attention)."""
    async with stack_factory() as stack:
        await sandbox_admin(stack, "faults", {"drop_after_accept": {"next": 1}})
        intent = await enqueue(stack, amount="20")
        async with stack.daemon():
            [done] = await stack.wait_settled([intent.id], timeout=60)
    assert done.status is Status.COMPLETED, done.status_reason
    assert done.exchange_amount is not None and done.exchange_amount < done.amount
    assert applies_for(stack, done.withdraw_order_id) == 1


async def test_unreachable_exchange_still_reaches_a_person(stack_factory: Any) -> None:
    """The exchange answers nothing; a send left in submitting goes to a person after the
    give-up time, with an alert, instead of waiting silently."""
    async with stack_factory(reconcile_give_up_s=1.0) as stack:
        intent = await enqueue(stack)
        ctx = stack.rt.ctx
        assert await ctx.ledger.state.acquire_lease("default", ctx.config.worker_id, 60)
        await submit.commit_to_send(
            ctx.ledger,
            intent,
            worker=ctx.config.worker_id,
            order_id=await order_id(stack, intent.id),
            timestamp_ms=ctx.exchange.now_ms() - 5_000,
            recv_window_ms=1000,
            policy=None,
            wallet=Wallet.SPOT,
            fee_payer=FeePayer.SENDER,
            trust=ctx.trust,
        )
        await sandbox_admin(stack, "faults", {"outage": True})
        await reconcile.reconcile_all(ctx)
        after = await ctx.ledger.intents.get(intent.id)
    assert after.status is Status.NEEDS_ATTENTION
    assert "could not be asked" in (after.status_reason or "")
    assert any(a[0] == "needs_attention" and a[2] == intent.id for a in stack.alerts)


def _record(oid: str) -> Any:
    from datetime import UTC, datetime

    from treasury.domain.exchange import WithdrawalRecord

    return WithdrawalRecord(
        id="seen-1",
        withdraw_order_id=oid,
        coin="USDT",
        network="TRX",
        address=OTHER,
        address_tag=None,
        amount=Decimal("5"),
        fee=Decimal("1"),
        status=6,
        tx_id=None,
        apply_time=datetime.now(UTC),
        complete_time=None,
    )


async def test_nothing_is_sent_before_a_sweep_and_a_failing_sweep_alerts(
    stack_factory: Any,
) -> None:
    async with stack_factory(exchange_unreachable_alert_s=0.5) as stack:
        await sandbox_admin(stack, "faults", {"history_unavailable": True})
        intent = await enqueue(stack)
        async with stack.daemon() as daemon:
            with anyio.fail_after(15):
                while not any(a[0] == "sweep_failing" for a in stack.alerts):
                    await anyio.sleep(0.05)
            held = await stack.rt.ledger.intents.get(intent.id)
            swept_while_down = daemon.swept
            await sandbox_admin(stack, "faults", {"history_unavailable": False})
            [done] = await stack.wait_settled([intent.id], timeout=20)
        oid = await order_id(stack, intent.id)
    assert held.status is Status.QUEUED and not swept_while_down
    assert applies_for(stack, oid) == 1
    assert done.status is Status.COMPLETED
    message = next(m for k, m, _ in stack.alerts if k == "sweep_failing")
    assert "nothing is sent until one succeeds" in message


async def test_a_new_sender_waits_out_the_history_lag_before_sending_older_intents(
    stack_factory: Any,
) -> None:
    """A predecessor (a daemon of the ledger before it was restored) sent the intent just
    before this daemon started, and history does not show it yet. The new sender must
    not send it until the allowance has passed; then it finds the record and adopts it.
    An intent created after the daemon became the sender is not held."""
    from treasury.domain.exchange import WithdrawRequest

    async with stack_factory() as stack:
        intent = await enqueue(stack)
        oid = await order_id(stack, intent.id)
        await sandbox_admin(stack, "faults", {"history_lag_s": 3})
        await stack.rt.exchange.withdraw(
            WithdrawRequest(
                coin="USDT",
                network="TRX",
                address=TRX,
                address_tag=None,
                amount=Decimal("20"),
                withdraw_order_id=oid,
                wallet=Wallet.SPOT,
                fee_payer=FeePayer.SENDER,
            )
        )  # the lost send
        async with stack.daemon() as daemon:
            with anyio.fail_after(10):
                while not daemon.swept:
                    await anyio.sleep(0.05)
            fresh = await enqueue(stack, amount="21")
            [sent] = await stack.wait_settled([fresh.id], timeout=20)
            [adopted] = await stack.wait_settled([intent.id], timeout=30)
        events = await stack.rt.ledger.intents.events(intent.id)
    assert applies_for(stack, oid) == 1  # the predecessor's only
    assert adopted.status is Status.COMPLETED and "adopted" in (adopted.status_reason or "")
    assert any("held until" in e.reason and "history-lag allowance" in e.reason for e in events)
    assert sent.status is Status.COMPLETED


async def test_a_new_intent_on_a_lost_intents_id_is_not_taken_for_its_withdrawal(
    stack_factory: Any,
) -> None:
    """SQLite hands a lost intent's id out again; the lost withdrawal was applied before
    the new intent existed, so it cannot be the new intent's — not even when it matches."""
    async with stack_factory() as stack:
        intent = await enqueue(stack)  # same destination and amount as the lost one
        applied = stack.rt.exchange.now_ms() - 120_000  # inside the sweep window
        wid = await exchange_has(
            stack, await order_id(stack, intent.id), applied_at_ms=applied, status=6
        )
        result = await sweep(stack.rt.ctx, found_by="test")
        after = await stack.rt.ledger.intents.get(intent.id)
        unmatched = await stack.rt.ledger.unmatched.list()
    assert [f.kind for f in result.findings] == ["unknown"]
    assert after.status is Status.QUEUED and after.exchange_withdraw_id is None
    assert [(u.exchange_withdraw_id, u.intent_id) for u in unmatched] == [(wid, intent.id)]


async def test_reconciliation_files_a_contradicting_record_and_pauses(
    stack_factory: Any,
) -> None:
    """An unknown outcome whose record does not match: whichever reader finds it, the
    record is on file, the intent goes to a person, the account stops sending."""
    async with stack_factory() as stack:
        intent = await enqueue(stack)
        ctx = stack.rt.ctx
        assert await ctx.ledger.state.acquire_lease("default", ctx.config.worker_id, 60)
        oid = await order_id(stack, intent.id)
        await submit.commit_to_send(
            ctx.ledger,
            intent,
            worker=ctx.config.worker_id,
            order_id=oid,
            timestamp_ms=ctx.exchange.now_ms() - 5_000,
            recv_window_ms=1000,
            policy=None,
            wallet=Wallet.SPOT,
            fee_payer=FeePayer.SENDER,
            trust=ctx.trust,
        )
        wid = await exchange_has(stack, oid, address=OTHER)
        await reconcile.reconcile_all(ctx)
        after = await ctx.ledger.intents.get(intent.id)
        unmatched = await ctx.ledger.unmatched.list()
        pause = await ctx.ledger.state.pause_state("default")
    assert after.status is Status.NEEDS_ATTENTION and OTHER in (after.status_reason or "")
    assert [u.exchange_withdraw_id for u in unmatched] == [wid]
    assert pause.paused
