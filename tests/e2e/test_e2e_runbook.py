"""The README's restore runbook, run line by line against real processes, on both databases.

A backup is taken (with the README's backup command) before anything is sent; then
intents are sent, including one created after the backup; then the runbook restores the
backup and brings the ledger level with the exchange. Nothing may be sent twice, the
intents of the backup are adopted, the one the backup lacks is on file as unmatched, and
after the runbook's resume new intents flow again without reusing an order id.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import anyio
import pytest
from harness import USDT_TRX, USDT_TRX_2, USDT_TRX_3, World, world
from invariants import Snapshot

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
SQLITE_BACKUP = 'sqlite3 treasury.sqlite3 ".backup treasury-backup.sqlite3"'
PG_BACKUP = 'pg_dump -Fc -f treasury-backup.dump "$DATABASE"'


def runbook() -> list[str]:
    """The command lines of the README's runbook block, comments stripped."""
    text = README.read_text("utf-8")
    block = re.search(
        r"<!-- runbook:start -->\n```\n(.*?)\n```\n<!-- runbook:end -->", text, re.DOTALL
    )
    assert block is not None, "README: the restore runbook block is missing"
    return [
        re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines() if line.strip()
    ]


def test_readme_documents_the_backup_commands_used_here() -> None:
    text = README.read_text("utf-8").replace("\n  ", " ")
    assert SQLITE_BACKUP in text and PG_BACKUP in text
    assert [line.split()[0] for line in runbook()] == [
        "systemctl",
        "sqlite3",
        "pg_restore",
        "treasury",
        "treasury",
        "treasury",
        "treasury",
        "systemctl",
        "treasury",
        "treasury",
    ]


async def shell(w: World, line: str) -> str:
    """An operator's shell line in the world's directory, its ledger standing in for
    ``treasury.sqlite3`` / ``$DATABASE``."""
    ledger = w.db_url.removeprefix("sqlite+aiosqlite:///")
    line = line.replace("treasury.sqlite3", shlex.quote(ledger))
    env = {
        "DATABASE": w.db_url.replace("postgresql+asyncpg", "postgresql"),
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    result = await anyio.run_process(["bash", "-c", line], cwd=w.workdir, env=env, check=False)
    assert result.returncode == 0, f"{line}: {result.stderr.decode()}"
    return result.stdout.decode()


async def run_line(w: World, line: str, outputs: dict[str, str]) -> None:
    word = line.split()[0]
    if line == "systemctl stop treasury":
        for d in w.daemons:
            if d.alive():
                code, _ = await d.sigterm()
                assert code == 0, d.logs()
        await w.engine.dispose()  # the test's own pooled connections, as the daemon's
    elif line == "systemctl start treasury":
        await w.start_daemon()
    elif word == "sqlite3":
        if w.kind == "sqlite":
            outputs[line] = await shell(w, line)
    elif word == "pg_restore":
        if w.kind == "postgres":
            outputs[line] = await shell(w, line)
    elif word == "treasury":
        result = await w.cli(*shlex.split(line)[1:])
        outputs[line] = result.stdout.decode()
    else:
        raise AssertionError(f"the runbook has a line this test cannot run: {line}")


async def test_restore_runbook_sends_nothing_twice(backend: str, tmp_path: Path) -> None:
    async with world(backend, tmp_path) as w:
        before = [await w.insert_sql(*USDT_TRX, "11"), await w.insert_sql(*USDT_TRX_2, "12")]
        await shell(w, SQLITE_BACKUP if w.kind == "sqlite" else PG_BACKUP)
        d = await w.start_daemon()
        after = await w.insert_sql(*USDT_TRX_3, "13")  # created after the backup
        sent = await w.wait_settled([*before, after], timeout=60)
        assert {r["status"] for r in sent} == {"completed"}
        oid = {r["id"]: r["withdraw_order_id"] for r in sent}
        wid = {r["id"]: r["exchange_withdraw_id"] for r in sent}
        assert d.alive()

        outputs: dict[str, str] = {}
        for line in runbook():
            await run_line(w, line, outputs)
        dry_run = outputs["treasury reconcile"]

        rows = await w.wait_settled(before, timeout=30)
        unmatched = await w.sql("SELECT exchange_withdraw_id, intent_id FROM unmatched_withdrawals")
        paused = await w.sql("SELECT key FROM service_state WHERE key LIKE 'paused%'")
        fresh = await w.insert_sql(*USDT_TRX_3, "14")
        [done] = await w.wait_settled([fresh], timeout=60)
        snap = await Snapshot.take(w)

    # the dry run named what the exchange did since the backup
    assert wid[after] in dry_run and "unknown" in dry_run
    assert all(wid[i] in dry_run for i in before) and "adopt" in dry_run
    # the backup's intents were adopted, not sent again
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert [r["exchange_withdraw_id"] for r in rows] == [wid[i] for i in before]
    for i in before:
        assert len(snap.ledger.apply_calls_for(oid[i])) == 1
    # the withdrawal the backup lacks is on file; the runbook's resumes lifted the pauses
    assert [(u["exchange_withdraw_id"], u["intent_id"]) for u in unmatched] == [(wid[after], after)]
    assert paused == []
    # nothing twice on the exchange, and the new intent did not reuse a seen order id
    assert snap.ledger.duplicates_by_withdraw_order_id() == {}
    assert done["status"] == "completed" and done["withdraw_order_id"] != oid[after]
    assert len(snap.ledger.withdrawals) == 4


async def test_check_warns_while_the_address_book_mirror_is_empty(tmp_path: Path) -> None:
    async with world("sqlite", tmp_path, whitelist="none") as w:
        before = (await w.cli("check", check=False)).stdout.decode()
        assert "[WARN] address book: the local mirror has no enabled entry" in before, before
        await w.cli("whitelist", "sync")
        after = (await w.cli("check")).stdout.decode()
        assert "address book" not in after, after
        assert "no running daemon serves" not in after, after


async def test_check_warns_of_queued_intents_no_running_daemon_serves(tmp_path: Path) -> None:
    async with world("sqlite", tmp_path) as w:
        await w.sql(
            "INSERT INTO withdrawal_intents (coin, network, address, amount, account) "
            "VALUES ('USDT', 'TRX', 'TXyzAbc123', '5', 'desk-9')"
        )
        said = (await w.cli("check")).stdout.decode()
    assert "[WARN] account desk-9: 1 queued intent(s) that no running daemon serves" in said, said
