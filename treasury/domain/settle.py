"""Map the exchange's withdrawal statuses onto ours (withdrawal codes, not deposit codes)."""

from __future__ import annotations

from treasury.domain.exchange import ExchangeWithdrawStatus as X
from treasury.domain.exchange import TravelRuleStatus as TR
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.status import Status


def settled_status(record: WithdrawalRecord) -> tuple[Status, str] | None:
    """Our terminal status and reason for a record, or None while it is still pending.

    Unknown codes are treated as pending (never guessed as done); the caller alerts.
    A travel-rule check that is not completed (local-entity history) holds a completion
    back: "the withdrawal proceeds only after it is completed" (reference §11), so a
    completed status beside a pending or failed check is a contradiction, left pending for
    the age limit to send to a person rather than guessed.
    """
    info = f": {record.info}" if record.info else ""
    check = record.travel_rule_status
    if check is not None and check != TR.COMPLETED and record.status == X.COMPLETED:
        return None
    if check == TR.FAILED:
        info = f" after its travel-rule check failed{info}"
    match record.status:
        case X.COMPLETED if record.internal:
            # transferType 1: Binance moved it between two of its accounts; there is no
            # chain transaction, and txId is Binance's own ("Off-chain transfer ...")
            return Status.COMPLETED, (
                "completed as an internal transfer between Binance accounts, no chain "
                f"transaction ({record.tx_id or 'no id'})"
            )
        case X.COMPLETED:
            return Status.COMPLETED, f"completed on chain (txId {record.tx_id or 'unknown'})"
        case X.CANCELLED:
            # status 1: cancelled on the exchange, by the account's user (a review they
            # declined, an e-mail confirmation they refused) or by Binance; funds returned
            return Status.CANCELLED, f"cancelled on the exchange{info}"
        case X.REJECTED:
            return Status.FAILED, f"rejected by the exchange{info}"
        case X.FAILURE:
            return Status.FAILED, f"the exchange reports failure{info}"
        case _:
            return None


def is_known(code: int) -> bool:
    return code in {s.value for s in X}
