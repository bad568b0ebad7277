"""Fuzz: rows that arrive by plain SQL, the way an operator or a script types them.

1. Random values (text, numbers, unicode, whitespace, huge and negative amounts, NULLs)
   INSERTed into withdrawal_intents through the plain driver (sqlite3; asyncpg with the
   literals typed into the statement): either the database refuses and nothing is
   written, or the row is ``queued`` with its creation event, and the worker's field
   check (``rules.check_fields``) answers Pass or Reject with a reason, never raises.
2. End to end, on a handful of generated rows near the sandbox's whitelisted destinations
   (addresses with a changed letter, a stray space, a zero-width character, tags added or
   dropped, amounts around each network's limits): every accepted row settles (terminal
   or needs_attention), a row that ended ``rejected`` never reached withdraw/apply, and
   no withdrawal was accepted to a destination outside the whitelist.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from treasury.domain.decisions import Pass, Reject
from treasury.domain.ids import withdraw_order_id
from treasury.domain.rules import check_fields
from treasury.domain.status import Status
from treasury.sandbox.config import default_config
from treasury.sandbox.ledger import read_ledger

# The ledger / migrated_url / stack_factory fixtures are function-scoped: examples share one
# database on purpose (rows accumulate; each example checks only its own).
SHARED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=SHARED)

Value = str | int | float | bytes | None

# ---- values ----------------------------------------------------------------------------

odd_text = st.sampled_from(
    [
        "",
        " ",
        "  USDT",
        "USDT ",
        "\t",
        "\n",
        "\u200b",
        "\u00a0",
        "TRX\u200b",
        "é",
        "ß",
        "ǅ",
        "İ",
        "١٢",
        "😀",
        "\x7f",
        "\x01",
        "NULL",
        "null",
        "'",
        "''",
        "\\",
        "%",
        "a" * 20,
        "A" * 21,
        "A" * 33,
        "x" * 257,
        "x" * 129,
        "queued",
        "QUEUED",
        "submitted",
    ]
)
texts = st.one_of(
    odd_text,
    st.text(max_size=30),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=34),
)
ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 10, 2**31]))
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, 1.5, -0.0, 1e-30, 1e300]),
)
amount_texts = st.one_of(
    st.from_regex(r"-?[0-9]{1,30}(\.[0-9]{0,22})?", fullmatch=True),
    st.sampled_from(
        [
            "10",
            "125.50",
            "0.000000000000000001",
            "0.0000000000000000001",
            "00.5",
            "0",
            "0.000",
            "-5",
            "+5",
            "1e5",
            "1E+2",
            " 1",
            "1 ",
            "1.",
            ".5",
            "1..2",
            "1,5",
            "NaN",
            "Infinity",
            "-Infinity",
            "9" * 40,
            "99999999999999999999",
            "100000000000000000000",
            "١٢",
            "0x10",
            "",
        ]
    ),
    texts,
)
values = st.one_of(st.none(), texts, ints, floats)
amounts = st.one_of(amount_texts, amount_texts, ints, floats, st.none())

CONTRACT = [
    "coin",
    "network",
    "address",
    "address_tag",
    "amount",
    "request_id",
    "account",
    "requested_by",
    "note",
]
PLAUSIBLE: dict[str, st.SearchStrategy[Value]] = {
    "coin": st.sampled_from(["USDT", "BTC", "XRP"]),
    "network": st.sampled_from(["TRX", "ETH", "XRP"]),
    "address": st.sampled_from(
        ["TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh"]
    ),
    "address_tag": st.sampled_from([None, "104400725"]),
    "amount": st.sampled_from(["10", "125.50", "0.000001"]),
    "request_id": st.one_of(st.none(), st.uuids().map(str)),
    "account": st.sampled_from(["default", "treasury-sub"]),
    "requested_by": st.sampled_from([None, "alice"]),
    "note": st.sampled_from([None, "weekly rebalance"]),
}


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Value]:
    """Columns to insert (a missing required column is a refusal too)."""
    fuzzed = draw(st.sets(st.sampled_from(CONTRACT), min_size=1, max_size=4))
    row: dict[str, Value] = {}
    for column in CONTRACT:
        if column in fuzzed:
            if draw(st.sampled_from(range(8))) == 0:
                continue  # leave it out: default or NOT NULL refusal
            row[column] = draw(amounts if column == "amount" else values)
        else:
            row[column] = draw(PLAUSIBLE[column])
    if draw(st.sampled_from(range(10))) == 0:
        row["status"] = draw(
            st.one_of(st.sampled_from(["queued", "submitted", "completed"]), values)
        )
    return row


# ---- inserting as an operator would ------------------------------------------------------


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def literal(value: Value) -> str:
    """A value typed into a PostgreSQL statement."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    assert isinstance(value, str)
    return "'" + value.replace("'", "''") + "'"


