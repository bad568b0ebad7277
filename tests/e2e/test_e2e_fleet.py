"""Many accounts from a file, reloaded while ``treasury run`` runs; several daemons sharing
the accounts by lease (fair share), and a killed daemon's accounts taken over."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import USDT_TRX, USDT_TRX_2, sandbox_config, wait_until, world
from invariants import Snapshot, assert_invariants, check_invariants

from treasury.sandbox.config import _default_data

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def desks(n: int) -> list[str]:
    return [f"desk-{i:02d}" for i in range(1, n + 1)]


def sandbox_with(names: list[str]) -> dict[str, object]:
    """The sandbox's default accounts plus one clone of ``treasury-sub`` per name."""
    data: Any = json.loads(json.dumps(_default_data(), default=str))
    sub = next(a for a in data["accounts"] if a["name"] == "treasury-sub")
    for i, name in enumerate(names):
        clone = {**sub, "name": name, "api_key": f"{name}-key", "hmac_secret": f"{name}-secret"}
        clone.update(uid=400000000 + i, deposit_addresses=[])
        data["accounts"].append(clone)
    return {**sandbox_config(), "accounts": data["accounts"]}


def accounts_file(tmp_path: Path, names: list[str], disabled: tuple[str, ...] = ()) -> str:
    lines = []
    for name in names:
        (tmp_path / f"{name}.key").write_text(f"{name}-key\n")
        (tmp_path / f"{name}.secret").write_text(f"{name}-secret\n")
        lines += [
            f"[accounts.{name}]",
            f'api_key_file = "{name}.key"',
            f'api_secret_file = "{name}.secret"',
            f"enabled = {'false' if name in disabled else 'true'}",
            "",
        ]
    return "\n".join(lines)


async def insert(w: Any, account: str, amount: str, dest: tuple[Any, ...] = USDT_TRX) -> int:
    rows = await w.sql(
        "INSERT INTO withdrawal_intents (coin, network, address, amount, account) "
        "VALUES ('USDT', 'TRX', :address, CAST(:amount AS NUMERIC), :account) RETURNING id",
        address=dest[2],
        amount=amount,
        account=account,
    )
    return int(rows[0]["id"])


async def test_accounts_file_reload_adds_and_disables_an_account(
    postgres: str, tmp_path: Path
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_file(tmp_path, []))
    env = {"TREASURY_ACCOUNTS_FILE": str(path), "TREASURY_ACCOUNTS_RELOAD_S": "0.5"}
    async with world(postgres, tmp_path, sandbox_cfg=sandbox_with(["desk-01"]), env=env) as w:
        daemon = await w.start_daemon("e2e-reload")
        waiting = await insert(w, "desk-01", "31")
        await anyio.sleep(1.5)
        assert (await w.intent(waiting))["status"] == "queued"  # nobody serves desk-01 yet

        path.write_text(accounts_file(tmp_path, ["desk-01"]))  # no restart
        [row] = await w.wait_settled([waiting], timeout=40)
        assert row["status"] == "completed", row
        assert daemon.saw("accounts.started")

        # an invalid file changes nothing (logged and alerted)
        path.write_text("[accounts.desk-01]\nwalet = 'spot'\n")
        await wait_until(
            lambda: _saw(daemon, "accounts.file_invalid"), timeout=10, what="the invalid file"
        )
        again = await insert(w, "desk-01", "32")
        [row] = await w.wait_settled([again], timeout=20)
        assert row["status"] == "completed", row  # desk-01 still served

        path.write_text(accounts_file(tmp_path, ["desk-01"], disabled=("desk-01",)))
        await wait_until(lambda: _saw(daemon, "accounts.stopped"), timeout=15, what="the stop")
        held_back = await insert(w, "desk-01", "33")
        other = await insert(w, "default", "34")
        [row] = await w.wait_settled([other], timeout=20)
        assert row["status"] == "completed", row  # the others are still served
        await anyio.sleep(1.5)
        assert (await w.intent(held_back))["status"] == "queued"
        code, _took = await daemon.sigterm()
        snap = await Snapshot.take(w)
    assert code == 0
    assert not snap.ledger.duplicates_by_withdraw_order_id()
    sent = {x.withdraw_order_id for x in snap.ledger.withdrawals}
    intents = {r["id"]: r for r in snap.intents}
    assert intents[held_back]["withdraw_order_id"] not in sent
    # the disabled account's intent waits, on purpose, for a daemon that serves it
    violations = [v for v in check_invariants(snap) if not v.startswith(f"[{held_back}]")]
    assert not violations, violations


async def _saw(daemon: Any, event: str) -> bool:
    return bool(daemon.saw(event))


TTL_S = 5.0  # the lease TTL of the fleet test (default 15): takeover is bounded by it


async def test_three_daemons_share_twelve_accounts_and_take_over_a_killed_one(
    postgres: str, tmp_path: Path
) -> None:
    names = desks(11)  # + the environment's `default`: 12 accounts
    path = tmp_path / "accounts.toml"
    path.write_text(accounts_file(tmp_path, names))
    env = {"TREASURY_ACCOUNTS_FILE": str(path), "TREASURY_LEASE_TTL_S": str(TTL_S)}
    everyone = ["default", *names]
    async with world(postgres, tmp_path, sandbox_cfg=sandbox_with(names), env=env) as w:
        daemons = [await w.start_daemon(f"e2e-{m}") for m in ("A", "B", "C")]

        async def leases() -> dict[str, str]:
            rows = await w.sql("SELECT account, holder FROM sender_leases WHERE expires_at > now()")
            return {r["account"]: r["holder"] for r in rows}

        async def shared() -> bool:
            held = await leases()
            counts = Counter(held.values())
            return set(held) == set(everyone) and len(counts) == 3 and min(counts.values()) >= 3

        await wait_until(shared, timeout=40, poll=0.2, what="a fair share", describe=w.describe)
        counts = Counter((await leases()).values())
        assert all(3 <= c <= 5 for c in counts.values()), counts

        ids = []
        for n, account in enumerate(everyone * 2):
            dest = USDT_TRX if n % 2 else USDT_TRX_2
            ids.append(await insert(w, account, f"{40 + n}", dest))

        async def some_sent() -> bool:
            return len(w.sandbox.ledger().apply_requests) >= 6

        await wait_until(some_sent, timeout=30, poll=0.05, what="the first sends")
        victim = daemons[0]
        victim.sigkill()
        killed_at = time.monotonic()
        alive = {"e2e-B", "e2e-C"}

        async def taken_over() -> bool:
            held = await leases()
            return set(held) == set(everyone) and set(held.values()) <= alive

        await wait_until(taken_over, timeout=30, poll=0.1, what="the takeover", describe=w.describe)
        took = time.monotonic() - killed_at
        print(f"takeover: every account had a live holder again {took:.1f} s after SIGKILL")
        assert took < 15, f"takeover took {took:.1f} s (lease TTL {TTL_S} s)"

        rows = await w.wait_settled(ids, timeout=60)
        snap = await Snapshot.take(w)
        for d in daemons[1:]:
            code, _took = await d.sigterm()
            assert code == 0
    assert {r["status"] for r in rows} == {"completed"}, [
        (r["id"], r["status"], r["status_reason"]) for r in rows if r["status"] != "completed"
    ]
    assert not snap.ledger.duplicates_by_withdraw_order_id()
    assert len(snap.ledger.withdrawals) == len(ids)
    assert_invariants(snap)
