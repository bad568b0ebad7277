"""The fakes themselves: the exchange behaves as documented, the clock reaches the services,
and the memory ledger refuses what it must. (Its store semantics are checked against SQLite
and PostgreSQL by tests/integration/test_store_contract.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anyio
import pytest

from treasury.domain.exchange import WithdrawalRecord, WithdrawQuota, WithdrawRequest
from treasury.domain.fee_payer import FeePayer
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.domain.wallet import Wallet
from treasury.ports import clock as clock_port
from treasury.ports.exchange import NotSent, OutcomeUnknown, Rejected
from treasury.services import submit
from treasury.testing import FakeExchange, ManualClock, MemoryLedger, Timeout, not_sent

DAY_MS = 24 * 3600 * 1000


def request(oid: str, amount: str = "10") -> WithdrawRequest:
    return WithdrawRequest(
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        amount=Decimal(amount),
        withdraw_order_id=oid,
        wallet=Wallet.SPOT,
        fee_payer=FeePayer.SENDER,
    )


@pytest.fixture
def exchange(clock: ManualClock) -> FakeExchange:
    return FakeExchange(clock=clock, balances={"USDT": "100"}, fee="1")


# ---- the clock -------------------------------------------------------------------------


def test_the_manual_clock_reaches_the_services_and_the_port(clock: ManualClock) -> None:
    assert clock_port.utcnow() == clock() == submit.utcnow()
    clock.advance(minutes=2)
    assert submit.utcnow() == datetime(2030, 1, 1, 0, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)
    clock.set(datetime(2029, 1, 1, tzinfo=UTC))  # a wall-clock step back is explicit
    assert clock_port.utcnow().year == 2029


# ---- the exchange ----------------------------------------------------------------------


async def test_a_withdrawal_shows_in_history_after_the_lag_net_of_the_fee(
    exchange: FakeExchange, clock: ManualClock
) -> None:
    exchange.history_lag_s = 30
    accepted = await exchange.withdraw(request("o-1"), timestamp_ms=exchange.now_ms())
    assert await exchange.withdraw_history(withdraw_order_id="o-1") == []
    clock.advance(30)
    (row,) = await exchange.withdraw_history(withdraw_order_id="o-1")
    assert (row.id, row.amount, row.fee, row.status) == (accepted.id, Decimal(9), 1, 4)
    assert exchange.balances["USDT"] == Decimal(90)
    exchange.fail("o-1")
    assert exchange.balances["USDT"] == Decimal(100)  # given back
    exchange.history_amount = "gross"
    await exchange.withdraw(request("o-2"))
    clock.advance(30)
    assert (await exchange.withdraw_history(withdraw_order_id="o-2"))[0].amount == 10


async def test_no_deduplication_the_same_order_id_twice_is_two_withdrawals(
    exchange: FakeExchange,
) -> None:
    await exchange.withdraw(request("o-1"))
    await exchange.withdraw(request("o-1"))
    assert len(exchange.executed("o-1")) == 2 and len(exchange.withdraw_requests("o-1")) == 2
    with pytest.raises(ValueError, match="2 withdrawals"):
        exchange.complete("o-1")


async def test_history_is_newest_first_paged_and_windowed(
    exchange: FakeExchange, clock: ManualClock
) -> None:
    ids = []
    for n in range(5):
        ids.append((await exchange.withdraw(request(f"o-{n}", "1.5"))).id)
        clock.advance(1)
    now = exchange.now_ms()
    page = await exchange.withdraw_history(
        start_time_ms=now - 60_000, end_time_ms=now, offset=1, limit=2
    )
    assert [r.id for r in page] == [ids[3], ids[2]]
    assert [
        r.id for r in await exchange.withdraw_history(start_time_ms=now - 3500, end_time_ms=now)
    ] == [ids[4], ids[3], ids[2]]
    # exactly 90 (7) days is allowed, as on Binance and in the sandbox; one ms more is -1127
    await exchange.withdraw_history(start_time_ms=now - 90 * DAY_MS, end_time_ms=now)
    with pytest.raises(Rejected, match="too big") as too_big:
        await exchange.withdraw_history(start_time_ms=now - 90 * DAY_MS - 1, end_time_ms=now)
    assert too_big.value.code == -1127
    await exchange.withdraw_history(
        withdraw_order_id="o-1", start_time_ms=now - 7 * DAY_MS, end_time_ms=now
    )
    with pytest.raises(Rejected, match="too big"):
        await exchange.withdraw_history(
            withdraw_order_id="o-1", start_time_ms=now - 7 * DAY_MS - 1, end_time_ms=now
        )
    with pytest.raises(Rejected):
        await exchange.withdraw_history(limit=1001)


async def test_a_stale_signature_or_a_short_balance_is_refused_and_nothing_happens(
    exchange: FakeExchange, clock: ManualClock
) -> None:
    signed = exchange.now_ms()
    clock.advance(6)  # past the 5 s recvWindow
    with pytest.raises(NotSent) as stale:
        await exchange.withdraw(request("o-1"), timestamp_ms=signed)
    assert stale.value.code == -1021
    with pytest.raises(Rejected) as short:
        await exchange.withdraw(request("o-2", "100.5"))
    assert (short.value.code, short.value.permanent) == (-4026, False)
    assert exchange.executed() == [] and exchange.balances["USDT"] == Decimal(100)


async def test_scripted_answers_come_in_order_then_the_exchange_answers_itself(
    exchange: FakeExchange,
) -> None:
    tight = WithdrawQuota(quota=Decimal(10), used=Decimal(10))
    exchange.script("withdraw_quota", not_sent(endpoint="/quota"), tight)
    with pytest.raises(NotSent):
        await exchange.withdraw_quota()
    assert await exchange.withdraw_quota() == tight
    assert (await exchange.withdraw_quota()).remaining > 0
    assert [c.method for c in exchange.calls] == ["withdraw_quota"] * 3
    exchange.script("account", "not an account")
    with pytest.raises(TypeError):
        await exchange.account()
    with pytest.raises(ValueError, match="no scriptable method"):
        exchange.script("withdraw_histroy", [])


@pytest.mark.parametrize("executed", [False, True])
async def test_a_lost_answer_is_an_unknown_outcome_with_the_signed_facts(
    exchange: FakeExchange, executed: bool
) -> None:
    exchange.script("withdraw", Timeout(executed=executed))
    with pytest.raises(OutcomeUnknown) as lost:
        await exchange.withdraw(request("o-1"), timestamp_ms=exchange.now_ms() - 100)
    assert lost.value.withdraw_order_id == "o-1"
    assert lost.value.timestamp_ms == exchange.now_ms() - 100
    assert lost.value.recv_window_ms == exchange.recv_window_ms
    assert len(exchange.executed("o-1")) == int(executed)
    (call,) = exchange.calls_to("withdraw")
    assert call.args["request"].withdraw_order_id == "o-1"


async def test_the_exchange_clock_moves_apart_and_is_learnt_by_a_sync(
    exchange: FakeExchange, clock: ManualClock
) -> None:
    local = clock.now_ms()
    exchange.move_server_clock(+2_000)
    assert exchange.server_ms() == local + 2_000 and exchange.now_ms() == local
    await exchange.sync_clock()
    assert exchange.now_ms() == local + 2_000


async def test_foreign_records_keep_their_own_times(
    exchange: FakeExchange, clock: ManualClock
) -> None:
    applied = clock() - timedelta(days=2)
    exchange.add_record(
        WithdrawalRecord(
            id="x-1",
            withdraw_order_id=None,
            coin="BTC",
            network="BTC",
            address="bc1q",
            address_tag=None,
            amount=Decimal("0.5"),
            fee=Decimal("0.0001"),
            status=6,
            tx_id="t",
            apply_time=applied,
            complete_time=None,
        )
    )
    now = exchange.now_ms()
    assert await exchange.withdraw_history(start_time_ms=now - DAY_MS, end_time_ms=now) == []
    (row,) = await exchange.withdraw_history(start_time_ms=now - 3 * DAY_MS, end_time_ms=now)
    assert row.apply_time == applied


# ---- the memory ledger -----------------------------------------------------------------


async def test_a_store_write_inside_a_unit_is_an_error_not_a_deadlock(clock: ManualClock) -> None:
    ledger = MemoryLedger(clock=clock)
    intent, _ = await ledger.intents.enqueue(
        validate_new_intent(coin="USDT", network="TRX", address="TXyz", amount="1"), actor="test"
    )

    async def write_beside_the_unit() -> None:
        async with ledger.units.open(intent.id) as unit:
            await unit.note(reason="in the unit", actor="test", kind="note")
            await ledger.intents.record_note(
                intent.id, reason="beside it", actor="test", kind="note"
            )

    with pytest.raises(RuntimeError, match="write through the unit"):
        await write_beside_the_unit()
    assert len(await ledger.intents.events(intent.id)) == 1  # neither note landed
    with anyio.fail_after(1):  # and the lock was given back
        await ledger.intents.transition(intent.id, Status.CANCELLED, reason="x", actor="t")


def test_a_ledger_refuses_a_bad_namespace_or_a_naive_clock() -> None:
    with pytest.raises(ValueError, match="namespace"):
        MemoryLedger(namespace="Bad-NS")
    with pytest.raises(ValueError, match="naive"):
        MemoryLedger(clock=lambda: datetime(2030, 1, 1))
