"""Fuzz: the operators' CLI, in process against one migrated SQLite ledger.

Random text for enqueue's --coin/--network/--address/--amount/--tag/--request-id (and
--account), and for the ids of show/cancel. Every run ends with exit 0 or a refusal code
(1 refused, 2 bad input, 3 configuration), never a traceback; a refusal writes nothing
(row counts of withdrawal_intents and intent_events unchanged); an accepted enqueue
stores exactly the amount typed, digit for digit as a Decimal, and the destination as typed.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal, InvalidOperation
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from treasury.adapters.db import migrate
from treasury.cli import app

FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
CLEAN_EXITS = {0, 1, 2, 3}
runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated ledger for the whole module (migrating per example would be slow)."""
    path = tmp_path_factory.mktemp("cli-fuzz") / "ledger.sqlite3"
    anyio.run(migrate.upgrade, f"sqlite+aiosqlite:///{path}")
    return path


def cli(db: Path, *args: str) -> Result:
    env = {"TREASURY_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "TREASURY_OPERATOR": "fuzz"}
    return runner.invoke(app, list(args), env=env)


def counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        intents = conn.execute("SELECT count(*) FROM withdrawal_intents").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM intent_events").fetchone()[0]
    return intents, events


def row(db: Path, intent_id: int) -> dict[str, object]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM withdrawal_intents WHERE id = ?", (intent_id,))
        return dict(found.fetchone())


def clean(result: Result, what: list[str]) -> None:
    """Exited on purpose with a known code, and printed no traceback."""
    out = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{what!r} crashed: {result.exception!r}\n{out}"
    )
    assert result.exit_code in CLEAN_EXITS, (what, result.exit_code, out)
    assert "Traceback" not in out, (what, out)


# ---- inputs ----------------------------------------------------------------------------

# Lone surrogates are what a non-UTF-8 byte in argv becomes on POSIX (surrogateescape).
odd = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "\n",
        "\u200b",
        "\u00a0",
        "\x00",
        "\x7f",
        "\udcff",
        "-",
        "--",
        "=",
        "'",
        '"',
        "%s",
        "{}",
        "\\",
        "é",
        "١٢",
        "Ⅻ",
        "😀",
        "a" * 300,
        "NULL",
        "'; DROP TABLE withdrawal_intents;--",
    ]
)
text = st.one_of(odd, st.text(max_size=24), st.text(st.characters(codec="utf-8"), max_size=24))

coins = st.one_of(st.sampled_from(["USDT", "BTC", "usdt", "USDT ", "A" * 20, "A" * 21]), text)
networks = st.one_of(st.sampled_from(["TRX", "ETH", "BSC", "trx", "A-B_C", "_X", "A" * 33]), text)
addresses = st.one_of(
    st.sampled_from(
        [
            "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ",
            "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
            "TX 1",
            " TX1",
            "TX1\n",
            "a" * 256,
            "a" * 257,
        ]
    ),
    text,
)
amounts = st.one_of(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=8,
        min_value=Decimal("-1000"),
        max_value=Decimal("1E+6"),
    ).map(str),
    st.sampled_from(
        [
            "10",
            "125.50",
            "0.000000000000000001",
            "0.0000000000000000001",
            "1E+1",
            "1e-5",
            "99999999999999999999",
            "100000000000000000000",
            "1E+19",
            "1E+20",
            "1E+1000000",
            "0",
            "-0",
            "-1",
            "+5",
            "NaN",
            "sNaN",
            "Infinity",
            "-inf",
            "1_000",
            " 1",
            "1 ",
            "1,5",
            "0x10",
            "١٢",
            "1.",
            ".5",
            "00.5",
            "1e",
            "",
            "0E-1000000",
        ]
    ),
    text,
)
tags = st.one_of(st.none(), st.sampled_from(["123", "memo 1", "a" * 129, ""]), text)
request_ids = st.one_of(st.none(), st.sampled_from(["r-1", "r-2", "r 3", "a" * 129]), text)
accounts = st.one_of(st.none(), st.sampled_from(["default", "sub.1", "-x", "a" * 65]), text)
ids = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(
        [
            "0",
            "2147483647",
            "2147483648",
            "1e3",
            "1.0",
            "0x1",
            " 1",
            "-1",
            "١",
            "99999999999999999999",
        ]
    ),
    text,
)


GOOD: dict[str, st.SearchStrategy[str | None]] = {
    "coin": st.sampled_from(["USDT", "BTC"]),
    "network": st.sampled_from(["TRX", "ETH"]),
    "address": st.sampled_from(["TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", "bc1qxy2kgdygjrsqtzq2n0y"]),
    "amount": st.decimals(
        min_value=Decimal("0.000000000000000001"),
        max_value=Decimal(10**12),
        places=18,
        allow_nan=False,
        allow_infinity=False,
    ).map(str),
    "tag": st.sampled_from([None, "104400725"]),
    "request-id": st.one_of(
        st.none(), st.sampled_from(["r-1", "r-2"]), st.uuids().map(lambda u: f"fuzz-{u}")
    ),
    "account": st.sampled_from([None, "default", "treasury-sub"]),
}
FUZZED: dict[str, st.SearchStrategy[str | None]] = {
    "coin": coins,
    "network": networks,
    "address": addresses,
    "amount": amounts,
    "tag": tags,
    "request-id": request_ids,
    "account": accounts,
}


