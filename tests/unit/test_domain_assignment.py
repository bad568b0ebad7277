"""The fleet's assignment of accounts to members: fair, stable, and the same everywhere."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from treasury.domain.assignment import assign, ranked, weight

ACCOUNTS = [f"acct-{n}" for n in range(100)]


def everyone(accounts: list[str], members: list[str]) -> dict[str, list[str]]:
    return {a: members for a in accounts}


def loads(result: dict[str, str], members: list[str]) -> list[int]:
    count = Counter(result.values())
    return [count[m] for m in members]


def test_weight_is_stable_and_ranked_is_a_permutation() -> None:
    assert weight("a", "m1") == weight("a", "m1") != weight("a", "m2")
    assert sorted(ranked("a", ["x", "y", "z"])) == ["x", "y", "z"]


def test_fair_share_100_accounts_over_3_members() -> None:
    members = ["host-a:1", "host-b:1", "host-c:1"]
    result = assign(everyone(ACCOUNTS, members))
    assert set(result) == set(ACCOUNTS)
    counts = loads(result, members)
    assert max(counts) / min(counts) <= 1.5, counts
    assert max(counts) <= 34


def test_a_member_joining_takes_only_its_share() -> None:
    members = ["host-a:1", "host-b:1", "host-c:1"]
    before = assign(everyone(ACCOUNTS, members))
    after = assign(everyone(ACCOUNTS, [*members, "host-d:1"]), holders=before)
    moved = [a for a in ACCOUNTS if before[a] != after[a]]
    assert all(after[a] == "host-d:1" for a in moved)  # nothing moves between old members
    assert len(moved) == 25  # exactly the newcomer's share
    counts = loads(after, [*members, "host-d:1"])
    assert max(counts) / min(counts) <= 1.5, counts


def test_a_member_leaving_moves_only_its_accounts() -> None:
    members = ["host-a:1", "host-b:1", "host-c:1"]
    before = assign(everyone(ACCOUNTS, members))
    gone = "host-b:1"
    live = {a: h for a, h in before.items() if h != gone}
    after = assign(everyone(ACCOUNTS, ["host-a:1", "host-c:1"]), holders=live)
    moved = [a for a in ACCOUNTS if before[a] != after[a]]
    assert sorted(moved) == sorted(a for a, h in before.items() if h == gone)
    counts = loads(after, ["host-a:1", "host-c:1"])
    assert max(counts) / min(counts) <= 1.5, counts


def test_without_holders_the_answer_depends_on_the_sets_only() -> None:
    members = ["m1", "m2", "m3"]
    one = assign(everyone(ACCOUNTS, members))
    other = assign({a: list(reversed(members)) for a in reversed(ACCOUNTS)})
    assert one == other


def test_an_account_goes_only_to_a_member_that_serves_it() -> None:
    accounts = {"a": ["m1"], "b": ["m1", "m2"], "c": ["m2"], "d": []}
    result = assign(accounts)
    assert result["a"] == "m1" and result["c"] == "m2"
    assert "d" not in result


def test_a_holder_keeps_its_accounts_up_to_the_cap() -> None:
    # a standby joining a one-account fleet does not take the account over
    assert assign({"default": ["A", "B"]}, holders={"default": "A"}) == {"default": "A"}
    assert assign({"default": ["A", "B"]}, holders={"default": "B"}) == {"default": "B"}


@given(
    n_accounts=st.integers(min_value=1, max_value=60),
    n_members=st.integers(min_value=1, max_value=7),
)
def test_bounded_load(n_accounts: int, n_members: int) -> None:
    accounts = [f"x{n}" for n in range(n_accounts)]
    members = [f"m{n}" for n in range(n_members)]
    result = assign(everyone(accounts, members))
    counts = Counter(result.values())
    cap = -(-n_accounts // n_members)
    assert set(result) == set(accounts)
    assert max(counts.values()) <= cap
