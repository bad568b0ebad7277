"""The rule that decides whether a send whose outcome is unknown may ever be repeated."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treasury.domain import reconcile as r
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.intent import Intent
from treasury.domain.status import Status

T0 = 1_800_000_000_000
NOW = datetime(2027, 1, 15, tzinfo=UTC)
INTENT = Intent(
    id=1,
    coin="USDT",
    network="TRX",
    address="TXyz",
    address_tag=None,
    amount=Decimal("12.5"),
    account="default",
    request_id=None,
    requested_by=None,
    note=None,
    status=Status.SUBMITTING,
    status_reason="",
    withdraw_order_id="trs-ab12cd34-1",
    exchange_withdraw_id=None,
    tx_id=None,
    fee=None,
    created_at=NOW,
    updated_at=NOW,
    send_timestamp_ms=T0,
    send_recv_window_ms=5000,
)
DEADLINE = T0 + 5000 + r.PROCESSING_TIMEOUT_MS + 30_000


def record(**kw: object) -> WithdrawalRecord:
    base = dict(
        id="w1",
        withdraw_order_id="trs-ab12cd34-1",
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        amount=Decimal("12.5"),
        fee=Decimal(1),
        status=4,
        tx_id=None,
        apply_time=None,
        complete_time=None,
    )
    base.update(kw)
    return WithdrawalRecord(**base)  # type: ignore[arg-type]


def decide(
    found: list[WithdrawalRecord], now_ms: int, intent: Intent = INTENT, last: int | None = None
) -> r.ReconcileDecision:
    return r.decide(
        intent,
        found,
        server_now_ms=now_ms,
        lag_allowance_ms=30_000,
        last_absent_check_ms=last,
        min_gap_ms=5_000,
    )


def test_found_once_and_matching_is_adopted() -> None:
    assert decide([record()], T0 + 1000) == r.Adopt(record())


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Decimal("12.50000001")},
        {"address": "Tother"},
        {"coin": "USDC"},
        {"address_tag": "123"},
        {"network": "ETH"},
    ],
)
def test_found_but_different_needs_a_person(change: dict[str, object]) -> None:
    assert isinstance(decide([record(**change)], T0 + 1000), r.Attention)


@pytest.mark.parametrize(
    ("amount", "adopted"),
    [
        ("12.5", True),  # the sender paid the fee on top (transactionFeeFlag false)
        ("11.5", True),  # the recipient paid it (true): 11.5 + 1 == 12.5
        ("13.5", False),  # 12.5 + the fee shown as the amount: no reading gives it
    ],
)
def test_an_internal_transfer_found_after_an_unknown_outcome(amount: str, adopted: bool) -> None:
    found = record(amount=Decimal(amount), transfer_type=1, status=6)
    result = decide([found], T0 + 1000)
    assert isinstance(result, r.Adopt if adopted else r.Attention), result


def test_found_twice_needs_a_person() -> None:
    result = decide([record(), record(id="w2")], T0 + 1000)
    assert isinstance(result, r.Attention)
    assert "2 withdrawals" in result.reason


def test_records_of_other_ids_are_ignored() -> None:
    other = record(id="w9", withdraw_order_id="someone-else")
    assert isinstance(decide([other], DEADLINE + 1), r.CountAbsence)


def test_absence_before_the_deadline_proves_nothing() -> None:
    for now in (T0, T0 + 5000, T0 + 15_000, DEADLINE - 1):
        assert isinstance(decide([], now), r.Wait)


def test_one_absence_after_the_deadline_is_not_enough() -> None:
    assert isinstance(decide([], DEADLINE), r.CountAbsence)


def test_second_absence_needs_a_gap() -> None:
    counted = replace(INTENT, absent_checks=1)
    assert isinstance(decide([], DEADLINE + 1000, counted, last=DEADLINE), r.Wait)
    assert isinstance(decide([], DEADLINE + 6000, counted, last=DEADLINE), r.ProvenAbsent)


def test_without_a_recorded_timestamp_nothing_is_proven() -> None:
    unknown = replace(INTENT, send_timestamp_ms=None, absent_checks=5)
    assert isinstance(decide([], DEADLINE * 2, unknown), r.Attention)


@given(
    now=st.integers(min_value=T0 - 10_000, max_value=T0 + 10 * 24 * 3600 * 1000),
    checks=st.integers(min_value=0, max_value=5),
    last=st.one_of(st.none(), st.integers(min_value=T0, max_value=T0 + 10**9)),
    window=st.integers(min_value=100, max_value=60_000),
)
def test_never_proven_absent_while_a_copy_could_still_be_accepted(
    now: int, checks: int, last: int | None, window: int
) -> None:
    intent = replace(INTENT, absent_checks=checks, send_recv_window_ms=window)
    result = r.decide(
        intent,
        [],
        server_now_ms=now,
        lag_allowance_ms=30_000,
        last_absent_check_ms=last,
        min_gap_ms=5_000,
    )
    if isinstance(result, r.ProvenAbsent):
        assert now >= T0 + window + r.PROCESSING_TIMEOUT_MS + 30_000
        assert checks + 1 >= r.REQUIRED_ABSENT_CHECKS


@given(
    st.lists(
        st.sampled_from([record(), record(id="w2"), record(amount=Decimal(1))]),
        min_size=1,
        max_size=4,
    )
)
def test_a_visible_record_never_leads_to_a_resend(found: list[WithdrawalRecord]) -> None:
    result = decide(found, DEADLINE * 2, replace(INTENT, absent_checks=9))
    assert not isinstance(result, r.ProvenAbsent | r.CountAbsence)
