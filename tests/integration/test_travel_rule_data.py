"""The travel rule's data, on SQLite and PostgreSQL: an address-book entry's profile and an
intent's own questionnaire go in through the CLI and the bots' API, checked against the
account's local entity; a refusal names the field and writes nothing; a profile change is
an audited new version whose event holds no personal data; logs never show a name."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.api import Treasury
from treasury.cli import app
from treasury.domain.errors import InvalidField
from treasury.domain.travel_rule import Entity, make_profile, questionnaire_of
from treasury.logs import configure

runner = CliRunner()
# distinctive names: a test scans every output for them
FIRST, LAST, KANJI, KANA = "Wilhelmina", "Quastenberg", "鷲見花子", "スミハナコ"
EU_THIRD: dict[str, Any] = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "bnfFirstName": FIRST,
    "bnfLastName": LAST,
    "country": "pl",
    "sendTo": 2,
    "vasp": "others",
    "vaspName": "Zyxwvut Exchange",
    "declaration": True,
}
EU_FIRST: dict[str, Any] = {"isAddressOwner": 1, "sendTo": 1, "declaration": True}
JP_THIRD: dict[str, Any] = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "kanjiName": KANJI,
    "kanaName": KANA,
    "latinName": f"{FIRST} {LAST}",
    "country": "jp",
    "city": "Kobe",
    "sendTo": 2,
    "txnPurpose": 2,
    "isAttested": True,
}
PERSONAL = (FIRST, LAST, KANJI, KANA, "Zyxwvut")


async def cli(*args: str) -> Result:
    return await anyio.to_thread.run_sync(lambda: runner.invoke(app, list(args)))


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result.stdout


def refused(result: Result, code: int, *words: str) -> str:
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    err = result.stderr
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)
    assert result.stdout == ""
    return err


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        return {
            n: [tuple(r) for r in (await conn.execute(text(f'SELECT * FROM "{n}" ORDER BY 1')))]
            for n in sorted(names)
        }


def write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


@pytest.fixture
def url(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TREASURY_DATABASE_URL", migrated_url)
    monkeypatch.setenv("TREASURY_LOCAL_ENTITY", "EU")
    return migrated_url


@pytest.fixture
async def engine(url: str) -> Any:
    e = create_engine(url)
    yield e
    await e.dispose()


ADD = ("whitelist", "add", "--coin", "USDT", "--network", "TRX", "--address", "TXyzAbc123")


async def test_add_with_a_profile_stores_it_and_the_event_has_only_its_hash(
    url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = write(tmp_path, "p.json", EU_THIRD)
    out = ok(await cli(*ADD, "--as", "alice", "--reason", "payroll", "--travel-rule-profile", path))
    assert "with a EU travel-rule profile" in out
    profile = make_profile(Entity.EU, EU_THIRD)
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT id, travel_rule_profile, version FROM whitelist_entries")
            )
        ).one()
        events = (await conn.execute(text("SELECT * FROM whitelist_events"))).all()
    assert stored[1] == profile.to_json() and stored[2] == 1
    (event,) = events
    assert f"sha256:{profile.fingerprint}" in event._mapping["reason"]
    assert event._mapping["reason"].startswith("payroll (travel-rule profile EU ")
    for word in PERSONAL:
        assert word not in repr(tuple(event))
    # what the worker will call: the profile is the questionnaire
    assert questionnaire_of(Entity.EU, stored[1], None) == EU_THIRD
    # list and show: redacted, in the table and in JSON
    listed = ok(await cli("whitelist", "list"))
    assert "EU," in listed  # the travel-rule column (folded in a narrow terminal)
    for text_out in (
        listed,
        ok(await cli("whitelist", "list", "--json")),
        ok(await cli("whitelist", "show", str(stored[0]))),
        ok(await cli("whitelist", "history", "--json")),
    ):
        for word in PERSONAL:
            assert word not in text_out, (word, text_out)
    shown = json.loads(ok(await cli("whitelist", "show", str(stored[0]))))
    assert shown["travel_rule_profile"]["questionnaire"]["bnfFirstName"] == "<redacted>"
    assert shown["travel_rule_profile"]["questionnaire"]["country"] == "pl"


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({k: v for k, v in EU_THIRD.items() if k != "bnfLastName"}, ["bnfLastName", "missing"]),
        (EU_THIRD | {"country": "PL"}, ["travel_rule_profile.country", "lower case"]),
        (EU_THIRD | {"declaration": False}, ["travel_rule_profile.declaration"]),
        (EU_THIRD | {"bnfFirstName": "W1lhelmina"}, ["travel_rule_profile.bnfFirstName"]),
        (EU_THIRD | {"kanjiName": KANJI}, ["travel_rule_profile.kanjiName", "not a field"]),
        (JP_THIRD, ["travel_rule_profile.city", "not a field of the EU"]),  # a JP profile
        ([1, 2], ["travel_rule_profile", "JSON object"]),
        ("{not json", ["--travel-rule-profile", "is not JSON"]),
    ],
)
async def test_add_refuses_a_bad_profile_naming_the_field_and_writes_nothing(
    url: str, engine: AsyncEngine, tmp_path: Path, answers: object, words: list[str]
) -> None:
    before = await snapshot(engine)
    path = write(tmp_path, "p.json", answers)
    err = refused(
        await cli(*ADD, "--as", "alice", "--reason", "r", "--travel-rule-profile", path),
        2,
        *words,
    )
    for word in PERSONAL:
        assert word not in err
    assert await snapshot(engine) == before


async def test_the_entity_comes_from_the_account_or_entity_and_must_agree(
    url: str, engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await snapshot(engine)
    path = write(tmp_path, "p.json", JP_THIRD)
    base = (*ADD, "--as", "alice", "--reason", "r", "--travel-rule-profile", path)
    refused(await cli(*base, "--entity", "JP"), 2, "--entity", "under EU")
    refused(await cli(*base, "--entity", "KZ"), 2, "--entity", "not a modelled")
    monkeypatch.delenv("TREASURY_LOCAL_ENTITY")
    refused(await cli(*base), 2, "--entity", "under no local entity")
    assert await snapshot(engine) == before
    ok(await cli(*base, "--entity", "jp"))


async def test_profile_command_makes_a_new_version_that_needs_approving_again(
    url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    ok(await cli(*ADD, "--as", "alice", "--reason", "new destination"))
    async with engine.connect() as conn:
        entry_id = (await conn.execute(text("SELECT id FROM whitelist_entries"))).scalar_one()
    ok(await cli("whitelist", "approve", str(entry_id), "--as", "bob"))
    before = await snapshot(engine)
    bad = write(tmp_path, "bad.json", EU_THIRD | {"sendTo": 3})
    refused(
        await cli("whitelist", "profile", str(entry_id), bad, "--as", "carol", "--reason", "r"),
        2,
        "travel_rule_profile.sendTo",
    )
    refused(
        await cli("whitelist", "profile", "999", bad, "--as", "carol", "--reason", "r"),
        1,
        "not found",
    )
    assert await snapshot(engine) == before
    good = write(tmp_path, "good.json", EU_THIRD)
    said = ok(
        await cli(
            "whitelist", "profile", str(entry_id), good, "--as", "carol", "--reason", "KYC done"
        )
    )
    assert "(version 2) now has a EU travel-rule profile" in said
    again = ok(
        await cli("whitelist", "profile", str(entry_id), good, "--as", "carol", "--reason", "x")
    )
    assert "already has this profile" in again
    async with engine.connect() as conn:
        events = (
            await conn.execute(text("SELECT kind, actor, reason, version FROM whitelist_events"))
        ).all()
        approvals = (
            await conn.execute(text("SELECT entry_version FROM whitelist_approvals"))
        ).all()
    assert [(e[0], e[1], e[3]) for e in events] == [
        ("add", "cli:alice", 1),
        ("edit", "cli:carol", 2),
    ]
    assert events[1][2].startswith("KYC done (travel-rule profile EU sha256:")
    for word in PERSONAL:
        assert word not in repr(events)
    # bob approved version 1: the changed beneficiary is version 2, not approved yet
    assert [a[0] for a in approvals] == [1]


async def test_enqueue_questionnaire_checked_stored_and_fixed(
    url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    base = ("enqueue", "--coin", "USDT", "--network", "TRX", "--address", "TXyzAbc123")
    base += ("--amount", "10", "--as", "alice", "--json")
    before = await snapshot(engine)
    bad = write(tmp_path, "q.json", EU_FIRST | {"declaration": "yes"})
    refused(await cli(*base, "--questionnaire", bad), 2, "questionnaire.declaration")
    refused(
        await cli(*base, "--questionnaire", write(tmp_path, "n.json", "[")),
        2,
        "--questionnaire",
        "is not JSON",
    )
    assert await snapshot(engine) == before
    good = write(tmp_path, "good.json", EU_THIRD)
    shown = json.loads(ok(await cli(*base, "--questionnaire", good)))
    assert shown["questionnaire"]["bnfLastName"] == "<redacted>"
    assert shown["questionnaire"]["isAddressOwner"] == 2
    listed = ok(await cli("show", str(shown["id"]), "--json"))
    for word in PERSONAL:
        assert word not in listed
    async with engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT questionnaire FROM withdrawal_intents"))
        ).scalar_one()
    assert json.loads(stored) == EU_THIRD
    # the intent's own replaces any profile (no merge)
    profile = make_profile(Entity.EU, EU_FIRST).to_json()
    assert questionnaire_of(Entity.EU, profile, stored) == EU_THIRD
    with pytest.raises(DBAPIError, match="questionnaire is fixed"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE withdrawal_intents SET questionnaire = NULL"))


async def test_api_questionnaire_and_logs_never_show_a_name(url: str) -> None:
    stream = io.StringIO()
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure(fmt="json", level="debug", stream=stream)
    try:
        engine = create_engine(url)
        try:
            t = Treasury(SqlLedger.over(engine), actor="bot", local_entities={"default": "JP"})
            with pytest.raises(InvalidField) as info:
                await t.enqueue(
                    coin="USDT",
                    network="TRX",
                    address="TXyzAbc123",
                    amount="5",
                    questionnaire=JP_THIRD | {"txnPurpose": 3},
                )
            assert info.value.field == "questionnaire.txnPurpose"
            intent = await t.enqueue(
                coin="USDT",
                network="TRX",
                address="TXyzAbc123",
                amount="5",
                request_id="tr-1",
                questionnaire=json.dumps(JP_THIRD),
            )
            assert intent.questionnaire is not None
            assert json.loads(intent.questionnaire) == JP_THIRD
            # the same request_id with another questionnaire is a conflict, named
            with pytest.raises(ValueError, match="different questionnaire"):
                await t.enqueue(
                    coin="USDT",
                    network="TRX",
                    address="TXyzAbc123",
                    amount="5",
                    request_id="tr-1",
                    questionnaire=JP_THIRD | {"city": "Osaka"},
                )
            # what a worker or a careless call site would log
            log = structlog.get_logger("treasury.worker")
            log.info("sending", intent_id=intent.id, questionnaire=intent.questionnaire)
            log.info("profile", travel_rule_profile=make_profile(Entity.JP, JP_THIRD).to_json())
        finally:
            await engine.dispose()
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
    logged = stream.getvalue()
    assert '"questionnaire"' in logged and '"txnPurpose": 2' in logged
    for word in PERSONAL:
        assert word not in logged, word
        assert json.dumps(word)[1:-1] not in logged, word
