"""What an exchange record means for an intent: an internal transfer is recorded as such."""

from __future__ import annotations

from decimal import Decimal

from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.settle import settled_status
from treasury.domain.status import Status


def record(**kw: object) -> WithdrawalRecord:
    fields: dict[str, object] = {
        "id": "w1", "withdraw_order_id": "trs-ab12cd34-1", "coin": "USDT", "network": "TRX",
        "address": "TXyz", "address_tag": None, "amount": Decimal("9"), "fee": Decimal("1"),
        "status": 6, "tx_id": "0xabc", "apply_time": None, "complete_time": None, **kw,
    }  # fmt: skip
    return WithdrawalRecord(**fields)  # type: ignore[arg-type]


def test_an_external_withdrawal_completes_on_chain() -> None:
    assert settled_status(record()) == (Status.COMPLETED, "completed on chain (txId 0xabc)")


def test_an_internal_transfer_is_not_called_a_chain_transaction() -> None:
    status, reason = settled_status(
        record(transfer_type=1, tx_id="Off-chain transfer 3c4f9e", fee=Decimal(0))
    ) or (None, "")
    assert status is Status.COMPLETED
    assert "internal transfer" in reason and "no chain transaction" in reason
    assert "on chain" not in reason and "Off-chain transfer 3c4f9e" in reason


def test_pending_stays_pending() -> None:
    assert settled_status(record(status=4, transfer_type=1)) is None
