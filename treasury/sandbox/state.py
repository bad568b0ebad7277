"""The exchange's state: accounts, network rules, withdrawals — rebuilt from the journal.

One rule keeps restarts exact: state changes *only* by applying a journal record
(:meth:`Exchange._apply`), both live (journal first, then apply) and on start (replay of
the file over the config). Balances refunded by a failed, rejected or cancelled
withdrawal are settled lazily from a heap ordered by settle time, and settled up to each
record's time before it is applied, so an admin "set balance" lands identically live and
on replay. A withdrawal debits, and its refund credits, the wallet its record names
(``walletType``), so replay needs neither the request nor the account's current default.
An internal transfer to a sandbox account credits the recipient when it completes, from
the same heap, in the wallet its record names (``recipientWalletType``).

All methods are synchronous and the server runs them on one event loop, so a check and
the booking that follows it can never interleave with another request.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import defaultdict
from decimal import Decimal
from typing import Any

from treasury.sandbox import errors, questionnaire
from treasury.sandbox.accounts import DAY_MS, AccountState
from treasury.sandbox.clock import Clock
from treasury.sandbox.config import WALLETS, NetworkConfig, SandboxConfig, WhitelistEntry
from treasury.sandbox.errors import ApiError
from treasury.sandbox.faults import ApplyFault, Faults
from treasury.sandbox.internal import DepositBook
from treasury.sandbox.ledger import Journal, Record
from treasury.sandbox.localentity import VASP_IDENTIFIERS
from treasury.sandbox.questionnaire import QuestionnaireRefused
from treasury.sandbox.rules import check_apply
from treasury.sandbox.withdrawals import (
    COMPLETED,
    EXTERNAL,
    INTERNAL,
    STATUS_INFO,
    Withdrawal,
    decide_fate,
)

# journal key → NetworkConfig field, for rule changes
NETWORK_FIELDS = {
    "withdrawEnable": "withdraw_enable",
    "withdrawFee": "withdraw_fee",
    "withdrawMin": "withdraw_min",
    "withdrawMax": "withdraw_max",
    "withdrawIntegerMultiple": "withdraw_integer_multiple",
    "withdrawDesc": "withdraw_desc",
    "withdrawTag": "withdraw_tag",
    "memoRegex": "memo_regex",
    "addressRegex": "address_regex",
    "withdrawInternalMin": "withdraw_internal_min",
    "internal_fee": "internal_fee",
}
DECIMAL_FIELDS = {
    "withdrawFee",
    "withdrawMin",
    "withdrawMax",
    "withdrawIntegerMultiple",
    "withdrawInternalMin",
    "internal_fee",
}
_AFTER_FAULTS = ("drop_after_accept", "error_5xx_after", "error_code_after")
TR_ID_BASE = 765_000_000  # trId = base + the withdrawal's sequence number
NOT_REQUIRED_INFO = "Travel rule questionnaire is not required for this account."


class ReplayError(ValueError):
    """The state file holds records the current config cannot take (unknown account…)."""


@dataclasses.dataclass(frozen=True)
class Submission:
    """The outcome of one ``withdraw/apply`` that passed authentication."""

    withdrawal: Withdrawal | None
    error: ApiError | None
    delay_after: ApplyFault | None = None
    after_fault: tuple[str, ApplyFault] | None = None
    refusal: str | None = None  # a local-entity apply refused for its questionnaire


class Exchange:
    def __init__(self, config: SandboxConfig, *, clock: Clock, journal: Journal, faults: Faults):
        self.config = config
        self.clock = clock
        self.journal = journal
        self.faults = faults
        self.accounts = {name: AccountState.from_config(a) for name, a in config.accounts.items()}
        self.by_api_key = {a.config.api_key: a for a in self.accounts.values()}
        self.deposits = DepositBook(config)
        self.networks: dict[tuple[str, str], NetworkConfig] = {
            (c.coin, n.network): n for c in config.coins.values() for n in c.networks
        }
        self.withdrawals: list[Withdrawal] = []
        self.by_id: dict[str, Withdrawal] = {}
        self.by_account: dict[str, list[Withdrawal]] = defaultdict(list)
        self.by_order_id: dict[tuple[str, str], list[Withdrawal]] = defaultdict(list)
        self._pending: list[tuple[int, int, Withdrawal]] = []
        self.seq = 0
        for number, record in enumerate(journal.records, start=1):
            try:
                self.settle(record.get("t", 0))
                self._apply(record)
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                raise ReplayError(
                    f"{journal.path}: record {number} ({record.get('type')!r}) does not fit "
                    f"this config ({exc!r}); start with the config it was written with"
                ) from None
        self.commit({"type": "start", "replayed": len(journal.records)})

    # -- time ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def server_ms(self) -> int:
        """What the exchange believes the time is: the clock plus the injected skew."""
        return self.clock.now_ms() + self.faults.clock_skew_ms

    def settle(self, now_ms: int | None = None) -> None:
        """Give back what withdrawals that have failed by ``now_ms`` took, and credit the
        sandbox recipients of internal transfers that have completed by then."""
        now = self.now_ms() if now_ms is None else now_ms
        while self._pending and self._pending[0][0] <= now:
            _, _, w = heapq.heappop(self._pending)
            if w.refunded(now):
                self.accounts[w.account].move(w.wallet_type, w.coin, w.debited)
            elif w.final_status == COMPLETED and w.recipient is not None:
                assert w.recipient_wallet_type is not None
                self.accounts[w.recipient].move(w.recipient_wallet_type, w.coin, w.net_amount)

    # -- writes -------------------------------------------------------------------------

    def commit(self, *records: Record) -> None:
        """Journal the records (fsync), then apply them: the only way state changes."""
        now = self.now_ms()
        self.settle(now)
        for r in records:
            r.setdefault("t", now)
        self.journal.append(*records)
        for r in records:
            self._apply(r)

    def submit(
        self, account: AccountState, params: dict[str, str], *, local: bool = False
    ) -> Submission:
        """Check and book one withdrawal request, journaling it whatever the outcome.

        ``local``: it came through ``localentity/withdraw/apply``. An account under a local
        entity may withdraw only that way (``capital/withdraw/apply`` answers -4104), and
        its questionnaire must pass before the usual checks (a refusal books nothing).
        """
        now = self.now_ms()
        self.settle(now)
        endpoint = "localentity" if local else "capital"
        country = account.config.local_entity
        if not local and country is not None:
            error = errors.travel_rule_required()
            self.record_apply(account.name, params, error=error)
            return Submission(None, error)
        answered: str | None = None
        if local:
            try:
                if country is None:
                    raise QuestionnaireRefused(NOT_REQUIRED_INFO)
                answered = questionnaire.check(
                    country, params.get("questionnaire"), VASP_IDENTIFIERS
                )
            except QuestionnaireRefused as refusal:
                record = _apply_record(account.name, params, http=200, faults=[])
                self.commit(record | {"endpoint": endpoint, "refused": refusal.info})
                return Submission(None, None, refusal=refusal.info)
        try:
            accepted = check_apply(
                params,
                account=account,
                coins=self.config.coins,
                networks=self.networks,
                maintenance=self.faults.maintenance,
                now_ms=now,
                deposits=self.deposits,
            )
        except ApiError as error:
            self.record_apply(account.name, params, error=error)
            return Submission(None, error)
        internal = accepted.internal
        recipient = internal.recipient if internal is not None else None
        fate = decide_fate(
            self.config.timings.seed,
            self.seq,
            accepted.network.network,
            self.config.timings,
            internal=internal is not None,
        )
        withdrawal = Withdrawal(
            seq=self.seq,
            id=fate.id,
            source="api",
            account=account.name,
            coin=accepted.coin.coin,
            network=accepted.network.network,
            address=accepted.address,
            address_tag=accepted.address_tag,
            amount=accepted.amount,
            fee=accepted.fee,
            withdraw_order_id=accepted.withdraw_order_id,
            name=accepted.name,
            wallet_type=accepted.wallet_type,
            applied_at_ms=now,
            visible_at_ms=now + self.faults.history_lag_ms(),  # journaled: replay never draws
            settle_at_ms=now + fate.settle_after_ms,
            final_status=fate.final_status,
            info=fate.info,
            tx_id=fate.tx_id,
            confirm_no=0 if internal is not None else accepted.network.min_confirm,
            transfer_type=INTERNAL if internal is not None else EXTERNAL,
            fee_to_recipient=accepted.fee_to_recipient,
            recipient=recipient,
            # Binance credits a deposit to the wallet the recipient chose for deposits:
            # fixed (and journaled) at acceptance
            recipient_wallet_type=(
                self.accounts[recipient].default_wallet if recipient is not None else None
            ),
        )
        review = self.faults.fire_review()
        if review is not None:  # journaled in the withdrawal record: replay never fires it
            withdrawal = withdrawal.under_review(
                review.status, review.hold_ms, cancel=review.cancels
            )
        fault_names = ["review"] if review else []
        if local:
            withdrawal, more = self._travel_rule(withdrawal, answered)
            fault_names += more
        delay = self.faults.fire("delay_after_accept_s")
        after = next(
            ((name, f) for name in _AFTER_FAULTS if (f := self.faults.fire(name)) is not None),
            None,
        )
        http: int | None = 200
        if after is not None:
            http = None if after[0] == "drop_after_accept" else after[1].status
        if delay:
            fault_names.append("delay_after_accept_s")
        if after is not None:
            fault_names.append(after[0])
        record = _apply_record(
            account.name, params, wid=withdrawal.id, http=http, faults=fault_names
        )
        self.commit(record | {"endpoint": endpoint}, withdrawal.to_record())
        return Submission(withdrawal, None, delay, after)

    def _travel_rule(self, w: Withdrawal, answered: str | None) -> tuple[Withdrawal, list[str]]:
        """A local-entity withdrawal's travel-rule fields: its ``trId`` (from its sequence
        number, so unique and replay-free), the questionnaire, and what the
        ``travel_rule`` / ``history_only_in`` faults decide (journaled with it)."""
        w = dataclasses.replace(
            w, tr_id=TR_ID_BASE + w.seq, questionnaire=answered, tr_until_ms=w.applied_at_ms
        )
        fired: list[str] = []
        check = self.faults.fire_travel_rule()
        if check is not None:
            w = w.travel_rule_check(check.hold_ms, fail=check.fails)
            fired.append("travel_rule")
        only = self.faults.fire_only_in()
        if only is not None:
            w = dataclasses.replace(w, only_in=only.history)
            fired.append("history_only_in")
        return w, fired

    def record_apply(
        self,
        account: str | None,
        params: dict[str, str],
        *,
        error: ApiError,
        fault: str | None = None,
        local: bool = False,
    ) -> None:
        record = _apply_record(account, params, error=error, faults=[fault] if fault else [])
        self.commit(record | {"endpoint": "localentity" if local else "capital"})

    def new_foreign_withdrawal(self, spec: dict[str, Any]) -> Withdrawal:
        """Book a withdrawal nobody asked for through ``apply`` (``spec`` is validated)."""
        now = self.now_ms()
        network = self.networks[(spec["coin"], spec["network"])]
        fate = decide_fate(self.config.timings.seed, self.seq, network.network, self.config.timings)
        applied = spec.get("applied_at_ms", now)
        settle_at = spec.get("settle_at_ms", applied + fate.settle_after_ms)
        status = spec.get("status", fate.final_status)
        withdrawal = Withdrawal(
            seq=self.seq,
            id=spec.get("id") or fate.id,
            source="foreign",
            account=spec["account"],
            coin=spec["coin"],
            network=spec["network"],
            address=spec["address"],
            address_tag=spec.get("addressTag"),
            amount=Decimal(spec["amount"]),
            fee=network.withdraw_fee,
            withdraw_order_id=spec.get("withdrawOrderId"),
            name=None,
            wallet_type=spec.get("walletType", self.accounts[spec["account"]].default_wallet),
            applied_at_ms=applied,
            visible_at_ms=applied,
            settle_at_ms=settle_at,
            final_status=status,
            info=STATUS_INFO.get(status, ""),
            tx_id=fate.tx_id,
            confirm_no=network.min_confirm,
        )
        record = withdrawal.to_record() | {"debit": bool(spec.get("debit", True))}
        self.commit(record)
        return withdrawal

    # -- replayable application of one record --------------------------------------------

    def _apply(self, r: Record) -> None:
        kind = r["type"]
        if kind == "withdrawal":
            self._book(Withdrawal.from_record(r), debit=r.get("debit", True))
        elif kind == "network":
            key = (r["coin"], r["network"])
            changes: dict[str, Any] = {
                NETWORK_FIELDS[k]: Decimal(v) if k in DECIMAL_FIELDS else v
                for k, v in r["changes"].items()
            }
            self.networks[key] = dataclasses.replace(self.networks[key], **changes)
        elif kind == "account":
            self._apply_account(self.accounts[r["account"]], r["changes"])
        elif kind == "whitelist":
            acc, e = self.accounts[r["account"]], r["entry"]
            acc.remove_whitelisted(e["coin"], e["network"], e["address"], e.get("addressTag"))
            if r["action"] == "add":
                acc.whitelist.append(
                    WhitelistEntry(
                        coin=e["coin"],
                        network=e["network"],
                        address=e["address"],
                        address_tag=e.get("addressTag") or None,
                        name=e.get("name", ""),
                        origin=e.get("origin", ""),
                        origin_type=e.get("originType", "others"),
                        whitelisted=e.get("whitelisted", True),  # absent in older journals
                    )
                )
        elif kind == "clock":
            self.clock.advance(r["advance_ms"])

    def _book(self, w: Withdrawal, *, debit: bool) -> None:
        self.withdrawals.append(w)
        self.by_id[w.id] = w
        self.by_account[w.account].append(w)
        if w.withdraw_order_id is not None:
            self.by_order_id[(w.account, w.withdraw_order_id)].append(w)
        self.seq = max(self.seq, w.seq + 1)
        if debit:
            acc = self.accounts[w.account]
            acc.move(w.wallet_type, w.coin, -w.debited)
            usd = w.amount * self.config.coins[w.coin].usd_price
            if w.applied_at_ms > self.now_ms() - DAY_MS:
                acc.add_quota_use(w.applied_at_ms, usd)
            heapq.heappush(self._pending, (w.settle_at_ms, w.seq, w))

    @staticmethod
    def _apply_account(acc: AccountState, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key == "canWithdraw":
                acc.can_withdraw = value
            elif key == "canTrade":
                acc.can_trade = value
            elif key == "canDeposit":
                acc.can_deposit = value
            elif key == "whitelist_enabled":
                acc.whitelist_enabled = value
            elif key == "quota_usd":
                acc.quota_usd = Decimal(value)
            elif key == "apiRestrictions":
                acc.api_restrictions.update(value)
            elif key == "balances":
                acc.balances.update({coin: Decimal(v) for coin, v in value.items()})
            elif key == "funding_balances":
                acc.funding_balances.update({coin: Decimal(v) for coin, v in value.items()})
            elif key == "default_wallet":
                acc.default_wallet = WALLETS[value]
            elif key == "account_status":
                acc.account_status = value


def _apply_record(
    account: str | None,
    params: dict[str, str],
    *,
    wid: str | None = None,
    error: ApiError | None = None,
    http: int | None = None,
    faults: list[str],
) -> Record:
    return {
        "type": "apply",
        "account": account,
        "params": params,
        "id": wid,
        "code": error.code if error else None,
        "http": error.http_status if error else http,
        "fault": ",".join(faults) or None,
    }
