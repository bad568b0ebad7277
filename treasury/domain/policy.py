"""Withdrawal policy: per-coin limits, rolling 24 h caps and approvals, as pure decisions.

``decide`` looks at one intent, the policy and what is already committed, and
returns a value saying what must happen to the intent; it never raises and never
does I/O, so the worker, the approvals service and the CLI all get the same
answer from the same inputs. The caller computes ``Usage`` (committed amounts
in the last 24 h, excluding the intent being decided) inside the transaction
that then acts on the decision, so two workers cannot both spend the same room.

Sums are computed in an exact decimal context: the default 28-digit context
would round ``usage + amount`` for large amounts with many decimals, and a cap
check that rounds can let an intent slip past its cap.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from types import MappingProxyType

from treasury.domain.decisions import Approve, Hold, Pass, Reject, Verdict
from treasury.domain.errors import InvalidField
from treasury.domain.money import format_amount
from treasury.domain.validation import COIN_RE

MAX_APPROVALS = 10
ZERO = Decimal(0)
# An intent that waits for approvals fails after this long (from its creation): an old
# request approved late pays against a situation that has changed (the destination, the
# price, who asked). Three days cover a weekend; a policy may set 1 to 720 hours.
DEFAULT_APPROVAL_EXPIRY_HOURS = 72
MAX_APPROVAL_EXPIRY_HOURS = 720


def _check_limit(name: str, value: Decimal | None) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal):
        raise InvalidField(name, f"must be a Decimal, got {type(value).__name__}")
    if not value.is_finite() or value <= 0:
        raise InvalidField(name, f"must be a finite amount greater than 0, got {value}")


@dataclass(frozen=True, kw_only=True)
class CoinPolicy:
    """Limits for one coin, in the coin's own units; ``None`` means "no limit".

    ``daily_cap`` bounds what one account commits in a rolling 24 h window;
    ``destination_daily_cap`` bounds the same per (coin, network, address, tag).
    Intents strictly above ``approval_threshold`` need ``approvals_required``
    distinct approvals.
    """

    max_per_intent: Decimal | None = None
    daily_cap: Decimal | None = None
    destination_daily_cap: Decimal | None = None
    approval_threshold: Decimal | None = None
    approvals_required: int = 1

    def __post_init__(self) -> None:
        _check_limit("max_per_intent", self.max_per_intent)
        _check_limit("daily_cap", self.daily_cap)
        _check_limit("destination_daily_cap", self.destination_daily_cap)
        _check_limit("approval_threshold", self.approval_threshold)
        required = self.approvals_required
        if isinstance(required, bool) or not isinstance(required, int):
            raise InvalidField("approvals_required", "must be a whole number")
        if not 1 <= required <= MAX_APPROVALS:
            raise InvalidField(
                "approvals_required", f"must be between 1 and {MAX_APPROVALS}, got {required}"
            )


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Per-coin policies, a fallback for unlisted coins, or a refusal of them.

    A listed coin's policy replaces ``default`` entirely; nothing is inherited.
    ``policy_changes_need_approval`` is about the policy itself: while the version in
    force says so, a new version waits for a second person before it takes effect.
    """

    coins: Mapping[str, CoinPolicy] = field(default_factory=dict)
    default: CoinPolicy | None = None
    deny_unlisted_coins: bool = False
    approval_expiry_hours: int = DEFAULT_APPROVAL_EXPIRY_HOURS
    # second persons who must approve an address-book entry added by hand before it is
    # used (0: none; the cooling period alone applies)
    address_book_approvals_required: int = 0
    policy_changes_need_approval: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.policy_changes_need_approval, bool):
            raise InvalidField("policy_changes_need_approval", "must be true or false")
        book = self.address_book_approvals_required
        if isinstance(book, bool) or not isinstance(book, int):
            raise InvalidField("address_book_approvals_required", "must be a whole number")
        if not 0 <= book <= MAX_APPROVALS:
            raise InvalidField(
                "address_book_approvals_required",
                f"must be between 0 and {MAX_APPROVALS}, got {book}",
            )
        hours = self.approval_expiry_hours
        if isinstance(hours, bool) or not isinstance(hours, int):
            raise InvalidField("approval_expiry_hours", "must be a whole number of hours")
        if not 1 <= hours <= MAX_APPROVAL_EXPIRY_HOURS:
            raise InvalidField(
                "approval_expiry_hours",
                f"must be between 1 and {MAX_APPROVAL_EXPIRY_HOURS}, got {hours}",
            )
        for coin in self.coins:
            if not isinstance(coin, str) or not COIN_RE.fullmatch(coin):
                raise InvalidField("coins", f"{coin!r} is not an upper-case asset symbol")
        # A read-only copy: the caller's dict must not change a policy in use.
        object.__setattr__(self, "coins", MappingProxyType(dict(self.coins)))

    @classmethod
    def permissive(cls) -> Policy:
        """No limits at all: every coin and amount is allowed."""
        return cls()

    def allows_coin(self, coin: str) -> bool:
        return not self.deny_unlisted_coins or coin in self.coins

    def for_coin(self, coin: str) -> CoinPolicy | None:
        """The coin's own policy, else ``default``; ``None`` when no limits apply.

        Whether the coin may be withdrawn at all is ``allows_coin``.
        """
        if coin in self.coins:
            return self.coins[coin]
        if self.deny_unlisted_coins:
            return None
        return self.default


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Amounts already committed in the last 24 h, not counting the intent being decided.

    Committed means submitting, submitted, completed or needs_attention: the
    outcome of a needs_attention intent is unknown, so it still counts.
    """

    coin_24h: Decimal
    destination_24h: Decimal

    def __post_init__(self) -> None:
        for name in ("coin_24h", "destination_24h"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise InvalidField(name, f"must be a finite Decimal ≥ 0, got {value!r}")

    @classmethod
    def zero(cls) -> Usage:
        return cls(coin_24h=ZERO, destination_24h=ZERO)


def approvals_needed(amount: Decimal, coin_policy: CoinPolicy | None) -> int:
    """Approvals an intent of ``amount`` needs: 0 at or under the threshold (or without one)."""
    if coin_policy is None or coin_policy.approval_threshold is None:
        return 0
    if amount > coin_policy.approval_threshold:
        return coin_policy.approvals_required
    return 0


def decide(*, coin: str, amount: Decimal, policy: Policy, usage: Usage, approvals: int) -> Verdict:
    """Decide what happens to one intent. The first rule that applies wins:

    1. the coin is not allowed (``deny_unlisted_coins`` and not listed) → ``Reject``;
    2. ``amount > max_per_intent`` → ``Reject``;
    3. ``amount > daily_cap``, then ``amount > destination_daily_cap``: it could never
       fit even with nothing else sent → ``Reject``;
    4. ``amount > approval_threshold`` and ``approvals < approvals_required`` →
       ``Approve`` (approvals are gathered before the caps are looked at, so
       an approved intent only waits for room);
    5. ``usage.coin_24h + amount > daily_cap``, then the same per destination →
       ``Hold``, naming the cap, the amount used and the room left;
    6. otherwise ``Pass``.

    A non-finite or non-positive amount is rejected rather than raised on. Caps
    are inclusive: an intent that fills a cap exactly is allowed.
    """
    if not amount.is_finite() or amount <= 0:
        return Reject(reason=f"the amount {amount} is not a positive number")
    if not policy.allows_coin(coin):
        return Reject(
            reason=f"{coin} is not listed in the withdrawal policy and unlisted coins are "
            "denied (deny_unlisted_coins); add a [coins."
            f"{coin}] section to allow it"
        )
    rules = policy.for_coin(coin)
    if rules is None:
        return Pass()
    shown = f"{format_amount(amount)} {coin}"

    if rules.max_per_intent is not None and amount > rules.max_per_intent:
        limit = format_amount(rules.max_per_intent)
        return Reject(
            reason=f"{shown} is above the per-intent maximum of {limit} {coin}; "
            "split the withdrawal into smaller intents or raise max_per_intent"
        )
    for cap, what in (
        (rules.daily_cap, "daily cap"),
        (rules.destination_daily_cap, "daily cap for one destination"),
    ):
        if cap is not None and amount > cap:
            return Reject(
                reason=f"{shown} is above the {what} of {format_amount(cap)} {coin} on its own, "
                "so it can never be sent; split it over several days or raise the cap"
            )

    required = approvals_needed(amount, rules)
    have = max(0, approvals)
    threshold = rules.approval_threshold
    if threshold is not None and have < required:
        return Approve(
            required=required,
            have=have,
            reason=f"{shown} is above the approval threshold of "
            f"{format_amount(threshold)} {coin}: {required} approval(s) "
            f"required, {have} recorded",
        )

    exact = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
    for cap, used, what in (
        (rules.daily_cap, usage.coin_24h, "daily cap"),
        (rules.destination_daily_cap, usage.destination_24h, "daily cap for this destination"),
    ):
        if cap is not None and exact.add(used, amount) > cap:
            room = max(ZERO, exact.subtract(cap, used))
            return Hold(
                reason=f"{shown} would exceed the rolling 24 h {what} of {format_amount(cap)} "
                f"{coin}: {format_amount(used)} {coin} already committed, "
                f"{format_amount(room)} {coin} left; it will be sent when enough room frees up"
            )
    return Pass()


def _person(name: str) -> str:
    return name.strip().casefold()


def check_approver(
    *, approver: str, requested_by: str | None, existing: Collection[str]
) -> str | None:
    """Why ``approver`` may not approve this intent, or ``None`` if they may.

    Names are compared stripped and case-insensitively: ``" Alice"`` and ``"alice"``
    are one person, so the requester cannot approve under another spelling.
    """
    who = _person(approver)
    if not who:
        return "an approval must name who approves"
    if requested_by is not None and _person(requested_by) == who:
        return f"{approver.strip()} requested this withdrawal and cannot approve it too"
    if any(_person(name) == who for name in existing):
        return f"{approver.strip()} has already approved this withdrawal"
    return None


@dataclass(frozen=True)
class ApprovalClock:
    """Where an intent awaiting approval stands against the policy's expiry."""

    expires_at: datetime
    warn_at: datetime  # the alert before it expires: a quarter of the window, at most a day

    @classmethod
    def of(cls, created_at: datetime, expiry_hours: int) -> ApprovalClock:
        window = timedelta(hours=expiry_hours)
        return cls(
            expires_at=created_at + window,
            warn_at=created_at + window - min(window / 4, timedelta(days=1)),
        )

    def state(self, now: datetime) -> str | None:
        """``"expired"``, ``"expiring"`` (the alert is due) or ``None``."""
        if now >= self.expires_at:
            return "expired"
        if now >= self.warn_at:
            return "expiring"
        return None
