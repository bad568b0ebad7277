"""One history out of two: the capital withdraw history and the local-entity one.

A withdrawal from an account under a Binance local entity can show in the capital history
(``capital/withdraw/history``), in the local-entity history
(``localentity/withdraw/history``), or in both: Binance warns that one may lack what the
other has. Everything that judges a withdrawal (settlement, reconciliation, the look-up
before a re-send, the unexpected-withdrawal watch) reads the two merged, so that a
withdrawal counts as absent only when it is absent from both.

How the rows combine (``merge``):

* A capital row stays as it is, one row per withdrawal (two capital rows with one
  ``withdrawOrderId`` stay two: that is a duplicate for reconciliation to see). A
  local-entity row that is the same withdrawal (the same ``id``; failing an id, the only
  one with the ``withdrawOrderId`` of exactly one capital row) adds its ``trId`` and
  ``travelRuleStatus`` to it. The capital row's ``status`` stands: it is the wallet's own
  record, the one every other withdrawal is judged by.
* A local-entity row without a capital twin becomes a row of its own: its
  ``withdrawalStatus`` is the status (the same codes); a row without one (Binance sends it
  only for withdrawals made through the API) counts as awaiting review, never as done; an
  id it lacks is written ``tr:<trId>``.
* The travel-rule status can only hold an ending back (``treasury.domain.settle``): a
  withdrawal whose check is pending or failed is never taken as completed.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal

from treasury.domain.exchange import ExchangeWithdrawStatus as X
from treasury.domain.exchange import LocalEntityWithdrawalRecord, WithdrawalRecord


def as_record(row: LocalEntityWithdrawalRecord) -> WithdrawalRecord:
    """A local-entity row as a withdrawal record of its own (no capital twin)."""
    return WithdrawalRecord(
        id=row.id or f"tr:{row.tr_id}",
        withdraw_order_id=row.withdraw_order_id,
        coin=row.coin,
        network=row.network,
        address=row.address,
        address_tag=None,  # the local-entity history no longer carries it
        amount=row.amount,
        fee=row.fee if row.fee is not None else Decimal(0),
        status=row.withdrawal_status
        if row.withdrawal_status is not None
        else X.AWAITING_APPROVAL.value,
        tx_id=row.tx_id,
        apply_time=row.apply_time,
        complete_time=row.complete_time,
        info=row.info,
        transfer_type=row.transfer_type or 0,
        wallet_type=row.wallet_type,
        confirm_no=row.confirm_no,
        tr_id=row.tr_id,
        travel_rule_status=row.travel_rule_status,
    )


def merge(
    capital: Sequence[WithdrawalRecord], local: Iterable[LocalEntityWithdrawalRecord]
) -> list[WithdrawalRecord]:
    """The capital rows, with what their local-entity twins add, then the local-entity rows
    that have no twin (module docstring).

    Matching never guesses: a capital row takes at most one travel-rule record; by
    ``withdrawOrderId`` only when exactly one capital row and exactly one unmatched
    local-entity record carry it. Anything else stands alone, where reconciliation sees
    it: two rows for one withdrawal cost a person a look, one row for two withdrawals
    would hide a duplicate."""
    merged = list(capital)
    by_id = {r.id: i for i, r in enumerate(merged)}
    rows = list({row.tr_id: row for row in local}.values())  # one per trId
    twin: dict[int, int] = {}  # capital row index -> trId
    alone: list[LocalEntityWithdrawalRecord] = []
    by_oid_wanted: list[LocalEntityWithdrawalRecord] = []
    for row in rows:
        at = by_id.get(row.id) if row.id else None
        if at is None:
            by_oid_wanted.append(row)
        elif at in twin:
            alone.append(row)
        else:
            twin[at] = row.tr_id
            merged[at] = _with_check(merged[at], row)
    capital_oids = Counter(r.withdraw_order_id for r in merged if r.withdraw_order_id)
    local_oids = Counter(r.withdraw_order_id for r in by_oid_wanted if r.withdraw_order_id)
    by_oid = {r.withdraw_order_id: i for i, r in enumerate(merged) if r.withdraw_order_id}
    for row in by_oid_wanted:
        oid = row.withdraw_order_id or ""
        at = by_oid.get(oid) if oid else None
        if (
            at is None
            or capital_oids[oid] != 1
            or local_oids[oid] != 1
            or at in twin
            or (row.id is not None and row.id != merged[at].id)
        ):
            alone.append(row)
            continue
        twin[at] = row.tr_id
        merged[at] = _with_check(merged[at], row)
    return merged + [as_record(row) for row in alone]


def _with_check(record: WithdrawalRecord, row: LocalEntityWithdrawalRecord) -> WithdrawalRecord:
    return dataclasses.replace(record, tr_id=row.tr_id, travel_rule_status=row.travel_rule_status)


__all__ = ["as_record", "merge"]
