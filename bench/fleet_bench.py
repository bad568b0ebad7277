"""Many accounts, several daemons (issue 19): one command, a table, JSON.

    .venv/bin/python bench/fleet_bench.py                      # ~4-5 min on 2 cores
    .venv/bin/python bench/fleet_bench.py --accounts 10 -k 5 --phases one   # smoke

Every phase runs on PostgreSQL (a scratch database, dropped at the end) with real
``python -m treasury run`` subprocesses against ONE sandbox exchange running in this
process's thread (its request log counts every 429). The sandbox has Binance's real
limits (multiplier 1: per UID, apply 900 of 180,000/min, history 10/s; per IP, /api
6,000/min and each /sapi IP endpoint 12,000/min, shared by all accounts since they all
come from 127.0.0.1), and the daemons plan on the same (``TREASURY_EXCHANGE_LIMIT_MULTIPLIER``
1, ``TREASURY_WITHDRAW_RATE`` 1: one send a second per account). The accounts are the
environment's ``default`` plus ``desk-01`` … from a ``TREASURY_ACCOUNTS_FILE``; each is a
clone of the sandbox's ``treasury-sub`` with its own key, as in
``tests/e2e/test_e2e_fleet.py``.

Phases (each on a fresh sandbox and a fresh database):

* ``one`` — K intents per account queued, then one daemon started. Per-account
  utilization = (sends - 1) ÷ (last send - first send) ÷ 1/s from the sandbox's ledger,
  as p5 / median / min over the accounts; 429 answers; duplicate withdrawOrderIds in the
  sandbox journal; the daemon's CPU seconds and peak RSS (psutil).
* ``three`` — three daemons (``TREASURY_LEASE_TTL_S`` = ``--ttl``, 5 s by default): once
  every account has a live lease, accounts per daemon (max ÷ min); then K intents per
  account and utilization as above; then a second batch, one daemon SIGKILLed while it
  sends, and the time until every account has a live lease (``sender_leases``) held by a
  survivor; then every intent sent, and duplicates over the whole journal.
* ``ttl15`` — the takeover alone with the default TTL (15 s): three daemons, a small
  batch, SIGKILL, time until every account is held by a survivor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h
from bench.lib import (
    Figure,
    all_held_by,
    duplicate_withdrawals,
    per_account_utilization,
    profile_top,
    render_table,
    share_ratio,
    spread,
    summary_counts,
)

OUT = Path(__file__).resolve().parent / "out"
PHASES = ("one", "three", "ttl15")
RATE = 1.0  # Binance's real pace per account, the product default
WORLDS: list[World] = []  # their engines are disposed on the event loop that made them


def names_for(count: int) -> list[str]:
    return ["default", *(f"desk-{i:03d}" for i in range(1, count))]


# -- set-up --------------------------------------------------------------------------------


def sandbox_for(names: list[str], multiplier: float) -> h.Sandbox:
    """The bench sandbox with the default accounts plus a ``treasury-sub`` clone per desk."""
    from treasury.sandbox.config import _default_data, parse_config

    data: Any = json.loads(json.dumps(_default_data(), default=str))
    sub = next(a for a in data["accounts"] if a["name"] == "treasury-sub")
    for i, name in enumerate(n for n in names if n != "default"):
        clone = {**sub, "name": name, "api_key": f"{name}-key", "hmac_secret": f"{name}-secret"}
        clone.update(uid=400000000 + i, deposit_addresses=[])
        data["accounts"].append(clone)
    data.update(
        timings={
            "processing_s": "1",
            "processing_jitter_s": "0",
            "failure_share": "0",
            "rejection_share": "0",
            "seed": 7,
        },
        rate_limit_multiplier=str(multiplier),
        journal_fsync=False,
    )
    sb = h.Sandbox(multiplier=multiplier, processing_s=1.0)
    sb.config = parse_config(json.loads(json.dumps(data), parse_float=Decimal))
    return sb


def write_accounts_file(workdir: Path, names: list[str]) -> Path:
    keys = workdir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in names:
        if name == "default":  # the environment's account
            continue
        (keys / f"{name}.key").write_text(f"{name}-key\n")
        (keys / f"{name}.secret").write_text(f"{name}-secret\n")
        lines += [
            f"[accounts.{name}]",
            f'api_key_file = "keys/{name}.key"',
            f'api_secret_file = "keys/{name}.secret"',
            "",
        ]
    path = workdir / "accounts.toml"
    path.write_text("\n".join(lines))
    return path


async def enqueue(engine: Any, names: list[str], per_account: int, prefix: str) -> None:
    """``per_account`` queued intents for each account, interleaved, in one statement."""
    from sqlalchemy import insert

    from treasury.adapters.db.tables import withdrawal_intents as T

    now = datetime.now(UTC)
    rows = []
    for n in range(per_account):
        for name in names:
            row = h.intent_row(n, f"{prefix}-{name}", now)
            row["account"] = name
            rows.append(row)
    async with engine.begin() as conn:
        await conn.execute(insert(T), rows)


async def _all_held(w: World, members: list[str]) -> bool:
    return all_held_by(await live_leases(w.engine), w.names, members)


async def live_leases(engine: Any) -> dict[str, str]:
    from sqlalchemy import text

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT account, holder FROM sender_leases WHERE expires_at > now()")
            )
        ).all()
    return {r[0]: r[1] for r in rows}


class World:
    """One sandbox, one scratch database, the accounts file; daemons started on demand."""

    def __init__(self, args: argparse.Namespace, workdir: Path, cleanup: h.Cleanup) -> None:
        self.args = args
        self.names = names_for(args.accounts)
        self.workdir = workdir
        self.cleanup = cleanup
        self.daemons: list[h.Daemon] = []
        self.batch_oids: dict[str, set[str]] = {}

    async def start(self, tag: str) -> World:
        self.dir = self.workdir / tag
        self.dir.mkdir(parents=True)
        self.sandbox = sandbox_for(self.names, self.args.multiplier).start(self.cleanup)
        self.db = await h.new_database("postgres", self.dir, self.cleanup)
        await h.prepare(self.db, self.sandbox)
        self.engine = h.engine_for(self.db)
        WORLDS.append(self)
        self.accounts_file = write_accounts_file(self.dir, self.names)
        self.t0 = time.time()
        return self

    def daemon(self, name: str, ttl_s: float | None, *, ip_shared_by: int = 1) -> h.Daemon:
        env = {
            "TREASURY_ACCOUNTS_FILE": str(self.accounts_file),
            "TREASURY_METRICS_BIND": "127.0.0.1:0",  # several daemons side by side
            # processes on one address say so, as the README tells operators to
            "TREASURY_IP_SHARED_BY": str(ip_shared_by),
        }
        if ttl_s is not None:
            env["TREASURY_LEASE_TTL_S"] = str(ttl_s)
        d = h.Daemon(
            name=name,
            db=self.db,
            sandbox=self.sandbox,
            rate=RATE,
            multiplier=self.args.multiplier,
            workdir=self.dir,
            extra_env=env,
        )
        d.start(self.cleanup)
        self.daemons.append(d)
        return d

    def withdrawals(self) -> list[dict[str, Any]]:
        return [r for r in self.sandbox.records() if r.get("type") == "withdrawal"]

    def applies(self, prefix: str) -> list[tuple[str, float]]:
        """(account, seconds) of each booked withdrawal of the batch ``prefix``."""
        oids = self.batch_oids.get(prefix, set())
        return [
            (str(r["account"]), r["applied_at"] / 1000)
            for r in self.withdrawals()
            if r.get("withdrawOrderId") in oids
        ]

    async def remember_batch(self, prefix: str) -> None:
        """The withdrawOrderIds the daemons burned for ``prefix`` (read once all are sent)."""
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT withdraw_order_id FROM withdrawal_intents "
                        "WHERE request_id LIKE :p AND withdraw_order_id IS NOT NULL"
                    ),
                    {"p": f"{prefix}-%"},
                )
            ).all()
        self.batch_oids = {**self.batch_oids, prefix: {r[0] for r in rows}}

    def http_counts(self, since: float) -> dict[str, int]:
        assert self.sandbox.log is not None
        hits = self.sandbox.log.between(since, time.time() + 1)
        return {
            "requests": len(hits),
            "http_429": sum(1 for x in hits if x.status == 429),
            "http_418": sum(1 for x in hits if x.status == 418),
        }

    def duplicates(self) -> int:
        return duplicate_withdrawals(r.get("withdrawOrderId") for r in self.withdrawals())

    async def statuses(self) -> dict[str, int]:
        """Intents by status and reason (what is left when not everything was sent)."""
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT status || ': ' || left(regexp_replace(coalesce(status_reason,"
                        " ''), '[0-9a-f]{20,}|[0-9]{10,}| [0-9]+ s;', '…', 'g'), 90), count(*)"
                        " FROM withdrawal_intents GROUP BY 1"
                    )
                )
            ).all()
        return {r[0]: int(r[1]) for r in rows}

    async def sent_all(self, count: int, timeout_s: float, what: str) -> float:
        """Wait until the sandbox booked ``count`` withdrawals in all (or time out)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.sandbox.apply_count() >= count:
                return time.monotonic() - started
            for d in self.daemons:
                if d.proc is not None and d.proc.returncode is None and not d.alive():
                    raise RuntimeError(f"daemon {d.name} exited:\n{d.log_text()[-3000:]}")
            await asyncio.sleep(0.25)
        print(f"  ({what}: {self.sandbox.apply_count()} of {count} sent after {timeout_s:.0f} s)")
        print(f"  intents: {await self.statuses()}")
        return math.nan


