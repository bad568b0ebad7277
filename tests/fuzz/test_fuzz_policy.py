"""Fuzz: the policy file parser returns a Policy or raises PolicyError, nothing else.

Documents are built from the keys a policy file has (and misspellings of them), values
of every TOML type (amount strings, integers, floats, inf/nan, booleans, dates, arrays,
inline tables), odd coin symbols, and plain garbage. A loaded policy holds only exact,
finite, positive ``Decimal`` amounts and a sane approval count.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from treasury.domain.policy import MAX_APPROVALS, CoinPolicy, Policy
from treasury.policy_file import AMOUNT_KEYS, PolicyError, parse_policy

FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

COIN_RE = re.compile(r"[A-Z0-9]{1,20}")
BARE = re.compile(r"[A-Za-z0-9_-]+")
KEYS = [*AMOUNT_KEYS, "approvals_required"]
TYPOS = [
    "daily_cpa",
    "max_per_intnet",
    "Daily_Cap",
    "approval-threshold",
    "approvals",
    "deny_unlisted_coins",
    "default",
    "coins",
    "",
]


def key(text: str) -> str:
    return text if BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def basic_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


amount_texts = st.one_of(
    st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{0,20})?", fullmatch=True),
    st.sampled_from(
        [
            "1000.50",
            "0.000000000000000001",
            "0.0000000000000000001",
            "1E+3",
            "1e-5",
            "1e400",
            "NaN",
            "-Infinity",
            "sNaN",
            "0",
            "-0",
            "00",
            "+5",
            " 5",
            "5 ",
            "1_000",
            "1,5",
            "",
            "٣",
            "99999999999999999999",
            "100000000000000000000",
            "0x10",
            "1.",
            ".5",
        ]
    ),
    st.text(max_size=12),
)

# TOML value literals, as they appear on the right of "="
literals = st.one_of(
    amount_texts.map(basic_string),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        [
            "1.5",
            "0.1",
            "1e3",
            "1E-20",
            "6.02e23",
            "inf",
            "-inf",
            "nan",
            "+nan",
            "-0.0",
            "0.0",
            "1_000",
            "1_000.000_1",
            "0x1F",
            "0o17",
            "0b101",
            "+7",
            "true",
            "false",
            "1979-05-27",
            "1979-05-27T07:32:00Z",
            "07:32:00",
            "[]",
            "[1, 2]",
            '["1"]',
            "{}",
            '{ max_per_intent = "1" }',
            "'1000'",
            "'''5'''",
            '"""7"""',
            "1.7976931348623157e308",
            "1e999",
            "-1e-999",
        ]
    ),
    st.integers(-3, MAX_APPROVALS + 3).map(str),
)


plausible_amounts = st.one_of(
    st.decimals(
        min_value=Decimal("0.000001"),
        max_value=Decimal(10**9),
        places=6,
        allow_nan=False,
        allow_infinity=False,
    ).map(lambda d: basic_string(str(d))),
    st.integers(1, 10**9).map(str),
    st.sampled_from(["100.5", "0.25", "1e3"]),
)


def value_for(name: str) -> st.SearchStrategy[str]:
    if name in AMOUNT_KEYS:
        return st.one_of(plausible_amounts, literals)
    if name == "approvals_required":
        return st.one_of(st.integers(0, MAX_APPROVALS + 1).map(str), literals)
    return literals


@st.composite
def table_lines(draw: st.DrawFn) -> list[str]:
    odd = draw(st.sampled_from(range(4))) == 0  # one table in four also gets odd keys
    names = draw(
        st.lists(
            st.one_of(st.sampled_from(KEYS), st.sampled_from(TYPOS), st.text(max_size=8))
            if odd
            else st.sampled_from(KEYS),
            max_size=6,
            unique=True,
        )
    )
    return [f"{key(name)} = {draw(value_for(name))}" for name in names]


coin_names = st.one_of(
    st.sampled_from(["USDT", "BTC", "ETH"]),
    st.sampled_from(
        ["USDT", "BTC", "XRP", "A" * 20, "A" * 21, "usdt", "US DT", "", "USDT.", "ÜSDT"]
    ),
    st.text(max_size=8),
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines: list[str] = []
    if draw(st.booleans()):
        plain = draw(st.sampled_from(range(4))) > 0
        deny = draw(st.sampled_from(["true", "false"]) if plain else literals)
        lines.append(f"deny_unlisted_coins = {deny}")
    if draw(st.sampled_from(range(10))) == 0:
        lines.append(f"{key(draw(st.text(max_size=8)))} = {draw(literals)}")
    if draw(st.sampled_from(range(10))) == 0:
        lines.append(f"coins = {draw(literals)}")
    if draw(st.booleans()):
        lines.append("[default]")
        lines.extend(draw(table_lines()))
    for coin in draw(st.lists(coin_names, max_size=3, unique=True)):
        lines.append(f"[coins.{key(coin)}]")
        lines.extend(draw(table_lines()))
    if draw(st.sampled_from(range(6))) == 0:  # garbage: a random line, or a line cut short
        at = draw(st.integers(0, len(lines)))
        lines.insert(
            at,
            draw(
                st.one_of(
                    st.text(max_size=30), st.just("[default"), st.just("x = "), st.just("[[coins]]")
                )
            ),
        )
    return "\n".join(lines) + "\n"


def check_loaded(policy: Policy) -> None:
    assert isinstance(policy, Policy)
    assert isinstance(policy.deny_unlisted_coins, bool)
    tables: list[CoinPolicy] = list(policy.coins.values())
    if policy.default is not None:
        tables.append(policy.default)
    for coin in policy.coins:
        assert COIN_RE.fullmatch(coin), coin
    for table in tables:
        for name in AMOUNT_KEYS:
            value = getattr(table, name)
            if value is None:
                continue
            assert type(value) is Decimal, (name, value)
            assert value.is_finite() and value > 0, (name, value)
            places = format(value, "f").partition(".")[2].rstrip("0")
            assert len(places) <= 18, (name, value)
        required = table.approvals_required
        assert type(required) is int and 1 <= required <= MAX_APPROVALS


def parse(text: str) -> Policy | None:
    try:
        policy = parse_policy(text, source="fuzz.toml")
    except PolicyError as exc:
        message = str(exc)
    else:
        check_loaded(policy)
        return policy
    assert message.startswith("fuzz.toml"), message  # the error names the file
    return None


@FUZZ
@given(documents())
@example('[default]\nmax_per_intent = "0.1"\ndaily_cap = 0.1\n')
@example("[coins.USDT]\napproval_threshold = 1e3\napprovals_required = 10\n")
@example("deny_unlisted_coins = true\n[default]\n")
@example('[default]\nmax_per_intent = "1e400"\n')
@example("[default]\nmax_per_intent = nan\n")
def test_a_policy_document_loads_cleanly_or_is_refused(text: str) -> None:
    parse(text)


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text_is_refused_or_loaded_never_crashes(text: str) -> None:
    parse(text)


@FUZZ
@given(
    key=st.sampled_from(AMOUNT_KEYS),
    amount=amount_texts,
    section=st.sampled_from(["[default]", "[coins.USDT]"]),
)
def test_a_loaded_amount_is_the_exact_decimal_written(key: str, amount: str, section: str) -> None:
    """Quoted amounts never pass through float: what loads is exactly what was written."""
    policy = parse(f"{section}\n{key} = {basic_string(amount)}\n")
    if policy is None:
        return
    table = policy.default if section == "[default]" else policy.coins["USDT"]
    assert table is not None
    loaded = getattr(table, key)
    assert loaded == Decimal(amount), (amount, loaded)


@FUZZ
@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        min_value=Decimal("1E-18"),
        max_value=Decimal("1E+19"),
        places=18,
    )
)
def test_toml_float_literals_are_read_exactly(value: Decimal) -> None:
    literal = format(value, "f")
    if "." not in literal:
        literal += ".0"
    policy = parse(f"[default]\ndaily_cap = {literal}\n")
    assert policy is not None and policy.default is not None, literal
    assert policy.default.daily_cap == value


exact_amounts = st.decimals(
    min_value=Decimal("1E-18"),
    max_value=Decimal("99999999999999999999"),
    places=18,
    allow_nan=False,
    allow_infinity=False,
)


def amount_literal(value: Decimal, how: str) -> str:
    text = format(value, "f")
    if how == "string" or (how == "integer" and value != value.to_integral_value()):
        return basic_string(text)
    if how == "integer":
        return str(int(value))
    return text if "." in text else text + ".0"


@st.composite
def valid_tables(draw: st.DrawFn) -> dict[str, tuple[Decimal | int, str]]:
    table: dict[str, tuple[Decimal | int, str]] = {}
    for name in draw(st.lists(st.sampled_from(AMOUNT_KEYS), unique=True)):
        value = draw(exact_amounts)
        table[name] = (
            value,
            amount_literal(value, draw(st.sampled_from(["string", "float", "integer"]))),
        )
    if "approval_threshold" in table and draw(st.booleans()):
        required = draw(st.integers(1, MAX_APPROVALS))
        table["approvals_required"] = (required, str(required))
    return table


@FUZZ
@given(
    default=st.one_of(st.none(), valid_tables()),
    coins=st.dictionaries(st.from_regex(COIN_RE, fullmatch=True), valid_tables(), max_size=3),
    deny=st.booleans(),
)
def test_a_valid_policy_loads_with_exactly_the_amounts_written(
    default: dict[str, tuple[Decimal | int, str]] | None,
    coins: dict[str, dict[str, tuple[Decimal | int, str]]],
    deny: bool,
) -> None:
    deny = deny and default is None
    lines = [f"deny_unlisted_coins = {str(deny).lower()}"]
    sections = ([("default", default)] if default is not None else []) + [
        (f"coins.{coin}", table) for coin, table in coins.items()
    ]
    for name, table in sections:
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {literal}" for k, (_, literal) in table.items())
    policy = parse("\n".join(lines) + "\n")
    assert policy is not None, lines
    assert policy.deny_unlisted_coins is deny
    assert set(policy.coins) == set(coins)
    for name, table in sections:
        loaded = policy.default if name == "default" else policy.coins[name.split(".", 1)[1]]
        assert loaded is not None
        for k in AMOUNT_KEYS:
            want = table.get(k)
            assert getattr(loaded, k) == (None if want is None else want[0]), (k, lines)
        assert loaded.approvals_required == table.get("approvals_required", (1, ""))[0]


# ---- found by this fuzzing and fixed: numbers TOML reads but Python cannot hold -----------


def test_an_integer_literal_too_long_for_int_is_a_policy_error() -> None:
    """tomllib raises ValueError (not TOMLDecodeError) for an int over 4,300 digits."""
    with pytest.raises(PolicyError, match="out of range"):
        parse_policy("[default]\ndaily_cap = " + "1" * 5000 + "\n")


@pytest.mark.parametrize("literal", ["1e99999999999999999999", "1.0e-99999999999999999999"])
def test_a_float_literal_beyond_decimal_limits_is_a_policy_error(literal: str) -> None:
    """Decimal() inside parse_float raises InvalidOperation for such an exponent."""
    with pytest.raises(PolicyError, match="out of range"):
        parse_policy(f"[default]\ndaily_cap = {literal}\n")
