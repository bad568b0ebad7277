"""Internal transfers: which destinations are Binance accounts, and who is credited.

Binance makes a withdrawal an *internal transfer* (``transferType`` 1, no chain
transaction, ``txId`` "Off-chain transfer <digits>") when the destination address belongs
to a Binance account. Here that is any account's ``deposit_addresses`` (the transfer
credits that account) or the config's ``internal_addresses`` (Binance accounts the
sandbox does not model: nobody is credited). The lookup is fixed by the config; each
withdrawal journals what it found, so a replay never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from treasury.sandbox.config import DepositAddress, SandboxConfig, deposit_key


@dataclass(frozen=True)
class InternalDestination:
    recipient: str | None  # the sandbox account credited; None: one outside the sandbox


class DepositBook:
    """Every Binance deposit address the sandbox knows, by (network, address, tag)."""

    def __init__(self, config: SandboxConfig) -> None:
        self._owners: dict[tuple[str, str, str | None], str | None] = {}
        for name, account in config.accounts.items():
            self._add(account.deposit_addresses, name)
        self._add(config.internal_addresses, None)

    def _add(self, entries: tuple[DepositAddress, ...], owner: str | None) -> None:
        for d in entries:
            self._owners[deposit_key(d.network, d.address, d.address_tag)] = owner

    def find(self, network: str, address: str, tag: str | None) -> InternalDestination | None:
        """The internal destination at this address, or None: an on-chain withdrawal."""
        key = deposit_key(network, address, tag)
        if key not in self._owners:
            return None
        return InternalDestination(self._owners[key])
