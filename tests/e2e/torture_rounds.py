"""Randomized crash-and-fault rounds (seeded), shared by the pytest test and torture/run.py.

One round: a fresh world, a handful of intents (mostly valid, some not), then a chaos
phase in which a seeded RNG SIGKILLs and restarts ``treasury run`` at random instants
(also during its start-up), switches exchange faults on and off through the sandbox's
admin API, and enqueues more work; then the faults are cleared, a daemon is left
running, and once everything has settled the seven invariants are checked against the
sandbox's journal. The same seed replays the same decisions (process timing still
varies, which is the point of running many rounds).

Before anything runs, the round's seed also draws its *plan* (:class:`Plan`):

* the history amount the sandbox starts with — ``net`` of the fee (its default) or
  ``gross`` — and a chaos fault that flips it for a while: matching accepts both;
* the history lag: ``short`` (the chaos may switch on a fixed lag of 1-6 s), ``long``
  (every withdrawal's lag drawn from [0, X] s, X up to 30 s, for the whole round, with
  ``TREASURY_HISTORY_LAG_ALLOWANCE_S`` above X so the design's promise applies), or
  ``beyond`` (a lag drawn from [0.75 X, X], well past an allowance of 2 s, with
  ``TREASURY_RESEND=manual``: outside the automatic promise, so proven absences go to
  a person — ``needs_attention`` is allowed there, a second withdrawal never is);
* a restore: a backup of the ledger early in the chaos, more work accepted by the
  exchange after it (also for intents created after it), every daemon stopped, the
  backup restored, a daemon started on the restored ledger, the automatic pause lifted
  with ``treasury resume --account default``; see :func:`_restore` and
  :func:`_restore_checks` for what must hold then.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
from backup import backup, restore
from harness import (
    DESTINATIONS,
    FAST_ENV,
    SAMPLE_AMOUNTS,
    DaemonProcess,
    HarnessError,
    World,
    sandbox_config,
    wait_until,
    world,
)
from invariants import Snapshot, check_invariants, counts

DELAY_BEFORE_S = 2.0  # one fixed value, so the rate check can place delayed requests
SHORT_LAG_MAX_S = 6.0  # the chaos's fixed lag in "short" rounds (see _fault)
LONG_LAG_MAX_S = 30.0  # the largest X of a "long"/"beyond" round (torture/run.py's default)
BEYOND_ALLOWANCE_S = 2.0  # the allowance of a "beyond" round: below every lag it draws
ACCOUNT = "default"
# apply faults after which the exchange has the withdrawal but the daemon never got the
# answer: the outcome is unknown to it, and must end adopted (never sent again)
ANSWER_LOST = frozenset({"drop_after_accept", "error_5xx_after", "error_code_after"})
SENT = frozenset({"submitted", "completed", "failed"})  # an intent with its withdrawal
INVALID = [  # refused locally, whatever happens around them
    ("USDT", "TRX", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", None, "30"),  # not whitelisted
    ("USDT", "TRX", "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", None, "2"),  # below minimum
    ("XRP", "XRP", "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", None, "40"),  # memo missing
]


@dataclass(frozen=True)
class Plan:
    """What a round's seed decides before anything runs (the chaos draws the rest)."""

    processing_s: float
    history_amount: str  # the sandbox's starting history amount: "net" | "gross"
    lag: str  # "short" | "long" | "beyond" (see the module docstring)
    lag_min_s: float
    lag_max_s: float  # X; 0 in "short" rounds
    allowance_s: float  # this world's TREASURY_HISTORY_LAG_ALLOWANCE_S
    resend: str  # TREASURY_RESEND: "auto" | "manual"
    restore: bool
    backup_at_s: float  # seconds into the chaos (0: before the first daemon starts)
    after_backup: int  # intents enqueued right after the backup
    stop: str  # how every daemon is stopped for the restore: "sigkill" | "sigterm"
    before_restart: int  # intents enqueued on the restored ledger before a daemon runs
    while_paused: int  # ... and while the account is paused after the restore
    restart_while_paused: bool  # SIGKILL and restart the daemon before the resume

    def env(self) -> dict[str, str]:
        return {
            "TREASURY_HISTORY_LAG_ALLOWANCE_S": f"{self.allowance_s:g}",
            "TREASURY_RESEND": self.resend,
        }

    def base_faults(self) -> dict[str, object]:
        """What stays on through the whole round (also after a "clear"): the long lag."""
        if self.lag == "short":
            return {}
        return {"history_lag_s": {"min": self.lag_min_s, "max": self.lag_max_s}}

    def settle_timeout(self, base: float) -> float:
        # a re-send after a proven absence waits ts + recvWindow + 10 s + allowance, and
        # the re-sent withdrawal shows in history up to X later; a restore adds a wait of X
        return base + 3 * self.lag_max_s + (30.0 if self.restore else 0.0)


