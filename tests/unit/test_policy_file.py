"""The policy file: the documented example loads, and every mistake is named precisely."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treasury.domain.policy import CoinPolicy, Policy
from treasury.policy_file import AMOUNT_KEYS, PolicyError, load_policy, parse_policy

D = Decimal
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "policy.example.toml"


def amounts_of(policy: Policy) -> list[object]:
    rules = [*policy.coins.values(), *([policy.default] if policy.default else [])]
    return [getattr(r, key) for r in rules for key in AMOUNT_KEYS]


def test_the_documented_example_loads() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.deny_unlisted_coins is False
    assert policy.default == CoinPolicy(max_per_intent=D("10000"), daily_cap=D("50000"))
    assert policy.coins["USDT"] == CoinPolicy(
        max_per_intent=D("50000"),
        daily_cap=D("200000"),
        destination_daily_cap=D("100000"),
        approval_threshold=D("10000"),
        approvals_required=2,
    )
    assert policy.coins["BTC"].approval_threshold == D("0.5")
    assert all(type(a) is Decimal for a in amounts_of(policy) if a is not None)


def test_an_empty_file_is_a_permissive_policy() -> None:
    assert parse_policy("") == Policy.permissive()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('max_per_intent = "1000.50"', D("1000.50")),
        ("max_per_intent = 1000.50", D("1000.50")),
        ("max_per_intent = 25000", D("25000")),
        ("max_per_intent = 1e3", D("1e3")),
        # A float would come back as 1000.1: the digits prove no float was involved.
        ("max_per_intent = 1000.100000000000000001", D("1000.100000000000000001")),
        ('max_per_intent = "0.000000000000000001"', D("1E-18")),
    ],
)
def test_amounts_are_exact_decimals(text: str, expected: Decimal) -> None:
    policy = parse_policy(f"[default]\n{text}\n")
    assert policy.default is not None
    amount = policy.default.max_per_intent
    assert type(amount) is Decimal
    assert amount == expected
    assert str(amount) == str(expected)


# (TOML text, key path the message must name, words the message must contain)
ERRORS: list[tuple[str, str, str]] = [
    ('[coins.USDT]\ndaily_cpa = "1"', "coins.USDT.daily_cpa", "did you mean 'daily_cap'"),
    ("deny_unlisted = true", "deny_unlisted", "unknown key"),
    ('[default]\nmax = "1"', "default.max", "unknown key"),
    ('[coins.USDT]\ndaily_cap = "-5"', "coins.USDT.daily_cap", "greater than 0"),
    ("[coins.USDT]\ndaily_cap = 0", "coins.USDT.daily_cap", "greater than 0"),
    ("[coins.USDT]\ndaily_cap = -0.0", "coins.USDT.daily_cap", "greater than 0"),
    ('[coins.USDT]\ndaily_cap = "lots"', "coins.USDT.daily_cap", "not a decimal number"),
    ('[coins.USDT]\ndaily_cap = "1_000"', "coins.USDT.daily_cap", "not a plain decimal"),
    ('[coins.USDT]\ndaily_cap = " 10"', "coins.USDT.daily_cap", "not a plain decimal"),
    ("[coins.USDT]\ndaily_cap = nan", "coins.USDT.daily_cap", "finite"),
    ("[coins.USDT]\ndaily_cap = inf", "coins.USDT.daily_cap", "finite"),
    ('[coins.USDT]\ndaily_cap = "Infinity"', "coins.USDT.daily_cap", "finite"),
    ("[coins.USDT]\ndaily_cap = true", "coins.USDT.daily_cap", "boolean"),
    ("[coins.USDT]\ndaily_cap = [1]", "coins.USDT.daily_cap", "array"),
    ("[coins.USDT]\ndaily_cap = 2024-01-01", "coins.USDT.daily_cap", "date"),
    ("[coins.USDT]\ndaily_cap = 1e-19", "coins.USDT.daily_cap", "decimal places"),
    ("[default]\nmax_per_intent = 1e21", "default.max_per_intent", "digits"),
    (
        "[coins.USDT]\napproval_threshold = 1\napprovals_required = 0",
        "coins.USDT.approvals_required",
        "1 and 10",
    ),
    (
        "[coins.USDT]\napproval_threshold = 1\napprovals_required = 11",
        "coins.USDT.approvals_required",
        "1 and 10",
    ),
    (
        "[coins.USDT]\napproval_threshold = 1\napprovals_required = 2.0",
        "coins.USDT.approvals_required",
        "whole",
    ),
    (
        '[coins.USDT]\napproval_threshold = 1\napprovals_required = "2"',
        "coins.USDT.approvals_required",
        "whole",
    ),
    (
        "[coins.USDT]\napproval_threshold = 1\napprovals_required = true",
        "coins.USDT.approvals_required",
        "whole",
    ),
    ("[coins.USDT]\napprovals_required = 2", "coins.USDT.approvals_required", "approval_threshold"),
    ("[coins.usdt]", "coins.usdt", "upper-case"),
    ('[coins."US DT"]', 'coins."US DT"', "upper-case"),
    ("[coins.ABCDEFGHIJKLMNOPQRSTU]", "coins.ABCDEFGHIJKLMNOPQRSTU", "upper-case"),
    ("[coins.USDT-X]", "coins.USDT-X", "upper-case"),
    ('deny_unlisted_coins = "yes"', "deny_unlisted_coins", "true or false"),
    ("deny_unlisted_coins = true\n[default]", "default", "no effect"),
    ("coins = 3", "coins", "table"),
    ("default = 3", "default", "table"),
    ("[coins]\nUSDT = 5", "coins.USDT", "table"),
]


@pytest.mark.parametrize(("text", "key", "words"), ERRORS)
def test_each_mistake_names_the_key(text: str, key: str, words: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.toml")
    message = str(caught.value)
    assert message.startswith(f"policy.toml: {key}: "), message
    assert caught.value.key == key
    assert words in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("deny_unlisted_coins = false\n[default\n", 2),
        ('[default]\nmax_per_intent = "1"\nmax_per_intent = "2"\n', 3),
        ("[coins.USDT]\n\n\ndaily_cap = 1000.\n", 4),
    ],
)
def test_toml_syntax_errors_give_the_line(text: str, line: int) -> None:
    with pytest.raises(PolicyError, match=rf"^p\.toml: invalid TOML: .*line {line}\b"):
        parse_policy(text, source="p.toml")


def test_deep_nesting_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="invalid TOML"):
        parse_policy("x = " + "[" * 100_000)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "policy.toml"
    with pytest.raises(PolicyError, match=r"policy\.toml: policy file not found"):
        load_policy(missing)


def test_a_directory_is_not_a_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b'[default]\nmax_per_intent = "\xff"\n')
    with pytest.raises(PolicyError, match="UTF-8"):
        load_policy(path)


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[coins.USDT]\ndaily_cpa = "1"\n', encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: coins.USDT.daily_cpa: ")
    assert caught.value.key == "coins.USDT.daily_cpa"


# --- properties ------------------------------------------------------------------------

exact_amounts = st.builds(
    lambda n, e: D(f"{n}E-{e}"), st.integers(1, 10**20 - 1), st.integers(0, 18)
)


def render(value: Decimal, style: str) -> str:
    text = format(value, "f")
    if style == "string":
        return f'"{text}"'
    if style == "number" and "." not in text:
        return f"{text}.0"
    return text


@given(
    values=st.fixed_dictionaries({}, optional={key: exact_amounts for key in AMOUNT_KEYS}),
    style=st.sampled_from(["string", "number", "plain"]),
)
def test_written_amounts_come_back_digit_for_digit(values: dict[str, Decimal], style: str) -> None:
    body = "".join(f"{key} = {render(v, style)}\n" for key, v in values.items())
    policy = parse_policy(f"[coins.USDT]\n{body}")
    rules = policy.coins["USDT"]
    for key in AMOUNT_KEYS:
        got = getattr(rules, key)
        if key in values:
            assert type(got) is Decimal
            assert got == values[key]
        else:
            assert got is None


keys = st.sampled_from(
    [
        *AMOUNT_KEYS,
        "coins.USDT.approvals_required",
        "deny_unlisted_coins",
        "default",
        "coins",
        "daily_cpa",
        "USDT",
        "usdt",
        "coins.USDT",
        "coins.BTC.daily_cap",
        '"quoted key"',
    ]
)
values = st.one_of(
    st.sampled_from(
        ["true", "false", "0", "-1", "1.5", "1e400", "nan", "-inf", "2024-01-01", "12:00:00"]
    ),
    st.sampled_from(['"1000.50"', '""', '"abc"', "[]", "[1, 2]", "{}", '{ daily_cap = "1" }']),
    st.integers(-(10**30), 10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")),
)
lines = st.one_of(
    st.builds("{} = {}".format, keys, values),
    st.sampled_from(["[default]", "[coins.USDT]", "[coins.BTC]", "[coins]", "[[coins]]", "["]),
    st.builds("[coins.{}]".format, st.text(max_size=5)),
    st.text(max_size=30),
)


def outcome_of(load: Callable[[], Policy]) -> Policy | PolicyError:
    """The policy, or the PolicyError; any other exception escapes and fails the test."""
    try:
        return load()
    except PolicyError as exc:
        return exc


@given(st.lists(lines, max_size=12).map("\n".join))
def test_garbage_never_raises_anything_but_policy_error(text: str) -> None:
    outcome = outcome_of(lambda: parse_policy(text))
    if isinstance(outcome, PolicyError):
        assert str(outcome).startswith("<policy>: ")
    else:
        assert all(type(a) is Decimal for a in amounts_of(outcome) if a is not None)


@given(data=st.one_of(st.binary(max_size=200), lines.map(lambda t: t.encode("utf-8", "replace"))))
def test_any_bytes_in_a_file_give_a_policy_or_a_policy_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_bytes(data)
    outcome = outcome_of(lambda: load_policy(path))
    if isinstance(outcome, PolicyError):
        assert str(outcome).startswith(f"{path}: ")


def test_the_approval_window_defaults_to_three_days_and_is_bounded() -> None:
    assert parse_policy("").approval_expiry_hours == 72
    assert parse_policy("approval_expiry_hours = 24\n").approval_expiry_hours == 24
    for text, words in (
        ("approval_expiry_hours = 0\n", "between 1 and 720 hours, got 0"),
        ("approval_expiry_hours = 721\n", "between 1 and 720 hours, got 721"),
        ('approval_expiry_hours = "72"\n', "whole number"),
        ("approval_expiry_hours = 1.5\n", "whole number"),
        ("approval_expiry_hours = true\n", "whole number"),
    ):
        with pytest.raises(PolicyError, match=words) as err:
            parse_policy(text)
        assert "approval_expiry_hours" in str(err.value)


def test_address_book_approvals_default_to_none_and_are_bounded() -> None:
    assert parse_policy("").address_book_approvals_required == 0
    assert load_policy(EXAMPLE).address_book_approvals_required == 1
    assert (
        parse_policy("address_book_approvals_required = 2\n").address_book_approvals_required == 2
    )
    for text, words in (
        ("address_book_approvals_required = -1\n", "between 0 and 10, got -1"),
        ("address_book_approvals_required = 11\n", "between 0 and 10, got 11"),
        ('address_book_approvals_required = "1"\n', "whole number"),
        ("address_book_approvals_required = 1.0\n", "whole number"),
        ("address_book_approvals_required = true\n", "whole number"),
        ("[coins.USDT]\naddress_book_approvals_required = 1\n", "unknown key"),
    ):
        with pytest.raises(PolicyError, match=words) as err:
            parse_policy(text)
        assert "address_book_approvals_required" in str(err.value)
