"""The roles' classification (no database): every table decided for every role, the
append-only tables never changed by anyone, and ``treasury db roles`` on SQLite refused.

What the grants allow and refuse on a real server: tests/integration/test_db_roles.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table
from typer.testing import CliRunner

from treasury.adapters.db import roles
from treasury.adapters.db.roles import ACCESS, ENQUEUE, Role, statements, unclassified
from treasury.adapters.db.tables import metadata
from treasury.cli import app
from treasury.domain.validation import validate_new_intent
from treasury.ports.store import new_intent_row

APPEND_ONLY = [name for name in metadata.tables if name.endswith("_events")] + [
    "intent_approvals",
    "whitelist_approvals",
]


def test_every_table_is_classified_for_every_role() -> None:
    assert unclassified(metadata) == []
    assert set(ACCESS) == set(metadata.tables), "a classified table that no longer exists"


def test_a_new_table_without_a_classification_is_refused() -> None:
    grown = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(grown)
    Table("ledger_notes", grown, Column("id", Integer, primary_key=True))
    assert unclassified(grown) == ["ledger_notes"]
    with pytest.raises(ValueError, match="ledger_notes: classify it"):
        statements(metadata=grown)


def test_granted_columns_exist() -> None:
    for name, access in ACCESS.items():
        for privileges in access.values():
            for p in privileges:
                assert set(p.columns) <= set(metadata.tables[name].c.keys()), (name, p)


def test_nobody_changes_or_deletes_an_event_or_an_approval() -> None:
    for name in APPEND_ONLY:
        for role, privileges in ACCESS[name].items():
            verbs = {p.verb for p in privileges}
            assert not verbs & {"UPDATE", "DELETE"}, (name, role)


def test_no_role_truncates_references_or_triggers() -> None:
    grants = [s for s in statements() if s.startswith("GRANT")]
    for forbidden in ("TRUNCATE", "REFERENCES", "TRIGGER", " ALL "):
        assert not [g for g in grants if forbidden in g], forbidden


def test_a_bot_reaches_only_the_intents_and_their_events() -> None:
    reached = {name for name, access in ACCESS.items() if access[Role.BOT]}
    assert reached == {"withdrawal_intents", "intent_events"}
    assert ACCESS["withdrawal_intents"][Role.BOT] == (roles.SELECT, ENQUEUE)


def test_the_enqueue_grant_is_exactly_what_an_enqueue_writes() -> None:
    new = validate_new_intent(coin="USDT", network="TRX", address="T1", amount=Decimal("1"))
    written = new_intent_row(new, actor="api", now=datetime.now(UTC))
    assert set(ENQUEUE.columns) == set(written)


def test_the_prefix_names_the_roles_and_a_bad_one_is_refused() -> None:
    assert roles.role_names("acme_") == {
        Role.DAEMON: "acme_daemon",
        Role.OPERATOR: "acme_operator",
        Role.BOT: "acme_bot",
    }
    for bad in ("Acme", "a-b", "a b", "x;drop", "", "a" * 41):
        with pytest.raises(ValueError, match="--prefix"):
            roles.role_names(bad)


runner = CliRunner()


def test_db_roles_print_needs_no_database() -> None:
    result = runner.invoke(app, ["db", "roles", "--print", "--prefix", "acme_"])
    assert result.exit_code == 0, result.output
    assert "CREATE ROLE acme_bot NOLOGIN" in result.stdout
    assert "CREATE POLICY acme_bot_own ON withdrawal_intents" in result.stdout


def test_db_roles_on_sqlite_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREASURY_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    result = runner.invoke(app, ["db", "roles"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "PostgreSQL feature" in result.stderr and "file's permissions" in result.stderr
    assert not (tmp_path / "ledger.sqlite3").exists()


def test_db_roles_with_a_bad_prefix_is_refused_in_one_line() -> None:
    result = runner.invoke(app, ["db", "roles", "--prefix", "Bad-Name", "--print"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --prefix:") and result.stderr.count("\n") == 1
