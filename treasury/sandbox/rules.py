"""The checks ``withdraw/apply`` runs, in order, each with Binance's code (reference §5).

A pure function from (parameters, account, rules) to an accepted request or an
:class:`ApiError`; the caller debits and journals. Order and codes:

1. the key may not withdraw (``enableWithdrawals`` off, or ``ipRestrict`` off, which Binance
   requires for withdrawing keys) → HTTP 401 ``-2015``
2. ``canWithdraw`` false → ``-4015`` "Withdraw is limited"; system maintenance → ``-4015``
3. ``coin`` / ``address`` / ``amount`` missing → ``-1102``; amount not a plain decimal → ``-1100``;
   ``walletType`` not a number → ``-1100``, not 0 or 1 → ``-1130``; ``transactionFeeFlag``
   other than ``true``/``false`` (any case; absent or empty: false) → ``-1100``
4. unknown coin → ``-4018``; unknown network, or ``withdrawEnable`` false → ``-4019``
5. address fails ``addressRegex`` → ``-4007``
6. memo: required (``withdrawTag`` true) and missing → ``-4008``; given on a network whose
   ``withdrawTag`` is false → ``-4106``, whatever its ``memoRegex`` says (Binance's wallet
   changelog 2026-04-28); fails ``memoRegex`` → ``-4008``
7. whitelist on and (coin, network, address, tag) not a whitelisted address-book entry
   (absent, or there with ``whitelisted`` false) → ``-4035``
8. more decimals than the coin's precision → ``-1111``
9. below ``withdrawMin`` → ``-4022`` (an internal transfer: below ``withdrawInternalMin``
   instead, also ``-4022``); above ``withdrawMax`` → ``-4023``; not a multiple of
   ``withdrawIntegerMultiple`` → ``-4021``; ``amount <=`` the fee charged → ``-4028``
10. the 24 h USD quota would be exceeded → ``-4023`` (Binance's "over 24 h max")
11. the debited wallet short → ``-4026``: the one ``walletType`` names (0 spot, 1 funding),
    or the account's ``default_wallet`` without it; the other wallet's funds never count.
    What it must hold: the amount, or for an internal transfer whose sender pays the fee
    (``transactionFeeFlag`` false) the amount plus that fee

A destination that is a Binance deposit address (``DepositBook``) makes the request an
internal transfer, charged the network's internal fee (default its ``withdrawFee``) instead
of the on-chain fee; ``transactionFeeFlag`` says who pays it. On chain the flag is ignored.

``name`` is accepted and recorded (Binance would add the address to the address book;
the project's client must never send it). ``withdrawOrderId`` is never checked for
uniqueness: Binance documents no deduplication, so neither does the sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from treasury.domain.money import decimals, format_amount, is_multiple
from treasury.sandbox import errors
from treasury.sandbox.accounts import AccountState
from treasury.sandbox.config import CoinConfig, NetworkConfig
from treasury.sandbox.errors import ApiError
from treasury.sandbox.internal import DepositBook, InternalDestination

_DECIMAL = re.compile(r"([0-9]{1,20})(\.[0-9]{1,20})?")


@dataclass(frozen=True, kw_only=True)
class AcceptedRequest:
    coin: CoinConfig
    network: NetworkConfig
    address: str
    address_tag: str | None
    amount: Decimal
    withdraw_order_id: str | None
    name: str | None
    wallet_type: int
    internal: InternalDestination | None = None  # a Binance account's address
    fee_to_recipient: bool = False  # transactionFeeFlag (internal transfers only)

    @property
    def usd(self) -> Decimal:
        return self.amount * self.coin.usd_price

    @property
    def fee(self) -> Decimal:
        """What this withdrawal is charged: an internal transfer's fee, or the network's."""
        if self.internal is not None:
            return self.network.internal_transfer_fee
        return self.network.withdraw_fee

    @property
    def debit(self) -> Decimal:
        """What leaves the wallet: the amount (the fee comes out of it), plus the fee for an
        internal transfer whose sender pays it."""
        if self.internal is not None and not self.fee_to_recipient:
            return self.amount + self.fee
        return self.amount


def check_apply(
    params: Mapping[str, str],
    *,
    account: AccountState,
    coins: Mapping[str, CoinConfig],
    networks: Mapping[tuple[str, str], NetworkConfig],
    maintenance: bool,
    now_ms: int,
    deposits: DepositBook | None = None,
) -> AcceptedRequest:
    """Run every check; return what to book, or raise the first failing check's error."""
    if not account.key_may_withdraw:
        raise errors.rejected_key()
    if not account.can_withdraw:
        raise ApiError(-4015, "Withdraw is limited.")
    if maintenance:
        raise ApiError(-4015, "Withdraw is limited: the system is under maintenance.")
    coin_name, address, raw_amount = (_required(params, k) for k in ("coin", "address", "amount"))
    if not _DECIMAL.fullmatch(raw_amount):
        raise errors.illegal_characters("amount", errors.DECIMAL)
    amount = Decimal(raw_amount)
    wallet_type = _wallet_type(params.get("walletType"), default=account.default_wallet)
    fee_to_recipient = _boolean(params, "transactionFeeFlag")

    coin = coins.get(coin_name)
    if coin is None:
        raise ApiError(-4018, "The asset does not exist.")
    network_name = params.get("network") or coin.default_network.network
    network = networks.get((coin.coin, network_name))
    if network is None:
        raise ApiError(-4019, f"The current asset is not open for withdrawal on {network_name}.")
    if not network.withdraw_enable:
        reason = network.withdraw_desc or "The current asset is not open for withdrawal."
        raise ApiError(-4019, reason)

    if not re.fullmatch(network.address_regex, address):
        raise ApiError(-4007, "Address verification failed.")
    tag = params.get("addressTag") or None
    if tag is None and network.withdraw_tag:
        raise ApiError(-4008, "Address tag verification failed: this network needs a memo.")
    if tag is not None and not network.withdraw_tag:
        raise ApiError(-4106, "Tag is not supported for this network.")
    if tag is not None and not re.fullmatch(network.memo_regex, tag):
        raise ApiError(-4008, "Address tag verification failed.")
    if account.whitelist_enabled and not account.is_whitelisted(
        coin.coin, network.network, address, tag
    ):
        raise ApiError(-4035, "This address is not on the whitelist. Please join and try again.")

    internal = deposits.find(network.network, address, tag) if deposits is not None else None
    fee = network.internal_transfer_fee if internal is not None else network.withdraw_fee

    if decimals(amount) > coin.precision:
        raise ApiError(-1111, "Precision is over the maximum defined for this asset.")
    if internal is not None and amount < network.withdraw_internal_min:
        raise ApiError(
            -4022, "The amount must be greater than the minimum internal transfer amount."
        )
    if internal is None and amount < network.withdraw_min:
        raise ApiError(-4022, "The amount must be greater than the minimum withdrawal amount.")
    if amount > network.withdraw_max:
        raise ApiError(-4023, "The amount exceeds the maximum single withdrawal amount.")
    if not is_multiple(amount, network.withdraw_integer_multiple):
        step = format_amount(network.withdraw_integer_multiple)
        raise ApiError(-4021, f"Withdrawal amount must be a multiple of {step}.")
    if amount <= fee:
        raise ApiError(-4028, "The withdrawal amount must be greater than the fee.")

    accepted = AcceptedRequest(
        coin=coin,
        network=network,
        address=address,
        address_tag=tag,
        amount=amount,
        withdraw_order_id=params.get("withdrawOrderId"),
        name=params.get("name"),
        wallet_type=wallet_type,
        internal=internal,
        fee_to_recipient=fee_to_recipient,
    )
    if account.quota_used_at(now_ms) + accepted.usd > account.quota_usd:
        raise ApiError(-4023, "Exceeds the 24-hour withdrawal limit.")
    if accepted.debit > account.free_in(wallet_type, coin.coin):
        raise ApiError(-4026, "Insufficient balance.")
    return accepted


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise errors.mandatory(name)
    return value


def _boolean(params: Mapping[str, str], name: str) -> bool:
    """A BOOLEAN parameter: ``true`` or ``false`` in any case; absent or empty is false."""
    raw = params.get(name, "").lower()
    if raw not in ("", "true", "false"):
        raise errors.illegal_characters(name, "true|false")
    return raw == "true"


def _wallet_type(raw: str | None, *, default: int) -> int:
    """The ``walletType`` asked for; without one, the wallet the account's settings select."""
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise errors.illegal_characters("walletType", errors.UNSIGNED_INT)
    if raw not in ("0", "1"):
        raise errors.invalid_value("walletType")
    return int(raw)