def draw_plan(
    rng: random.Random, *, must: Iterable[str] = (), long_lag_max_s: float = LONG_LAG_MAX_S
) -> Plan:
    """The round's plan. ``must`` forces features on ("restore", "long", "gross"), so that
    a small run covers each of them; the draws are the same whatever it says."""
    must = set(must)
    processing_s = rng.choice([0.5, 1.0, 2.0])
    gross = rng.random() < 0.5 or "gross" in must
    r = rng.random()
    lag = "long" if r < 0.30 else "beyond" if r < 0.40 else "short"
    x = rng.uniform(0.0, 1.0)
    restore_ = rng.random() < 0.35 or "restore" in must
    backup_at_s = rng.choice([0.0, round(rng.uniform(0.3, 3.0), 1)])
    after_backup = rng.randint(1, 3)
    stop = rng.choice(["sigkill", "sigterm"])
    before_restart = rng.choice([0, 0, 1, 2])
    while_paused = rng.choice([0, 1, 2])
    restart_while_paused = rng.random() < 0.3
    if "long" in must:
        lag = "long"
    # "beyond" needs its smallest lag (0.75 X) past what even the sandbox's short apply
    # path leaves room for (8 s + the allowance, see torture/README.md): X >= 16 s
    if lag == "beyond" and long_lag_max_s < 16.0:
        lag = "long"
    if lag == "long":
        hi = round(8.0 + x * (long_lag_max_s - 8.0), 1)
        lo, allowance = 0.0, float(math.ceil(hi) + 1)  # above every lag drawn: the promise
    elif lag == "beyond":
        hi = round(16.0 + x * (long_lag_max_s - 16.0), 1)
        lo, allowance = round(hi * 0.75, 1), BEYOND_ALLOWANCE_S
    else:
        hi = lo = 0.0
        allowance = float(FAST_ENV["TREASURY_HISTORY_LAG_ALLOWANCE_S"])
    return Plan(
        processing_s=processing_s,
        history_amount="gross" if gross else "net",
        lag=lag,
        lag_min_s=lo,
        lag_max_s=hi,
        allowance_s=allowance,
        resend="manual" if lag == "beyond" else "auto",
        restore=restore_,
        backup_at_s=backup_at_s,
        after_backup=after_backup,
        stop=stop,
        before_restart=before_restart,
        while_paused=while_paused,
        restart_while_paused=restart_while_paused,
    )


@dataclass
class RoundResult:
    round: int
    seed: int
    db: str
    intents: int = 0
    kills: int = 0
    faults: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    apply_calls: int = 0
    withdrawals: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    error: str | None = None
    workdir: str = ""
    # the plan's faults, for the table
    history_amount: str = "net"
    lag: str = "short"
    lag_max_s: float = 0.0
    allowance_s: float = 1.0
    resend: str = "auto"
    restores: int = 0
    # what came of them
    answer_lost: int = 0  # accepted apply calls whose answer the daemon never got
    adopted: int = 0  # intents whose chain says "adopted" (the exchange's word taken)
    unmatched: int = 0  # rows of unmatched_withdrawals at the end
    lost: int = 0  # withdrawals of intents the restore took away
    excused: list[str] = field(default_factory=list)  # invariant lines a restore explains
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations and self.error is None


