"""Pure checks before a send: the intent's fields, the exchange's network rules, the
account's standing and balance, and the local whitelist mirror.

Each returns a verdict. What may pass later (maintenance, withdrawals suspended, a
network disabled, a short balance, a whitelist entry still cooling) holds the intent;
what can never pass as it stands (unknown network, below the minimum, bad address,
memo problems, not whitelisted) rejects it, and nothing is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from treasury.domain.decisions import Hold, Pass, Reject, Verdict
from treasury.domain.errors import InvalidField
from treasury.domain.exchange import (
    AccountInfo,
    ApiRestrictions,
    CoinConfig,
    SystemStatus,
)
from treasury.domain.fee_payer import FeePayer, most_debited
from treasury.domain.intent import Intent
from treasury.domain.money import decimals, format_amount, is_multiple
from treasury.domain.travel_rule import entity_of_exchange_code, questionnaire_of
from treasury.domain.validation import validate_new_intent
from treasury.domain.wallet import Wallet


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def check_fields(intent: Intent) -> Verdict:
    """Rows inserted by plain SQL skipped the CLI's validation: apply it here."""
    for name in ("coin", "network", "address", "account"):
        if not isinstance(getattr(intent, name), str):
            return Reject(f"invalid {name}: not text")
    if intent.address_tag is not None and not isinstance(intent.address_tag, str):
        return Reject("invalid address_tag: not text")
    try:
        validate_new_intent(
            coin=intent.coin,
            network=intent.network,
            address=intent.address,
            amount=intent.amount,
            address_tag=intent.address_tag,
            account=intent.account,
        )
    except InvalidField as exc:
        return Reject(f"invalid {exc.field}: {exc.problem}")
    return Pass()


def check_network_rules(intent: Intent, coins: dict[str, CoinConfig]) -> Verdict:
    coin = coins.get(intent.coin)
    if coin is None:
        return Reject(f"the exchange has no coin {intent.coin}")
    rule = coin.network(intent.network)
    if rule is None:
        known = ", ".join(n.network for n in coin.networks) or "none"
        return Reject(f"{intent.coin} has no network {intent.network} (known: {known})")
    where = f"{intent.coin} on {intent.network}"
    if not coin.withdraw_all_enable or not rule.withdraw_enable:
        detail = f": {rule.withdraw_desc}" if rule.withdraw_desc else ""
        return Hold(f"withdrawals of {where} are disabled by the exchange{detail}")
    amount = intent.amount
    if amount < rule.withdraw_min:
        return Reject(
            f"amount {format_amount(amount)} is below the minimum "
            f"{format_amount(rule.withdraw_min)} for {where}"
        )
    if rule.withdraw_max > 0 and amount > rule.withdraw_max:
        return Reject(
            f"amount {format_amount(amount)} is above the maximum "
            f"{format_amount(rule.withdraw_max)} for {where}"
        )
    if not is_multiple(amount, rule.withdraw_multiple):
        return Reject(
            f"amount {format_amount(amount)} is not a multiple of "
            f"{format_amount(rule.withdraw_multiple)} for {where}"
        )
    if rule.withdraw_multiple <= 0 and decimals(amount) > 18:
        return Reject(f"amount {format_amount(amount)} has too many decimals")
    if amount <= rule.withdraw_fee:
        return Reject(
            f"amount {format_amount(amount)} does not exceed the fee "
            f"{format_amount(rule.withdraw_fee)} for {where}"
        )
    return _check_address(intent, rule.address_regex, rule.memo_regex, rule.memo_required, where)


def _check_address(
    intent: Intent, address_regex: str, memo_regex: str, memo_required: bool | None, where: str
) -> Verdict:
    """``memo_required`` is the network's ``withdrawTag``: True, a tag is required; False,
    a tag is refused (Binance answers -4106 whatever ``memoRegex`` says); None, the
    exchange did not say (an answer from before the field existed): a tag is then
    accepted only where a memo pattern exists."""
    if address_regex:
        pattern = _compile(address_regex)
        if pattern is None:
            return Hold(f"the exchange's address pattern for {where} cannot be used; retrying")
        if not pattern.fullmatch(intent.address):
            return Reject(f"address does not match the pattern for {where}")
    tag = intent.address_tag
    if memo_required and not tag:
        return Reject(f"{where} needs a memo/tag (address_tag) and none was given")
    if tag and memo_required is False:
        return Reject(f"{where} takes no memo/tag (withdrawTag is false), but address_tag is set")
    if tag and memo_required is None and not memo_regex:
        return Reject(f"{where} takes no memo/tag, but address_tag is set")
    if tag and memo_regex:
        pattern = _compile(memo_regex)
        if pattern is not None and not pattern.fullmatch(tag):
            return Reject(f"address_tag does not match the memo pattern for {where}")
    return Pass()


def account_status_normal(text: str) -> bool:
    """``GET /sapi/v1/account/status`` answers ``Normal``; anything else is a restriction
    described in the exchange's own words."""
    return text.strip().lower() == "normal"