class Refused(Exception):
    """The database (or its driver) refused the INSERT."""


async def insert(url: str, row: dict[str, Value], raw: dict[str, str] | None = None) -> int:
    """INSERT through the plain driver; the new id, or Refused.

    ``raw``: PostgreSQL only, literals typed as they are (``'NaN'``).
    """
    raw = raw or {}
    columns = ", ".join([*row, *raw])
    if not is_postgres(url):
        path = url.split(":///", 1)[1]
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            assert not raw, "raw literals are for PostgreSQL statements"
            cursor = conn.execute(
                f"INSERT INTO withdrawal_intents ({columns}) VALUES "
                f"({', '.join('?' for _ in row)})",
                list(row.values()),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid
        except sqlite3.DatabaseError as exc:
            raise Refused(str(exc)) from None
        finally:
            conn.close()
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        sql = (
            f"INSERT INTO withdrawal_intents ({columns}) "
            f"VALUES ({', '.join([*(literal(v) for v in row.values()), *raw.values()])}) "
            "RETURNING id"
        )
        new_id = await conn.fetchval(sql)
        assert isinstance(new_id, int)
        return new_id
    except asyncpg.PostgresError as exc:
        raise Refused(str(exc)) from None
    finally:
        await conn.close()


def for_dialect(url: str, row: dict[str, Value]) -> dict[str, Value]:
    """PostgreSQL statements are text: no NUL there (the server cannot take it in a query)."""
    if not is_postgres(url):
        return row
    return {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in row.items()}


async def counts(ledger: Any) -> tuple[int, int]:
    from sqlalchemy import func, select

    from treasury.adapters.db.tables import intent_events, withdrawal_intents

    async with ledger.intents.engine.connect() as conn:
        intents = await conn.execute(select(func.count()).select_from(withdrawal_intents))
        events = await conn.execute(select(func.count()).select_from(intent_events))
        return intents.scalar_one(), events.scalar_one()


# ---- 1. one row at a time ----------------------------------------------------------------


@FUZZ
@given(rows())
@example(
    {
        "coin": "USDT",
        "network": "TRX",
        "address": "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ",
        "amount": "125.50",
    }
)
@example({"coin": "USDT", "network": "TRX", "address": "TX1", "amount": "99999999999999999999999"})
@example({"coin": "USDT", "network": "TRX", "address": "TX1", "amount": 1.5})
@example({"coin": "USDT", "network": "TRX", "address": "TX1", "amount": "1e5"})
@example({"coin": "ß", "network": "TRX", "address": "TX1", "amount": "1"})
@example({"coin": "USDT", "network": "TRX", "address": "TX 1", "amount": "1", "address_tag": " "})
@example({"coin": "USDT", "network": 5, "address": 7, "amount": "1", "account": 1.5})
async def test_a_row_is_refused_by_the_database_or_judged_by_the_worker(
    migrated_url: str,
    ledger: Any,
    row: dict[str, Value],
) -> None:
    row = for_dialect(migrated_url, row)
    before = await counts(ledger)
    try:
        new_id = await insert(migrated_url, row)
    except Refused:
        event("refused by the database")
        assert await counts(ledger) == before, f"a refused INSERT wrote rows: {row!r}"
        return
    assert await counts(ledger) == (before[0] + 1, before[1] + 1)  # the row and its event
    intent = await ledger.intents.get(new_id)
    assert intent.status is Status.QUEUED, (row, intent.status)
    events = await ledger.intents.events(new_id)
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [(None, "queued", "sql")]

    verdict = check_fields(intent)
    event(f"stored, check_fields: {type(verdict).__name__}")
    assert isinstance(verdict, Pass | Reject), verdict
    if isinstance(verdict, Reject):
        assert verdict.reason.startswith("invalid "), verdict
        return
    # Passed: these are the exact values typed, and the amount is a sane exact Decimal.
    assert isinstance(intent.amount, Decimal) and intent.amount.is_finite()
    assert intent.amount > 0
    typed = row["amount"]
    if isinstance(typed, str):
        assert intent.amount == Decimal(typed), (typed, intent.amount)
    for column in ("coin", "network", "address"):
        if isinstance(row.get(column), str):
            assert getattr(intent, column) == row[column]


# ---- known bugs (see the fuzz report): strict, so they fail loudly once fixed ---------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_blob_in_a_text_column_is_refused_or_rejected(
    migrated_url: str,
    ledger: Any,
) -> None:
    for column in ("network", "address", "address_tag", "account"):
        row: dict[str, Value] = {
            "coin": "USDT",
            "network": "TRX",
            "address": "TX1",
            "amount": "1",
            column: b"TRX",
        }
        try:
            new_id = await insert(migrated_url, row)
        except Refused:
            continue
        verdict = check_fields(await ledger.intents.get(new_id))
        assert isinstance(verdict, Reject), (column, verdict)


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize("amount", ["'NaN'", "'Infinity'", "'-Infinity'", "'nan'"])
async def test_a_non_finite_amount_is_refused_by_postgres(
    migrated_url: str,
    ledger: Any,
    amount: str,
) -> None:
    """Found by this fuzzing and fixed (migration 0004): NUMERIC admits NaN (> 0 there) and
    Infinity, the first CHECK let them in, and `treasury list`/`show` then crashed."""
    before = await counts(ledger)
    with pytest.raises(Refused):
        await insert(
            migrated_url,
            {"coin": "USDT", "network": "TRX", "address": "TX1"},
            raw={"amount": amount},
        )
    assert await counts(ledger) == before