def _fault(rng: random.Random, plan: Plan) -> tuple[str, dict[str, object]]:
    p = round(rng.uniform(0.2, 0.6), 2)
    if plan.lag == "short":
        # fixed, and within the rule of torture/README.md for FAST_ENV's 1 s allowance
        lag: object = round(rng.uniform(1, SHORT_LAG_MAX_S), 1)
    else:
        lag = {"min": plan.lag_min_s, "max": plan.lag_max_s}  # the round's own, again
    other = "net" if plan.history_amount == "gross" else "gross"
    choices: list[tuple[str, dict[str, object]]] = [
        ("drop_after_accept", {"drop_after_accept": {"probability": p}}),
        ("error_5xx_after", {"error_5xx_after": {"probability": p}}),
        ("error_5xx_before", {"error_5xx_before": {"probability": p}}),
        ("error_code_after", {"error_code_after": {"probability": p, "code": -1007}}),
        ("delay_after_accept_s", {"delay_after_accept_s": {"seconds": 1.5, "probability": p}}),
        (
            "delay_before_accept_s",
            {"delay_before_accept_s": {"seconds": DELAY_BEFORE_S, "probability": p}},
        ),
        ("history_lag_s", {"history_lag_s": lag}),
        ("maintenance", {"maintenance": True}),
        ("history_amount", {"history_amount": other}),
        ("history_unavailable", {"history_unavailable": True}),
        ("outage", {"outage": True}),
    ]
    return rng.choice(choices)


async def _enqueue(w: World, rng: random.Random, n: int, invalid_share: float) -> list[int]:
    ids = []
    for k in range(n):
        if rng.random() < invalid_share:
            ids.append(await w.insert_sql(*rng.choice(INVALID)))
            continue
        coin, network, address, tag = rng.choice(DESTINATIONS)
        amount = rng.choice(SAMPLE_AMOUNTS[coin])
        how = rng.choice(["sql", "sql", "api"])
        if how == "api":
            ids.append(
                await w.enqueue_api(
                    coin,
                    network,
                    address,
                    tag,
                    amount,
                    request_id=f"torture-{rng.getrandbits(48):x}-{k}",
                )
            )
        else:
            ids.append(await w.insert_sql(coin, network, address, tag, amount))
    return ids


async def _paused(w: World) -> bool:
    rows = await w.sql("SELECT key FROM service_state WHERE key = :k", k=f"paused:{ACCOUNT}")
    return bool(rows)


async def _unmatched(w: World) -> list[dict[str, Any]]:
    return await w.sql("SELECT * FROM unmatched_withdrawals ORDER BY id")


async def _stop_all(w: World, running: list[DaemonProcess], how: str) -> None:
    for d in running:
        if how == "sigterm":
            await d.sigterm(15)
        d.sigkill()  # a no-op when it has exited; the restore needs every one gone
    for d in w.daemons:
        d.sigkill()


async def _wait_history_shows_everything(w: World, limit_s: float) -> None:
    """Until the exchange's history shows every withdrawal it has accepted.

    The daemon's sweep on the restored ledger can judge only what history shows. A
    restart before the lag of the last send has passed is outside the promise (a person
    following the runbook takes longer than that; see torture/README.md): the round
    waits for it here, from the journal, which is the ground truth.
    """
    await anyio.sleep(DELAY_BEFORE_S + 0.5)  # a delayed apply call of a killed daemon lands

    async def visible() -> bool:
        now_ms = time.time_ns() // 1_000_000
        return all(x.visible_at_ms <= now_ms - 200 for x in w.sandbox.ledger().withdrawals)

    await wait_until(
        visible, timeout=limit_s, poll=0.2, what="the exchange's history to show every withdrawal"
    )


@dataclass
class RestoreFacts:
    """What the round knows about its restore, for the checks at the end."""

    backup_ids: set[int] = field(default_factory=set)  # intents at the backup
    after_backup_ids: set[int] = field(default_factory=set)  # created after it
    at_ms: int = 0  # wall-clock ms (the sandbox's journal clock) just before the restore
    pre: dict[int, dict[str, Any]] = field(default_factory=dict)  # intents before it
    restored_ids: set[int] = field(default_factory=set)  # intents of the restored ledger
    lost_oids: dict[str, int] = field(default_factory=dict)  # order id -> lost intent id
    before_restart_ids: set[int] = field(default_factory=set)
    while_paused_ids: set[int] = field(default_factory=set)
    restart_ms: int = 0
    resume_ms: int = 0
    paused_after_restart: bool = False
    unmatched_after_restart: set[str] = field(default_factory=set)  # exchange ids


