"""Fuzz: merging the capital and local-entity histories never loses a withdrawal, never
folds two capital withdrawals into one, and never lets a completion through beside a
travel-rule check that is not completed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treasury.domain.exchange import ExchangeWithdrawStatus as X
from treasury.domain.exchange import LocalEntityWithdrawalRecord, WithdrawalRecord
from treasury.domain.exchange import TravelRuleStatus as TR
from treasury.domain.local_history import merge
from treasury.domain.settle import settled_status
from treasury.domain.status import Status

FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
AT = datetime(2027, 1, 15, tzinfo=UTC)
IDS = st.sampled_from(["w1", "w2", "w3", "w4"])
OIDS = st.one_of(st.none(), st.sampled_from(["o1", "o2", "o3"]))
STATUSES = st.sampled_from([s.value for s in X] + [9])


@st.composite
def capital_rows(draw: st.DrawFn) -> list[WithdrawalRecord]:
    ids = draw(st.lists(IDS, unique=True, max_size=4))
    return [
        WithdrawalRecord(
            id=i,
            withdraw_order_id=draw(OIDS),
            coin="USDT",
            network="TRX",
            address="TXyz",
            address_tag=None,
            amount=Decimal("9"),
            fee=Decimal("1"),
            status=draw(STATUSES),
            tx_id=None,
            apply_time=AT,
            complete_time=None,
        )
        for i in ids
    ]


@st.composite
def local_rows(draw: st.DrawFn) -> list[LocalEntityWithdrawalRecord]:
    return [
        LocalEntityWithdrawalRecord(
            tr_id=draw(st.integers(1, 6)),
            id=draw(st.one_of(st.none(), IDS)),
            withdraw_order_id=draw(OIDS),
            coin="USDT",
            network="TRX",
            address="TXyz",
            amount=Decimal("9"),
            fee=None,
            withdrawal_status=draw(st.one_of(st.none(), STATUSES)),
            travel_rule_status=draw(st.sampled_from([t.value for t in TR])),
            tx_id=None,
            apply_time=AT,
        )
        for _ in range(draw(st.integers(0, 5)))
    ]


@FUZZ
@given(capital_rows(), local_rows())
def test_merge_keeps_every_withdrawal_and_completes_nothing_held_back(
    capital: list[WithdrawalRecord], local: list[LocalEntityWithdrawalRecord]
) -> None:
    merged = merge(capital, local)
    # every capital row is still there, once, with its own status
    assert [(r.id, r.status) for r in merged[: len(capital)]] == [(r.id, r.status) for r in capital]
    # every travel-rule record shows, on a capital row or on a row of its own
    assert {row.tr_id for row in local} <= {r.tr_id for r in merged if r.tr_id is not None}
    for record in merged:
        settled = settled_status(record)
        held = record.travel_rule_status in (TR.PENDING, TR.FAILED)
        if settled is not None and settled[0] is Status.COMPLETED:
            assert not held and record.status == X.COMPLETED
    # a local row's own status never decides a row that has a capital twin
    for row, record in zip(capital, merged, strict=False):
        assert record.status == row.status