def cpu_snapshot() -> dict[str, float]:
    t = psutil.cpu_times()
    return {"busy": t.user + t.system + t.nice + t.irq + t.softirq, "all": sum(t)}


def busy_share(before: dict[str, float], after: dict[str, float]) -> float:
    """Share of the machine's CPU time that was busy between the snapshots (0..1)."""
    total = after["all"] - before["all"]
    return (after["busy"] - before["busy"]) / total if total > 0 else math.nan


def process_cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


# -- phases --------------------------------------------------------------------------------


def util_figures(key: str, label: str, util: dict[str, float], n_accounts: int) -> list[Figure]:
    s = spread(util.values())
    measured = sum(1 for v in util.values() if not math.isnan(v))
    ctx = f"{measured}/{n_accounts} accounts, min {s['min']:.3f}, max {s['max']:.3f}"
    return [
        Figure(f"{key}_util_p5", f"{label}: utilization p5", s["p5"], "", ">=", 0.95, ctx),
        Figure(f"{key}_util_median", f"{label}: utilization median", s["median"], "", None),
        Figure(f"{key}_util_min", f"{label}: utilization min", s["min"], "", None),
    ]


async def phase_one(args: argparse.Namespace, workdir: Path, cleanup: h.Cleanup) -> dict[str, Any]:
    w = await World(args, workdir, cleanup).start("one")
    n, k = len(w.names), args.per_account
    cpu0 = cpu_snapshot()
    started = time.time()
    d = w.daemon("one", ttl_s=None)
    await d.wait_ready(120)
    # every account's sender active first: a backlog queued before a daemon becomes the
    # sender is held for the lease TTL + the history-lag allowance (a failover's safety)
    ready = await h.wait_until(
        lambda: _all_held(w, ["bench-one"]), 120, 0.2, "every account's lease"
    ) + (time.time() - started)
    # what serving the accounts costs with nothing to send (leases, views, syncs)
    spy = start_profile(args, "idle", d, workdir / "one-idle.collapsed")
    idle_pct = await d.cpu_percent_over(args.idle_s)
    idle_profile = finish_profile(spy, workdir / "one-idle.collapsed")
    await enqueue(w.engine, w.names, k, "one")
    spy = start_profile(args, "sending", d, workdir / "one.collapsed")
    cpu_sending, t_sending = d.cpu_seconds(), time.monotonic()
    took = await w.sent_all(n * k, k / RATE + args.slack, "one daemon")
    cpu_sending, t_sending = d.cpu_seconds() - cpu_sending, time.monotonic() - t_sending
    profile = finish_profile(spy, workdir / "one.collapsed")
    await asyncio.sleep(0.5)
    cpu_s = d.cpu_seconds()
    sched_wait = d.sched_wait_s()
    machine_busy = busy_share(cpu0, cpu_snapshot())
    await w.remember_batch("one")
    util = per_account_utilization(w.applies("one"), RATE)
    http = w.http_counts(started)
    dups = w.duplicates()
    sent = len(w.applies("one"))
    wall = time.time() - started
    # CPU per send beyond the idle cost: what predicts a process's ceiling elsewhere
    per_send_ms = 1000 * max(0.0, cpu_sending - idle_pct / 100 * t_sending) / max(1, sent)
    d.stop()
    figs = [
        *util_figures("one", f"1 daemon, {n} accounts", util, n),
        Figure("one_429", "1 daemon: HTTP 429 (and 418) answers",
               http["http_429"] + http["http_418"], "", "==", 0, f"{http['requests']} requests"),
        Figure("one_dups", "1 daemon: duplicate withdrawOrderIds", dups, "", "==", 0,
               f"{sent}/{n * k} sent"),
        Figure("one_rss", "1 daemon: peak RSS", d.peak_rss / 2**20, "MB", "<", 250, ""),
        Figure("one_cpu", "1 daemon: CPU seconds", cpu_s, "s", None, None,
               f"over {wall:.0f} s ({100 * cpu_s / wall:.0f}% of a core); waited for a CPU "
               f"{sched_wait:.1f} s; machine busy {100 * machine_busy:.0f}%"),
        Figure("one_idle_cpu", "1 daemon: CPU with nothing to send", idle_pct, "%", None, None,
               f"of a core, over {args.idle_s:.0f} s with every lease held"),
        Figure("one_cpu_per_send", "1 daemon: CPU per send, beyond idle", per_send_ms, "ms",
               None, None, f"{cpu_sending:.1f} s over {t_sending:.0f} s of sending, "
               f"{sent} sends and their settlement"),
    ]  # fmt: skip
    return {
        "figures": figs,
        "raw": {
            "accounts": n,
            "per_account": k,
            "sent": sent,
            "ready_s": ready,
            "all_sent_s": took,
            "wall_s": wall,
            "cpu_s": cpu_s,
            "idle_cpu_pct": idle_pct,
            "cpu_sending_s": cpu_sending,
            "sending_s": t_sending,
            "cpu_per_send_ms": per_send_ms,
            "sched_wait_s": sched_wait,
            "machine_busy": machine_busy,
            "peak_rss_mb": d.peak_rss / 2**20,
            "http": http,
            "duplicates": dups,
            "utilization": util,
            "problems": d.problems(),
            "profile": {"idle": idle_profile, "sending": profile},
        },
    }