async def _restore(
    w: World,
    rng: random.Random,
    plan: Plan,
    result: RoundResult,
    running: list[DaemonProcess],
    backup_path: Path,
    facts: RestoreFacts,
) -> list[DaemonProcess]:
    """Stop every daemon, restore the backup, start a daemon on it, resume the account."""
    # let the intents created after the backup reach the exchange (the chaos's faults off)
    await w.sandbox.set_faults({"reset": True, **plan.base_faults()})
    running = [d for d in running if d.alive()] or [await w.start_daemon(wait=False)]

    async def accepted_after_backup() -> bool:
        oids = {
            i["withdraw_order_id"]
            for i in await w.intents()
            if i["id"] in facts.after_backup_ids and i["withdraw_order_id"]
        }
        return any(x.withdraw_order_id in oids for x in w.sandbox.ledger().withdrawals)

    try:
        await wait_until(
            accepted_after_backup,
            timeout=30,
            poll=0.2,
            what="a withdrawal of an intent created after the backup",
        )
    except HarnessError:
        result.notes.append("restore: no withdrawal of an intent created after the backup")
    await _stop_all(w, running, plan.stop)
    await _wait_history_shows_everything(w, plan.lag_max_s + 30)
    facts.pre = {int(i["id"]): i for i in await w.intents()}
    facts.at_ms = time.time_ns() // 1_000_000
    await restore(w, backup_path)
    result.restores += 1
    facts.restored_ids = {int(i["id"]) for i in await w.intents()}
    facts.lost_oids = {
        i["withdraw_order_id"]: iid
        for iid, i in facts.pre.items()
        if iid not in facts.restored_ids and i["withdraw_order_id"]
    }
    result.lost = sum(
        x.withdraw_order_id in facts.lost_oids for x in w.sandbox.ledger().withdrawals
    )
    # a bot keeps enqueueing while the operator restores: ids can be handed out again
    facts.before_restart_ids = set(await _enqueue(w, rng, plan.before_restart, 0.0))
    facts.restart_ms = time.time_ns() // 1_000_000
    daemon = await w.start_daemon(wait=True)  # sender.active: its first sweep has run

    async def paused() -> bool:
        return await _paused(w)

    try:
        await wait_until(
            paused, timeout=10 if result.lost else 2, poll=0.1, what="the automatic pause"
        )
        facts.paused_after_restart = True
    except HarnessError:
        facts.paused_after_restart = False
    facts.unmatched_after_restart = {r["exchange_withdraw_id"] for r in await _unmatched(w)}
    facts.while_paused_ids = set(await _enqueue(w, rng, plan.while_paused, 0.0))
    if plan.restart_while_paused:
        daemon.sigkill()
        result.kills += 1
        daemon = await w.start_daemon(wait=True)
    await anyio.sleep(1.0)
    facts.resume_ms = time.time_ns() // 1_000_000
    # the operator's step after looking at unmatched_withdrawals (README, restore runbook)
    out = await w.cli("resume", "--account", ACCOUNT, "--as", "torture")
    result.notes.append("resume: " + out.stdout.decode(errors="replace").strip())
    return [daemon]


