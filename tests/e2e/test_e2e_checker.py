"""The invariant checker can fail: each invariant is broken once on purpose.

A real run produces a clean snapshot; then the exchange is made to hold a duplicate
(an injected withdrawal carrying the same withdrawOrderId) and copies of the snapshot
are altered one fact at a time. Each alteration must be reported under its number.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
from harness import API_SECRET, USDT_TRX, XRP_1, world
from invariants import Snapshot, check_invariants

from treasury.sandbox.ledger import ApplyRequest, Ledger

pytestmark = pytest.mark.slow


def _numbers(snap: Snapshot, **kw: object) -> set[str]:
    return {v[:3] for v in check_invariants(snap, **kw)}  # type: ignore[arg-type]


async def test_each_invariant_violation_is_reported(tmp_path: Path) -> None:
    async with world("sqlite", tmp_path) as w:
        ok_id = await w.insert_sql(*USDT_TRX, "10.5")
        bad_id = await w.insert_sql(*XRP_1[:3], None, "40")  # memo missing: rejected
        d = await w.start_daemon()
        await w.wait_settled(timeout=30)
        assert (await d.sigterm(10))[0] == 0
        clean = await Snapshot.take(w)
        assert check_invariants(clean) == []

        ok = next(i for i in clean.intents if i["id"] == ok_id)
        bad = next(i for i in clean.intents if i["id"] == bad_id)
        sent = clean.ledger.apply_requests[0]

        def with_ledger(requests: list[ApplyRequest]) -> Snapshot:
            ledger = Ledger(clean.ledger.withdrawals, requests, clean.ledger.records)
            return dataclasses.replace(clean, ledger=ledger)

        def with_intent(iid: int, **changes: object) -> Snapshot:
            intents = [dict(i, **changes) if i["id"] == iid else i for i in clean.intents]
            return dataclasses.replace(clean, intents=intents)

        # [2] an apply call for the rejected intent, to a destination outside the mirror
        leak = dataclasses.replace(
            sent,
            at_ms=sent.at_ms + 5000,
            params={
                **sent.params,
                "coin": bad["coin"],
                "network": bad["network"],
                "address": bad["address"],
                "withdrawOrderId": "trs-x-999",
                "amount": "40",
            },
        )
        assert "[2]" in _numbers(with_ledger([sent, leak]))
        # [3] still in flight, or settled without a reason
        assert "[3]" in _numbers(with_intent(ok_id, status="submitted"))
        assert "[3]" in _numbers(with_intent(bad_id, status_reason=" "))
        # [4] one unit of the last digit off
        assert "[4]" in _numbers(
            with_intent(ok_id, amount=Decimal(ok["amount"]) + Decimal("0.000001"))
        )
        # [5] two sends 20 ms apart at 20/s
        twin = dataclasses.replace(sent, at_ms=sent.at_ms + 20)
        assert "[5]" in _numbers(with_ledger([sent, twin]))
        # [6] the secret in a log line
        assert "[6]" in _numbers(dataclasses.replace(clean, texts=[f"oops {API_SECRET}"]))
        assert "[6]" in _numbers(dataclasses.replace(clean, texts=["GET /x?signature=ab"]))
        # [7] a status change without its event
        events = [
            e
            for e in clean.events
            if not (e["intent_id"] == ok_id and e["to_status"] == "submitted")
        ]
        assert "[7]" in _numbers(dataclasses.replace(clean, events=events))

        # [1] a second withdrawal for the same withdrawOrderId, made on the exchange
        await w.sandbox.set_faults(
            {
                "inject_foreign_withdrawal": {
                    "coin": ok["coin"],
                    "network": ok["network"],
                    "address": ok["address"],
                    "amount": "10.5",
                    "withdrawOrderId": ok["withdraw_order_id"],
                }
            }
        )
        assert "[1]" in _numbers(await Snapshot.take(w))
