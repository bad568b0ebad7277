"""Fuzz: the reconciliation rule never declares a send absent when the exchange shows it,
nor before the exchange could still accept a late copy of the request.

Random histories (records with random ids, some carrying the intent's withdrawOrderId,
some near-misses of it, some matching the intent's destination and amount) and random
clocks go into ``treasury.domain.reconcile.decide``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treasury.domain import reconcile as r
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.intent import Intent
from treasury.domain.status import Status

FUZZ = settings(
    max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

NOW = datetime(2027, 1, 15, tzinfo=UTC)
OID = "trs-ab12cd34-7"
BASE = Intent(
    id=7,
    coin="USDT",
    network="TRX",
    address="TXyzAbc123",
    address_tag=None,
    amount=Decimal("12.5"),
    account="default",
    request_id=None,
    requested_by=None,
    note=None,
    status=Status.SUBMITTING,
    status_reason="",
    withdraw_order_id=OID,
    exchange_withdraw_id=None,
    tx_id=None,
    fee=None,
    created_at=NOW,
    updated_at=NOW,
)

# Binance's documented backend processing timeout, written out here on purpose: the test
# must notice if the rule's own constant were ever lowered.
PROCESSING_TIMEOUT_MS = 10_000
T_MIN = 1_500_000_000_000
T_MAX = 2_500_000_000_000

coins = st.sampled_from(["USDT", "BTC", "usdt", "USDT ", ""])
networks = st.one_of(st.none(), st.sampled_from(["TRX", "ETH", "trx", ""]))
addresses = st.sampled_from(["TXyzAbc123", "txyzabc123", "TXyzAbc123 ", "Tother", ""])
tags = st.one_of(st.none(), st.sampled_from(["", "123", "0", " "]))
amounts = st.one_of(
    st.sampled_from(
        [
            Decimal("12.5"),
            Decimal("12.50"),
            Decimal("12.500000000000000001"),
            Decimal("-12.5"),
            Decimal(0),
            Decimal("1E+1"),
        ]
    ),
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=8,
        min_value=Decimal(-(10**6)),
        max_value=Decimal(10**6),
    ),
)
# withdrawOrderIds: the intent's own, near misses of it (case, whitespace, prefix), others.
# (hypothesis favours earlier branches: the near misses come first, the real id is rarer)
order_ids = st.one_of(
    st.sampled_from(
        [
            None,
            "",
            OID.upper(),
            OID + " ",
            " " + OID,
            OID[:-1],
            OID + "0",
            "trs-ab12cd34-70",
            "trs-other-7",
            OID,
        ]
    ),
    st.text(max_size=20),
)


@st.composite
def records(draw: st.DrawFn) -> WithdrawalRecord:
    return WithdrawalRecord(
        id=draw(st.text(max_size=12)),
        withdraw_order_id=draw(order_ids),
        coin=draw(coins),
        network=draw(networks),
        address=draw(addresses),
        address_tag=draw(tags),
        amount=draw(amounts),
        fee=draw(amounts),
        status=draw(st.integers(-3, 9)),
        tx_id=draw(st.one_of(st.none(), st.text(max_size=8))),
        apply_time=None,
        complete_time=None,
    )


@st.composite
def intents(draw: st.DrawFn) -> Intent:
    ts = draw(st.one_of(st.integers(T_MIN, T_MAX), st.none()))
    window = draw(st.one_of(st.integers(0, 60_000), st.none()))
    return replace(
        BASE,
        address_tag=draw(st.sampled_from([None, "", "123"])),
        send_timestamp_ms=ts,
        send_recv_window_ms=window,
        absent_checks=draw(st.integers(0, 5)),
    )


@st.composite
def clocks(draw: st.DrawFn, intent: Intent) -> dict[str, int | None]:
    """A server clock, often close to the safety deadline where mistakes would hide."""
    margin = draw(st.integers(0, 3_600_000))
    ts = intent.send_timestamp_ms
    if ts is not None and draw(st.sampled_from([True, True, False])):
        deadline = ts + (intent.send_recv_window_ms or 0) + PROCESSING_TIMEOUT_MS + margin
        now = deadline + draw(st.integers(-5_000, 5_000))
    else:
        now = draw(st.integers(T_MIN - 10**9, T_MAX + 10**10))
    last = draw(st.one_of(st.integers(now - 10**7, now + 10**6), st.none()))
    return {
        "server_now_ms": now,
        "lag_allowance_ms": margin,
        "last_absent_check_ms": last,
        "min_gap_ms": draw(st.integers(0, 600_000)),
    }


@st.composite
def cases(draw: st.DrawFn) -> tuple[Intent, list[WithdrawalRecord], dict[str, int | None]]:
    intent = draw(intents())
    found = draw(st.lists(records(), max_size=6))
    if draw(st.sampled_from([False, False, True])):  # an exact copy of what was sent
        exact = WithdrawalRecord(
            id=draw(st.text(max_size=12)),
            withdraw_order_id=OID,
            coin=intent.coin,
            network=draw(st.sampled_from([None, intent.network])),
            address=intent.address,
            address_tag=intent.address_tag,
            amount=intent.amount,
            fee=Decimal(1),
            status=draw(st.integers(0, 6)),
            tx_id=None,
            apply_time=None,
            complete_time=None,
        )
        found.insert(draw(st.integers(0, len(found))), exact)
    return intent, found, draw(clocks(intent))


@FUZZ
@given(cases())
def test_absence_is_never_concluded_against_the_evidence(
    case: tuple[Intent, list[WithdrawalRecord], dict[str, int | None]],
) -> None:
    intent, found, clock = case
    decision = r.decide(intent, list(found), **clock)  # type: ignore[arg-type]
    mine = [rec for rec in found if rec.withdraw_order_id == intent.withdraw_order_id]

    if mine:
        assert not isinstance(decision, r.ProvenAbsent | r.CountAbsence), (decision, mine)
    if isinstance(decision, r.ProvenAbsent):
        assert intent.send_timestamp_ms is not None
        assert intent.send_recv_window_ms is not None
        deadline = (
            intent.send_timestamp_ms
            + intent.send_recv_window_ms
            + PROCESSING_TIMEOUT_MS
            + clock["lag_allowance_ms"]
        )  # type: ignore[operator]
        assert clock["server_now_ms"] >= deadline, (clock, deadline)  # type: ignore[operator]
        # two lookups, the second one at least min_gap after the first
        assert intent.absent_checks + 1 >= r.REQUIRED_ABSENT_CHECKS
        last = clock["last_absent_check_ms"]
        if last is not None:
            assert clock["server_now_ms"] - last >= clock["min_gap_ms"]  # type: ignore[operator]
    if isinstance(decision, r.CountAbsence):
        assert intent.send_timestamp_ms is not None
        assert intent.send_recv_window_ms is not None
        deadline = (
            intent.send_timestamp_ms
            + intent.send_recv_window_ms
            + PROCESSING_TIMEOUT_MS
            + clock["lag_allowance_ms"]
        )  # type: ignore[operator]
        assert clock["server_now_ms"] >= deadline, (clock, deadline)  # type: ignore[operator]
    if isinstance(decision, r.Adopt):
        # only the one record carrying our id, and only when it is what we asked for
        assert mine == [decision.record], (decision, mine)
        assert r.matches(intent, decision.record)
        assert decision.record.withdraw_order_id == OID


@FUZZ
@given(cases())
def test_the_rule_is_a_pure_function_of_its_inputs(
    case: tuple[Intent, list[WithdrawalRecord], dict[str, int | None]],
) -> None:
    intent, found, clock = case
    first = r.decide(intent, list(found), **clock)  # type: ignore[arg-type]
    # the order in which the exchange lists records does not change the conclusion's kind
    second = r.decide(intent, list(reversed(found)), **clock)  # type: ignore[arg-type]
    assert type(first) is type(second)