async def run_round(
    number: int,
    seed: int,
    db: str,
    workdir: Path,
    *,
    intents: int = 8,
    chaos_s: tuple[float, float] = (5.0, 9.0),
    settle_timeout: float = 90.0,
    must: Iterable[str] = (),
    long_lag_max_s: float = LONG_LAG_MAX_S,
    log: Callable[[str], None] = lambda _m: None,
) -> RoundResult:
    rng = random.Random(seed)
    plan = draw_plan(rng, must=must, long_lag_max_s=long_lag_max_s)
    # the restore's own enqueues draw from their own stream: the chaos's draws depend on
    # timing, the restore's decisions must not
    restore_rng = random.Random(f"{seed}:restore")
    result = RoundResult(
        number,
        seed,
        db,
        workdir=str(workdir),
        history_amount=plan.history_amount,
        lag=plan.lag,
        lag_max_s=plan.lag_max_s,
        allowance_s=plan.allowance_s,
        resend=plan.resend,
    )
    facts = RestoreFacts()
    backup_path = workdir / ("ledger.backup" if db == "postgres" else "ledger-backup.sqlite3")
    started = time.monotonic()
    cfg = sandbox_config(processing_s=plan.processing_s) | {"history_amount": plan.history_amount}
    base = plan.base_faults()

    async def take_backup(w: World) -> None:
        await backup(w, backup_path)
        facts.backup_ids = {int(i["id"]) for i in await w.intents()}
        facts.after_backup_ids = set(await _enqueue(w, restore_rng, plan.after_backup, 0.0))

    try:
        async with world(db, workdir, sandbox_cfg=cfg, env=plan.env()) as w:
            await w.sandbox.set_faults({"seed": seed, **base})
            ids = await _enqueue(w, rng, intents - 2, invalid_share=0.2)
            backed_up = False
            if plan.restore and plan.backup_at_s == 0:
                await take_backup(w)  # before anything is sent
                backed_up = True
            running: list[DaemonProcess] = [await w.start_daemon(wait=rng.random() < 0.5)]
            chaos_start = time.monotonic()
            chaos_end = chaos_start + rng.uniform(*chaos_s)
            while time.monotonic() < chaos_end:
                await anyio.sleep(rng.uniform(0.05, 1.2))
                if (
                    plan.restore
                    and not backed_up
                    and (time.monotonic() >= chaos_start + plan.backup_at_s)
                ):
                    await take_backup(w)  # while sends happen
                    backed_up = True
                action = rng.choices(
                    ["kill", "fault", "clear", "enqueue", "second"], [4, 3, 1, 1, 1]
                )[0]
                running = [d for d in running if d.alive()]
                if action == "kill" and running:
                    victim = rng.choice(running)
                    victim.sigkill()
                    running.remove(victim)
                    result.kills += 1
                    await anyio.sleep(rng.uniform(0, 0.8))
                    if not running or rng.random() < 0.5:
                        running.append(await w.start_daemon(wait=False))
                elif action == "second" and len(running) < 2:
                    result.faults.append("second_daemon")
                    running.append(await w.start_daemon(wait=False))
                elif action == "fault":
                    name, body = _fault(rng, plan)
                    result.faults.append(name)
                    await w.sandbox.set_faults(body)
                elif action == "clear":
                    await w.sandbox.set_faults({"reset": True, **base})
                elif action == "enqueue":
                    new = await _enqueue(w, rng, 1, invalid_share=0.0)
                    ids += new
                    if backed_up:
                        facts.after_backup_ids.update(new)
            if plan.restore and not backed_up:
                await take_backup(w)
            if plan.restore:
                log(f"round {number}: restore ({plan.stop}, lag {plan.lag_max_s} s)")
                running = await _restore(w, restore_rng, plan, result, running, backup_path, facts)
            if len(await w.intents()) < intents:
                await _enqueue(w, rng, intents - len(await w.intents()), invalid_share=0.0)
            await w.sandbox.set_faults({"reset": True, **base})
            running = [d for d in running if d.alive()] or [await w.start_daemon(wait=False)]
            for d in running:
                await d.wait_ready(60)
            log(f"round {number}: chaos over ({result.kills} kills, faults {result.faults})")
            timeout = plan.settle_timeout(settle_timeout)
            try:
                await w.wait_settled(timeout=timeout)
            except HarnessError as exc:
                paused = " (the account is paused)" if await _paused(w) else ""
                result.violations.append(f"[3] not settled in {timeout:.0f} s{paused}: {exc}")
            for d in running:
                code, took = await d.sigterm(10)
                if code != 0:
                    result.violations.append(f"SIGTERM: exit {code} after {took:.1f} s")
            snap = await Snapshot.take(w)
            unmatched = snap.unmatched
            result.intents = len(snap.intents)
            result.statuses = counts(snap.intents)
            result.apply_calls = len(snap.ledger.apply_requests)
            result.withdrawals = len(snap.ledger.withdrawals)
            result.unmatched = len(unmatched)
            result.adopted = _adopted(snap)
            lines = check_invariants(
                snap,
                delay_before_s=DELAY_BEFORE_S,
                # a proven absence goes to a person under TREASURY_RESEND=manual; after a
                # restore, _restore_checks says which needs_attention is explained
                allow_attention=plan.resend == "manual" or plan.restore,
            )
            if plan.restore:
                excused = _excused_by_restore(snap, facts)
                result.excused = [v for v in lines if v in excused]
                lines = [v for v in lines if v not in excused]
                lines += _restore_checks(snap, facts, unmatched, plan)
            lines += _adoption_checks(snap, plan, result)
            result.violations += lines
    except Exception as exc:  # a harness failure is a failed round, with its reason
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - started
    return result


