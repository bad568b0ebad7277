"""The exchange as the record of truth, through real ``treasury run`` processes.

The sandbox's journal is the ground truth throughout: whatever the ledger forgot (a
restore from a backup), whatever the exchange answered late or not at all (a lost
answer, a history record minutes behind), whatever could not be asked (an outage), no
withdrawal may be made twice, what the exchange did is adopted, and what nobody can
establish goes to a person with a reason and an alert.

Scenarios of one test are independent worlds run side by side; every test runs on
SQLite and on PostgreSQL (the ``backend`` fixture).

Proving the restore test can fail: with ``E2E_BREAK_EXCHANGE_TRUTH=1`` in the
environment, the daemons started after the restore run with the judgement of history
records switched off (``treasury.services.truth.judge_records`` patched to find nothing,
through a ``sitecustomize`` on their ``PYTHONPATH``): they then send the restored
intents a second time, and the test fails.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from alerts_sink import AlertSink, alert_sink
from backup import backup, restore
from harness import (
    BTC_BTC,
    ETH_ARB,
    USDT_BSC,
    USDT_ETH,
    USDT_TRX,
    USDT_TRX_2,
    USDT_TRX_3,
    XRP_1,
    XRP_2,
    World,
    run_concurrently,
    sandbox_config,
    wait_until,
    world,
)
from invariants import Snapshot, assert_invariants, withdrawals_of

pytestmark = pytest.mark.slow

BREAK_SWITCH = "E2E_BREAK_EXCHANGE_TRUTH"
_SITECUSTOMIZE = '''\
"""Test-only sabotage (tests/e2e/test_e2e_truth.py): history records are never judged."""
import treasury.services.truth as _truth


async def _judge_nothing(ctx, records, *, found_by, apply=True):
    return []


_truth.judge_records = _judge_nothing
'''


def _daemon_env(tmp: Path) -> dict[str, str]:
    """Extra environment of a daemon started after a restore (the sabotage, if asked)."""
    if os.environ.get(BREAK_SWITCH) != "1":
        return {}
    site = tmp / "broken-truth"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


# ---- small helpers ---------------------------------------------------------------------


def _trail(snap: Snapshot, intent_id: int) -> str:
    return " | ".join(e["reason"] for e in snap.events if e["intent_id"] == intent_id)


async def _trail_of(w: World, intent_id: int) -> str:
    rows = await w.sql(
        "SELECT reason FROM intent_events WHERE intent_id = :i ORDER BY id", i=intent_id
    )
    return " | ".join(r["reason"] for r in rows)


def _dec(value: object) -> Decimal:
    return Decimal(value.decode() if isinstance(value, bytes) else str(value))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sink_env(sink: AlertSink) -> dict[str, str]:
    return {"TREASURY_ALERT_WEBHOOK_URL": sink.url, "TREASURY_ALERT_FORMAT": "json"}


async def _listing(w: World) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((await w.cli("list", "--json")).stdout)
    return result


async def _unmatched(w: World) -> list[dict[str, Any]]:
    return await w.sql("SELECT * FROM unmatched_withdrawals ORDER BY id")


def _dropped_oids(snap: Snapshot) -> set[str]:
    """Order ids whose accepted apply call had its answer lost (``drop_after_accept``)."""
    return {
        r.params["withdrawOrderId"]
        for r in snap.ledger.apply_requests
        if r.accepted and "drop_after_accept" in (r.fault or "")
    }


def _sent_once_each(snap: Snapshot) -> None:
    """No order id was sent twice, and the exchange has one withdrawal per order id."""
    calls: dict[str, int] = {}
    for r in snap.ledger.apply_requests:
        oid = r.params["withdrawOrderId"]
        calls[oid] = calls.get(oid, 0) + 1
    again = {oid: n for oid, n in calls.items() if n > 1}
    assert not again, f"sent more than once: {again}"
    assert not snap.ledger.duplicates_by_withdraw_order_id()


# ---- 1. restore from a backup taken before sends ------------------------------------


LOST_PAYMENT = (USDT_BSC, "31.4159")  # created and sent after the backup


@dataclass
class Story:
    """What happened between the backup and the restore, as the exchange knows it."""

    early: list[int]  # sent and completed before the backup
    queued: list[int]  # queued in the backup, sent after it
    rows: dict[int, dict[str, Any]]  # every intent's row just before the restore
    lost: dict[str, Any]  # the intent created (and sent) after the backup
    apply_calls: int  # apply calls on the exchange before the restore
    seen_oids: set[str]  # every order id the exchange has seen before the restore

    @property
    def lost_wid(self) -> str:
        return str(self.lost["exchange_withdraw_id"])


async def _sent_after_backup(w: World, backup_path: Path) -> Story:
    """Two intents sent, a backup with three queued, then everything sent (and one more
    intent created and sent) after the backup; the daemon stopped cleanly."""
    first = await w.start_daemon()
    early = [await w.insert_sql(*USDT_TRX, "10.5"), await w.insert_sql(*XRP_1, "40")]
    await w.wait_settled(early, timeout=60)
    assert (await first.sigterm(15))[0] == 0
    queued = [
        await w.insert_sql(*USDT_ETH, "12.000001"),
        await w.insert_sql(*BTC_BTC, "0.001"),
        await w.insert_sql(*USDT_TRX_2, "99.99"),
    ]
    await backup(w, backup_path)

    second = await w.start_daemon()
    lost_id = await w.insert_sql(*LOST_PAYMENT[0], LOST_PAYMENT[1])
    rows = await w.wait_settled([*early, *queued, lost_id], timeout=60)
    assert {r["status"] for r in rows} == {"completed"}, [(r["id"], r["status"]) for r in rows]
    assert (await second.sigterm(15))[0] == 0
    snap = await Snapshot.take(w)
    assert_invariants(snap)
    by_id = {r["id"]: r for r in rows}
    return Story(
        early=early,
        queued=queued,
        rows=by_id,
        lost=by_id[lost_id],
        apply_calls=len(snap.ledger.apply_requests),
        seen_oids={r.params["withdrawOrderId"] for r in snap.ledger.apply_requests},
    )


async def _restored(w: World, story: Story, backup_path: Path) -> None:
    """Restore, and check that the restore did bring the old state back."""
    await restore(w, backup_path)
    statuses = await w.statuses()
    assert story.lost["id"] not in statuses, "the restore kept the intent made after it"
    for i in story.queued:
        assert statuses[i] == "queued", (i, statuses[i])
    for i in story.early:
        assert statuses[i] == "completed", (i, statuses[i])
    assert await _unmatched(w) == []


async def _adopted_not_resent(w: World, story: Story) -> None:
    """Every intent queued in the backup and sent since is adopted, never re-sent."""
    ledger = w.sandbox.ledger()
    for i in story.queued:
        row = await w.intent(i)
        before = story.rows[i]
        assert row["status"] in ("completed", "submitted"), (i, row["status"], row["status_reason"])
        assert row["exchange_withdraw_id"] == before["exchange_withdraw_id"], (row, before)
        assert row["withdraw_order_id"] == before["withdraw_order_id"]
        assert len(ledger.apply_calls_for(row["withdraw_order_id"])) == 1, i
        assert "adopted" in await _trail_of(w, i), await _trail_of(w, i)


async def _lost_on_file(w: World, story: Story) -> None:
    rows = await _unmatched(w)
    assert [(u["exchange_withdraw_id"], u["withdraw_order_id"], u["intent_id"]) for u in rows] == [
        (story.lost_wid, story.lost["withdraw_order_id"], story.lost["id"])
    ], rows
    assert _dec(rows[0]["amount"]) + _dec(rows[0]["fee"]) == _dec(story.lost["amount"])


async def _new_intent_goes_out(w: World, story: Story, new_id: int) -> dict[str, Any]:
    """An intent created after the restore is sent once, under an order id the exchange
    has never seen (SQLite hands the lost intent's id out again), and is never taken for
    the lost intent's withdrawal (neither judged against it nor adopted as it)."""
    [row] = await w.wait_settled([new_id], timeout=60)
    assert row["status"] == "completed", (new_id, row["status"], row["status_reason"])
    assert row["exchange_withdraw_id"] != story.lost_wid, "adopted the lost intent's withdrawal"
    oid = row["withdraw_order_id"]
    assert oid not in story.seen_oids, f"order id {oid} reused"
    assert len(w.sandbox.ledger().apply_calls_for(oid)) == 1
    if new_id == story.lost["id"]:  # SQLite: max(id) + 1 after the restore
        assert oid == f"{story.lost['withdraw_order_id']}-2", oid
    if w.kind == "postgres":  # the sequence was moved past every id the exchange has seen
        assert new_id > story.lost["id"], (new_id, story.lost["id"])
    return row


async def _finish(w: World, story: Story, new_rows: list[dict[str, Any]]) -> None:
    for d in w.daemons:
        if d.alive():
            assert (await d.sigterm(15))[0] == 0
    snap = await Snapshot.take(w)
    _sent_once_each(snap)
    # exactly one more call than before the restore per new intent: nothing else left
    assert len(snap.ledger.apply_requests) == story.apply_calls + len(new_rows)
    assert not (await _listing(w))["paused_accounts"]
    assert_invariants(snap)


async def restore_then_start(kind: str, tmp: Path) -> None:
    """The worst case: the restored ledger is started at once, no reconcile first."""
    backup_path = tmp / "ledger.backup"
    with alert_sink() as sink:
        async with world(kind, tmp, env=_sink_env(sink)) as w:
            story = await _sent_after_backup(w, backup_path)
            await _restored(w, story, backup_path)

            port = _free_port()
            d = await w.start_daemon(TREASURY_METRICS_BIND=f"127.0.0.1:{port}", **_daemon_env(tmp))

            async def sender() -> bool:
                return d.saw("sender.active")

            # the sender is active once the sweep before its first send is done
            await wait_until(sender, timeout=30, what="the sender", describe=w.describe)
            await _adopted_not_resent(w, story)
            assert len(w.sandbox.ledger().apply_requests) == story.apply_calls
            await _lost_on_file(w, story)
            pauses = (await _listing(w))["paused_accounts"]
            assert set(pauses) == {"default"}, pauses
            assert story.lost_wid in pauses["default"], pauses
            assert "treasury resume --account default" in pauses["default"], pauses

            check = await w.cli("check", check=False)
            printed = check.stdout.decode()
            assert check.returncode != 0, printed
            assert "[FAIL] account default: paused" in printed and story.lost_wid in printed, (
                printed
            )
            async with httpx.AsyncClient(timeout=10) as http:
                ready = await http.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.status_code == 503 and "paused:default" in ready.text, ready.text

            async def alerted() -> bool:
                return any(
                    story.lost_wid in a["message"] for a in sink.alerts("ledger_behind_exchange")
                )

            await wait_until(
                alerted,
                timeout=30,
                what="the ledger_behind_exchange alert",
                describe=lambda: _describe_alerts(sink),
            )

            await w.cli("resume", "--account", "default", "--as", "ops")
            new_id = await w.insert_sql(*USDT_TRX_3, "250")
            new_row = await _new_intent_goes_out(w, story, new_id)
            await _finish(w, story, [new_row])


async def restore_runbook(kind: str, tmp: Path) -> None:
    """The runbook: stop, restore, pause, reconcile (dry run, then --apply), resume,
    start. Bots enqueue before the daemon is back: first the very payment the restore
    lost (same coin, address and amount; on SQLite it gets the lost intent's id), then
    another; both are new intents, sent once each under order ids never seen."""
    backup_path = tmp / "ledger.backup"
    async with world(kind, tmp) as w:
        story = await _sent_after_backup(w, backup_path)
        await _restored(w, story, backup_path)
        await w.cli("pause", "--reason", "restored from backup", "--as", "ops")

        dry = (await w.cli("reconcile")).stdout.decode()
        queued_wids = [story.rows[i]["exchange_withdraw_id"] for i in story.queued]
        for wid in [*queued_wids, story.lost_wid]:
            assert wid in dry, f"{wid} not in the dry run:\n{dry}"
        assert "dry run" in dry, dry
        assert {i: s for i, s in (await w.statuses()).items() if i in story.queued} == {
            i: "queued" for i in story.queued
        }, "the dry run changed the ledger"
        assert await _unmatched(w) == [], "the dry run changed the ledger"

        applied = json.loads((await w.cli("reconcile", "--apply", "--as", "ops", "--json")).stdout)
        [account] = applied["accounts"]
        kinds = {f["exchange_withdraw_id"]: f["kind"] for f in account["findings"]}
        assert kinds == {**dict.fromkeys(queued_wids, "adopt"), story.lost_wid: "unknown"}, kinds
        assert story.lost_wid in (account["paused"] or ""), account
        await _adopted_not_resent(w, story)
        await _lost_on_file(w, story)

        await w.cli("resume", "--as", "ops")
        await w.cli("resume", "--account", "default", "--as", "ops")
        assert not (await _listing(w))["paused_accounts"]
        again = await w.insert_sql(*LOST_PAYMENT[0], LOST_PAYMENT[1])
        other = await w.insert_sql(*ETH_ARB, "0.0123")
        await w.start_daemon(**_daemon_env(tmp))
        new_rows = [await _new_intent_goes_out(w, story, i) for i in (again, other)]
        assert len(await _unmatched(w)) == 1  # found again by the sweep, kept once
        await _finish(w, story, new_rows)


async def _describe_alerts(sink: AlertSink) -> str:
    return f"alerts received: {sink.alerts()}\nbad bodies: {sink.bad}"


async def test_restore_then_start_at_once_adopts_pauses_never_resends(
    backend: str, tmp_path: Path
) -> None:
    await restore_then_start(backend, tmp_path)


async def test_restore_runbook_then_start(backend: str, tmp_path: Path) -> None:
    await restore_runbook(backend, tmp_path)


# ---- 2. history up to 90 s late, a quarter of the answers lost -----------------------

# Seeded: the sandbox draws, per accepted call, the lag then whether the answer is lost;
# seed 22 over ten sends loses three answers whose records show 18, 10 and 78 s late.
LAG_FAULTS = {"seed": 22, "history_lag_s": {"max": 90}, "drop_after_accept": {"probability": 0.25}}
TEN = [
    (USDT_TRX, "10.5"),
    (USDT_TRX_2, "12.000001"),
    (USDT_TRX_3, "250"),
    (USDT_ETH, "99.99"),
    (USDT_BSC, "31.4159"),
    (BTC_BTC, "0.00500001"),
    (ETH_ARB, "0.1"),
    (XRP_1, "40"),
    (XRP_2, "2.5"),
    (USDT_TRX, "1234.56789"),
]


async def _ten(w: World) -> list[int]:
    return [await w.insert_sql(*dest, amount) for dest, amount in TEN]


async def lag_within_allowance(kind: str, tmp: Path) -> None:
    """The allowance (100 s) is above any drawn lag (at most 90 s): every lost answer's
    record shows before absence could count, so each is adopted and nothing is re-sent."""
    env = {"TREASURY_HISTORY_LAG_ALLOWANCE_S": "100"}
    async with world(kind, tmp, faults=LAG_FAULTS, env=env) as w:
        await w.start_daemon()
        await anyio.sleep(1.1)  # intents from before the daemon became the sender would
        ids = await _ten(w)  # wait out the allowance first (100 s here): not this test's point
        rows = await w.wait_settled(ids, timeout=150)
        snap = await Snapshot.take(w)
        _sent_once_each(snap)
        assert len(snap.ledger.apply_requests) == len(ids)
        dropped = _dropped_oids(snap)
        assert dropped, "no answer was lost: the seed no longer does what it says"
        for r in rows:
            assert r["status"] == "completed", (r["id"], r["status"], r["status_reason"])
            assert len(withdrawals_of(snap, r)) == 1
            if r["withdraw_order_id"] in dropped:
                assert "adopted" in _trail(snap, r["id"]), _trail(snap, r["id"])
        assert_invariants(snap)


async def lag_beyond_allowance_manual(kind: str, tmp: Path) -> None:
    """The allowance (5 s) is below the drawn lag and re-sends are manual: a lost answer
    whose record is later than the allowance goes to a person naming `treasury resend`;
    one that shows in time is adopted. Then a person re-sends those anyway, after the
    records showed: the look-up before the re-send adopts them; nothing leaves twice."""
    env = {"TREASURY_HISTORY_LAG_ALLOWANCE_S": "5", "TREASURY_RESEND": "manual"}
    async with world(kind, tmp, faults=LAG_FAULTS, env=env) as w:
        await w.start_daemon()
        await anyio.sleep(1.1)  # intents from before the daemon became the sender would
        ids = await _ten(w)  # wait out the allowance first (100 s here): not this test's point
        rows = await w.wait_settled(ids, timeout=150)
        snap = await Snapshot.take(w)
        _sent_once_each(snap)
        dropped = _dropped_oids(snap)
        assert dropped, "no answer was lost: the seed no longer does what it says"
        held = []
        for r in rows:
            if r["withdraw_order_id"] not in dropped:
                assert r["status"] == "completed", (r["id"], r["status"], r["status_reason"])
            elif r["status"] == "needs_attention":
                assert f"treasury resend {r['id']}" in r["status_reason"], r["status_reason"]
                held.append(r)
            else:
                assert r["status"] == "completed", (r["id"], r["status"], r["status_reason"])
                assert "adopted" in _trail(snap, r["id"]), _trail(snap, r["id"])
        assert held, "no lost answer outlasted the allowance: the seed no longer does that"
        assert_invariants(snap, allow_attention=True)

        # a person re-sends them, though the exchange has them (now visible)
        latest = max(w_.visible_at_ms for w_ in snap.ledger.withdrawals)

        async def all_visible() -> bool:
            return time.time() * 1000 > latest + 1000

        await wait_until(all_visible, timeout=120, poll=0.5, what="every record to show")
        for r in held:
            await w.cli("resend", str(r["id"]), "--as", "ops")
        again = await w.wait_settled([r["id"] for r in held], timeout=60)
        snap = await Snapshot.take(w)
        for r in again:
            assert r["status"] == "completed", (r["id"], r["status"], r["status_reason"])
            assert "adopted" in _trail(snap, r["id"]), _trail(snap, r["id"])
        _sent_once_each(snap)
        assert len(snap.ledger.apply_requests) == len(ids)
        assert_invariants(snap)


async def test_history_lag_and_lost_answers_never_cause_a_second_withdrawal(
    backend: str, tmp_path: Path
) -> None:
    await run_concurrently(
        {
            "allowance-above-lag": partial(lag_within_allowance, backend, tmp_path / "above"),
            "allowance-below-lag-manual": partial(
                lag_beyond_allowance_manual, backend, tmp_path / "below"
            ),
        }
    )


# ---- 3. history amounts net of the fee -----------------------------------------------


async def amounts(kind: str, tmp: Path, *, history_amount: str) -> None:
    """Lost answers are adopted whether history reports the amount net of the fee (the
    sandbox's default) or gross; the intent keeps the requested amount and records what
    the exchange reported as ``exchange_amount``."""
    faults: dict[str, object] = {"drop_after_accept": {"next": 3}}
    if history_amount == "gross":
        faults["history_amount"] = "gross"
    async with world(kind, tmp, faults=faults) as w:
        ids = [
            await w.insert_sql(*USDT_TRX, "20"),
            await w.insert_sql(*BTC_BTC, "0.001"),
            await w.insert_sql(*XRP_1, "123.456789"),
            await w.insert_sql(*USDT_ETH, "50"),
        ]
        d = await w.start_daemon()
        rows = await w.wait_settled(ids, timeout=90)
        assert (await d.sigterm(15))[0] == 0
        snap = await Snapshot.take(w)
        _sent_once_each(snap)
        dropped = _dropped_oids(snap)
        assert len(dropped) == 3, dropped
        for r in rows:
            assert r["status"] == "completed", (r["id"], r["status"], r["status_reason"])
            [sent] = withdrawals_of(snap, r)
            amount, fee = _dec(r["amount"]), _dec(r["fee"])
            assert sent.fee > 0 and fee == sent.fee, (r["id"], fee, sent.fee)
            expected = amount - fee if history_amount == "net" else amount
            assert _dec(r["exchange_amount"]) == expected, (r["id"], r["exchange_amount"])
            if r["withdraw_order_id"] in dropped:
                assert "adopted" in _trail(snap, r["id"]), _trail(snap, r["id"])
        assert_invariants(snap)


async def test_net_history_amounts_are_adopted_with_exchange_amount(
    backend: str, tmp_path: Path
) -> None:
    await run_concurrently(
        {
            "net": partial(amounts, backend, tmp_path / "net", history_amount="net"),
            "gross": partial(amounts, backend, tmp_path / "gross", history_amount="gross"),
        }
    )


# ---- 4. the exchange silent for longer than the give-up time -------------------------


async def test_unreachable_exchange_reaches_a_person_with_alerts(
    backend: str, tmp_path: Path
) -> None:
    """Two sends' answers lost (submitting), two accepted and pending (submitted); history
    then stops answering, then the whole exchange. Past the give-up times each intent goes
    to a person saying the exchange could not be asked, and the webhook hears of it all."""
    env = {
        "TREASURY_RECONCILE_GIVE_UP_S": "5",
        "TREASURY_MAX_SETTLE_AGE_S": "8",
        "TREASURY_EXCHANGE_UNREACHABLE_ALERT_S": "3",
    }
    cfg = sandbox_config(processing_s=3600)  # accepted withdrawals stay pending
    with alert_sink() as sink:
        async with world(backend, tmp_path, sandbox_cfg=cfg, env={**env, **_sink_env(sink)}) as w:
            d = await w.start_daemon()  # started: its first sweep succeeded
            # intents queued before the daemon became the sender wait out the history lag
            # (README: a new sender waits); SQL's CURRENT_TIMESTAMP counts whole seconds
            await anyio.sleep(1.1)
            # history fails from here on, so no record can settle or adopt anything; the
            # give-up times, not a race with the poller, decide what happens next
            await w.sandbox.set_faults(
                {"history_unavailable": True, "drop_after_accept": {"next": 2}}
            )
            ids = [
                await w.insert_sql(*USDT_TRX, "10"),
                await w.insert_sql(*USDT_ETH, "11"),
                await w.insert_sql(*XRP_1, "40"),
                await w.insert_sql(*USDT_BSC, "12"),
            ]

            async def all_accepted() -> bool:
                return sum(r.accepted for r in w.sandbox.ledger().apply_requests) == len(ids)

            await wait_until(
                all_accepted, timeout=30, what="four accepted sends", describe=w.describe
            )
            await w.sandbox.set_faults({"outage": True})
            rows = await w.wait_settled(ids, timeout=60)
            snap = await Snapshot.take(w)
            dropped = _dropped_oids(snap)
            assert len(dropped) == 2, dropped
            for r in rows:
                assert r["status"] == "needs_attention", (r["id"], r["status"])
                assert "the exchange could not be asked" in r["status_reason"], r["status_reason"]
                if r["withdraw_order_id"] in dropped:  # it was left in submitting
                    assert "outcome of" in r["status_reason"], r["status_reason"]
                    assert "treasury resolve" in r["status_reason"], r["status_reason"]
                else:  # it was submitted, then never seen to settle
                    assert r["exchange_withdraw_id"] in r["status_reason"], r["status_reason"]

            async def alerted() -> bool:
                attention = {a["intent_id"] for a in sink.alerts("needs_attention")}
                return attention >= set(ids) and bool(sink.alerts("exchange_unreachable"))

            await wait_until(
                alerted,
                timeout=60,
                poll=0.5,
                what="the alerts",
                describe=lambda: _describe_alerts(sink),
            )
            for a in sink.alerts("needs_attention"):
                assert a["service"] == "treasury" and "could not be asked" in a["message"], a
            assert (
                "no call to the exchange has succeeded"
                in sink.alerts("exchange_unreachable")[0]["message"]
            )
            assert d.saw("alarm.exchange_unreachable")
            assert not sink.bad, sink.bad

            await w.sandbox.set_faults({"outage": None, "history_unavailable": None})
            assert (await d.sigterm(15))[0] == 0
            snap = await Snapshot.take(w)
            _sent_once_each(snap)
            assert len(snap.ledger.apply_requests) == len(ids)
            assert_invariants(snap, allow_attention=True)
