"""Policy decisions: a table of cases, then properties that must hold for any input."""

from __future__ import annotations

import ast
import sys
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import treasury.domain.policy as policy_module
from treasury.domain.decisions import Approve, Hold, Pass, Reject
from treasury.domain.decisions import Verdict as Decision
from treasury.domain.errors import InvalidField
from treasury.domain.policy import (
    CoinPolicy,
    Policy,
    Usage,
    approvals_needed,
    check_approver,
    decide,
)

D = Decimal

USDT = CoinPolicy(
    max_per_intent=D("50000"),
    daily_cap=D("200000"),
    destination_daily_cap=D("100000"),
    approval_threshold=D("10000"),
    approvals_required=2,
)
DEFAULT = CoinPolicy(max_per_intent=D("10000"))
OPEN = Policy(coins={"USDT": USDT}, default=DEFAULT)
CLOSED = Policy(coins={"USDT": USDT}, default=None, deny_unlisted_coins=True)
LISTED_ONLY = Policy(coins={"USDT": USDT}, default=None)


def usage(coin: str = "0", destination: str = "0") -> Usage:
    return Usage(coin_24h=D(coin), destination_24h=D(destination))


# (policy, coin, amount, coin_24h, destination_24h, approvals, expected type, words in reason)
CASES: list[tuple[Policy, str, str, str, str, int, type[Decision], tuple[str, ...]]] = [
    (OPEN, "USDT", "5000", "0", "0", 0, Pass, ()),
    (OPEN, "USDT", "10000", "0", "0", 0, Pass, ()),  # the threshold itself needs no approval
    (OPEN, "USDT", "10000.01", "0", "0", 0, Approve, ("10000.01 USDT", "10000 USDT")),
    (OPEN, "USDT", "10000.01", "0", "0", 1, Approve, ("2 approval", "1 recorded")),
    (OPEN, "USDT", "10000.01", "0", "0", 2, Pass, ()),
    (OPEN, "USDT", "10000.01", "0", "0", 5, Pass, ()),
    (OPEN, "USDT", "50000", "0", "0", 2, Pass, ()),  # exactly the per-intent maximum
    (OPEN, "USDT", "50000.000001", "0", "0", 2, Reject, ("per-intent maximum", "50000 USDT")),
    (OPEN, "USDT", "60000", "0", "0", 0, Reject, ("per-intent maximum",)),  # reject beats approval
    (OPEN, "USDT", "5000", "195000", "0", 0, Pass, ()),  # fills the daily cap exactly
    (OPEN, "USDT", "5000", "195000.5", "0", 0, Hold, ("daily cap", "195000.5 USDT", "4999.5 USDT")),
    (OPEN, "USDT", "5000", "250000", "0", 0, Hold, ("0 USDT left",)),  # already over: no room
    (OPEN, "USDT", "5000", "96000", "96000", 0, Hold, ("destination", "4000 USDT left")),
    (OPEN, "USDT", "5000", "96000", "95000", 0, Pass, ()),
    (OPEN, "USDT", "20000", "190000", "0", 0, Approve, ()),  # approvals before room
    (OPEN, "USDT", "20000", "190000", "0", 2, Hold, ("daily cap",)),
    (OPEN, "BTC", "10000", "0", "0", 0, Pass, ()),  # [default] applies to unlisted coins
    (OPEN, "BTC", "10000.1", "0", "0", 9, Reject, ("10000.1 BTC", "per-intent maximum")),
    (LISTED_ONLY, "BTC", "1000000", "1e9", "1e9", 0, Pass, ()),  # no default: no limits
    (CLOSED, "BTC", "1", "0", "0", 0, Reject, ("BTC", "deny_unlisted_coins")),
    (CLOSED, "USDT", "1", "0", "0", 0, Pass, ()),
    (OPEN, "USDT", "0", "0", "0", 0, Reject, ("positive",)),
    (OPEN, "USDT", "-1", "0", "0", 0, Reject, ("positive",)),
    (OPEN, "USDT", "NaN", "0", "0", 0, Reject, ("positive",)),
    (OPEN, "USDT", "Infinity", "0", "0", 0, Reject, ("positive",)),
    (Policy.permissive(), "ANY", "1E+30", "1E+40", "1E+40", 0, Pass, ()),
]