# ---- checks beyond the seven invariants ------------------------------------------------


def _adopted(snap: Snapshot) -> int:
    return len(
        {
            e["intent_id"]
            for e in snap.events
            if e["to_status"] in SENT and (e["reason"] or "").startswith("adopted")
        }
    )


def _adoption_checks(snap: Snapshot, plan: Plan, result: RoundResult) -> list[str]:
    """An accepted withdrawal whose answer was lost ends adopted, never needs_attention
    (unless the lag is beyond the allowance: then a person decides) and never re-sent."""
    v = []
    by_oid = {i["withdraw_order_id"]: i for i in snap.intents if i["withdraw_order_id"]}
    for r in snap.ledger.apply_requests:
        if not r.accepted or not ANSWER_LOST & set((r.fault or "").split(",")):
            continue
        result.answer_lost += 1
        intent = by_oid.get(r.params.get("withdrawOrderId"))
        if intent is None or plan.resend == "manual":
            continue  # lost in a restore (see _restore_checks), or a person's to decide
        if intent["status"] not in SENT or intent["exchange_withdraw_id"] != r.withdrawal_id:
            v.append(
                f"[A] intent {intent['id']}: withdrawal {r.withdrawal_id} was accepted "
                f"but its answer lost ({r.fault}); the intent ended {intent['status']} "
                f"as {intent['exchange_withdraw_id']} ({intent['status_reason']}), "
                "not with that withdrawal"
            )
    return v


def _amount_text(value: object) -> str:
    """The intent's amount as invariants.py prints it."""
    if isinstance(value, bytes):
        value = value.decode()
    return str(Decimal(value) if isinstance(value, str) else value)


def _excused_by_restore(snap: Snapshot, facts: RestoreFacts) -> set[str]:
    """The lines of check_invariants that the restore explains, exactly as it prints them.

    invariants.check_invariants already knows the withdrawals on file in
    ``unmatched_withdrawals`` (``Snapshot.unmatched``: no "[1] ... belongs to no intent"
    for them, and no [2] for their accepted order ids). What it cannot know is the rest
    of a lost intent's history. Excused here are only (a second withdrawal for one order
    id — invariant [1] — never is):

    * ``[2] apply call with withdrawOrderId OID that no intent holds`` when every apply
      call of OID came before the restore, from an intent the restore took away (calls
      the exchange refused or never answered, so nothing is on file for them);
    * ``[4]`` amount/destination lines of an intent that reuses (on a restored ledger, ids
      are handed out again) the order id of such a lost intent, for the lost intent's
      apply calls made before the restore — they carried the lost intent's amount.
    """
    excused = set()
    calls: dict[str, list[Any]] = defaultdict(list)
    for r in snap.ledger.apply_requests:
        calls[r.params.get("withdrawOrderId") or ""].append(r)
    holders = {i["withdraw_order_id"]: i for i in snap.intents if i["withdraw_order_id"]}
    for oid in facts.lost_oids:
        if all(r.at_ms < facts.at_ms for r in calls[oid]):
            excused.add(f"[2] apply call with withdrawOrderId {oid!r} that no intent holds")
        holder = holders.get(oid)
        if holder is None:
            continue
        for r in calls[oid]:
            if r.at_ms >= facts.at_ms:
                continue
            excused.add(
                f"[4] intent {holder['id']} stores {_amount_text(holder['amount'])}, "
                f"sent {r.params.get('amount')!r}"
            )
            sent = (
                r.params.get("coin"),
                r.params.get("network"),
                r.params.get("address"),
                r.params.get("addressTag") or None,
            )
            excused.add(
                f"[4] intent {holder['id']}'s destination differs from the one sent: {sent}"
            )
    return excused