# ---- 2. end to end through the worker ----------------------------------------------------

CONFIG = default_config()
ACCOUNT = CONFIG.accounts["default"]
WHITELIST = {(w.coin, w.network, w.address, w.address_tag or "") for w in ACCOUNT.whitelist}
ENTRIES = sorted(WHITELIST)
RULES = {(c, n.network): n for c, coin in CONFIG.coins.items() for n in coin.networks}


ADDRESS_CHANGES: list[tuple[str, Callable[[str], str]]] = [
    ("same", lambda a: a),
    ("swapcase", lambda a: a.swapcase()),
    ("trailing space", lambda a: a + " "),
    ("zero-width", lambda a: a[:5] + "\u200b" + a[5:]),
    ("last char", lambda a: a[:-1] + ("1" if a[-1] != "1" else "2")),
    ("cyrillic o", lambda a: a.replace("o", "\u043e", 1) if "o" in a else a + "\u043e"),
    ("truncated", lambda a: a[:-1]),
]


@st.composite
def destination_rows(draw: st.DrawFn) -> dict[str, Value]:
    coin, network, address, tag = draw(st.sampled_from(ENTRIES))
    _, how = draw(st.sampled_from(ADDRESS_CHANGES))
    row: dict[str, Value] = {"coin": coin, "network": network, "address": how(address)}
    if draw(st.sampled_from(range(5))) == 0:  # another network for the same address
        row["network"] = draw(st.sampled_from(sorted({n for _, n in RULES})))
    tag_choice = draw(st.sampled_from(["keep", "keep", "drop", "other", "space"]))
    new_tag = {"keep": tag, "drop": "", "other": (tag or "") + "9", "space": " " + (tag or "1")}
    if new_tag[tag_choice]:
        row["address_tag"] = new_tag[tag_choice]
    rule = RULES.get((coin, str(row["network"])))
    low = rule.withdraw_min if rule is not None else Decimal(1)
    step = rule.withdraw_integer_multiple if rule is not None else Decimal("0.01")
    kind = draw(st.sampled_from(["fits", "fits", "below min", "off step", "fee", "odd"]))
    if kind == "fits":
        steps = draw(st.integers(0, 200))
        amount = format(low + step * steps if step > 0 else low, "f")
    elif kind == "below min":
        amount = format(low / 2, "f")
    elif kind == "off step":
        amount = format(low + (step / 2 if step > 0 else Decimal("1E-19")), "f")
    elif kind == "fee":
        amount = format(rule.withdraw_fee if rule is not None else Decimal(1), "f")
    else:
        amount = draw(amount_texts)
    row["amount"] = amount
    return row


