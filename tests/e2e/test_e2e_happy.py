"""The happy path through real processes, and invalid intents refused before sending."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from harness import (
    BTC_BTC,
    ETH_ARB,
    USDT_BSC,
    USDT_ETH,
    USDT_TRX,
    USDT_TRX_2,
    XRP_1,
    XRP_2,
    world,
)
from invariants import Snapshot, assert_invariants, withdrawals_of

from treasury.domain.money import format_amount

pytestmark = pytest.mark.slow


async def test_happy_path_all_complete_and_sigterm_exits_zero(backend: str, tmp_path: Path) -> None:
    async with world(backend, tmp_path, whitelist="cli") as w:
        daemon = await w.start_daemon()
        ids: dict[int, str] = {}
        # an operator at the CLI
        ids[await w.enqueue_cli(*XRP_1, "40", request_id="cli-xrp")] = "40"
        ids[await w.enqueue_cli(*BTC_BTC, "0.01234567")] = "0.01234567"
        # an operator's hand-typed SQL (amount as quoted decimal text)
        ids[await w.insert_sql(*USDT_TRX, "10.000001")] = "10.000001"
        ids[await w.insert_sql(*USDT_ETH, "25.50")] = "25.5"  # trailing zero: same amount
        ids[await w.insert_sql(*ETH_ARB, "0.00250001", request_id="sql-eth")] = "0.00250001"
        # bots through the Python API; the same request_id twice is one intent
        first = await w.enqueue_api(*USDT_BSC, "1234.567891", request_id="bot-1")
        again = await w.enqueue_api(*USDT_BSC, "1234.567891", request_id="bot-1")
        assert first == again
        ids[first] = "1234.567891"
        ids[await w.enqueue_api(*XRP_2, "123.456789")] = "123.456789"
        ids[await w.enqueue_api(*USDT_TRX_2, "99.99")] = "99.99"

        rows = await w.wait_settled(list(ids), timeout=45)
        assert {r["id"]: r["status"] for r in rows} == dict.fromkeys(ids, "completed"), rows
        snap = await Snapshot.take(w)
        for r in snap.intents:
            found = withdrawals_of(snap, r)
            assert len(found) == 1, (r["id"], found)
            assert found[0].amount == Decimal(ids[r["id"]])
            assert format_amount(found[0].amount) == ids[r["id"]]
            assert r["tx_id"], r  # completed on chain: the tx id is on record
            assert len(snap.ledger.apply_calls_for(r["withdraw_order_id"])) == 1
        assert len(snap.ledger.apply_requests) == len(ids)

        code, took = await daemon.sigterm(timeout=10)
        assert code == 0, f"treasury run exited {code} on SIGTERM\n{daemon.logs()[-3000:]}"
        assert took < 10
        assert_invariants(await Snapshot.take(w))


# (label, coin, network, address, tag, amount): each must end `rejected`, never sent
INVALID = [
    ("network the coin lacks", "USDT", "SOL", USDT_TRX[2], None, "15"),
    ("address failing the pattern", "USDT", "TRX", USDT_ETH[2], None, "15"),
    ("memo missing on XRP", "XRP", "XRP", XRP_1[2], None, "40"),
    ("memo on a memo-less network", "USDT", "TRX", USDT_TRX[2], "12345", "15"),
    ("below the minimum", "USDT", "TRX", USDT_TRX[2], None, "2"),
    ("not whitelisted", "USDT", "TRX", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", None, "30"),
    ("whitelisted address, other tag", "XRP", "XRP", XRP_1[2], "999", "40"),
    ("finer than the network's step", "USDT", "TRX", USDT_TRX[2], None, "10.0000001"),
    (
        "coin unknown to the exchange",
        "DOGE",
        "DOGE",
        "D8vFz4p1L37jdg47HXKtSHA5uYLYxbGgPD",
        None,
        "100",
    ),
]


async def test_invalid_intents_are_rejected_and_never_sent(backend: str, tmp_path: Path) -> None:
    async with world(backend, tmp_path) as w:
        bad = {await w.insert_sql(c, n, a, t, amt): label for label, c, n, a, t, amt in INVALID}
        good = [await w.insert_sql(*USDT_TRX, "11"), await w.insert_sql(*XRP_1, "3")]
        await w.start_daemon()
        rows = {r["id"]: r for r in await w.wait_settled(timeout=30)}
        snap = await Snapshot.take(w)
        wrong = {
            bad[i]: (rows[i]["status"], rows[i]["status_reason"])
            for i in bad
            if rows[i]["status"] != "rejected"
        }
        assert not wrong, f"not rejected: {wrong}"
        for i, label in bad.items():
            r = rows[i]
            assert (r["status_reason"] or "").strip(), label
            assert r["withdraw_order_id"] is None, (label, r["withdraw_order_id"])
            sent = [
                q
                for q in snap.ledger.apply_requests
                if q.params.get("address") == r["address"]
                and q.params.get("amount") == format_amount(Decimal(r["amount"]))
                and q.params.get("coin") == r["coin"]
                and (q.params.get("addressTag") or None) == r["address_tag"]
            ]
            assert not sent, f"{label}: {len(sent)} apply calls"
        assert [rows[i]["status"] for i in good] == ["completed", "completed"]
        assert len(snap.ledger.apply_requests) == len(good)
        assert_invariants(snap)