def _restore_checks(
    snap: Snapshot, facts: RestoreFacts, unmatched: list[dict[str, Any]], plan: Plan
) -> list[str]:
    """The invariants in their restore-aware form.

    * No order id reached the exchange twice — invariant [1], never excused.
    * An intent of the restored ledger that the exchange has a withdrawal for ends with
      that withdrawal (adopted, or known from before the backup), never sent again.
    * A withdrawal of an intent the restored ledger lacks is on file in
      ``unmatched_withdrawals`` (or was adopted by an intent that took over its order id
      before the daemon could tell — only possible before the first sweep), and the
      account was paused after the restart, sending nothing until the resume.
    * needs_attention only where the design sends a contradiction to a person: an intent
      created on the restored ledger *before the daemon ran*, whose id names a withdrawal
      of a lost intent (or any, under TREASURY_RESEND=manual).
    """
    v: list[str] = []
    by_id = {int(i["id"]): i for i in snap.intents}
    on_file = {r["exchange_withdraw_id"]: r for r in unmatched}
    adopted_by = {i["exchange_withdraw_id"]: i for i in snap.intents if i["exchange_withdraw_id"]}
    withdrawals = defaultdict(list)
    for x in snap.ledger.withdrawals:
        withdrawals[x.withdraw_order_id].append(x)

    for iid in sorted(facts.restored_ids):
        i = by_id.get(iid)
        before = facts.pre.get(iid)
        oid = (i and i["withdraw_order_id"]) or (before and before["withdraw_order_id"])
        found = withdrawals.get(oid, []) if oid else []
        if i is None or len(found) != 1:
            continue  # gone: impossible; several: invariant [1] reports it
        if i["status"] not in SENT or i["exchange_withdraw_id"] != found[0].id:
            if i["status"] == "needs_attention" and plan.resend == "manual":
                continue
            v.append(
                f"[R] intent {iid} of the restored ledger ended {i['status']} as "
                f"{i['exchange_withdraw_id']} ({i['status_reason']}), but the exchange "
                f"has {found[0].id} for {oid}: not adopted"
            )

    lost = [
        x
        for x in snap.ledger.withdrawals
        if x.withdraw_order_id in facts.lost_oids and x.applied_at_ms < facts.at_ms
    ]
    on_file_lost = []
    for x in lost:
        taker = adopted_by.get(x.id)
        if x.id in on_file:
            on_file_lost.append(x)
        elif taker is not None and int(taker["id"]) in facts.before_restart_ids:
            pass  # a new intent took over the order id before the first sweep (see above)
        else:
            who = f"intent {taker['id']} took it" if taker else "nothing"
            v.append(
                f"[R] withdrawal {x.id} ({x.withdraw_order_id}) of intent "
                f"{facts.lost_oids[x.withdraw_order_id]}, which the restore took away, "
                f"is not in unmatched_withdrawals ({who})"
            )
        if x.id in on_file and x.id not in facts.unmatched_after_restart:
            v.append(
                f"[R] withdrawal {x.id} was put on file only after the resume: the "
                "first sweep missed it"
            )
    if on_file_lost and not facts.paused_after_restart:
        v.append(
            f"[R] the restored ledger lacked {len(on_file_lost)} withdrawal(s) but the "
            "account was not paused after the restart"
        )
    if facts.paused_after_restart:
        early = [
            r for r in snap.ledger.apply_requests if facts.restart_ms <= r.at_ms < facts.resume_ms
        ]
        if early:
            v.append(
                f"[R] {len(early)} apply call(s) while the account was paused after the "
                f"restore: {[r.params.get('withdrawOrderId') for r in early]}"
            )

    lost_ids = set(facts.lost_oids.values())
    for i in snap.intents:
        iid = int(i["id"])
        taken = next((x for x in lost if adopted_by.get(x.id) is i), None)
        if taken is not None and iid not in facts.before_restart_ids:
            v.append(
                f"[R] intent {iid}, created after the daemon had put {taken.id} "
                f"({taken.withdraw_order_id}) on file, took that withdrawal as its own "
                "and was never sent"
            )
        if i["status"] != "needs_attention" or plan.resend == "manual":
            continue
        if iid in facts.before_restart_ids and iid in lost_ids:
            continue  # judged against the lost intent's withdrawal at the first sweep
        why = (
            "created after the restore's sweep; its id names the withdrawal of a lost intent"
            if iid in lost_ids
            else ""
        )
        v.append(
            f"[3] intent {iid} needs attention after the restore{': ' + why if why else ''}"
            f": {i['status_reason']}"
        )
    return v


# ---- many rounds ---------------------------------------------------------------------


