"""The exchange as the record of what happened: one rule for any history record of ours.

The ledger says what we *meant* to send; the exchange's ``withdraw/history`` says what
*was* sent. They can disagree after a restore from backup (intents come back ``queued``
that were sent since), a failover to a lagging replica, a history record that showed up
later than any margin allowed for, or a mistake. Every record that carries an order id
of this ledger's namespace is judged here, by whoever read it (the settle poll, the
periodic sweep, ``treasury reconcile``), against the intent that owns its order id:

* consistent — the intent already knows this withdrawal (or is being sent and will);
* adopt — the intent was not (known to be) sent, and the record matches it: the ledger
  takes the exchange's word; it is never sent again;
* attention — a non-terminal intent that the record contradicts (it does not match, or
  it belongs to another account): a person must look, and the account stops sending;
* duplicate — the intent already has another withdrawal: the alarm that must never ring;
* disagreement — a terminal intent the exchange contradicts (cancelled here, completed
  there): an alarm with both sides;
* unknown — no intent of this ledger owns the order id: the ledger is behind the
  exchange (restored, or a lagging replica); the account stops sending until a person
  has looked, and the order id is never used again.

Pure: no I/O. The caller finds the owner (by exact order id, else by the intent id the
order id names, when that intent has not fixed an order id of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.intent import Intent
from treasury.domain.money import format_amount
from treasury.domain.reconcile import matches, mismatch
from treasury.domain.settle import settled_status
from treasury.domain.status import Status

NOT_YET_SENT = frozenset({Status.QUEUED, Status.AWAITING_APPROVAL, Status.SUBMITTING})


@dataclass(frozen=True)
class Consistent:
    pass


@dataclass(frozen=True)
class Adopt:
    intent: Intent
    record: WithdrawalRecord


@dataclass(frozen=True)
class Attention:
    """A non-terminal intent that the exchange contradicts: needs a person; pause."""

    intent: Intent
    record: WithdrawalRecord
    reason: str


@dataclass(frozen=True)
class Duplicate:
    intent: Intent
    record: WithdrawalRecord


@dataclass(frozen=True)
class Disagreement:
    """A terminal intent that the exchange contradicts. ``pause`` when the ledger is
    behind (the intent never knew of this withdrawal)."""

    intent: Intent
    record: WithdrawalRecord
    reason: str
    pause: bool


@dataclass(frozen=True)
class Unknown:
    record: WithdrawalRecord
    intent_id: int | None
    reason: str


@dataclass(frozen=True)
class Noted:
    """An intent already waiting for a person: the record is added to what they see."""

    intent: Intent
    record: WithdrawalRecord
    reason: str


Judgement = Consistent | Adopt | Attention | Duplicate | Disagreement | Unknown | Noted


def describe(record: WithdrawalRecord) -> str:
    """One line that names a withdrawal as an operator finds it on the exchange."""
    tag = f" tag {record.address_tag}" if record.address_tag else ""
    return (
        f"withdrawal {record.id} ({record.withdraw_order_id or 'no withdrawOrderId'}): "
        f"{format_amount(record.amount)} {record.coin} + fee {format_amount(record.fee)} "
        f"on {record.network or '?'} to {record.address}{tag}, exchange status {record.status}"
    )


def judge(
    record: WithdrawalRecord, owner: Intent | None, *, account: str, intent_id: int | None
) -> Judgement:
    """What ``record`` (read from ``account``'s history) means for the ledger.

    Args:
        owner: the intent that owns the record's order id, or None.
        intent_id: the intent id the order id names (None when it names none).
    """
    if owner is None:
        named = f"intent {intent_id}" if intent_id is not None else "no intent"
        return Unknown(
            record,
            intent_id,
            (
                f"the exchange has {describe(record)}, which no intent of this ledger owns "
                f"(its order id names {named}): the ledger is behind the exchange — restored "
                "from a backup, or a replica that lost recent writes?"
            ),
        )
    if owner.account != account:
        return _contradiction(
            owner,
            record,
            (
                f"the exchange account {account!r} has {describe(record)}, but intent "
                f"{owner.id} belongs to account {owner.account!r}"
            ),
        )
    if owner.exchange_withdraw_id is not None:
        if owner.exchange_withdraw_id != record.id:
            return Duplicate(owner, record)
        return _same_withdrawal(owner, record)
    if owner.exchange_tr_id is not None:
        # sent through the local entity: the apply answered with a travel-rule record id,
        # and the withdrawal's own id is learnt from a history (the settlement poll)
        if record.tr_id is not None and record.tr_id != owner.exchange_tr_id:
            return Duplicate(owner, record)
        if not matches(owner, record):
            return Attention(
                owner,
                record,
                (
                    f"the exchange has {describe(record)} under this intent's order id, and "
                    f"it does not match the intent ({mismatch(owner, record)})"
                ),
            )
        return _same_withdrawal(owner, record)
    if owner.status in NOT_YET_SENT:
        if matches(owner, record):
            return Adopt(owner, record)
        return Attention(
            owner,
            record,
            (
                f"the exchange has {describe(record)} under this intent's order id, and it "
                f"does not match the intent ({mismatch(owner, record)})"
            ),
        )
    if owner.status is Status.NEEDS_ATTENTION:
        fit = "matches" if matches(owner, record) else f"does not match: {mismatch(owner, record)}"
        return Noted(owner, record, f"the exchange has {describe(record)}; it {fit}")
    return _contradiction(
        owner,
        record,
        (
            f"intent {owner.id} is {owner.status.value} without any exchange withdrawal, but the "
            f"exchange has {describe(record)}"
        ),
    )


def _contradiction(owner: Intent, record: WithdrawalRecord, reason: str) -> Judgement:
    if owner.status.terminal:
        return Disagreement(owner, record, reason, pause=True)
    return Attention(owner, record, reason)


def _same_withdrawal(owner: Intent, record: WithdrawalRecord) -> Judgement:
    """The intent knows this withdrawal: do the two sides agree on how it ended?"""
    if not owner.status.terminal:
        return Consistent()  # the settle poll takes it to the end
    settled = settled_status(record)
    there = settled[0] if settled is not None else None
    if there is owner.status:
        return Consistent()
    seen = there.value if there is not None else "it still pending"
    return Disagreement(
        owner,
        record,
        (
            f"intent {owner.id} is {owner.status.value} here, but the exchange reports "
            f"{seen} for {describe(record)}"
        ),
        pause=False,
    )
