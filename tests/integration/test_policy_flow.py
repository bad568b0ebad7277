"""Policy and approvals with the real worker against the sandbox, on both databases."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.sandbox.ledger import read_ledger
from treasury.services.admin import Refused, cancel
from treasury.services.approvals import approve

TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"
TRX2 = "T2WouRpQKa1QRj1xs34r742gcgx1APB6g2"


def policy_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(body)
    return path


async def enqueue(stack: Any, amount: str, address: str = TRX, by: str = "alice") -> int:
    new = validate_new_intent(
        coin="USDT", network="TRX", address=address, amount=amount, requested_by=by
    )
    intent, _ = await stack.rt.ledger.intents.enqueue(new, actor=f"cli:{by}")
    return int(intent.id)


async def test_rolling_cap_holds_under_a_burst(stack_factory: Any, tmp_path: Path) -> None:
    path = policy_file(tmp_path, '[coins.USDT]\ndaily_cap = "100"\n')
    async with stack_factory(policy_file=path) as stack, stack.daemon() as daemon:
        with anyio.fail_after(10):  # enqueued once it is the sender (else held at first)
            while not daemon.swept:
                await anyio.sleep(0.05)
        ids = []
        async with anyio.create_task_group() as tg:  # many intents enqueued at once

            async def one() -> None:
                ids.append(await enqueue(stack, "30"))

            for _ in range(8):
                tg.start_soon(one)
        await anyio.sleep(4)
        intents = [await stack.rt.ledger.intents.get(i) for i in ids]
    sent = [i for i in intents if i.withdraw_order_id is not None]
    assert len(sent) == 3  # 3 x 30 = 90 fits under 100; a 4th would make 120
    held = [i for i in intents if i.status is Status.QUEUED]
    assert len(held) == 5
    assert all("daily" in (i.status_reason or "") or "cap" in (i.status_reason or "") for i in held)
    ledger = read_ledger(stack.journal)
    assert sum(w.amount for w in ledger.withdrawals) == Decimal(90)


async def test_per_intent_maximum_rejects_without_sending(
    stack_factory: Any, tmp_path: Path
) -> None:
    path = policy_file(tmp_path, '[coins.USDT]\nmax_per_intent = "50"\n')
    async with stack_factory(policy_file=path) as stack:
        big = await enqueue(stack, "51")
        ok = await enqueue(stack, "50")
        async with stack.daemon():
            done = await stack.wait_settled([big, ok])
    assert [i.status for i in done] == [Status.REJECTED, Status.COMPLETED]
    assert "policy" in (done[0].status_reason or "")
    ledger = read_ledger(stack.journal)
    assert len(ledger.withdrawals) == 1


async def test_approval_quorum_then_send(stack_factory: Any, tmp_path: Path) -> None:
    path = policy_file(
        tmp_path, '[coins.USDT]\napproval_threshold = "100"\napprovals_required = 2\n'
    )
    async with stack_factory(policy_file=path) as stack:
        ledger = stack.rt.ledger
        small = await enqueue(stack, "20")
        big = await enqueue(stack, "500", by="alice")
        async with stack.daemon():
            await stack.wait_status(big, Status.AWAITING_APPROVAL)
            await stack.wait_settled([small])
            with pytest.raises(Refused, match="requested this withdrawal"):
                await approve(ledger, big, approver="alice")
            first = await approve(ledger, big, approver="bob")
            assert (first.released, first.required) == (False, 2)
            with pytest.raises(Refused, match="already"):
                await approve(ledger, big, approver="bob")
            assert (await ledger.intents.get(big)).status is Status.AWAITING_APPROVAL
            second = await approve(ledger, big, approver="carol")
            assert second.released
            [done] = await stack.wait_settled([big])
        events = await ledger.intents.events(big)
    assert done.status is Status.COMPLETED
    kinds = [(e.kind, e.actor) for e in events]
    assert ("approval", "cli:bob") in kinds and ("approval", "cli:carol") in kinds
    # the file was the ledger's first version; the approvals and the commit name it
    assert any("approval 2 of 2, policy v1" in e.reason for e in events)
    [commit] = [e for e in events if e.to_status == Status.SUBMITTING.value]
    assert commit.reason.endswith("; policy v1)")


async def test_approval_after_cancel_is_refused(stack_factory: Any, tmp_path: Path) -> None:
    path = policy_file(tmp_path, '[coins.USDT]\napproval_threshold = "10"\n')
    async with stack_factory(policy_file=path) as stack:
        ledger = stack.rt.ledger
        big = await enqueue(stack, "500")
        async with stack.daemon():
            await stack.wait_status(big, Status.AWAITING_APPROVAL)
        await cancel(ledger, big, actor="cli:ops", reason="not needed")
        with pytest.raises(Refused, match="cancelled"):
            await approve(ledger, big, approver="bob")
        assert len(read_ledger(stack.journal).withdrawals) == 0