async def run_rounds(
    rounds: int,
    seed: int,
    db: str,
    base: Path,
    *,
    concurrency: int = 2,
    intents: int = 8,
    cover: bool = False,
    long_lag_max_s: float = LONG_LAG_MAX_S,
    log: Callable[[str], None] = print,
) -> list[RoundResult]:
    """``cover``: round n is forced to have a restore, a long lag, gross amounts (n % 3),
    so that even three rounds run each new fault once."""
    results: list[RoundResult] = []
    limiter = anyio.CapacityLimiter(concurrency)
    features = ("restore", "long", "gross")

    async def one(n: int) -> None:
        async with limiter:
            r = await run_round(
                n,
                seed * 1000 + n,
                db,
                base / f"round-{n:03d}",
                intents=intents,
                must=(features[n % 3],) if cover else (),
                long_lag_max_s=long_lag_max_s,
                log=log,
            )
        results.append(r)
        log(f"round {n}: {'PASS' if r.passed else 'FAIL'} in {r.seconds:.0f} s")

    async with anyio.create_task_group() as tg:
        for n in range(rounds):
            tg.start_soon(one, n)
    return sorted(results, key=lambda r: r.round)


def _lag_cell(r: RoundResult) -> str:
    if r.lag == "short":
        return "-"
    return f"{r.lag_max_s:.0f}{'!' if r.lag == 'beyond' else ''}"


def summary(results: list[RoundResult]) -> str:
    """One line per round; ``lag`` is X of a long lag ("!": beyond the allowance, manual
    re-send), ``allow`` the allowance, ``amt`` the starting history amount, ``rst`` the
    restores, ``lost`` the withdrawals whose intent the restore took away, ``unm`` the
    unmatched_withdrawals rows, ``lostans`` the accepted calls whose answer was lost,
    ``adopt`` the intents adopted."""
    lines = [
        f"{'round':>5} {'seed':>10} {'db':8} {'intents':>7} {'kills':>5} {'applies':>7} "
        f"{'wdrws':>5} {'lag':>4} {'allow':>5} {'amt':5} {'rst':>3} {'lost':>4} "
        f"{'unm':>3} {'lostans':>7} {'adopt':>5} {'secs':>5}  result  statuses / faults"
    ]
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        lines.append(
            f"{r.round:>5} {r.seed:>10} {r.db:8} {r.intents:>7} {r.kills:>5} {r.apply_calls:>7} "
            f"{r.withdrawals:>5} {_lag_cell(r):>4} {r.allowance_s:>5g} {r.history_amount:5} "
            f"{r.restores:>3} {r.lost:>4} {r.unmatched:>3} {r.answer_lost:>7} {r.adopted:>5} "
            f"{r.seconds:>5.0f}  {verdict:6}  {r.statuses} / "
            f"{','.join(sorted(set(r.faults))) or '-'}"
        )
        for v in ([r.error] if r.error else []) + r.violations:
            text = v if len(v) <= 600 else v[:600] + " ..."
            lines.append("        " + text.replace("\n", "\n        "))
        if not r.passed:
            lines.append(f"        workdir: {r.workdir}")
    lines.append(totals(results))
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)


def totals(results: list[RoundResult]) -> str:
    def n(pred: Callable[[RoundResult], bool]) -> int:
        return sum(1 for r in results if pred(r))

    return (
        f"totals: {len(results)} rounds, {sum(r.intents for r in results)} intents, "
        f"{sum(r.apply_calls for r in results)} apply calls, "
        f"{sum(r.withdrawals for r in results)} withdrawals, {sum(r.kills for r in results)} "
        f"kills, {sum(r.restores for r in results)} restores "
        f"({sum(r.lost for r in results)} withdrawals lost to them, "
        f"{sum(r.unmatched for r in results)} unmatched), "
        f"{n(lambda r: r.lag == 'long')} long-lag rounds, "
        f"{n(lambda r: r.lag == 'beyond')} beyond-allowance (manual) rounds, "
        f"{n(lambda r: r.history_amount == 'gross')} gross rounds, "
        f"{sum(r.answer_lost for r in results)} answers lost, "
        f"{sum(r.adopted for r in results)} adopted"
    )


def as_json(results: list[RoundResult]) -> list[dict[str, Any]]:
    return [r.__dict__ | {"passed": r.passed} for r in results]
