"""Randomized crash-and-fault rounds (seeded), shared by the pytest test and torture/run.py.

One round: a fresh world, a handful of intents (mostly valid, some not), then a chaos
phase in which a seeded RNG SIGKILLs and restarts ``treasury run`` at random instants
(also during its start-up), switches exchange faults on and off through the sandbox's
admin API, and enqueues more work; then the faults are cleared, a daemon is left
running, and once everything has settled the seven invariants are checked against the
sandbox's journal. The same seed replays the same decisions (process timing still
varies, which is the point of running many rounds).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from harness import DESTINATIONS, SAMPLE_AMOUNTS, DaemonProcess, HarnessError, World, world
from invariants import Snapshot, check_invariants, counts

DELAY_BEFORE_S = 2.0  # one fixed value, so the rate check can place delayed requests
INVALID = [  # refused locally, whatever happens around them
    ("USDT", "TRX", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", None, "30"),  # not whitelisted
    ("USDT", "TRX", "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", None, "2"),  # below minimum
    ("XRP", "XRP", "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", None, "40"),  # memo missing
]


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

    @property
    def passed(self) -> bool:
        return not self.violations and self.error is None


def _fault(rng: random.Random) -> tuple[str, dict[str, object]]:
    p = round(rng.uniform(0.2, 0.6), 2)
    choices: list[tuple[str, dict[str, object]]] = [
        ("drop_after_accept", {"drop_after_accept": {"probability": p}}),
        ("error_5xx_after", {"error_5xx_after": {"probability": p}}),
        ("error_5xx_before", {"error_5xx_before": {"probability": p}}),
        ("error_code_after", {"error_code_after": {"probability": p, "code": -1007}}),
        ("delay_after_accept_s", {"delay_after_accept_s": {"seconds": 1.5, "probability": p}}),
        ("delay_before_accept_s",
         {"delay_before_accept_s": {"seconds": DELAY_BEFORE_S, "probability": p}}),
        ("history_lag_s", {"history_lag_s": round(rng.uniform(1, 6), 1)}),
        ("maintenance", {"maintenance": True}),
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
            ids.append(await w.enqueue_api(coin, network, address, tag, amount,
                                           request_id=f"torture-{rng.getrandbits(48):x}-{k}"))
        else:
            ids.append(await w.insert_sql(coin, network, address, tag, amount))
    return ids


async def run_round(
    number: int, seed: int, db: str, workdir: Path, *, intents: int = 8,
    chaos_s: tuple[float, float] = (5.0, 9.0), settle_timeout: float = 90.0,
    log: Callable[[str], None] = lambda _m: None,
) -> RoundResult:
    rng = random.Random(seed)
    result = RoundResult(number, seed, db, workdir=str(workdir))
    started = time.monotonic()
    try:
        async with world(db, workdir, processing_s=rng.choice([0.5, 1.0, 2.0])) as w:
            await w.sandbox.set_faults({"seed": seed})
            ids = await _enqueue(w, rng, intents - 2, invalid_share=0.2)
            running: list[DaemonProcess] = [await w.start_daemon(wait=rng.random() < 0.5)]
            chaos_end = time.monotonic() + rng.uniform(*chaos_s)
            while time.monotonic() < chaos_end:
                await anyio.sleep(rng.uniform(0.05, 1.2))
                action = rng.choices(["kill", "fault", "clear", "enqueue", "second"],
                                     [4, 3, 1, 1, 1])[0]
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
                    name, body = _fault(rng)
                    result.faults.append(name)
                    await w.sandbox.set_faults(body)
                elif action == "clear":
                    await w.sandbox.reset_faults()
                elif action == "enqueue":
                    ids += await _enqueue(w, rng, 1, invalid_share=0.0)
            if len(ids) < intents:
                ids += await _enqueue(w, rng, intents - len(ids), invalid_share=0.0)
            await w.sandbox.reset_faults()
            running = [d for d in running if d.alive()] or [await w.start_daemon(wait=False)]
            for d in running:
                await d.wait_ready(60)
            log(f"round {number}: chaos over ({result.kills} kills, faults {result.faults})")
            try:
                await w.wait_settled(timeout=settle_timeout)
            except HarnessError as exc:
                result.violations.append(f"[3] not settled in {settle_timeout:.0f} s: {exc}")
            for d in running:
                code, took = await d.sigterm(10)
                if code != 0:
                    result.violations.append(f"SIGTERM: exit {code} after {took:.1f} s")
            snap = await Snapshot.take(w)
            result.intents = len(snap.intents)
            result.statuses = counts(snap.intents)
            result.apply_calls = len(snap.ledger.apply_requests)
            result.withdrawals = len(snap.ledger.withdrawals)
            result.violations += check_invariants(snap, delay_before_s=DELAY_BEFORE_S)
    except Exception as exc:  # a harness failure is a failed round, with its reason
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - started
    return result


async def run_rounds(
    rounds: int, seed: int, db: str, base: Path, *, concurrency: int = 3, intents: int = 8,
    log: Callable[[str], None] = print,
) -> list[RoundResult]:
    results: list[RoundResult] = []
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(n: int) -> None:
        async with limiter:
            r = await run_round(n, seed * 1000 + n, db, base / f"round-{n:03d}", intents=intents,
                                log=log)
        results.append(r)
        log(f"round {n}: {'PASS' if r.passed else 'FAIL'} in {r.seconds:.0f} s")

    async with anyio.create_task_group() as tg:
        for n in range(rounds):
            tg.start_soon(one, n)
    return sorted(results, key=lambda r: r.round)


def summary(results: list[RoundResult]) -> str:
    lines = [f"{'round':>5} {'seed':>10} {'db':8} {'intents':>7} {'kills':>5} {'applies':>7} "
             f"{'wdrws':>5} {'secs':>5}  result  statuses / faults"]
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        lines.append(
            f"{r.round:>5} {r.seed:>10} {r.db:8} {r.intents:>7} {r.kills:>5} {r.apply_calls:>7} "
            f"{r.withdrawals:>5} {r.seconds:>5.0f}  {verdict:6}  {r.statuses} / "
            f"{','.join(sorted(set(r.faults))) or '-'}"
        )
        for v in ([r.error] if r.error else []) + r.violations:
            text = v if len(v) <= 600 else v[:600] + " ..."
            lines.append("        " + text.replace("\n", "\n        "))
        if not r.passed:
            lines.append(f"        workdir: {r.workdir}")
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)


def as_json(results: list[RoundResult]) -> list[dict[str, Any]]:
    return [r.__dict__ | {"passed": r.passed} for r in results]