@pytest.mark.parametrize(
    ("policy", "coin", "amount", "coin_24h", "dest_24h", "approvals", "expected", "words"), CASES
)
def test_decision_table(
    policy: Policy,
    coin: str,
    amount: str,
    coin_24h: str,
    dest_24h: str,
    approvals: int,
    expected: type[Decision],
    words: tuple[str, ...],
) -> None:
    decision = decide(
        coin=coin,
        amount=D(amount),
        policy=policy,
        usage=usage(coin_24h, dest_24h),
        approvals=approvals,
    )
    assert type(decision) is expected
    for word in words:
        assert word in getattr(decision, "reason", ""), decision


@pytest.mark.parametrize(
    ("daily", "destination", "amount", "what"),
    [
        ("100", None, "100.5", "daily cap of 100 USDT"),
        (None, "100", "100.5", "daily cap for one destination of 100 USDT"),
        ("100", "50", "75", "daily cap for one destination of 50 USDT"),
    ],
)
def test_an_amount_that_can_never_fit_a_cap_is_rejected(
    daily: str | None, destination: str | None, amount: str, what: str
) -> None:
    rules = CoinPolicy(
        daily_cap=None if daily is None else D(daily),
        destination_daily_cap=None if destination is None else D(destination),
    )
    decision = decide(
        coin="USDT",
        amount=D(amount),
        policy=Policy(coins={"USDT": rules}, default=None),
        usage=usage(),
        approvals=0,
    )
    assert isinstance(decision, Reject)
    assert what in decision.reason


def test_needs_approval_reports_the_counts() -> None:
    decision = decide(coin="USDT", amount=D("20000"), policy=OPEN, usage=usage(), approvals=1)
    assert isinstance(decision, Approve)
    assert (decision.required, decision.have) == (2, 1)


def test_cap_arithmetic_is_exact_beyond_28_digits() -> None:
    # 38 significant digits: the default decimal context would round the sum down to the cap.
    cap = D("12345678901234567890.123456789012345678")
    rules = CoinPolicy(daily_cap=cap)
    policy = Policy(coins={"USDT": rules}, default=None)
    used = D("12345678901234567890.123456789012345677")
    over = decide(
        coin="USDT", amount=D("2E-18"), policy=policy, usage=usage(str(used)), approvals=0
    )
    fits = decide(
        coin="USDT", amount=D("1E-18"), policy=policy, usage=usage(str(used)), approvals=0
    )
    assert isinstance(over, Hold)
    assert fits == Pass()


@pytest.mark.parametrize(
    ("amount", "rules", "needed"),
    [
        ("1", None, 0),
        ("1", CoinPolicy(), 0),
        ("10000", USDT, 0),
        ("10000.000000000000000001", USDT, 2),
        ("1", CoinPolicy(approval_threshold=D("0.5")), 1),
    ],
)
def test_approvals_needed(amount: str, rules: CoinPolicy | None, needed: int) -> None:
    assert approvals_needed(D(amount), rules) == needed


@pytest.mark.parametrize(
    ("approver", "requested_by", "existing", "refused_because"),
    [
        ("bob", "alice", [], None),
        ("bob", None, [], None),
        ("carol", "alice", ["bob"], None),
        ("alice", "alice", [], "requested"),
        (" Alice ", "alice", [], "requested"),
        ("ALICE", " alice\t", [], "requested"),
        ("bob", "alice", ["bob"], "already approved"),
        ("Bob ", "alice", [" BOB"], "already approved"),
        ("", "alice", [], "must name"),
        ("   ", None, [], "must name"),
        ("bob", "  ", [], None),
    ],
)
def test_check_approver(
    approver: str, requested_by: str | None, existing: list[str], refused_because: str | None
) -> None:
    reason = check_approver(approver=approver, requested_by=requested_by, existing=existing)
    if refused_because is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused_because in reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_per_intent": D(0)},
        {"daily_cap": D(-5)},
        {"destination_daily_cap": D("NaN")},
        {"approval_threshold": D("Infinity")},
        {"max_per_intent": 5},
        {"approvals_required": 0},
        {"approvals_required": 11},
        {"approvals_required": True},
    ],
)
def test_coin_policy_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidField):
        CoinPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("coin", ["usdt", "", "US DT", "USDT\n", "A" * 21])
