"""The capital and local-entity histories merged into one (treasury.domain.local_history),
and what the travel-rule status does to an ending (treasury.domain.settle)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from treasury.domain.exchange import ExchangeWithdrawStatus as X
from treasury.domain.exchange import LocalEntityWithdrawalRecord, WithdrawalRecord
from treasury.domain.exchange import TravelRuleStatus as TR
from treasury.domain.local_history import merge
from treasury.domain.settle import settled_status
from treasury.domain.status import Status

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def capital(wid: str, oid: str | None, status: int = X.PROCESSING) -> WithdrawalRecord:
    return WithdrawalRecord(
        id=wid,
        withdraw_order_id=oid,
        coin="USDT",
        network="TRX",
        address="TXyz",
        address_tag=None,
        amount=Decimal("9"),
        fee=Decimal("1"),
        status=status,
        tx_id=None,
        apply_time=AT,
        complete_time=None,
    )


def local(
    tr_id: int, wid: str | None, oid: str | None, *, status: int | None = X.PROCESSING, tr: int = 0
) -> LocalEntityWithdrawalRecord:
    return LocalEntityWithdrawalRecord(
        tr_id=tr_id,
        id=wid,
        withdraw_order_id=oid,
        coin="USDT",
        network="TRX",
        address="TXyz",
        amount=Decimal("9"),
        fee=None if wid is None else Decimal("1"),
        withdrawal_status=status,
        travel_rule_status=tr,
        tx_id=None,
        apply_time=AT,
    )


def test_a_twin_adds_its_travel_rule_facts_to_the_capital_row_whose_status_stands() -> None:
    rows = merge([capital("w1", "o1", X.COMPLETED)], [local(7, "w1", "o1", status=X.PROCESSING)])
    assert [(r.id, r.status, r.tr_id, r.travel_rule_status) for r in rows] == [
        ("w1", X.COMPLETED, 7, TR.COMPLETED)
    ]


def test_a_twin_without_an_id_is_found_by_its_order_id() -> None:
    rows = merge([capital("w1", "o1")], [local(7, None, "o1", tr=TR.PENDING)])
    assert [(r.id, r.tr_id, r.travel_rule_status) for r in rows] == [("w1", 7, TR.PENDING)]


def test_two_capital_rows_of_one_order_id_stay_two_and_the_local_row_does_not_guess() -> None:
    """A duplicate is for reconciliation to see: merging must not fold it away."""
    rows = merge([capital("w1", "o1"), capital("w2", "o1")], [local(7, None, "o1")])
    assert [r.id for r in rows] == ["w1", "w2", "tr:7"]


def test_a_row_only_in_the_local_history_counts_and_without_a_status_is_never_done() -> None:
    rows = merge([], [local(7, "w9", "o9", status=X.COMPLETED), local(8, None, None, status=None)])
    assert [(r.id, r.status, r.fee) for r in rows] == [
        ("w9", X.COMPLETED, Decimal("1")),
        ("tr:8", X.AWAITING_APPROVAL, Decimal(0)),
    ]
    assert settled_status(rows[1]) is None


def test_the_same_travel_rule_record_twice_is_one_row() -> None:
    assert len(merge([], [local(7, "w9", "o9"), local(7, "w9", "o9")])) == 1


def test_a_completion_beside_a_check_not_completed_is_not_taken() -> None:
    done = dataclasses.replace(capital("w1", "o1", X.COMPLETED), tr_id=7)
    assert settled_status(dataclasses.replace(done, travel_rule_status=TR.COMPLETED)) is not None
    assert settled_status(done) is not None  # not in the local history: the capital one rules
    for check in (TR.PENDING, TR.FAILED):
        assert settled_status(dataclasses.replace(done, travel_rule_status=check)) is None


def test_a_failed_check_names_itself_in_the_ending() -> None:
    cancelled = dataclasses.replace(
        capital("w1", "o1", X.CANCELLED), tr_id=7, travel_rule_status=TR.FAILED
    )
    status, reason = settled_status(cancelled) or (None, "")
    assert status is Status.CANCELLED and "travel-rule check failed" in reason


def test_two_travel_rule_records_under_one_order_id_are_never_folded_into_one_row() -> None:
    """One capital withdrawal, two local-entity records under its order id and no ids:
    which one is its twin cannot be told, so both stand alone (a duplicate is shown,
    never hidden)."""
    rows = merge([capital("w1", "o1")], [local(7, None, "o1"), local(8, None, "o1")])
    assert [(r.id, r.tr_id) for r in rows] == [("w1", None), ("tr:7", 7), ("tr:8", 8)]
