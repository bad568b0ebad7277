"""The policy as text: one canonical spelling, a diff by key path, and the reader that
every process shares (re-reads the ledger cheaply, one snapshot per version)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treasury.domain.decisions import Hold, Pass
from treasury.domain.policy import CoinPolicy, Policy
from treasury.domain.policy_text import PolicyError, canonical, diff, digest, parse_policy
from treasury.domain.validation import validate_new_intent
from treasury.policy_file import load_policy
from treasury.ports.store import PolicyVersion
from treasury.services.policy import PolicySnapshot, PolicySource, apply_text
from treasury.testing import MemoryLedger

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "policy.example.toml"


def test_the_canonical_text_parses_back_to_the_same_policy() -> None:
    policy = load_policy(EXAMPLE)
    text = canonical(policy)
    assert parse_policy(text) == policy
    assert canonical(parse_policy(text)) == text


def test_two_spellings_of_one_policy_have_one_canonical_text_and_digest() -> None:
    a = parse_policy('[coins.USDT]\ndaily_cap = 1e3\nmax_per_intent = "50.0"\n')
    b = parse_policy(
        "approval_expiry_hours = 72\n[coins.USDT]\nmax_per_intent = 50\ndaily_cap = '1000'\n"
    )
    assert canonical(a) == canonical(b)
    assert digest(canonical(a)) == digest(canonical(b))
    assert diff(a, b) == []


@given(
    st.decimals(min_value=Decimal("1E-18"), max_value=Decimal("1E12"), places=18),
    st.integers(min_value=1, max_value=10),
    st.booleans(),
)
def test_any_policy_survives_its_canonical_text(cap: Decimal, required: int, flag: bool) -> None:
    policy = Policy(
        coins={"USDT": CoinPolicy(approval_threshold=cap, approvals_required=required)},
        default=CoinPolicy(daily_cap=cap),
        policy_changes_need_approval=flag,
    )
    assert parse_policy(canonical(policy)) == policy


def test_the_diff_names_each_key_path_that_changes() -> None:
    old = parse_policy('[coins.USDT]\ndaily_cap = "1000"\n[coins.ETH]\nmax_per_intent = "2"\n')
    new = parse_policy(
        'policy_changes_need_approval = true\n[coins.USDT]\ndaily_cap = "5000"\n'
        '[coins.BTC]\nmax_per_intent = "1"\n'
    )
    assert diff(old, new) == [
        "policy_changes_need_approval: false -> true",
        "coins.BTC: added",
        "coins.BTC.max_per_intent: (unset) -> 1",
        "coins.ETH: removed",
        "coins.ETH.max_per_intent: 2 -> (unset)",
        "coins.USDT.daily_cap: 1000 -> 5000",
    ]


def test_a_first_policy_is_listed_key_by_key() -> None:
    lines = diff(None, parse_policy('[coins.USDT]\ndaily_cap = "10"\n'))
    assert "coins.USDT.daily_cap: (unset) -> 10" in lines
    assert "approval_expiry_hours: (unset) -> 72" in lines


@pytest.mark.parametrize("value", ['"yes"', "1", "[true]"])
def test_the_second_person_switch_is_strict(value: str) -> None:
    with pytest.raises(PolicyError, match="policy_changes_need_approval: must be true or false"):
        parse_policy(f"policy_changes_need_approval = {value}\n", source="p.toml")


def test_a_misspelt_switch_is_named() -> None:
    with pytest.raises(PolicyError, match="did you mean 'policy_changes_need_approval'"):
        parse_policy("policy_change_need_approval = true\n")


# ---- the reader ---------------------------------------------------------------------------


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """The memory ledger's policies, counting the polls."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self.inner = ledger.policies
        self.polls = 0

    async def current_version(self) -> int | None:
        self.polls += 1
        return await self.inner.current_version()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_the_reader_polls_at_most_every_few_seconds_and_follows_new_versions() -> None:
    ledger = MemoryLedger()
    store = CountingStore(ledger)
    ticks = Ticks()
    source = PolicySource(store, reread_s=2.0, clock=ticks)  # type: ignore[arg-type]
    assert await source.current() is None
    await apply_text(ledger, '[coins.USDT]\ndaily_cap = "10"\n', actor="cli:a", reason="r")
    assert await source.current() is None  # not yet re-read
    ticks.now = 2.5
    first = await source.current()
    assert first is not None and first.version == 1
    assert await source.current() is first and store.polls == 2
    await apply_text(ledger, '[coins.USDT]\ndaily_cap = "20"\n', actor="cli:a", reason="r")
    source.reread_now()  # SIGHUP
    second = await source.current()
    assert second is not None and second.version == 2 and store.polls == 3


async def test_a_stored_policy_nobody_can_read_holds_every_intent() -> None:
    row = PolicyVersion(
        version=7,
        document="[coins.USDT]\ndaily_cpa = 1\n",  # by raw SQL: the parser refuses it
        sha256="0" * 64,
        applied_by="sql",
        reason="by hand",
        created_at=datetime.now(UTC),
        changes_need_approval=False,
        approved_by=None,
        activated_at=datetime.now(UTC),
        status="active",
    )
    snapshot = PolicySnapshot.of(row)
    assert snapshot.policy is None and snapshot.approval_expiry_hours is None
    new = validate_new_intent(coin="USDT", network="TRX", address="TX1", amount="5")
    intent, _ = await MemoryLedger().intents.enqueue(new, actor="cli:a")
    verdict = snapshot.decide(intent, Decimal(0), Decimal(0), 0)
    assert isinstance(verdict, Hold) and "policy v7" in verdict.reason
    ok = PolicySnapshot(1, Policy.permissive()).decide(intent, Decimal(0), Decimal(0), 0)
    assert isinstance(ok, Pass)