def test_policy_refuses_bad_coin_symbols(coin: str) -> None:
    with pytest.raises(InvalidField):
        Policy(coins={coin: CoinPolicy()}, default=None)


@pytest.mark.parametrize(("coin_24h", "dest_24h"), [("-1", "0"), ("0", "NaN"), ("Infinity", "0")])
def test_usage_refuses_nonsense(coin_24h: str, dest_24h: str) -> None:
    with pytest.raises(InvalidField):
        usage(coin_24h, dest_24h)


def test_policy_does_not_follow_later_changes_to_the_callers_dict() -> None:
    coins = {"USDT": USDT}
    policy = Policy(coins=coins, default=None)
    coins["BTC"] = DEFAULT
    assert policy.for_coin("BTC") is None
    with pytest.raises(TypeError):
        policy.coins["BTC"] = DEFAULT  # type: ignore[index]


def test_for_coin() -> None:
    assert OPEN.for_coin("USDT") is USDT
    assert OPEN.for_coin("BTC") is DEFAULT
    assert CLOSED.for_coin("BTC") is None
    assert not CLOSED.allows_coin("BTC")
    assert Policy.permissive().for_coin("USDT") is None


def test_the_policy_module_is_pure() -> None:
    tree = ast.parse(Path(policy_module.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert name.startswith("treasury.domain") or top in sys.stdlib_module_names, name


# --- properties ------------------------------------------------------------------------

# Exact amounts as the rest of the system admits them: up to 20 integer digits, 18 decimals.
wide_amounts = st.builds(
    lambda n, e: D(f"{n}E-{e}"), st.integers(1, 10**38 - 1), st.integers(0, 18)
).filter(lambda d: d < D("1E20"))
small_amounts = st.builds(lambda n, e: D(f"{n}E-{e}"), st.integers(1, 2000), st.integers(0, 2))
amounts = st.one_of(small_amounts, wide_amounts)
usages = st.one_of(st.just(D(0)), amounts)
optional_limits = st.one_of(st.none(), amounts)
coin_policies = st.builds(
    CoinPolicy,
    max_per_intent=optional_limits,
    daily_cap=optional_limits,
    destination_daily_cap=optional_limits,
    approval_threshold=optional_limits,
    approvals_required=st.integers(1, 10),
)
small_limits = st.one_of(st.none(), small_amounts)
small_coin_policies = st.builds(
    CoinPolicy,
    max_per_intent=small_limits,
    daily_cap=small_limits,
    destination_daily_cap=small_limits,
    approval_threshold=small_limits,
    approvals_required=st.integers(1, 3),
)
coins = st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True)
policies = st.builds(
    Policy,
    coins=st.dictionaries(coins, coin_policies, max_size=3),
    default=st.one_of(st.none(), coin_policies),
    deny_unlisted_coins=st.booleans(),
)


def usage_of(coin_24h: Decimal, dest_24h: Decimal) -> Usage:
    return Usage(coin_24h=coin_24h, destination_24h=dest_24h)


@given(
    rules=st.one_of(small_coin_policies, coin_policies),
    intents=st.lists(
        st.tuples(st.sampled_from(["addr-a", "addr-b", "addr-c"]), amounts, st.integers(0, 3)),
        max_size=40,
    ),
)
def test_allowed_amounts_never_exceed_the_rolling_caps(
    rules: CoinPolicy, intents: list[tuple[str, Decimal, int]]
) -> None:
    policy = Policy(coins={"USDT": rules}, default=None)
    per_destination: dict[str, Decimal] = {}
    total = D(0)
    with localcontext() as ctx:
        ctx.prec = 200  # the test's own sums must be exact too
        for destination, amount, approvals in intents:
            used_here = per_destination.get(destination, D(0))
            decision = decide(
                coin="USDT",
                amount=amount,
                policy=policy,
                usage=usage_of(total, used_here),
                approvals=approvals,
            )
            if isinstance(decision, Pass):
                total += amount
                per_destination[destination] = used_here + amount
            if rules.daily_cap is not None:
                assert total <= rules.daily_cap
            if rules.destination_daily_cap is not None:
                assert all(v <= rules.destination_daily_cap for v in per_destination.values())
            if rules.max_per_intent is not None and isinstance(decision, Pass):
                assert amount <= rules.max_per_intent


@given(
    policy=policies,
    coin=coins,
    a=amounts,
    b=amounts,
    coin_24h=usages,
    dest_24h=usages,
    approvals=st.integers(0, 12),
)
def test_smaller_is_never_worse(
    policy: Policy,
    coin: str,
    a: Decimal,
    b: Decimal,
    coin_24h: Decimal,
    dest_24h: Decimal,
    approvals: int,
) -> None:
    small, big = sorted((a, b))
    seen = usage_of(coin_24h, dest_24h)

    def run(amount: Decimal) -> Decision:
        return decide(coin=coin, amount=amount, policy=policy, usage=seen, approvals=approvals)

    # Reject is monotonic: a bigger amount is never "less rejected" ...
    if isinstance(run(small), Reject):
        assert isinstance(run(big), Reject)
    # ... and whatever lets a big amount through lets a smaller one through too.
    if isinstance(run(big), Pass):
        assert isinstance(run(small), Pass)


@given(
    policy=policies,
    coin=coins,
    amount=st.decimals(allow_nan=True, allow_infinity=True),
    coin_24h=st.decimals(min_value=0, allow_nan=False, allow_infinity=False),
    dest_24h=st.decimals(min_value=0, allow_nan=False, allow_infinity=False),
    approvals=st.integers(-5, 20),
)
def test_decide_never_raises(
    policy: Policy,
    coin: str,
    amount: Decimal,
    coin_24h: Decimal,
    dest_24h: Decimal,
    approvals: int,
) -> None:
    decision = decide(
        coin=coin,
        amount=amount,
        policy=policy,
        usage=usage_of(coin_24h, dest_24h),
        approvals=approvals,
    )
    assert isinstance(decision, Pass | Approve | Hold | Reject)
    if not isinstance(decision, Pass):
        assert decision.reason
    if not amount.is_finite() or amount <= 0:
        assert isinstance(decision, Reject)


@given(
    rules=coin_policies,
    amount=amounts,
    coin_24h=usages,
    dest_24h=usages,
    approvals=st.integers(0, 12),
)
def test_approvals_only_matter_above_the_threshold(
    rules: CoinPolicy, amount: Decimal, coin_24h: Decimal, dest_24h: Decimal, approvals: int
) -> None:
    policy = Policy(coins={"USDT": rules}, default=None)
    seen = usage_of(coin_24h, dest_24h)
    with_none = decide(coin="USDT", amount=amount, policy=policy, usage=seen, approvals=0)
    with_some = decide(coin="USDT", amount=amount, policy=policy, usage=seen, approvals=approvals)
    threshold = rules.approval_threshold
    if threshold is None or amount <= threshold:
        assert with_none == with_some
        assert not isinstance(with_none, Approve)
    elif isinstance(with_some, Approve):
        assert approvals < rules.approvals_required
        assert with_some.required == rules.approvals_required
    else:
        enough = decide(
            coin="USDT",
            amount=amount,
            policy=policy,
            usage=seen,
            approvals=rules.approvals_required,
        )
        assert type(with_some) is type(enough)


@given(rules=coin_policies, amount=amounts, coin_24h=usages, dest_24h=usages)
def test_enough_approvals_never_leave_an_intent_waiting_for_approval(
    rules: CoinPolicy, amount: Decimal, coin_24h: Decimal, dest_24h: Decimal
) -> None:
    assume(rules.approval_threshold is not None and amount > rules.approval_threshold)
    decision = decide(
        coin="USDT",
        amount=amount,
        policy=Policy(coins={"USDT": rules}, default=None),
        usage=usage_of(coin_24h, dest_24h),
        approvals=rules.approvals_required,
    )
    assert not isinstance(decision, Approve)


@given(coin=coins, amount=amounts, coin_24h=usages, dest_24h=usages, approvals=st.integers(0, 5))
def test_a_permissive_policy_always_allows(
    coin: str, amount: Decimal, coin_24h: Decimal, dest_24h: Decimal, approvals: int
) -> None:
    decision = decide(
        coin=coin,
        amount=amount,
        policy=Policy.permissive(),
        usage=usage_of(coin_24h, dest_24h),
        approvals=approvals,
    )
    assert decision == Pass()
