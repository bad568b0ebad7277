"""One policy, in the ledger, on SQLite and PostgreSQL: ``treasury policy`` applies,
diffs, refuses no-ops and bad files; a second person activates a change when the policy
says so; the database refuses edits and deletions; ``approve`` and every daemon read the
same version; ``TREASURY_POLICY_FILE`` seeds an empty ledger and is never applied over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from test_cli_admin import cli, enqueue, ok, one_line_error, refused, snapshot

from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.bootstrap import PolicyHolder, adopt_policy_file
from treasury.config import load_settings
from treasury.domain.status import Status
from treasury.services.admin import Ledger

CAP_100 = '[coins.USDT]\ndaily_cap = "100"\napproval_threshold = "5"\napprovals_required = 2\n'
CAP_500 = CAP_100.replace('"100"', '"500"')
GUARDED = "policy_changes_need_approval = true\n" + CAP_100


@pytest.fixture
def url(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TREASURY_DATABASE_URL", migrated_url)
    return migrated_url


def write(tmp_path: Path, body: str, name: str = "policy.toml") -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


async def apply(path: str, who: str = "alice", *extra: str) -> Any:
    return await cli("policy", "apply", path, "--as", who, "--reason", "test", "--yes", *extra)


async def test_apply_shows_the_diff_keeps_history_and_refuses_a_no_op(
    url: str, ledger: SqlLedger, tmp_path: Path
) -> None:
    first = ok(await apply(write(tmp_path, CAP_100)))
    assert "changes from no policy yet" in first and "policy v1 is in force" in first
    assert "coins.USDT.daily_cap: (unset) -> 100" in first

    before = await snapshot(ledger.engine)
    # the same policy, spelt differently: nothing to apply, nothing written
    same = write(tmp_path, CAP_100.replace('"100"', "100.0"), "same.toml")
    err = refused(await apply(same), 1, "is the policy in force (v1)", "nothing to apply")
    one_line_error(err)
    # a mistake is named by its key path, before the ledger is opened
    typo = write(tmp_path, '[coins.USDT]\ndaily_cpa = "1"\n', "typo.toml")
    err = refused(await apply(typo), 2, "typo.toml: coins.USDT.daily_cpa: unknown key")
    one_line_error(err)
    bad = write(tmp_path, "policy_changes_need_approval = 1\n", "bad.toml")
    refused(await apply(bad), 2, "policy_changes_need_approval: must be true or false")
    refused(await cli("policy", "apply", same, "--as", "alice", "--reason", " "), 2, "--reason")
    assert await snapshot(ledger.engine) == before

    second = ok(await apply(write(tmp_path, CAP_500, "raise.toml"), "bob"))
    assert "changes from v1:" in second and "coins.USDT.daily_cap: 100 -> 500" in second
    assert "approval_threshold" not in second  # only what changes
    shown = ok(await cli("policy", "show"))
    assert "# version: 2" in shown and 'daily_cap = "500"' in shown
    old = ok(await cli("policy", "show", "--version", "1"))
    assert "# status: superseded" in old and 'daily_cap = "100"' in old
    rows = (await cli("policy", "history", "--json")).stdout
    import json

    history = json.loads(rows)
    assert [(h["version"], h["status"], h["applied_by"]) for h in history] == [
        (2, "active", "cli:bob"),
        (1, "superseded", "cli:alice"),
    ]
    events = await ledger.events.recent("policy_applied")
    assert [e.subject for e in events] == ["v2", "v1"]
    assert "coins.USDT.daily_cap: 100 -> 500" in events[0].detail and "test" in events[0].detail


async def test_a_change_waits_for_a_second_person_when_the_policy_says_so(
    url: str, ledger: SqlLedger, tmp_path: Path
) -> None:
    ok(await apply(write(tmp_path, GUARDED)))
    said = ok(await apply(write(tmp_path, GUARDED.replace('"100"', '"500"'), "v2.toml")))
    assert "needs a second person" in said and "policy v2 is pending" in said
    assert (await ledger.policies.current_version()) == 1  # v1 still in force

    before = await snapshot(ledger.engine)
    refused(await cli("policy", "approve", "2", "--as", "ALICE"), 1, "applied policy version 2")
    refused(await cli("policy", "approve", "1", "--as", "bob"), 1, "is active")
    refused(await cli("policy", "approve", "9", "--as", "bob"), 1, "policy version 9 not found")
    assert await snapshot(ledger.engine) == before

    done = ok(await cli("policy", "approve", "2", "--as", "bob"))
    assert "policy v2 is in force" in done and "approved by cli:bob" in done
    row = await ledger.policies.current()
    assert row is not None and (row.version, row.approved_by) == (2, "cli:bob")
    [event] = await ledger.events.recent("policy_approved")
    assert (event.subject, event.actor) == ("v2", "cli:bob")

    # a newer apply makes an older pending version lapse: it can no longer be approved
    ok(await apply(write(tmp_path, GUARDED.replace('"100"', '"600"'), "v3.toml")))
    ok(await apply(write(tmp_path, GUARDED.replace('"100"', '"700"'), "v4.toml")))
    refused(await cli("policy", "approve", "3", "--as", "bob"), 1, "version 3 is lapsed")
    statuses = [(r.version, r.status) for r in await ledger.policies.history()]
    assert statuses == [(4, "pending"), (3, "lapsed"), (2, "active"), (1, "superseded")]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE policy_versions SET document = 'deny_unlisted_coins = false' WHERE version = 1",
        "UPDATE policy_versions SET reason = 'other' WHERE version = 2",
        "UPDATE policy_versions SET approved_by = 'cli:ALICE', activated_at = created_at "
        "WHERE version = 2",  # the applier approving their own
        "DELETE FROM policy_versions WHERE version = 2",
        "DELETE FROM policy_versions",
        "INSERT INTO policy_versions (version, document, sha256, changes_need_approval, "
        "applied_by, reason) VALUES (5, 'x', '" + "0" * 64 + "', false, 'sql', 'skip one')",
        # in force while v1 says changes need a second person
        "INSERT INTO policy_versions (version, document, sha256, changes_need_approval, "
        "applied_by, reason, activated_at) VALUES (3, 'x', '"
        + "0" * 64
        + "', false, 'sql', 'by hand', CURRENT_TIMESTAMP)",
    ],
)
async def test_the_database_refuses_to_rewrite_the_policy(
    url: str, ledger: SqlLedger, tmp_path: Path, statement: str
) -> None:
    ok(await apply(write(tmp_path, GUARDED)))
    ok(await apply(write(tmp_path, GUARDED.replace('"100"', '"500"'), "v2.toml")))
    before = await snapshot(ledger.engine)
    with pytest.raises(DBAPIError, match="policy_versions"):
        async with ledger.engine.begin() as conn:
            await conn.execute(text(statement))
    assert await snapshot(ledger.engine) == before


async def test_approve_reads_the_ledgers_policy_and_names_its_version(
    url: str, ledger: Ledger, tmp_path: Path
) -> None:
    intent = await enqueue(amount="50")  # requested by alice; no policy file anywhere
    await ledger.intents.transition(
        intent["id"], Status.AWAITING_APPROVAL, reason="policy", actor="test"
    )
    # no policy in the ledger: refused rather than "approved (1 of 0)"
    refused(await cli("approve", str(intent["id"]), "--as", "bob"), 1, "no readable policy")
    ok(await apply(write(tmp_path, CAP_100), "admin"))
    first = ok(await cli("approve", str(intent["id"]), "--as", "bob"))
    assert "1 more approval(s) needed (policy v1)" in first
    assert (await ledger.intents.get(intent["id"])).status is Status.AWAITING_APPROVAL
    ok(await apply(write(tmp_path, CAP_500, "v2.toml"), "admin"))
    second = ok(await cli("approve", str(intent["id"]), "--as", "carol"))
    assert "released to the worker (policy v2)" in second
    notes = [e.reason for e in await ledger.intents.events(intent["id"]) if e.kind == "approval"]
    assert notes == [
        "approved by bob (approval 1 of 2, policy v1)",
        "approved by carol (approval 2 of 2, policy v2)",
    ]


async def test_every_process_reads_the_same_version(
    url: str, ledger: SqlLedger, tmp_path: Path
) -> None:
    """A daemon and a standby (each its own engine) and the CLI, on one ledger."""
    engines = [create_engine(url), create_engine(url)]
    try:
        holders = [PolicyHolder(SqlLedger.over(e), reread_s=0) for e in engines]
        assert [await h.current() for h in holders] == [None, None]
        ok(await apply(write(tmp_path, CAP_100)))
        seen = [await h.current() for h in holders]
        assert [s.version if s else None for s in seen] == [1, 1]
        assert seen[0] == seen[1]
        ok(await apply(write(tmp_path, CAP_500, "v2.toml")))
        seen = [await h.current() for h in holders]
        assert [s.version if s else None for s in seen] == [2, 2]
        assert "# version: 2" in ok(await cli("policy", "show"))  # and the CLI
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_file_seeds_an_empty_ledger_and_is_never_applied_over_it(
    url: str, ledger: SqlLedger, tmp_path: Path
) -> None:
    path = write(tmp_path, CAP_100)
    settings = load_settings(database_url=url, policy_file=path)
    assert await adopt_policy_file(settings, ledger) is None
    row = await ledger.policies.current()
    assert row is not None and (row.version, row.applied_by) == (1, f"file:{path}")
    [event] = await ledger.events.recent("policy_applied")
    assert event.actor == f"file:{path}" and "TREASURY_POLICY_FILE" in event.detail
    # a second daemon with the same file: nothing to do, nothing written
    before = await snapshot(ledger.engine)
    assert await adopt_policy_file(settings, ledger) is None
    # a standby whose file differs: a warning naming the difference; the ledger stays
    other = load_settings(database_url=url, policy_file=write(tmp_path, CAP_500, "other.toml"))
    warning = await adopt_policy_file(other, ledger)
    assert warning is not None
    assert "differs from the policy in force (v1)" in warning
    assert "coins.USDT.daily_cap: 100 -> 500" in warning and "treasury policy apply" in warning
    broken = load_settings(database_url=url, policy_file=write(tmp_path, "[x\n", "broken.toml"))
    assert "stays in force" in (await adopt_policy_file(broken, ledger) or "")
    assert await snapshot(ledger.engine) == before


async def test_once_operators_are_registered_a_policy_approval_proves_who_approved(
    url: str, ledger: SqlLedger, tmp_path: Path
) -> None:
    """The database checks who may activate a version, not a signature: every reader does,
    so an activation by raw SQL with a forged, replayed or by-name approval is in force for
    nobody (and ``check`` fails on it)."""
    from test_cli_operators import keygen

    from treasury.services.policy import in_force, read_in_force

    ok(await apply(write(tmp_path, GUARDED)))  # v1: changes need a second person
    keys = {}
    for name in ("alice", "bob"):
        keys[name], public = await keygen(tmp_path, name)
        ok(await cli("operator", "add", name, "--public-key", str(public), "--as", "admin"))

    ok(await apply(write(tmp_path, GUARDED.replace('"100"', '"200"'), "v2.toml")))
    before = await snapshot(ledger.engine)
    err = refused(await cli("policy", "approve", "2", "--as", "bob"), 1, "by name only")
    one_line_error(err)
    refused(await cli("policy", "approve", "2", "--key", str(keys["alice"])), 1, "applied")
    assert await snapshot(ledger.engine) == before
    said = ok(await cli("policy", "approve", "2", "--key", str(keys["bob"])))
    assert "policy v2 is in force" in said and "(signed)" in said
    v2 = await ledger.policies.get(2)
    assert v2.approved_by == "cli:bob" and v2.approval_signature
    assert (await in_force(ledger)).version == 2  # type: ignore[union-attr]

    # what a leaked database credential could try: activate the next version by hand, in
    # bob's name, with no signature, a garbage one, or bob's signature of v2 replayed
    for version, signature in ((3, None), (4, "AAAA"), (5, v2.approval_signature)):
        cap = f'"{version}00"'
        ok(await apply(write(tmp_path, GUARDED.replace('"100"', cap), f"v{version}.toml")))
        async with ledger.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE policy_versions SET approved_by = 'cli:bob', activated_at = "
                    "CURRENT_TIMESTAMP, approval_signature = :s WHERE version = :v"
                ),
                {"s": signature, "v": version},
            )
        assert (await ledger.policies.current()).version == version  # type: ignore[union-attr]
        assert (await in_force(ledger)).version == 2  # type: ignore[union-attr]
    reading = await read_in_force(ledger.policies, ledger.operators)
    assert [(v, why) for v, why in reading.passed_over] == [
        (5, "bob's signature does not match version 5"),
        (4, "bob's signature does not match version 4"),
        (3, "approved by bob by name only, while approvals are signed"),
    ]
    holder = PolicyHolder(ledger)
    assert (await holder.current()).version == 2  # type: ignore[union-attr]
