"""One daemon serving two exchange accounts: each intent leaves through its own account's
key, each account keeps its own pace and lease, and nothing is sent twice."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from harness import USDT_TRX, USDT_TRX_2, world
from invariants import Snapshot, assert_invariants

pytestmark = pytest.mark.slow
SUB = "treasury-sub"


async def test_one_daemon_serves_two_accounts(backend: str, tmp_path: Path) -> None:
    env = {
        "TREASURY_EXTRA_ACCOUNTS": SUB,
        "TREASURY_ACCOUNT_TREASURY_SUB_API_KEY": "treasury-sub-api-key",
        "TREASURY_ACCOUNT_TREASURY_SUB_API_SECRET": "treasury-sub-api-secret",
    }
    async with world(backend, tmp_path, env=env) as w:
        main_ids = [await w.insert_sql(*USDT_TRX, amount) for amount in ("11", "12", "13")]
        sub_ids = []
        for amount in ("21", "22", "23"):
            rows = await w.sql(
                "INSERT INTO withdrawal_intents (coin, network, address, amount, account) "
                "VALUES ('USDT', 'TRX', :address, "
                + ("CAST(:amount AS NUMERIC)" if w.kind == "postgres" else ":amount")
                + ", :account) RETURNING id",
                address=USDT_TRX_2[2],
                amount=amount,
                account=SUB,
            )
            sub_ids.append(int(rows[0]["id"]))
        daemon = await w.start_daemon()
        settled = {r["id"]: r for r in await w.wait_settled([*main_ids, *sub_ids])}
        code, _seconds = await daemon.sigterm()
        ledger = w.sandbox.ledger()
        snapshot = await Snapshot.take(w)
    assert code == 0
    assert {settled[i]["status"] for i in [*main_ids, *sub_ids]} == {"completed"}
    by_oid = {x.withdraw_order_id: x for x in ledger.withdrawals}
    intents = {row["id"]: row for row in snapshot.intents}
    for intent_id in main_ids:
        assert by_oid[intents[intent_id]["withdraw_order_id"]].account == "default"
    for intent_id in sub_ids:
        assert by_oid[intents[intent_id]["withdraw_order_id"]].account == SUB
    assert_invariants(snapshot)


async def test_a_second_accounts_key_is_held_to_the_same_preflight(tmp_path: Path) -> None:
    """A key without IP restriction is refused for the primary account; the same key
    posture on an extra account must not slip through because only the first is checked."""
    env = {
        "TREASURY_EXTRA_ACCOUNTS": SUB,
        "TREASURY_ACCOUNT_TREASURY_SUB_API_KEY": "treasury-sub-api-key",
        "TREASURY_ACCOUNT_TREASURY_SUB_API_SECRET": "treasury-sub-api-secret",
    }
    async with world("sqlite", tmp_path, env=env) as w:
        reply = await w.sandbox._http.post(
            "/_sandbox/account", json={"account": SUB, "apiRestrictions": {"ipRestrict": False}}
        )
        assert reply.status_code == 200, reply.text
        checked = await w.cli("check", check=False)
        daemon = await w.start_daemon(wait=False)
        with anyio.fail_after(60):
            while daemon.alive():
                await anyio.sleep(0.2)
        ledger = w.sandbox.ledger()
    said = checked.stdout.decode()
    assert checked.returncode == 1, said
    assert f"[FAIL] account {SUB}: ip restriction" in said, said
    assert "[ok  ] ip restriction" in said, said  # the primary account's key is fine
    assert daemon.proc.returncode == 1
    assert f"account {SUB}: ip restriction" in daemon.logs(), daemon.logs()
    assert ledger.apply_requests == []