@st.composite
def enqueue_args(draw: st.DrawFn) -> tuple[list[str], dict[str, str | None]]:
    """Most fields plausible, a few fuzzed: refusals and acceptances both get exercised."""
    fuzzed = draw(st.sets(st.sampled_from(sorted(FUZZED)), max_size=3))
    fields = {name: draw(FUZZED[name] if name in fuzzed else GOOD[name]) for name in GOOD}
    # --opt=value keeps a value that starts with "-" a value
    args = ["enqueue", "--json"] + [f"--{k}={v}" for k, v in fields.items() if v is not None]
    return args, fields


def typed_id(text: str) -> int | None:
    """The id an accepted argument stands for (typer also takes "1.0" and " 1")."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return int(value) if value.is_finite() and value == value.to_integral_value() else None


# ---- properties ------------------------------------------------------------------------


@FUZZ
@given(enqueue_args())
@example(
    (
        ["enqueue", "--json", "--coin=USDT", "--network=TRX", "--address=TX1", "--amount=125.50"],
        {
            "coin": "USDT",
            "network": "TRX",
            "address": "TX1",
            "amount": "125.50",
            "tag": None,
            "request-id": None,
            "account": None,
        },
    )
)
@example(
    (
        ["enqueue", "--json", "--coin=USDT", "--network=TRX", "--address=TX1", "--amount=1E+1"],
        {
            "coin": "USDT",
            "network": "TRX",
            "address": "TX1",
            "amount": "1E+1",
            "tag": None,
            "request-id": None,
            "account": None,
        },
    )
)
def test_enqueue_refuses_cleanly_or_stores_exactly_what_was_typed(
    db: Path,
    case: tuple[list[str], dict[str, str | None]],
) -> None:
    args, fields = case
    before = counts(db)
    result = cli(db, *args)
    clean(result, args)
    event(f"exit {result.exit_code}")
    if result.exit_code != 0:
        assert counts(db) == before, f"a refused enqueue wrote rows: {args!r}"
        assert result.stderr.strip(), "a refusal must say why"
        return
    shown = json.loads(result.stdout)
    stored = row(db, shown["id"])
    amount_text = fields["amount"]
    assert amount_text is not None
    assert Decimal(str(stored["amount"])) == Decimal(amount_text), (amount_text, stored)
    assert Decimal(shown["amount"]) == Decimal(amount_text), (amount_text, shown)
    assert stored["coin"] == fields["coin"]
    assert stored["network"] == fields["network"]
    assert stored["address"] == fields["address"]
    assert stored["address_tag"] == (fields["tag"] or None)
    assert stored["status"] == "queued"
    if shown["created"]:
        assert counts(db) == (before[0] + 1, before[1] + 1)
    else:  # the same request_id again: the existing intent, nothing new
        assert counts(db) == before
        assert stored["request_id"] == fields["request-id"]


@settings(FUZZ, max_examples=40)
@given(intent_id=ids, separator=st.booleans())
def test_show_refuses_cleanly_or_shows_that_intent(
    db: Path,
    intent_id: str,
    separator: bool,
) -> None:
    args = ["show", "--json", *(["--"] if separator else []), intent_id]
    before = counts(db)
    result = cli(db, *args)
    clean(result, args)
    event(f"exit {result.exit_code}")
    assert counts(db) == before  # show never writes
    if result.exit_code == 0:
        assert json.loads(result.stdout)["id"] == typed_id(intent_id)


@settings(FUZZ, max_examples=40)
@given(intent_id=ids, reason=st.one_of(st.none(), st.text(max_size=40)), separator=st.booleans())
def test_cancel_refuses_cleanly_or_cancels_that_intent(
    db: Path,
    intent_id: str,
    reason: str | None,
    separator: bool,
) -> None:
    # Some intents to cancel (the enqueue property above may have run in another order).
    ok = cli(db, "enqueue", "--coin=USDT", "--network=TRX", "--address=TX1", "--amount=1")
    assert ok.exit_code == 0, ok.stderr
    args = [
        "cancel",
        *([f"--reason={reason}"] if reason is not None else []),
        *(["--"] if separator else []),
        intent_id,
    ]
    before = counts(db)
    result = cli(db, *args)
    clean(result, args)
    event(f"exit {result.exit_code}")
    if result.exit_code != 0:
        assert counts(db) == before, f"a refused cancel wrote rows: {args!r}"
        return
    cancelled = typed_id(intent_id)
    assert cancelled is not None, f"cancelled something for {intent_id!r}"
    assert row(db, cancelled)["status"] == "cancelled"
    assert counts(db) == (before[0], before[1] + 1)  # one event, no new intent


# ---- known bugs (see the fuzz report): strict, so they fail loudly once fixed ---------------


@pytest.mark.parametrize("option", ["--note", "--as"])
def test_undecodable_free_text_is_refused_cleanly(db: Path, option: str) -> None:
    """Found by this fuzzing and fixed: a byte that is not UTF-8 in argv became a lone
    surrogate that the database driver could not encode (a traceback)."""
    args = [
        "enqueue",
        "--coin=USDT",
        "--network=TRX",
        "--address=TX1",
        "--amount=1",
        f"{option}=caf\udce9",
    ]
    before = counts(db)
    result = cli(db, *args)
    clean(result, args)
    assert result.exit_code == 2
    assert counts(db) == before


def test_whitelist_add_with_an_infinite_cooling_period_fails_cleanly(db: Path) -> None:
    """Found by this fuzzing and fixed: it crashed with OverflowError in timedelta()."""
    env = {
        "TREASURY_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "TREASURY_MANUAL_WHITELIST_COOLING_S": "inf",
    }
    result = runner.invoke(
        app, ["whitelist", "add", "--coin=USDT", "--network=TRX", "--address=TXcooling"], env=env
    )
    clean(result, ["whitelist", "add"])
