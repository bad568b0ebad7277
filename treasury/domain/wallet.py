"""Which of an account's wallets a withdrawal debits.

Binance's ``withdraw/apply`` takes ``walletType`` (0 spot, 1 funding); without it the
exchange debits whichever wallet the account selected in its settings, which the API
does not report. Treasury therefore always sends it: an intent names its wallet, or
takes its account's configured default when it is committed to send.
"""

from __future__ import annotations

from enum import StrEnum

from treasury.domain.choice import parse_choice


class Wallet(StrEnum):
    SPOT = "spot"
    FUNDING = "funding"

    @property
    def wallet_type(self) -> int:
        """Binance's ``walletType`` for this wallet."""
        return 0 if self is Wallet.SPOT else 1


def parse_wallet(value: object, field: str = "wallet") -> Wallet:
    """``spot`` or ``funding`` (a ``Wallet`` passes through).

    Raises:
        InvalidField: naming ``field`` and the values it takes.
    """
    return parse_choice(Wallet, value, field, "a wallet")
