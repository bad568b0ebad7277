"""submit: checks → commit ``submitting`` → one request → the answer recorded, or a stop."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from services_world import WORKER, World

from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.status import Status as S
from treasury.ports.exchange import Reason
from treasury.services import reconcile, submit
from treasury.testing import Timeout, not_sent, rejected


async def test_a_clean_send_is_committed_then_sent_once_and_recorded(world: World) -> None:
    intent = await world.enqueue("10")
    done = await world.process(intent.id)
    (request,) = world.exchange.withdraw_requests()
    (executed,) = world.exchange.executed()
    assert request.withdraw_order_id == world.oid(intent.id) == done.withdraw_order_id
    assert (request.amount, request.address) == (Decimal("10"), "TXyz")
    assert (done.status, done.exchange_withdraw_id, done.send_count) == (
        S.SUBMITTED,
        executed.id,
        1,
    )
    assert done.send_timestamp_ms == world.clock.now_ms()
    assert done.send_recv_window_ms == world.ctx.config.apply_recv_window_ms
    assert await world.events(intent.id) == [
        ("status", "queued"),
        ("status", "submitting"),
        ("status", "submitted"),
    ]
    assert world.submitted_wakeups == [True] and world.alerts == []


async def test_not_sent_goes_back_to_queued_held_then_is_sent_again_with_the_same_id(
    world: World,
) -> None:
    world.exchange.script("withdraw", not_sent(retry_after_s=7))
    intent = await world.enqueue()
    held = await world.process(intent.id)
    assert (held.status, held.send_count, held.withdraw_order_id) == (
        S.QUEUED,
        1,
        world.oid(intent.id),
    )
    assert held.not_before == world.clock() + timedelta(seconds=7)
    assert held.held_since == world.clock()
    assert world.exchange.executed() == [] and await world.claim() == []  # not due yet
    world.clock.advance(8)
    again = await world.process(intent.id)
    assert (again.status, again.send_count) == (S.SUBMITTED, 2)
    # the same order id both times, and one look-up by it right before the second request
    assert [r.withdraw_order_id for r in world.exchange.withdraw_requests()] == [
        world.oid(intent.id)
    ] * 2
    (lookup,) = world.exchange.calls_to("withdraw_history")
    assert lookup.args["withdraw_order_id"] == world.oid(intent.id)
    assert len(world.exchange.executed()) == 1


async def test_a_permanent_rejection_fails_the_intent_and_alerts(world: World) -> None:
    world.exchange.script("withdraw", rejected("address invalid", permanent=True, code=-4003))
    intent = await world.enqueue()
    failed = await world.process(intent.id)
    assert failed.status is S.FAILED
    assert "refused by the exchange for good" in (failed.status_reason or "")
    assert world.alert_kinds() == ["failed"] and world.alerts[0][2] == intent.id
    assert world.exchange.executed() == []


async def test_a_temporary_rejection_holds_the_intent_without_an_alert(world: World) -> None:
    world.exchange.script(
        "withdraw", rejected("daily cap", permanent=False, reason=Reason.QUOTA, code=-4025)
    )
    intent = await world.enqueue()
    held = await world.process(intent.id)
    assert held.status is S.QUEUED
    assert "refused by the exchange for now" in (held.status_reason or "")
    assert held.not_before == world.clock() + timedelta(seconds=30)  # hold_backoff_s
    assert held.held_since == world.clock() and world.alerts == []


@pytest.mark.parametrize("executed", [False, True], ids=["lost-before", "lost-after"])
async def test_an_unknown_outcome_stays_submitting_and_nothing_else_is_sent(
    world: World, executed: bool
) -> None:
    world.exchange.script("withdraw", Timeout(executed=executed))
    intent = await world.enqueue()
    (stale,) = await world.claim()
    await submit.process(world.ctx, stale)
    after = await world.get(intent.id)
    assert (after.status, after.exchange_withdraw_id) == (S.SUBMITTING, None)
    assert ("outcome_unknown", "submitting") in await world.events(intent.id)
    # the sender finds nothing to send, and a second attempt on the old read commits
    # nothing: the commit re-reads status and version inside its unit of work
    assert await world.claim() == []
    await submit.send(world.ctx, stale, debit=stale.amount)
    assert len(world.exchange.withdraw_requests()) == 1
    assert len(world.exchange.executed()) == int(executed)
    assert (await world.get(intent.id)).version == after.version


async def test_an_address_disabled_between_the_checks_and_the_commit_is_not_sent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = world.ledger.whitelist
    check_time_find = book.find

    async def find_then_disable(*args: object, **kwargs: object) -> object:
        entry = await check_time_find(*args, **kwargs)  # type: ignore[arg-type]
        assert entry is not None and entry.enabled  # the checks see it enabled ...
        # ... and an operator disables it now
        await book.set_enabled(entry.id, False, actor="cli:ops", reason="not ours")
        return entry

    monkeypatch.setattr(book, "find", find_then_disable)
    intent = await world.enqueue()
    stopped = await world.process(intent.id)
    assert stopped.status is S.REJECTED
    assert "disabled in the local whitelist" in (stopped.status_reason or "")
    assert stopped.withdraw_order_id is None and world.exchange.calls_to("withdraw") == []


@pytest.mark.parametrize("account", [None, "default"], ids=["kill-switch", "account-pause"])
async def test_a_pause_engaged_before_the_commit_stops_the_send(
    world: World, account: str | None
) -> None:
    intent = await world.enqueue()
    (claimed,) = await world.claim()
    assert await world.ledger.state.pause(reason="stop", by="ops", account=account)
    await submit.process(world.ctx, claimed)
    after = await world.get(intent.id)
    assert (after.status, after.version, after.withdraw_order_id) == (S.QUEUED, 0, None)
    assert world.exchange.calls_to("withdraw") == []
    # let go: its claim was released, so another sender could take it at once
    taken = await world.ledger.intents.claim_queued(
        account="default", worker="another", now=world.clock(), lease_until=world.clock(), limit=5
    )
    assert [i.id for i in taken] == [intent.id]


async def test_a_sender_whose_lease_ran_out_commits_nothing(world: World) -> None:
    intent = await world.enqueue()
    (claimed,) = await world.claim()
    await world.ledger.state.release_lease("default", WORKER)
    assert await world.ledger.state.acquire_lease("default", "w2", 60)
    await submit.process(world.ctx, claimed)
    assert (await world.get(intent.id)).status is S.QUEUED
    assert world.exchange.calls_to("withdraw") == []


async def test_a_burned_order_id_is_never_sent_the_next_free_one_is(world: World) -> None:
    intent = await world.enqueue()
    # the exchange saw this intent's order id for another withdrawal (a restored ledger)
    seen = WithdrawalRecord(
        id="old-1",
        withdraw_order_id=world.oid(intent.id),
        coin="USDT",
        network="TRX",
        address="TElse",
        address_tag=None,
        amount=Decimal(3),
        fee=Decimal(1),
        status=6,
        tx_id="0x1",
        apply_time=None,
        complete_time=None,
    )
    assert await world.ledger.unmatched.record(
        account="default", record=seen, intent_id=intent.id, reason="restored", found_by="sweep"
    )
    done = await world.process(intent.id)
    (request,) = world.exchange.withdraw_requests()
    assert request.withdraw_order_id == world.oid(intent.id, "-2") == done.withdraw_order_id
    assert done.status is S.SUBMITTED


async def test_the_look_up_before_a_resend_adopts_a_late_record_instead_of_sending(
    world: World,
) -> None:
    """Sent, the answer lost, history slower than the allowance: reconciliation wrongly
    proves absence and re-queues; the look-up right before the re-send finds it, adopts it."""
    world.exchange.history_lag_s = 3600  # far beyond the 60 s allowance
    world.exchange.script("withdraw", Timeout(executed=True))
    intent = await world.enqueue("10")
    assert (await world.process(intent.id)).status is S.SUBMITTING
    world.clock.advance(80)
    await reconcile.reconcile_all(world.ctx)  # first absence that counts
    world.clock.advance(10)
    await reconcile.reconcile_all(world.ctx)  # second: "proven" absent
    requeued = await world.get(intent.id)
    assert (requeued.status, requeued.send_count) == (S.QUEUED, 1)
    world.clock.advance(3600)  # history shows it now
    adopted = await world.process(intent.id)
    (record,) = world.exchange.executed()
    assert (adopted.status, adopted.exchange_withdraw_id) == (S.SUBMITTED, record.id)
    assert adopted.exchange_amount == Decimal(9)  # net of the fee, as history shows it
    assert len(world.exchange.withdraw_requests()) == 1  # never a second request


async def test_held_longer_than_the_maximum_the_intent_fails_and_alerts(world: World) -> None:
    world.configure(max_hold_s=60)
    world.exchange.balances["USDT"] = Decimal(5)  # does not cover 10: held, not refused
    intent = await world.enqueue("10")
    held = await world.process(intent.id)
    assert held.status is S.QUEUED and "does not cover" in (held.status_reason or "")
    assert held.held_since == world.clock() and world.alerts == []
    world.clock.advance(61)
    failed = await world.process(intent.id)
    assert failed.status is S.FAILED and "held for more than 60 s" in (failed.status_reason or "")
    assert world.alert_kinds() == ["failed"]
    assert world.exchange.calls_to("withdraw") == []


async def test_an_exchange_that_cannot_be_asked_during_the_checks_holds_the_intent(
    world: World,
) -> None:
    world.exchange.script("system_status", not_sent(endpoint="/sapi/v1/system/status"))
    intent = await world.enqueue()
    held = await world.process(intent.id)
    assert held.status is S.QUEUED
    assert "cannot check with the exchange now" in (held.status_reason or "")
    assert [
        (e.kind, e.reason.startswith("held: cannot check"))
        for e in await world.ledger.intents.events(intent.id)
    ][-1] == ("hold", True)
    assert world.exchange.calls_to("withdraw") == []


async def test_an_accepted_send_is_recorded_through_a_short_database_outage(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submit, "SUBMITTED_WRITE_RETRIES_S", (0.0, 0.0, 0.0))
    intent = await world.enqueue()
    (claimed,) = await world.claim()
    # the commit goes through the unit of work; the outage hits the writes after the send
    world.ledger.fail_transitions(2)
    await submit.process(world.ctx, claimed)
    done = await world.get(intent.id)
    assert (done.status, done.exchange_withdraw_id) == (
        S.SUBMITTED,
        world.exchange.executed()[0].id,
    )


async def test_an_accepted_send_never_recorded_is_adopted_by_reconciliation(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submit, "SUBMITTED_WRITE_RETRIES_S", (0.0, 0.0, 0.0))
    intent = await world.enqueue()
    (claimed,) = await world.claim()
    world.ledger.fail_transitions(4)  # the first write and every retry
    await submit.process(world.ctx, claimed)
    assert (await world.get(intent.id)).status is S.SUBMITTING
    await reconcile.reconcile_all(world.ctx)
    done = await world.get(intent.id)
    assert (done.status, done.exchange_withdraw_id) == (
        S.SUBMITTED,
        world.exchange.executed()[0].id,
    )
    assert len(world.exchange.withdraw_requests()) == 1


async def test_the_send_log_lines_say_what_leaves_and_where_to(world: World) -> None:
    from structlog.testing import capture_logs

    intent = await world.enqueue("12.50")
    with capture_logs() as logs:
        sent = await world.process(intent.id)
    assert sent.status is S.SUBMITTED
    lines = {e["event"]: e for e in logs if e["event"] in ("send.committed", "send.accepted")}
    assert set(lines) == {"send.committed", "send.accepted"}
    for line in lines.values():
        assert (line["coin"], line["network"], line["amount"], line["address"]) == (
            intent.coin,
            intent.network,
            "12.5",
            intent.address,
        )
        assert line["account"] == intent.account
    assert lines["send.committed"]["wallet"] == "spot"  # fixed at the commit