def check_travel_rule(
    account: str, code: str | None, *, profile: str | None, questionnaire: str | None
) -> Verdict:
    """An account under a Binance local entity sends through
    ``localentity/withdraw/apply`` with the entity's questionnaire: the intent's own
    (``questionnaire``) or its address-book entry's ``profile`` (both as stored). A
    questionnaire that is missing or that the entity's form refuses is refused here, with
    the field named, before any call; an entity whose form is not modelled holds the intent.
    ``code`` is what ``questionnaire-requirements`` answered (None: no questionnaire)."""
    if code is None:
        return Pass()
    entity = entity_of_exchange_code(code)
    if entity is None:
        return Hold(
            f"account {account} is under Binance's local entity {code}, whose travel-rule "
            "questionnaire this version does not model (it does JP, and EU for PL and FR); "
            "the intent waits (README, travel rule)"
        )
    try:
        questionnaire_of(entity, profile, questionnaire)
    except InvalidField as exc:
        return Reject(f"travel rule ({entity.value} questionnaire) {exc}")
    return Pass()


def check_account(
    status: SystemStatus,
    account: AccountInfo,
    restrictions: ApiRestrictions,
    account_status: str = "Normal",
) -> Verdict:
    if not status.normal:
        return Hold(f"the exchange is in maintenance ({status.message or 'system status 1'})")
    if not account_status_normal(account_status):
        return Hold(f"the exchange reports the account as restricted: {account_status[:200]!r}")
    if not account.can_withdraw:
        return Hold("the account may not withdraw now (canWithdraw is false)")
    if not restrictions.enable_withdrawals:
        return Hold("the API key does not allow withdrawals (enableWithdrawals is false)")
    return Pass()


def network_fee(intent: Intent, coins: dict[str, CoinConfig]) -> Decimal:
    """The ``withdrawFee`` of the intent's network (0 when the rules lack it: then the
    network checks have refused the intent already)."""
    coin = coins.get(intent.coin)
    rule = coin.network(intent.network) if coin is not None else None
    return rule.withdraw_fee if rule is not None else Decimal(0)


def check_balance(
    intent: Intent,
    wallet: Wallet,
    free: Decimal,
    reserved: Decimal,
    *,
    fee: Decimal,
    fee_payer: FeePayer,
) -> Verdict:
    """``free``: the coin's free balance in the wallet the send will debit (the other
    wallet's funds do not count: Binance refuses with -4026); ``reserved``: amounts of
    it already committed from that wallet but not yet seen debited; ``fee``: the
    network's ``withdrawFee``.

    The balance must cover the most the send can take (``most_debited``): the amount,
    plus the fee when the sender pays an internal transfer's fee, because any
    destination may turn out to be a Binance account.
    """
    left = free - reserved
    need = most_debited(intent.amount, fee, fee_payer)
    if left < need:
        wanted = format_amount(intent.amount)
        if need != intent.amount:
            wanted = (
                f"{wanted} + fee {format_amount(fee)} (this account's sender pays an internal "
                "transfer's fee on top of the amount, and the destination may be a Binance "
                "account)"
            )
        return Hold(
            f"free {intent.coin} balance in the {wallet} wallet "
            f"{format_amount(max(left, Decimal(0)))} does not cover {wanted}"
        )
    return Pass()


def whitelist_usable_from(
    *,
    source: str,
    created_at: datetime,
    usable_from: datetime | None,
    seen_on_exchange: bool,
    cooling_s: float,
) -> datetime | None:
    """When an address-book entry may first be sent to (None: already).

    Only the daemon's own facts count, never a column a SQL writer controls: an entry is
    trusted at once only when it says it came from the exchange *and* this process's latest
    sync of the account found it there (``seen_on_exchange``). Every other entry (added by
    hand, by raw SQL, or a ``source='exchange'`` row the sync never saw) cools for
    ``cooling_s`` from its ``created_at``, which the database sets. A later ``usable_from``
    is honoured; an earlier one cannot shorten the cooling.
    """
    if source == "exchange" and seen_on_exchange:
        return usable_from
    if cooling_s <= 0:
        return usable_from
    start = created_at + timedelta(seconds=cooling_s)
    return start if usable_from is None or usable_from < start else usable_from


def whitelist_approvals_needed(*, source: str, seen_on_exchange: bool, required: int) -> int:
    """How many second persons must approve an address-book entry before it is used.

    None for an entry this process's sync saw on the exchange's own address book: adding
    it there took Binance's own confirmation, which is the second factor. Every other
    entry (added by hand, by SQL, or an exchange row the sync never saw) needs the
    policy's ``address_book_approvals_required``; the trust is the same as for cooling.
    """
    if source == "exchange" and seen_on_exchange:
        return 0
    return max(required, 0)


def check_whitelist_approvals(entry_id: int, required: int, approved: Sequence[str]) -> Verdict:
    """``approved``: who validly approved the entry's current version (never its adder)."""
    have = len(approved)
    if have >= required:
        return Pass()
    more = required - have
    return Hold(
        f"entry {entry_id} needs {more} more approval{'s' if more > 1 else ''} "
        f"({have} of {required}): treasury whitelist approve {entry_id}"
    )


def check_whitelist(
    intent: Intent, entry_enabled: bool | None, usable_from: datetime | None, now: datetime
) -> Verdict:
    """``entry_enabled`` is None when the destination is not in the mirror at all."""
    dest = f"{intent.coin}/{intent.network} {intent.address}" + (
        f" tag {intent.address_tag}" if intent.address_tag else ""
    )
    if entry_enabled is None:
        return Reject(f"{dest} is not in the local whitelist")
    if not entry_enabled:
        return Reject(f"{dest} is disabled in the local whitelist")
    if usable_from is not None and usable_from > now:
        return Hold(
            f"{dest} is still cooling: usable from {usable_from:%Y-%m-%d %H:%M:%S} UTC",
            until_s=usable_from.timestamp(),
        )
    return Pass()