# No shrinking: one example runs a whole daemon, and a stuck one costs the full wait. The
# failure message lists the rows and where each intent stopped instead.
@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=SHARED,
    phases=[Phase.explicit, Phase.generate],
)
@given(st.lists(destination_rows(), min_size=1, max_size=4))
@example(
    [  # near misses that pass every format check: only the whitelist stands between
        {
            "coin": "USDT",
            "network": "TRX",
            "address": "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQ1",
            "amount": "12",
        },
        {
            "coin": "USDT",
            "network": "BSC",
            "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce61",
            "amount": "15.5",
        },
        {
            "coin": "XRP",
            "network": "XRP",
            "address": "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh",
            "address_tag": "104400726",
            "amount": "3",
        },
        {
            "coin": "USDT",
            "network": "TRX",
            "address": "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ",
            "amount": "11",
        },
    ]
)
@example(
    [  # a tag dropped, a tag added, another network for a whitelisted address
        {
            "coin": "XRP",
            "network": "XRP",
            "address": "r9Q997XVDHVduUDtPiNm9kvLEzFq5yxhR9",
            "amount": "3",
        },
        {
            "coin": "USDT",
            "network": "ETH",
            "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
            "address_tag": "1",
            "amount": "20",
        },
        {
            "coin": "ETH",
            "network": "BSC",
            "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
            "amount": "0.01",
        },
    ]
)
async def test_sql_rows_settle_and_only_whitelisted_checked_rows_are_sent(
    migrated_url: str,
    stack_factory: Callable[..., Any],
    generated: list[dict[str, Value]],
) -> None:
    generated = [for_dialect(migrated_url, r) for r in generated]
    async with stack_factory(max_hold_s=1.0) as stack:
        ledger = stack.rt.ledger
        typed: dict[int, dict[str, Value]] = {}
        for row in generated:
            try:
                typed[await insert(migrated_url, row)] = row
            except Refused:
                continue
        accepted = list(typed)
        if not accepted:
            return
        stuck = ""
        async with stack.daemon():
            try:
                settled = await stack.wait_settled(accepted, timeout=30)
            except TimeoutError:  # inside the daemon's task group, so it is not wrapped
                stuck = "; ".join(
                    f"#{i.id} {i.status.value} ({i.status_reason}) from {typed[i.id]!r}"
                    for i in [await ledger.intents.get(i) for i in accepted]
                )
        if stuck:
            pytest.fail(f"rows did not settle within 30 s: {stuck}")
        namespace = await ledger.intents.namespace()
    journal = read_ledger(stack.journal)

    for intent in settled:
        event(f"ended {intent.status.value}")
        assert intent.status.terminal or intent.status is Status.NEEDS_ATTENTION, intent
        oid = withdraw_order_id(namespace, intent.id)
        calls = journal.apply_calls_for(oid)
        sent = journal.withdrawals_for(oid)
        assert len(sent) <= 1, f"intent {intent.id} was withdrawn {len(sent)} times"
        if isinstance(check_fields(intent), Reject):
            assert intent.status is Status.REJECTED, (intent.id, intent.status)
        if intent.status is Status.REJECTED:
            assert not calls, f"rejected intent {intent.id} reached withdraw/apply: {calls}"
        if intent.status is Status.COMPLETED:
            [w] = sent
            assert (w.coin, w.network, w.address, w.address_tag or "", w.amount) == (
                intent.coin,
                intent.network,
                intent.address,
                intent.address_tag or "",
                intent.amount,
            )
        if sent:
            key = (intent.coin, intent.network, intent.address, intent.address_tag or "")
            assert key in WHITELIST, f"intent {intent.id} sent to {key}, not whitelisted"

    for request in journal.apply_requests:
        # Not only accepted ones: the local checks must stop a non-whitelisted destination
        # before it is sent at all (the exchange's own refusal is the second line, not the first).
        p = request.params
        key = (p.get("coin"), p.get("network"), p.get("address"), p.get("addressTag") or "")
        assert key in WHITELIST, f"withdraw/apply was sent for {key} (accepted: {request.accepted})"
    for w in journal.withdrawals:
        if w.source == "api":
            assert (w.coin, w.network, w.address, w.address_tag or "") in WHITELIST, w


# ---- found by the property above, and fixed -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_submission_during_an_idle_poll_is_settled_promptly(
    migrated_url: str,
    stack_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Daemon._settle_loop installed its wake-up event only after a poll: a submission that
    landed during that poll set the old event, and the loop slept its 60 s idle interval."""
    import anyio

    from treasury.domain.validation import validate_new_intent
    from treasury.services import settle

    real_poll = settle.poll_once

    async def poll_then_linger(ctx: Any, stats: Any) -> float | None:
        youngest = await real_poll(ctx, stats)
        await anyio.sleep(1.5)  # the send happens now, after in_flight was read
        return youngest

    monkeypatch.setattr(settle, "poll_once", poll_then_linger)
    async with stack_factory() as stack:
        new = validate_new_intent(
            coin="USDT", network="TRX", address="TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", amount="20"
        )
        intent, _ = await stack.rt.ledger.intents.enqueue(new, actor="fuzz")
        late = False
        async with stack.daemon():
            try:
                [done] = await stack.wait_settled([intent.id], timeout=20)
            except TimeoutError:
                late = True
    if late:
        raise TimeoutError("a withdrawal accepted in the sandbox was not settled within 20 s")
    assert done.status is Status.COMPLETED
