"""All checks before a send, in order, each a pure verdict over fetched facts."""

from __future__ import annotations

from treasury.domain import rules
from treasury.domain.decisions import Hold, Pass, Verdict
from treasury.domain.fee_payer import FeePayer
from treasury.domain.intent import Intent
from treasury.domain.wallet import Wallet
from treasury.ports.clock import utcnow
from treasury.ports.store import AddressBook
from treasury.services.address_book import Trust
from treasury.services.exchange_view import ExchangeView


async def pre_send_verdict(
    intent: Intent,
    view: ExchangeView,
    whitelist: AddressBook,
    *,
    wallet: Wallet,
    fee_payer: FeePayer,
    trust: Trust,
) -> Verdict:
    """Fields → account standing → network rules → whitelist → travel rule → balance.

    The balance is the wallet's cached free figure less what was committed to sends
    since it was read (``view.reserved``). Policy (caps, approvals) is decided inside the
    commit transaction, not here.
    """
    verdict = rules.check_fields(intent)
    if not isinstance(verdict, Pass):
        return verdict
    verdict = rules.check_account(
        await view.system_status(),
        await view.account(),
        await view.restrictions(),
        await view.account_status(),
    )
    if not isinstance(verdict, Pass):
        return verdict
    quota = await view.quota()
    if quota.remaining <= 0:
        # The quota is in USD and the capital API gives no price, so the service cannot
        # tell whether one intent fits; it holds everything once the quota is used up.
        return Hold(f"the 24 h withdraw quota is used up ({quota.used} of {quota.quota} USD)")
    coins = await view.rules()
    verdict = rules.check_network_rules(intent, coins)
    if not isinstance(verdict, Pass):
        return verdict
    entry = await whitelist.find(
        intent.coin, intent.network, intent.address, intent.address_tag, account=intent.account
    )
    verdict = rules.check_whitelist(
        intent,
        None if entry is None else entry.enabled,
        None if entry is None else await trust.usable_from(entry, intent_id=intent.id),
        utcnow(),
    )
    if not isinstance(verdict, Pass):
        return verdict
    verdict = rules.check_travel_rule(
        intent.account,
        await view.travel_rule(),
        profile=None if entry is None else entry.travel_rule_profile,
        questionnaire=intent.questionnaire,
    )
    if not isinstance(verdict, Pass):
        return verdict
    fee = rules.network_fee(intent, coins)
    free = await view.free(wallet, intent.coin)
    reserved = view.reserved(wallet, intent.coin)
    verdict = rules.check_balance(intent, wallet, free, reserved, fee=fee, fee_payer=fee_payer)
    if isinstance(verdict, Pass):
        return verdict
    # not covered by a read that may be old: read again (at most every few seconds); a
    # new read forgets what was committed before it, so ``reserved`` is taken again
    free = await view.free_now(wallet, intent.coin)
    reserved = view.reserved(wallet, intent.coin)
    return rules.check_balance(intent, wallet, free, reserved, fee=fee, fee_payer=fee_payer)