def start_profile(
    args: argparse.Namespace, when: str, d: h.Daemon, out: Path
) -> subprocess.Popen[bytes] | None:
    """``--profile WHEN``: py-spy samples the daemon while it sends or while it is idle
    (on-CPU stacks only)."""
    if args.profile != when:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    assert d.proc is not None
    return subprocess.Popen(
        [spy, "record", "--pid", str(d.proc.pid), "--rate", "200", "--format", "raw",
         "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def finish_profile(spy: subprocess.Popen[bytes] | None, out: Path) -> dict[str, Any] | None:
    """Stop py-spy (SIGINT: it writes what it has) and print its top entries."""
    if spy is None:
        return None
    spy.send_signal(signal.SIGINT)
    spy.wait(30)
    if not out.exists():
        print("  (py-spy wrote no profile: is it installed, and may it ptrace?)")
        return None
    top = profile_top(out.read_text(), n=15)
    for kind, rows in top.items():
        print(f"  profile, by {kind} (share of on-CPU samples):")
        for name, share in rows:
            print(f"    {100 * share:5.1f} %  {name}")
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, OUT / out.name)
    return top


async def fair_share(
    w: World, members: list[str], timeout_s: float
) -> tuple[float, dict[str, str]]:
    """Wait until every account has a live lease and every member holds some, and the
    holding has been stable for 2 s; returns the seconds it took and the holders."""
    started = time.monotonic()
    last: dict[str, str] = {}
    stable_since = time.monotonic()
    while time.monotonic() - started < timeout_s:
        held = await live_leases(w.engine)
        if held != last:
            last, stable_since = held, time.monotonic()
        elif (
            set(held) == set(w.names)
            and set(held.values()) == set(members)
            and time.monotonic() - stable_since >= 2.0
        ):
            return stable_since - started, held
        await asyncio.sleep(0.2)
    return math.nan, last


async def fleet(
    args: argparse.Namespace, workdir: Path, cleanup: h.Cleanup, *, tag: str, ttl_s: float | None,
    measure_util: bool,
) -> dict[str, Any]:  # fmt: skip
    w = await World(args, workdir, cleanup).start(tag)
    n, k = len(w.names), args.per_account
    cpu0 = cpu_snapshot()
    started = time.time()
    daemons = [w.daemon(f"{tag}-{m}", ttl_s=ttl_s, ip_shared_by=3) for m in ("A", "B", "C")]
    members = [f"bench-{d.name}" for d in daemons]
    for d in daemons:
        await d.wait_ready(120)
    share_s, held = await fair_share(w, members, 90)
    counts = Counter(held.values())
    ratio = share_ratio(held, members)
    print(f"  fair share after {share_s:.1f} s: {dict(counts)}")
    raw: dict[str, Any] = {
        "accounts": n,
        "ttl_s": ttl_s or 15.0,
        "fair_share_s": share_s,
        "accounts_per_daemon": dict(counts),
    }
    figs: list[Figure] = []
    label = f"3 daemons, TTL {ttl_s or 15:g} s"
    total = 0
    if measure_util:
        figs.append(
            Figure(f"{tag}_share", f"{label}: accounts per daemon, max ÷ min", ratio, "", "<=", 1.5,
                   "/".join(str(c) for c in sorted(counts.values(), reverse=True)))
        )  # fmt: skip
        await enqueue(w.engine, w.names, k, f"{tag}-u")
        total += n * k
        raw["all_sent_s"] = await w.sent_all(total, k / RATE + args.slack, f"{tag} batch 1")
        await w.remember_batch(f"{tag}-u")
        util = per_account_utilization(w.applies(f"{tag}-u"), RATE)
        raw["utilization"] = util
        figs += util_figures(tag, f"3 daemons, {n} accounts", util, n)

    # the takeover: a second batch in flight, then SIGKILL of the daemon holding the most
    k2 = args.kill_batch
    await enqueue(w.engine, w.names, k2, f"{tag}-k")
    total += n * k2
    first = w.sandbox.apply_count()
    with contextlib.suppress(TimeoutError):  # kill anyway: the takeover is still measured
        await h.wait_until(lambda: w.sandbox.apply_count() >= first + n, 60, 0.05, "sends")
    await asyncio.sleep(args.kill_after)
    held = await live_leases(w.engine)
    victim_id = Counter(held.values()).most_common(1)[0][0]
    victim = next(d for d in daemons if f"bench-{d.name}" == victim_id)
    victim_accounts = sum(1 for v in held.values() if v == victim_id)
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    alive = [m for m in members if m != victim_id]
    took = math.nan
    while time.monotonic() - killed < 120:
        if all_held_by(await live_leases(w.engine), w.names, alive):
            took = time.monotonic() - killed
            break
        await asyncio.sleep(0.1)
    print(f"  takeover of {victim_accounts} accounts: {took:.1f} s")
    raw.update(takeover_s=took, victim=victim_id, victim_accounts=victim_accounts)
    raw["after_kill_all_sent_s"] = await w.sent_all(total, 120, f"{tag} after the kill")
    await asyncio.sleep(1.0)
    dups = w.duplicates()
    http = w.http_counts(started)
    survivors = [d for d in daemons if d is not victim]
    wall = time.time() - started
    cpu = {d.name: d.cpu_seconds() for d in survivors}
    sched = {d.name: d.sched_wait_s() for d in survivors}
    raw.update(
        duplicates=dups,
        http=http,
        sent=len(w.withdrawals()),
        intended=total,
        wall_s=wall,
        survivor_cpu_s=cpu,
        survivor_sched_wait_s=sched,
        machine_busy=busy_share(cpu0, cpu_snapshot()),
        peak_rss_mb={d.name: d.peak_rss / 2**20 for d in daemons},
        problems={d.name: d.problems() for d in daemons},
    )
    for d in survivors:
        d.stop()
    target = 10.0 if (ttl_s or 15) < 10 else None
    figs += [
        Figure(f"{tag}_takeover", f"{label}: takeover after SIGKILL", took, "s",
               "<" if target else None, target,
               f"{victim_accounts} accounts of the killed daemon, live lease by a survivor"),
        Figure(f"{tag}_429", f"{label}: HTTP 429 (and 418) answers",
               http["http_429"] + http["http_418"], "", "==", 0, f"{http['requests']} requests"),
        Figure(f"{tag}_dups", f"{label}: duplicate withdrawOrderIds", dups, "", "==", 0,
               f"{raw['sent']}/{total} sent"),
    ]  # fmt: skip
    if measure_util:
        peak = max(d.peak_rss for d in daemons) / 2**20
        figs.append(
            Figure(f"{tag}_rss", f"{label}: peak RSS, largest daemon", peak, "MB", "<", 250, "")
        )
        figs.append(
            Figure(f"{tag}_cpu", f"{label}: CPU seconds, survivors", sum(cpu.values()), "s",
                   None, None, f"over {wall:.0f} s; machine busy {100 * raw['machine_busy']:.0f}%")
        )  # fmt: skip
    return {"figures": figs, "raw": raw}


# -- main ----------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace, workdir: Path, cleanup: h.Cleanup) -> dict[str, Any]:
    try:
        return await run_phases(args, workdir, cleanup)
    finally:
        for w in WORLDS:
            await w.engine.dispose()


async def run_phases(args: argparse.Namespace, workdir: Path, cleanup: h.Cleanup) -> dict[str, Any]:
    phases = args.phases.split(",")
    out: dict[str, Any] = {}
    if "one" in phases:
        print(f"phase one: 1 daemon, {args.accounts} accounts × {args.per_account} intents")
        out["one"] = await phase_one(args, workdir, cleanup)
    if "three" in phases:
        print(f"phase three: 3 daemons, TTL {args.ttl:g} s")
        out["three"] = await fleet(
            args, workdir, cleanup, tag="three", ttl_s=args.ttl, measure_util=True
        )
    if "ttl15" in phases:
        print("phase ttl15: 3 daemons, the default TTL (15 s), takeover only")
        out["ttl15"] = await fleet(
            args, workdir, cleanup, tag="ttl15", ttl_s=None, measure_util=False
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--accounts", type=int, default=100, help="accounts, `default` included")
    p.add_argument("-k", "--per-account", type=int, default=25, help="intents per account")
    p.add_argument("--kill-batch", type=int, default=8, help="intents per account, kill phase")
    p.add_argument("--kill-after", type=float, default=2.0, help="s of sending before the kill")
    p.add_argument("--ttl", type=float, default=5.0, help="TREASURY_LEASE_TTL_S, phase three")
    p.add_argument("--multiplier", type=float, default=1.0, help="limits ×, sandbox and daemon")
    p.add_argument("--slack", type=float, default=45.0, help="s allowed beyond K ÷ rate")
    p.add_argument(
        "--phases", default=",".join(PHASES), help="comma-separated: " + ",".join(PHASES)
    )
    p.add_argument("--out", type=Path, default=OUT / "fleet.json")
    p.add_argument("--keep", action="store_true", help="keep the work dir (daemon logs)")
    p.add_argument("--idle-s", type=float, default=15.0, help="s of idle CPU sampled, phase one")
    p.add_argument(
        "--profile",
        choices=("sending", "idle"),
        help="py-spy the daemon of phase one while it sends, or while it has nothing to send",
    )
    args = p.parse_args()
    if not h.postgres_reachable():
        print("PostgreSQL is not reachable at", h.PG_BASE, file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="treasury-fleet-"))
    cleanup = h.Cleanup()
    began = time.time()
    try:
        out = asyncio.run(main_async(args, workdir, cleanup))
    finally:
        problems = cleanup.run()
        for line in problems:
            print("cleanup:", line, file=sys.stderr)
    figures = [f for phase in out.values() for f in phase["figures"]]
    print()
    print(render_table(figures))
    counts = summary_counts(figures)
    print(f"\n{counts['pass']} pass, {counts['fail']} fail, {counts['n/a']} n/a "
          f"({time.time() - began:.0f} s)")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": h.machine_info(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "figures": [f.as_json() for f in figures],
        "raw": {name: phase["raw"] for name, phase in out.items()},
        "summary": counts,
    }
    args.out.write_text(
        json.dumps(_finite(report), indent=2, default=_json_default, allow_nan=False)
    )
    print(f"wrote {args.out}")
    if args.keep or problems:
        print(f"daemon logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _json_default(value: object) -> object:
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities as None (JSON has neither), in nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
