"""Back up and restore a world's ledger the way an operator does (README: restore runbook).

SQLite: ``sqlite3 LEDGER ".backup FILE"`` (the online backup API; safe while a daemon
runs, WAL included), restored by copying the file back with the daemons stopped.
PostgreSQL: ``pg_dump -Fc`` and ``pg_restore --clean --if-exists`` into the same database.
"""
# A test harness: file copies and the backup tools are quick blocking calls.
# ruff: noqa: ASYNC240

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import anyio
from harness import HarnessError, World


def _pg_url(w: World) -> str:
    return w.db_url.replace("postgresql+asyncpg", "postgresql")


def _sqlite_path(w: World) -> Path:
    return Path(w.db_url.removeprefix("sqlite+aiosqlite:///"))


async def backup(w: World, dest: Path) -> Path:
    """Write a consistent copy of the world's ledger to ``dest``."""
    if w.kind == "sqlite":

        def copy() -> None:
            src = sqlite3.connect(_sqlite_path(w))
            try:
                out = sqlite3.connect(dest)
                try:
                    src.backup(out)
                finally:
                    out.close()
            finally:
                src.close()

        await anyio.to_thread.run_sync(copy)
        return dest
    await _tool(["pg_dump", "-Fc", "-f", str(dest), "-d", _pg_url(w)])
    return dest


async def restore(w: World, src: Path) -> None:
    """Put ``src`` back as the world's ledger. Stop every daemon first (as the runbook says)."""
    if any(d.alive() for d in w.daemons):
        raise HarnessError("restore with a daemon running: stop the daemons first")
    await w.engine.dispose()  # no pooled connection may see the old file or schema
    if w.kind == "sqlite":
        path = _sqlite_path(w)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(src, path)
        return
    await _tool(["pg_restore", "--clean", "--if-exists", "--no-owner", "-d", _pg_url(w), str(src)])


async def _tool(argv: list[str]) -> None:
    result = await anyio.run_process(argv, check=False)
    if result.returncode != 0:
        raise HarnessError(
            f"{argv[0]} exited {result.returncode}: {result.stderr.decode(errors='replace')[:2000]}"
        )
