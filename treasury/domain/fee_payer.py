"""Who pays the fee of an internal transfer (``transactionFeeFlag``).

Binance decides that a withdrawal is an *internal transfer* (``transferType`` 1, no chain
transaction) when the destination address belongs to a Binance account; the client cannot
know that before it sends. For such a transfer, ``withdraw/apply``'s
``transactionFeeFlag`` says who bears the fee: ``false`` (Binance's default) the departure
account, which is debited the amount *plus* the fee while the recipient gets the whole
amount; ``true`` the destination account, which gets the amount less the fee. It is
ignored for an on-chain withdrawal, whose fee always comes out of the amount.

Treasury sends the flag on every withdrawal, from the account's setting
(``TREASURY_INTERNAL_FEE_PAYER``, extra accounts ``TREASURY_ACCOUNT_<NAME>_INTERNAL_FEE_PAYER``),
so the outcome never depends on anything set on the exchange's website.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from treasury.domain.choice import parse_choice


class FeePayer(StrEnum):
    SENDER = "sender"
    RECIPIENT = "recipient"

    @property
    def transaction_fee_flag(self) -> bool:
        """Binance's ``transactionFeeFlag``: true when the destination account pays."""
        return self is FeePayer.RECIPIENT

    @property
    def described(self) -> str:
        """For reasons and log lines: who pays, in words."""
        if self is FeePayer.SENDER:
            return "paid by the sender (on top of the amount)"
        return "paid by the recipient (out of the amount)"


def parse_fee_payer(value: object, field: str = "internal_fee_payer") -> FeePayer:
    """``sender`` or ``recipient`` (a ``FeePayer`` passes through).

    Raises:
        InvalidField: naming ``field`` and the values it takes.
    """
    return parse_choice(FeePayer, value, field, "a fee payer")


def most_debited(amount: Decimal, network_fee: Decimal, payer: FeePayer) -> Decimal:
    """The most a withdrawal of ``amount`` can take from the wallet it debits.

    On chain, and for an internal transfer whose recipient pays, the fee comes out of the
    amount: the wallet loses ``amount``. An internal transfer whose sender pays costs the
    wallet ``amount`` plus the fee. Since the client cannot tell an internal transfer
    from an on-chain withdrawal before sending, a sender-pays account must cover the fee
    on top of every withdrawal. Binance publishes no fee for internal transfers; the
    network's ``withdrawFee`` (``network_fee``) is taken as their most (an internal fee
    above it would be refused by the exchange as -4026, insufficient balance: the intent
    waits, nothing is lost).
    """
    if payer is FeePayer.SENDER:
        return amount + network_fee
    return amount
