"""A dry run of a new intent: every check the worker makes before a send, nothing written,
nothing asked of the exchange.

The exchange's facts come from the daemon's published view (``domain.view_snapshot``);
without one, or with one older than ``max_age_s``, the checks that need them answer
``unknown``. The verdicts are the worker's own pure functions (``domain.rules``,
``services.policy``): preview never decides differently, only from older facts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from treasury.domain import approval_proof as proof
from treasury.domain import rules
from treasury.domain.decisions import Hold, Pass, Verdict
from treasury.domain.exchange import AccountInfo, ApiRestrictions, SystemStatus
from treasury.domain.intent import Intent
from treasury.domain.status import Status
from treasury.domain.validation import NewIntent
from treasury.domain.view_snapshot import ViewSnapshot
from treasury.ports.store import Ledger, passkeys_by_operator
from treasury.services.policy import PolicySnapshot

MAX_AGE_S = 300.0
Usage = Callable[[Intent, datetime], Awaitable[tuple[Decimal, Decimal]]]
OperatorKeys = Callable[[], Awaitable[dict[str, bytes] | None]]


@dataclass(frozen=True)
class Check:
    name: str
    result: str  # pass | fail | unknown
    reason: str
    effect: str | None = None  # what the worker would do on fail: hold | reject


@dataclass(frozen=True)
class Preview:
    checks: list[Check]
    network_fee: Decimal | None
    snapshot_age_s: float | None

    @property
    def would_send(self) -> bool | None:
        """True: every check passes; False: one fails; None: one is unknown."""
        if any(c.result == "fail" for c in self.checks):
            return False
        return None if any(c.result == "unknown" for c in self.checks) else True


def _check(name: str, verdict: Verdict) -> Check:
    if isinstance(verdict, Pass):
        return Check(name, "pass", "")
    effect = "hold" if isinstance(verdict, Hold) else "reject"
    return Check(name, "fail", verdict.reason, effect)


def as_intent(new: NewIntent, now: datetime) -> Intent:
    """The intent ``new`` would become (id 0: not in the ledger)."""
    return Intent(
        id=0,
        coin=new.coin,
        network=new.network,
        address=new.address,
        address_tag=new.address_tag,
        amount=new.amount,
        account=new.account,
        request_id=new.request_id,
        requested_by=new.requested_by,
        note=new.note,
        status=Status.QUEUED,
        status_reason="preview",
        withdraw_order_id=None,
        exchange_withdraw_id=None,
        tx_id=None,
        fee=None,
        created_at=now,
        updated_at=now,
        wallet=new.wallet,
        questionnaire=new.questionnaire,
    )


async def preview(
    ledger: Ledger,
    new: NewIntent,
    *,
    snapshot: ViewSnapshot | None,
    policy: PolicySnapshot | None,
    usage: Usage,
    operator_keys: OperatorKeys,
    cooling_s: float,
    now: datetime,
    max_age_s: float = MAX_AGE_S,
) -> Preview:
    intent = as_intent(new, now)
    checks = [_check("fields", rules.check_fields(intent))]
    age = None if snapshot is None else snapshot.age_s(now)
    view = snapshot if snapshot is not None and age is not None and age <= max_age_s else None
    why_unknown = (
        "no exchange view published by the daemon (is `treasury run` serving this account?)"
        if snapshot is None
        else f"the daemon's exchange view is {age:.0f} s old (more than {max_age_s:.0f} s)"
    )

    def unknown(name: str, reason: str = why_unknown) -> Check:
        return Check(name, "unknown", reason)

    # the account's standing and quota
    if view is None or view.standing is None:
        checks.append(unknown("account_standing"))
    else:
        s = view.standing
        checks.append(
            _check(
                "account_standing",
                rules.check_account(
                    SystemStatus(normal=s.system_normal, message=""),
                    AccountInfo(can_withdraw=s.can_withdraw, can_trade=True, can_deposit=True),
                    ApiRestrictions(
                        ip_restrict=False,
                        enable_withdrawals=s.enable_withdrawals,
                        enable_reading=True,
                    ),
                    s.account_status,
                ),
            )
        )
    if view is None or view.quota is None:
        checks.append(unknown("quota"))
    elif view.quota.remaining <= 0:
        q = view.quota
        checks.append(
            Check(
                "quota",
                "fail",
                f"the 24 h withdraw quota is used up ({q.used} of {q.quota} USD)",
                "hold",
            )
        )
    else:
        checks.append(Check("quota", "pass", ""))
    # network rules and fee
    fee: Decimal | None = None
    if view is None:
        checks.append(unknown("network_rules"))
    else:
        checks.append(_check("network_rules", rules.check_network_rules(intent, view.coins)))
        coin = view.coins.get(intent.coin)
        if coin is not None and coin.network(intent.network) is not None:
            fee = rules.network_fee(intent, view.coins)
    # the address book: enabled, cooled, approved
    entry = await ledger.whitelist.find(
        intent.coin, intent.network, intent.address, intent.address_tag, account=intent.account
    )
    usable_from = (
        None
        if entry is None
        else rules.whitelist_usable_from(
            source=entry.source,
            created_at=entry.created_at,
            usable_from=entry.usable_from,
            # this process never syncs: every entry is judged as one added by hand
            seen_on_exchange=False,
            cooling_s=cooling_s,
        )
    )
    book = rules.check_whitelist(intent, None if entry is None else entry.enabled, usable_from, now)
    if entry is not None and isinstance(book, Pass) and policy is not None:
        required = rules.whitelist_approvals_needed(
            source=entry.source,
            seen_on_exchange=False,
            required=policy.address_book_approvals_required,
        )
        if required:
            recorded = [
                proof.Approval(a.approver, a.signature, a.created_at)
                for a in await ledger.whitelist.approvals(entry_id=entry.id)
                if a.entry_version == entry.version
            ]
            added = [
                e.actor
                for e in await ledger.whitelist.history(entry_id=entry.id)
                if e.kind == "add"
            ]
            counted = proof.count_entry(
                entry,
                recorded,
                await operator_keys(),
                makers=[m for m in (*added[:1], entry.changed_by) if m],
                passkeys=passkeys_by_operator(
                    await ledger.passkeys.all(), await ledger.operators.all()
                ),
            )
            book = rules.check_whitelist_approvals(entry.id, required, counted.valid)
    checks.append(_check("address_book", book))
    # travel rule
    if view is None or not view.travel_rule_known:
        checks.append(unknown("travel_rule"))
    else:
        checks.append(
            _check(
                "travel_rule",
                rules.check_travel_rule(
                    intent.account,
                    view.travel_rule,
                    profile=None if entry is None else entry.travel_rule_profile,
                    questionnaire=intent.questionnaire,
                ),
            )
        )
    # policy: caps over the last 24 h and approvals (a new intent has none yet)
    if policy is None:
        checks.append(Check("policy", "pass", "no policy in force"))
    else:
        coin_used, dest_used = await usage(intent, now)
        checks.append(_check("policy", policy.decide(intent, coin_used, dest_used, 0)))
    # balance
    if view is None:
        checks.append(unknown("balance"))
    else:
        wallet = intent.wallet or view.wallet
        free = view.free(wallet, intent.coin)
        if free is None:
            checks.append(unknown("balance", f"the {wallet} wallet's balances are not in the view"))
        else:
            checks.append(
                _check(
                    "balance",
                    rules.check_balance(
                        intent,
                        wallet,
                        free,
                        Decimal(0),
                        fee=fee or Decimal(0),
                        fee_payer=view.fee_payer,
                    ),
                )
            )
    return Preview(checks=checks, network_fee=fee, snapshot_age_s=age)
