"""``treasury whitelist approve``, ``list`` and ``history`` with approvals, in process, on
SQLite and PostgreSQL: the path operators type, and their mistakes (each one line,
nothing written)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_admin import as_json, cli, ok, one_line_error, refused, snapshot
from test_cli_operators import keygen

from treasury.services.admin import Ledger

ADDRESS = ("--coin", "USDT", "--network", "TRX", "--address", "TXyzAbc123")


@pytest.fixture
async def url(migrated_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The ledger's policy asks for two approvals of an entry added by hand."""
    monkeypatch.setenv("TREASURY_DATABASE_URL", migrated_url)
    policy = tmp_path / "policy.toml"
    policy.write_text("address_book_approvals_required = 2\n")
    ok(await cli("policy", "apply", str(policy), "--as", "admin", "--reason", "test", "--yes"))
    return migrated_url


async def add_by_alice() -> int:
    said = ok(await cli("whitelist", "add", *ADDRESS, "--as", "alice", "--reason", "ticket 812"))
    return int(said.split()[2])


async def test_two_operators_approve_an_entry_with_their_keys(
    url: str, ledger: Ledger, tmp_path: Path
) -> None:
    keys = {}
    for name in ("alice", "bob", "carol"):
        keys[name], public = await keygen(tmp_path, name)
        ok(await cli("operator", "add", name, "--public-key", str(public), "--as", "admin"))
    entry_id = await add_by_alice()
    [listed] = as_json(await cli("whitelist", "list", "--json"))
    assert (listed["approvals_required"], listed["approved_by"]) == (2, [])
    assert "cooling until" in listed["waiting_for"]
    assert "2 more approvals" in listed["waiting_for"]

    first = ok(
        await cli(
            "whitelist", "approve", str(entry_id), "--key", str(keys["bob"]),
            "--reason", "called the owner",
        )
    )  # fmt: skip
    assert f"whitelist entry {entry_id} (version 1): approved by bob (1/2)" in first
    assert "1 more approval" in first
    second = ok(
        await cli(
            "whitelist", "approve", str(entry_id), "--key", str(keys["carol"]), "--as", "carol"
        )
    )
    assert "approved by bob, carol (2/2)" in second
    [listed] = as_json(await cli("whitelist", "list", "--json"))
    assert listed["approved_by"] == ["bob", "carol"]
    assert "approval" not in listed["waiting_for"]  # only the cooling is left
    assert "2/2" in ok(await cli("whitelist", "list"))

    history = as_json(await cli("whitelist", "history", str(entry_id), "--json"))
    assert [(h["kind"], h["actor"], h["version"]) for h in history] == [
        ("add", "cli:alice", 1),
        ("approve", "bob", 1),
        ("approve", "carol", 1),
    ]
    assert history[1]["reason"] == "called the owner" and history[1]["signed"] is True
    assert "approve" in ok(await cli("whitelist", "history"))

    # a new version (disable, enable) is approved anew
    for verb in ("disable", "enable"):
        ok(await cli("whitelist", verb, str(entry_id), "--as", "dave", "--reason", "check"))
    [listed] = as_json(await cli("whitelist", "list", "--json"))
    assert (listed["version"], listed["approved_by"]) == (3, [])


async def test_approval_mistakes_are_one_line_and_write_nothing(
    url: str, ledger: Ledger, tmp_path: Path
) -> None:
    keys = {}
    for name in ("alice", "bob"):
        keys[name], public = await keygen(tmp_path, name)
        ok(await cli("operator", "add", name, "--public-key", str(public), "--as", "admin"))
    stray, _ = await keygen(tmp_path, "stray")
    entry_id = await add_by_alice()
    ok(await cli("whitelist", "approve", str(entry_id), "--key", str(keys["bob"])))
    disabled = int(
        ok(
            await cli(
                "whitelist", "add", *ADDRESS[:4], "--address", "TOld", "--as", "alice",
                "--reason", "old",
            )
        ).split()[2]
    )  # fmt: skip
    ok(await cli("whitelist", "disable", str(disabled), "--as", "bob", "--reason", "retired"))
    not_a_key = tmp_path / "junk.pem"
    not_a_key.write_text("hello")
    entry = str(entry_id)
    before = await snapshot(ledger.engine)
    for args, code, words in (
        (("whitelist", "approve", "999"), 2, "--as or --key"),
        (("whitelist", "approve", entry, "--key", str(not_a_key)), 2, "--key"),
        (("whitelist", "approve", entry, "--as", "bob", "--reason", " "), 2, "--reason"),
        (("whitelist", "approve", "999", "--key", str(keys["bob"])), 1, "999 not found"),
        (("whitelist", "approve", "999", "--as", "bob"), 1, "999 not found"),
        (("whitelist", "approve", str(disabled), "--key", str(keys["bob"])), 1, "disabled"),
        (("whitelist", "approve", entry, "--key", str(keys["alice"])), 1, "added or changed"),
        (("whitelist", "approve", entry, "--as", "alice"), 1, "added or changed"),
        (("whitelist", "approve", entry, "--key", str(keys["bob"])), 1, "already approved"),
        (("whitelist", "approve", entry, "--as", "carol"), 1, "not a registered operator"),
        (("whitelist", "approve", entry, "--as", "bob"), 1, "not signed --key"),
        (("whitelist", "approve", entry, "--key", str(stray)), 1, "not a registered"),
        (("whitelist", "approve", entry, "--key", str(keys["bob"]), "--as", "x"), 1, "bob's"),
    ):
        err = refused(await cli(*args), code, *words.split())
        one_line_error(err)
    assert await snapshot(ledger.engine) == before


async def test_break_glass_approval_by_name_without_operators(url: str, ledger: Ledger) -> None:
    entry_id = await add_by_alice()
    said = ok(await cli("whitelist", "approve", str(entry_id), "--as", "bob"))
    assert "approved by bob (1/2)" in said
    history = as_json(await cli("whitelist", "history", "--json"))
    assert [(h["kind"], h.get("signed")) for h in history] == [("add", None), ("approve", False)]
    assert "approve" in ok(await cli("whitelist", "history"))
