"""treasury benchmark: one command, a table of figures with targets, JSON and a plot.

    .venv/bin/python bench/run.py            # fuller run (~4-5 min)
    .venv/bin/python bench/run.py --quick    # ~1.5-2 min
    .venv/bin/python bench/run.py --quick --phases baseline   # phase 5 only, ~1.5 min

The sandbox exchange runs with its rate limits multiplied (``--multiplier``, default 50)
and the daemon (the real ``python -m treasury run``, a subprocess) with
``TREASURY_WITHDRAW_RATE`` = ``--rate`` (default 50/s) and
``TREASURY_EXCHANGE_LIMIT_MULTIPLIER`` = the same multiplier: Binance's minutes become
seconds. Every other daemon setting is the product default.

Phases (each on a fresh sandbox and a fresh database):

1. utilization — N intents queued, then the daemon started; sends/s from the sandbox
   ledger's apply times (first and last 5% left out) ÷ the configured rate; 429 answers
   and duplicate withdrawals counted at the sandbox. Sending stops at a time cap
   (``treasury pause``) should the daemon fall far behind, so the run stays bounded.
3. polling cost — same run: the sandbox processes each withdrawal for 1,000 / rate
   seconds (≈1,000 in flight at the configured rate); history requests the sandbox
   received ÷ withdrawals the daemon settled.
2. pick-up latency — an idle daemon; one intent at a time (gap ~200 ms after the previous
   apply); created_at (set just before the INSERT) → the apply request in the sandbox
   ledger; on PostgreSQL (LISTEN/NOTIFY) and SQLite (polling, 0.5 s).
4. scale — claim_queued timed with 1,000 and 100,000 rows (all but 100 completed, queued
   ones newest); peak daemon RSS over all runs; idle CPU over 10 s.
5. baseline — the same N withdrawals by the daemon, then by ``bench/baseline.py``
   (sequential apply-then-poll-every-second, plain httpx) and by
   ``bench/ccxt_baseline.py`` (ccxt's ``withdraw`` then ``fetch_withdrawals`` every
   second, sequential), each on a fresh sandbox with the same settings; both ratios of
   times, and each one's withdraw/apply and history calls, 429s, duplicates and amount
   mismatches as its sandbox saw them. Runs first; the two scripts then work side by
   side in the background (about 1 request/s each) while phases 1-4 run. Without ccxt
   installed (a ``dev`` dependency) the ccxt loop is skipped and the table says why.

``--phases baseline`` (or any comma-separated subset of utilization, latency, scale,
baseline) runs only those.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h
from bench.ccxt_baseline import NO_CCXT
from bench.lib import (
    Figure,
    chain_medians,
    duplicate_withdrawals,
    first_after,
    peak_concurrency,
    percentile,
    ratio,
    render_counts,
    render_table,
    request_counts,
    steady_rate,
    summary_counts,
)

OUT = Path(__file__).resolve().parent / "out"
PHASES = ("utilization", "latency", "scale", "baseline")
BASELINE_COLUMNS = (
    "settled",
    "seconds",
    "apply",
    "history",
    "other",
    "http_429",
    "booked",
    "duplicates",
    "amount_mismatches",
)


@dataclass(frozen=True)
class Mode:
    name: str
    util_intents: int
    util_cap_s: float  # sending stops (pause) after this long, whatever is left
    latency_samples: int
    idle_cpu_backends: tuple[str, ...]
    claim_repeats: int
    baseline_n: int


QUICK = Mode(
    "quick",
    util_intents=1000,
    util_cap_s=30,
    latency_samples=25,
    idle_cpu_backends=("postgres",),
    claim_repeats=16,
    baseline_n=25,
)
FULL = Mode(
    "full",
    util_intents=3000,
    util_cap_s=90,
    latency_samples=50,
    idle_cpu_backends=("postgres", "sqlite"),
    claim_repeats=40,
    baseline_n=200,
)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, cleanup: h.Cleanup) -> None:
        self.args = args
        self.mode = QUICK if args.quick else FULL
        self.rate: float = args.rate
        self.mult: float = args.multiplier
        self.workdir = workdir
        self.cleanup = cleanup
        self.backends = ["postgres", "sqlite"] if h.postgres_reachable() else ["sqlite"]
        self.main_db = self.backends[0]
        self.results: dict[str, Any] = {}
        self.daemons: list[h.Daemon] = []
        self.loads: list[tuple[str, tuple[float, float, float]]] = []

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def note_load(self, label: str) -> None:
        self.loads.append((label, os.getloadavg()))

    def daemon(self, name: str, db: h.Database, sb: h.Sandbox) -> h.Daemon:
        d = h.Daemon(name, db, sb, self.rate, self.mult, self.workdir).start(self.cleanup)
        self.daemons.append(d)
        return d

    async def setup(self, kind: str, processing_s: float) -> tuple[h.Sandbox, h.Database, Any]:
        sb = h.Sandbox(multiplier=self.mult, processing_s=processing_s).start(self.cleanup)
        db = await h.new_database(kind, self.workdir, self.cleanup)
        await h.prepare(db, sb)
        engine = h.engine_for(db)
        return sb, db, engine

    # -- 1 + 3: utilization and polling cost ------------------------------------------------

    async def utilization(self) -> None:
        n = self.mode.util_intents
        processing = 1000 / self.rate  # ≈1,000 in flight at the configured rate
        kind = self.main_db
        self.say(
            f"utilization: {n} intents at {self.rate:g}/s on {kind}, "
            f"sandbox processing {processing:g} s"
        )
        self.note_load("utilization start")
        sb, db, engine = await self.setup(kind, processing)
        d = self.daemon("utilization", db, sb)
        await d.wait_ready()
        # enqueued once it is the sender: a new sender holds what was queued before it
        # for the history-lag window (README), which is not what this figure measures
        await asyncio.sleep(1.1)
        await h.bulk_enqueue(engine, n, "util")
        t_ready = time.time()
        cpu0, wait0 = d.cpu_seconds(), d.sched_wait_s()
        capped = False
        try:
            await h.wait_until(
                lambda: sb.apply_count() >= n, self.mode.util_cap_s, 0.2, "all intents sent"
            )
        except TimeoutError:
            capped = True
            await h.pause_sending(engine)
            self.say(
                f"  time cap {self.mode.util_cap_s:g} s reached after "
                f"{sb.apply_count()} sends: paused sending"
            )
            await asyncio.sleep(1.0)  # an in-flight send finishes
        t_sent = time.time()
        send_cpu = 100 * (d.cpu_seconds() - cpu0) / (t_sent - t_ready)
        send_wait = 100 * (d.sched_wait_s() - wait0) / (t_sent - t_ready)
        sent = sb.apply_count()

        async def all_settled() -> bool:
            counts = await h.status_counts(engine)
            return (
                counts.get("completed", 0) + counts.get("failed", 0) >= sent
                and counts.get("submitting", 0) == 0
                and counts.get("submitted", 0) == 0
            )

        await h.wait_until(all_settled, processing + 60, 0.25, "all sent intents settled")
        t_settled = time.time()
        rss_peak = d.peak_rss
        rss_series = list(d.rss_samples)
        d.stop()
        events = d.events()
        ledger = sb.ledger()
        counts = await h.status_counts(engine)
        rows = await h.intents_table(engine)
        await engine.dispose()

        accepted = [r for r in ledger.apply_requests if r.accepted]
        times = [r.at_ms / 1000 for r in accepted]
        steady = steady_rate(times, 0.05)
        hits = sb.log.between(t_ready - 5, t_settled + 1) if sb.log else []
        statuses: dict[str, int] = {}
        for hit in hits:
            key = f"{hit.path} {hit.status}"
            statuses[key] = statuses.get(key, 0) + 1
        history = [x for x in hits if x.path.endswith("/withdraw/history")]
        polls = [x for x in history if not x.by_order_id]
        in_flight = [(w.applied_at_ms, w.settle_at_ms) for w in ledger.withdrawals]
        daemon_view = [
            (h.ms_of(r["submitted_at"]), h.ms_of(r["settled_at"]))
            for r in rows
            if r["submitted_at"] is not None and r["settled_at"] is not None
        ]
        settled = counts.get("completed", 0)
        # where a send's time goes: the sandbox's own handling time per endpoint
        per_path: dict[str, list[float]] = {}
        for hit in hits:
            per_path.setdefault(hit.path, []).append(hit.dur_ms)
        self.results["utilization"] = {
            "db": kind,
            "intents": n,
            "sent": sent,
            "accepted": len(accepted),
            "capped": capped,
            "cap_s": self.mode.util_cap_s,
            "steady_rate_per_s": steady.rate_per_s,
            "steady_events": steady.events,
            "overall_rate_per_s": ratio(len(times) - 1, max(times) - min(times))
            if len(times) > 1
            else math.nan,
            "utilization": steady.rate_per_s / self.rate,
            "http_429": sum(1 for x in hits if x.status == 429),
            "http_418": sum(1 for x in hits if x.status == 418),
            "duplicates": len(ledger.duplicates_by_withdraw_order_id()),
            "status_counts": counts,
            "requests_by_status": statuses,
            "sandbox_ms_p50_by_path": {p: round(percentile(v, 50), 2) for p, v in per_path.items()},
            "requests_per_send": {
                p: round(len(v) / max(1, len(accepted)), 3) for p, v in per_path.items()
            },
            "daemon_cpu_pct_sending": send_cpu,
            "daemon_runqueue_wait_pct_sending": send_wait,
            "send_cycle_ms": send_cycle(accepted, hits, events),
            "rss_peak_mb": rss_peak / 2**20,
            "apply_times": times,
            "settle_times": sorted(w.settle_at_ms / 1000 for w in ledger.withdrawals),
            "rss_series": [(t - t_ready, r / 2**20) for t, r in rss_series],
            "processing_s": processing,
        }
        self.results["polling"] = {
            "db": kind,
            "history_requests": len(history),
            "window_polls": len(polls),
            "extra_pages": sum(1 for x in polls if x.offset > 0),
            "lookups_by_order_id": len(history) - len(polls),
            "settled": settled,
            "per_settled": ratio(len(history), settled),
            "peak_in_flight_sandbox": peak_concurrency(in_flight),
            "peak_in_flight_daemon": peak_concurrency(daemon_view),
            "duration_s": t_settled - t_ready,
        }
        self.note_load("utilization end")
        u = self.results["utilization"]
        self.say(
            f"  sent {sent} in {t_sent - t_ready:.1f} s: steady {u['steady_rate_per_s']:.2f}/s"
            f" (utilization {u['utilization']:.3f}); 429s {u['http_429']}; history "
            f"{len(history)} for {settled} settled"
        )
        self.say(
            f"  daemon CPU {send_cpu:.0f}% of a core, waiting for a CPU {send_wait:.0f}%; "
            f"one send cycle (median ms): {u['send_cycle_ms']}"
        )

    # -- 2: pick-up latency (+ idle CPU) ----------------------------------------------------

    async def latency(self, kind: str) -> None:
        samples = self.mode.latency_samples
        self.say(f"pick-up latency on {kind}: {samples} intents one at a time")
        self.note_load(f"latency {kind} start")
        sb, db, engine = await self.setup(kind, 1.0)
        d = self.daemon(f"latency-{kind}", db, sb)
        ready_s = await d.wait_ready()
        await asyncio.sleep(2.0)  # start-up reads (first settle poll…) pass first
        idle = None
        if kind in self.mode.idle_cpu_backends:
            idle = await d.cpu_percent_over(10.0)
            self.say(f"  idle CPU over 10 s: {idle:.2f}%")
        rng = random.Random(7)
        missed = 0
        for i in range(samples):
            before = sb.apply_count()
            await h.enqueue_one(engine, i, f"lat-{kind}")
            try:
                await h.wait_until(
                    lambda b=before: sb.apply_count() > b, 10, 0.002, f"the apply of sample {i}"
                )
            except TimeoutError:
                missed += 1  # counted and reported; the next sample goes on
                if missed > 3:
                    raise
            await asyncio.sleep(0.2 + rng.uniform(-0.05, 0.05))
        rows = await h.intents_table(engine)
        ledger = sb.ledger()
        d.stop()
        await engine.dispose()
        first_apply: dict[str, int] = {}
        for r in ledger.apply_requests:
            oid = r.params.get("withdrawOrderId")
            if oid and r.accepted and oid not in first_apply:
                first_apply[oid] = r.at_ms
        done = [r for r in rows if r["withdraw_order_id"] in first_apply]
        lat = [first_apply[r["withdraw_order_id"]] - h.ms_of(r["created_at"]) for r in done]
        to_commit = [h.ms_of(r["submitted_at"]) - h.ms_of(r["created_at"]) for r in done]
        commit_to_apply = [
            first_apply[r["withdraw_order_id"]] - h.ms_of(r["submitted_at"]) for r in done
        ]
        self.results[f"latency_{kind}"] = {
            "samples": len(lat),
            "missed": missed,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else math.nan,
            "latencies_ms": lat,
            "enqueue_to_commit_p50_ms": percentile(to_commit, 50),
            "commit_to_apply_p50_ms": percentile(commit_to_apply, 50),
            "idle_cpu_pct": idle,
            "ready_s": ready_s,
            "rss_peak_mb": d.peak_rss / 2**20,
        }
        self.note_load(f"latency {kind} end")
        self.say(
            f"  p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms "
            f"(enqueue → committed p50 {percentile(to_commit, 50):.1f} ms, committed → "
            f"apply p50 {percentile(commit_to_apply, 50):.1f} ms)"
        )

    # -- 4: claim time vs table size ---------------------------------------------------------

    async def scale(self, kind: str) -> None:
        """claim_queued on a 1,000-row and a 100,000-row table, measured alternately."""
        from treasury.adapters.db import migrate

        queued, batch, sizes = 100, 20, (1_000, 100_000)
        out: dict[str, Any] = {"queued_due": queued, "batch": batch}
        engines = {}
        for size in sizes:
            db = await h.new_database(kind, self.workdir, self.cleanup)
            await migrate.upgrade(db.url)
            engine = h.engine_for(db)
            t0 = time.perf_counter()
            await h.bulk_fill(engine, size, f"scale{size}")
            await h.make_terminal(engine, size - queued)  # all but the newest 100
            out[str(size)] = {"fill_s": time.perf_counter() - t0}
            engines[size] = (db, engine)

        async def measure(label: str) -> None:
            times: dict[int, list[float]] = {size: [] for size in sizes}
            rounds = 4
            for _ in range(rounds):  # alternate, so a burst of load hits both sizes alike
                for size in sizes:
                    times[size] += await h.time_claims(
                        engines[size][1],
                        repeats=max(1, self.mode.claim_repeats // rounds),
                        batch=batch,
                    )
            for size in sizes:
                call = median(times[size])
                out[str(size)][label] = {
                    "per_intent_ms": call / batch * 1000,
                    "call_ms_p50": call * 1000,
                    "call_ms_max": max(times[size]) * 1000,
                    "plan": await h.explain_claim(engines[size][1]),
                }
            out[f"ratio_{label}"] = ratio(
                out["100000"][label]["per_intent_ms"], out["1000"][label]["per_intent_ms"]
            )
            self.say(
                f"  {kind} [{label}]: "
                + ", ".join(
                    f"{size:,} rows {out[str(size)][label]['per_intent_ms']:.3f} ms/intent"
                    for size in sizes
                )
                + f" → ratio {out[f'ratio_{label}']:.2f}"
            )

        if kind == "sqlite":
            await measure("as_shipped")  # the product never runs ANALYZE on SQLite
            for size in sizes:
                await h.analyze(engines[size][1])
            await measure("after_analyze")
            out["ratio"] = out["ratio_as_shipped"]
        else:
            for size in sizes:  # autovacuum would do this after such a load
                await h.analyze(engines[size][1])
            await measure("analyzed")
            out["ratio"] = out["ratio_analyzed"]
        for db, engine in engines.values():
            await engine.dispose()
            if db.name:
                await h.drop_database(db.name)
        self.results[f"scale_{kind}"] = out

    # -- 5: the baselines ---------------------------------------------------------------------

    def script(self, name: str, sb: h.Sandbox, extra: list[str]) -> dict[str, Any]:
        """Start ``bench/<name>.py`` against ``sb`` in the background; its JSON goes to a file."""
        n = self.mode.baseline_n
        out_path = self.workdir / f"{name}.json"
        err_path = self.workdir / f"{name}.err"
        cmd = [
            sys.executable,
            str(Path(__file__).with_name(f"{name}.py")),
            "--base-url",
            sb.url,
            "--api-key",
            sb.api_key,
            "--api-secret",
            sb.api_secret,
            "--count",
            str(n),
            "--rate",
            str(self.rate),
            "--poll-s",
            "1.0",
            "--coin",
            h.COIN,
            "--address",
            h.ADDRESS,
            "--deadline-s",
            str(n * 4 + 60),
            *extra,
        ]
        proc = _spawn(cmd, out_path, err_path)
        self.cleanup.add(f"{name} script", lambda: _kill(proc))
        return {"proc": proc, "out": out_path, "err": err_path, "sandbox": sb}

    async def baseline_start(self) -> dict[str, Any]:
        n, processing = self.mode.baseline_n, 1.0
        kind = self.main_db
        self.say(
            f"baseline: {n} withdrawals by the daemon ({kind}), then by bench/baseline.py and"
            f" bench/ccxt_baseline.py, each on a fresh sandbox (processing {processing:g} s)"
        )
        sb, db, engine = await self.setup(kind, processing)
        await h.bulk_enqueue(engine, n, "base")
        t_start = time.time()
        d = self.daemon("baseline", db, sb)
        await d.wait_ready()

        async def done() -> bool:
            return (await h.status_counts(engine)).get("completed", 0) >= n

        await h.wait_until(done, n / self.rate * 20 + 60, 0.05, "the daemon's batch settled")
        t_done = time.time()
        d.stop()
        settled_at = sorted(
            h.ms_of(r["settled_at"]) / 1000
            for r in await h.intents_table(engine)
            if r["settled_at"] is not None
        )
        await engine.dispose()
        applied = [r.at_ms / 1000 for r in sb.ledger().apply_requests if r.accepted]
        treasury_s = t_done - min(applied)
        at_sandbox = at_the_sandbox(sb, since=t_start, amount=h.AMOUNT)
        self.say(
            f"  daemon: {n} settled {treasury_s:.1f} s after its first send; the sequential"
            " script and the ccxt loop started in the background"
        )

        # Each script on its own fresh sandbox, same settings as the daemon's: what one
        # sends cannot show in the other's history, and each one's requests are its own.
        # Both are light (about a request a second), so they run side by side, and
        # alongside phases 1-4.
        def fresh() -> h.Sandbox:
            return h.Sandbox(multiplier=self.mult, processing_s=processing).start(self.cleanup)

        runners = {
            "sequential": self.script(
                "baseline", fresh(), ["--network", h.NETWORK, "--amount", str(h.AMOUNT)]
            )
        }
        ccxt_skipped = ccxt_missing()
        if ccxt_skipped:
            self.say(f"  ccxt baseline skipped: {ccxt_skipped}")
        else:
            # ccxt's unified network code for TRX; the amount as the float ccxt passes on
            runners["ccxt"] = self.script(
                "ccxt_baseline", fresh(), ["--network", "TRC20", "--amount", str(float(h.AMOUNT))]
            )
        return {
            "runners": runners,
            "ccxt_skipped": ccxt_skipped,
            "n": n,
            "treasury_s": treasury_s,
            "treasury_at_sandbox": at_sandbox,
            "treasury_applies": sorted(applied),
            "t_done": t_done,
            "processing_s": processing,
            "treasury_settled": [t - min(applied) for t in settled_at],
            "deadline": time.monotonic() + n * 4 + 90,
        }

    async def baseline_finish(self, state: dict[str, Any]) -> None:
        runners: dict[str, dict[str, Any]] = state["runners"]
        n = state["n"]
        while time.monotonic() < state["deadline"] and any(  # noqa: ASYNC110
            r["proc"].poll() is None for r in runners.values()
        ):
            await asyncio.sleep(0.5)
        results: dict[str, dict[str, Any]] = {}
        for name, r in runners.items():
            _kill(r["proc"])
            try:
                data = json.loads(r["out"].read_text())
            except (OSError, json.JSONDecodeError):
                err = r["err"].read_text(errors="replace")[-2000:]
                if name == "ccxt" and r["proc"].returncode == NO_CCXT:
                    state["ccxt_skipped"] = (
                        f"{err.strip() or 'ccxt is not importable'}; it is a dev dependency:"
                        " pip install -e '.[dev]'"
                    )
                    self.say(f"  ccxt baseline skipped: {state['ccxt_skipped']}")
                    continue
                raise RuntimeError(f"the {name} baseline produced no result: {err}") from None
            items = [i for i in data["items"] if "done_at" in i]
            first = min((i["sent_at"] for i in items), default=math.nan)
            took = max(i["done_at"] for i in items) - first if items else math.nan
            amount = Decimal(str(data["amount"])) if "amount" in data else h.AMOUNT
            results[name] = {
                "completed": data["completed"],
                "seconds": took,
                "ratio": ratio(took, state["treasury_s"]),
                "client_requests": data["requests"],
                "at_sandbox": at_the_sandbox(
                    r["sandbox"], amount=amount, without_id=n if name == "ccxt" else 0
                ),
                "done": sorted(i["done_at"] - first for i in items),
                **{k: data[k] for k in ("load_markets_s", "ccxt_version", "api") if k in data},
            }
        seq = results["sequential"]
        base: dict[str, Any] = {
            "n": n,
            "processing_s": state["processing_s"],
            "treasury_s": state["treasury_s"],
            # the sequential script (names kept from before the ccxt loop joined)
            "completed": seq["completed"],
            "baseline_s": seq["seconds"],
            "ratio": seq["ratio"],
            "baseline_requests": seq["client_requests"],
            "baseline_done": seq["done"],
            "sequential": seq,
            "ccxt": results.get("ccxt") or {"skipped": state["ccxt_skipped"]},
            "at_sandbox": {
                "treasury": state["treasury_at_sandbox"],
                **{name: r["at_sandbox"] for name, r in results.items()},
            },
            "treasury_applies": [
                t - state["treasury_applies"][0] for t in state["treasury_applies"]
            ],
            "treasury_settled": state["treasury_settled"],
        }
        self.results["baseline"] = base
        line = f"  sequential {seq['seconds']:.1f} s → ratio {seq['ratio']:.1f}"
        if "ccxt" in results:
            c = results["ccxt"]
            line += f"; ccxt loop {c['seconds']:.1f} s → ratio {c['ratio']:.1f}"
        self.say(line + f" (daemon {state['treasury_s']:.1f} s)")

    # -- all of it ------------------------------------------------------------------------------

    async def run(self) -> None:
        from treasury.logs import configure

        configure(fmt="console", level="error")
        phases = set(self.args.phases)
        # The baseline scripts are slow by nature (one withdrawal per ~second) and light
        # (about a request a second, each on its own sandbox), so they run while the other
        # phases do.
        state = await self.baseline_start() if "baseline" in phases else None
        try:
            if "utilization" in phases:
                await self.utilization()
            if "latency" in phases:
                for kind in self.backends:
                    await self.latency(kind)
            if "scale" in phases:
                self.say("scale: claim_queued with 1,000 vs 100,000 rows")
                for kind in self.backends:
                    await self.scale(kind)
        finally:
            if state is not None:
                self.say("waiting for the baseline scripts…")
                await self.baseline_finish(state)


def send_cycle(
    accepted: list[Any], hits: list[h.Hit], events: list[dict[str, Any]]
) -> dict[str, float]:
    """Median time of each step between two consecutive sends, in ms.

    apply k (sandbox ledger) → ``send.accepted`` k logged (answer read, SUBMITTED
    recorded) → GET account answered → GET quota answered → ``send.committed`` k+1
    logged (whitelist read, commit transaction) → apply k+1 (pace, sign, POST).
    """
    from datetime import datetime

    def stamp(e: dict[str, Any]) -> float:
        return datetime.fromisoformat(e["timestamp"]).timestamp()

    committed = {
        e["withdraw_order_id"]: stamp(e) for e in events if e.get("event") == "send.committed"
    }
    acked = {e["withdraw_order_id"]: stamp(e) for e in events if e.get("event") == "send.accepted"}
    account = sorted(x.t for x in hits if x.path == "/api/v3/account")
    quota = sorted(x.t for x in hits if x.path.endswith("/withdraw/quota"))
    applies = sorted((r.at_ms / 1000, r.params.get("withdrawOrderId")) for r in accepted)
    cut = len(applies) // 20  # steady state: leave out the first and last 5%
    steady = applies[cut : len(applies) - cut]
    chains = []
    for (t_a, oid_a), (t_b, oid_b) in itertools.pairwise(steady):
        b = acked.get(oid_a)
        e = committed.get(oid_b)
        if b is None or e is None:
            continue
        c = first_after(account, b, t_b)
        d = first_after(quota, c, t_b) if c is not None else None
        if c is None or d is None:
            continue
        chains.append([t_a, b, c, d, e, t_b])
    medians, used = chain_medians(chains)
    names = ("answer+record", "GET account", "GET quota", "checks+commit", "pace+POST")
    result = {n: round(m * 1000, 1) for n, m in zip(names, medians, strict=False)}
    result["cycles"] = used
    return result


def at_the_sandbox(
    sb: h.Sandbox, *, amount: Decimal, since: float = 0.0, without_id: int = 0
) -> dict[str, int]:
    """What one runner did at its own sandbox: requests by kind, 429s, withdrawals booked,
    duplicates, and booked amounts that differ from ``amount`` (compared as Decimals)."""
    hits = sb.log.between(since, time.time() + 1) if sb.log else []
    ledger = sb.ledger()
    return {
        **request_counts((x.path, x.status) for x in hits),
        "booked": len(ledger.withdrawals),
        "duplicates": duplicate_withdrawals(
            (w.withdraw_order_id for w in ledger.withdrawals), without_id
        ),
        "amount_mismatches": sum(1 for w in ledger.withdrawals if w.amount != amount),
    }


def ccxt_missing() -> str | None:
    """Why the ccxt baseline cannot run here, or None when ccxt is installed.

    Only looked up, not imported (the bench process hosts the sandboxes; ccxt is big): a
    ccxt that is found but fails to import makes the script exit with ``NO_CCXT``, which
    ``baseline_finish`` reports as a skip too."""
    import importlib.util

    if importlib.util.find_spec("ccxt") is None:
        return "ccxt is not installed; it is a dev dependency: pip install -e '.[dev]'"
    return None


def _spawn(cmd: list[str], out_path: Path, err_path: Path) -> subprocess.Popen[bytes]:
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        return subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- the report --------------------------------------------------------------------------------


def figures(b: Bench) -> list[Figure]:
    r = b.results
    rate = f"rate {b.rate:g}/s, limits x{b.mult:g}"
    figs: list[Figure] = []
    u = r.get("utilization")
    if u:
        ctx = (
            f"{rate}; {u['db']}; {u['sent']} sent{' (time cap hit)' if u['capped'] else ''}; "
            f"{u['steady_rate_per_s']:.2f} sends/s steady"
        )
        figs += [
            Figure(
                "utilization",
                "1. utilization (sends/s ÷ rate)",
                u["utilization"],
                "",
                ">=",
                0.95,
                ctx,
            ),
            Figure(
                "http_429",
                "1. HTTP 429 answers at the sandbox",
                u["http_429"],
                "",
                "==",
                0,
                f"{rate}; utilization run ({u['http_418']} x 418)",
            ),
            Figure(
                "duplicates",
                "1. duplicate withdrawals (same id)",
                u["duplicates"],
                "",
                "==",
                0,
                "utilization run, sandbox ledger",
            ),
        ]
    for kind in b.backends:
        lat = r.get(f"latency_{kind}")
        if not lat:
            continue
        how = "LISTEN/NOTIFY" if kind == "postgres" else "polling every 0.5 s"
        ctx = f"{rate}; {kind} ({how}); {lat['samples']} samples, idle daemon"
        if kind == "postgres":
            figs.append(
                Figure(
                    "latency_pg_p50",
                    "2. pick-up p50, PostgreSQL",
                    lat["p50_ms"],
                    "ms",
                    "<",
                    100,
                    ctx,
                )
            )
            figs.append(
                Figure(
                    "latency_pg_p99",
                    "2. pick-up p99, PostgreSQL",
                    lat["p99_ms"],
                    "ms",
                    None,
                    None,
                    ctx,
                )
            )
        else:
            figs.append(
                Figure(
                    "latency_sqlite_p50",
                    "2. pick-up p50, SQLite",
                    lat["p50_ms"],
                    "ms",
                    None,
                    None,
                    ctx,
                )
            )
            figs.append(
                Figure(
                    "latency_sqlite_p99",
                    "2. pick-up p99, SQLite",
                    lat["p99_ms"],
                    "ms",
                    None,
                    None,
                    ctx,
                )
            )
    p = r.get("polling")
    if p:
        figs.append(
            Figure(
                "polling_cost",
                "3. history requests per settled",
                p["per_settled"],
                "",
                "<=",
                0.05,
                f"{rate}; {p['history_requests']} requests ({p['extra_pages']} extra pages, "
                f"{p['lookups_by_order_id']} by id) / {p['settled']} settled; peak in flight "
                f"{p['peak_in_flight_sandbox']} (sandbox), {p['peak_in_flight_daemon']} (daemon)",
            )
        )
    for kind in b.backends:
        s = r.get(f"scale_{kind}")
        if not s:
            continue
        label = "as_shipped" if kind == "sqlite" else "analyzed"
        analyzed = ", no ANALYZE, as the product leaves it" if kind == "sqlite" else ", ANALYZEd"
        figs.append(
            Figure(
                f"claim_ratio_{kind}",
                f"4. claim time 100k ÷ 1k rows, {kind}",
                s["ratio"],
                "x",
                "<=",
                2.0,
                f"{s['1000'][label]['per_intent_ms']:.3f} → "
                f"{s['100000'][label]['per_intent_ms']:.3f} ms/intent "
                f"(batch {s['batch']}, {s['queued_due']} due{analyzed})",
            )
        )
        if kind == "sqlite":
            figs.append(
                Figure(
                    "claim_ratio_sqlite_analyzed",
                    "4. same, SQLite after ANALYZE",
                    s["ratio_after_analyze"],
                    "x",
                    None,
                    None,
                    f"{s['1000']['after_analyze']['per_intent_ms']:.3f} → "
                    f"{s['100000']['after_analyze']['per_intent_ms']:.3f} ms/intent; plan: "
                    + s["100000"]["after_analyze"]["plan"].splitlines()[0][:60],
                )
            )
    rss = max((d.peak_rss for d in b.daemons), default=0) / 2**20
    figs.append(
        Figure(
            "rss_peak",
            "4. daemon peak RSS",
            rss if rss else None,
            "MB",
            "<",
            150,
            f"max over {len(b.daemons)} daemon runs (psutil, every 0.1 s)",
        )
    )
    for kind in b.backends:
        lat = r.get(f"latency_{kind}")
        if lat and lat.get("idle_cpu_pct") is not None:
            figs.append(
                Figure(
                    f"idle_cpu_{kind}",
                    f"4. idle CPU, {kind}",
                    lat["idle_cpu_pct"],
                    "%",
                    None,
                    None,
                    "10 s, nothing queued, % of one core",
                )
            )
    base = r.get("baseline")
    if base:
        figs.append(
            Figure(
                "baseline_ratio",
                "5. time to settle: sequential ÷ treasury",
                base["ratio"],
                "x",
                ">",
                1.0,
                f"{base['n']} withdrawals; {base['baseline_s']:.1f} s vs "
                f"{base['treasury_s']:.1f} s;"
                f" {rate}; processing {base['processing_s']:g} s, polls every 1 s",
            )
        )
        c = base["ccxt"]
        figs.append(
            Figure(
                "baseline_ccxt_ratio",
                "5. time to settle: ccxt loop ÷ treasury",
                c.get("ratio"),
                "x",
                ">",
                1.0,
                f"skipped: {c['skipped']}"
                if "skipped" in c
                else f"{base['n']} withdrawals; {c['seconds']:.1f} s vs "
                f"{base['treasury_s']:.1f} s; ccxt {c.get('ccxt_version')} ({c.get('api')}),"
                " fetch_withdrawals every 1 s",
            )
        )
    return figs


def plot(b: Bench, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    u = b.results.get("utilization")
    ax = axes[0][0]
    if u and u["apply_times"]:
        t0 = u["apply_times"][0]
        xs = [t - t0 for t in u["apply_times"]]
        ax.plot(xs, range(1, len(xs) + 1), label="sends (sandbox ledger)")
        ax.plot([0, xs[-1]], [0, b.rate * xs[-1]], "--", label=f"ideal {b.rate:g}/s")
        settle = [t - t0 for t in u["settle_times"]]
        ax.plot(settle, range(1, len(settle) + 1), label="settled at the exchange")
        ax.set_xlabel("seconds since first send")
        ax.set_ylabel("withdrawals")
        ax.set_title(f"1. cumulative sends (utilization {u['utilization']:.2f})")
        ax.legend()
    ax = axes[0][1]
    for kind in b.backends:
        lat = b.results.get(f"latency_{kind}")
        if lat and lat["latencies_ms"]:
            ax.hist(
                lat["latencies_ms"], bins=30, alpha=0.6, label=f"{kind} p50 {lat['p50_ms']:.0f} ms"
            )
    ax.set_xlabel("enqueue → withdraw/apply (ms)")
    ax.set_ylabel("intents")
    ax.set_title("2. pick-up latency, idle daemon")
    if ax.get_legend_handles_labels()[0]:  # empty when --phases left latency out
        ax.legend()
    ax = axes[1][0]
    base = b.results.get("baseline")
    if base:
        ax.plot(
            base["baseline_done"],
            range(1, len(base["baseline_done"]) + 1),
            label=f"sequential settled ({base['baseline_s']:.0f} s)",
        )
        c = base["ccxt"]
        if "done" in c:
            ax.plot(
                c["done"],
                range(1, len(c["done"]) + 1),
                label=f"ccxt settled ({c['seconds']:.0f} s)",
            )
        ta = base["treasury_applies"]
        ax.plot(ta, range(1, len(ta) + 1), label="treasury sent")
        ts = base["treasury_settled"]
        ax.plot(ts, range(1, len(ts) + 1), label=f"treasury settled ({base['treasury_s']:.1f} s)")
        ax.set_xlabel("seconds since first send")
        ax.set_ylabel("withdrawals")
        ax.set_title(f"5. baselines vs treasury (sequential {base['ratio']:.1f}x)")
        ax.legend()
    ax = axes[1][1]
    if u and u["rss_series"]:
        ax.plot([t for t, _ in u["rss_series"]], [m for _, m in u["rss_series"]])
        ax.axhline(150, linestyle="--", color="red", label="target 150 MB")
        ax.set_xlabel("seconds since daemon ready (utilization run)")
        ax.set_ylabel("RSS (MB)")
        ax.set_title("4. daemon RSS")
        ax.legend()
    fig.suptitle(f"treasury bench ({b.mode.name}) — rate {b.rate:g}/s, limits x{b.mult:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="treasury benchmark")
    parser.add_argument("--quick", action="store_true", help="~2 minute run")
    parser.add_argument("--rate", type=float, default=50.0, help="TREASURY_WITHDRAW_RATE (≤ 50)")
    parser.add_argument(
        "--multiplier",
        type=float,
        default=50.0,
        help="sandbox rate_limits.multiplier = TREASURY_EXCHANGE_LIMIT_MULTIPLIER",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite)")
    parser.add_argument(
        "--phases",
        type=lambda text: [p.strip() for p in text.split(",") if p.strip()],
        default=list(PHASES),
        help=f"comma-separated phases to run, of {','.join(PHASES)} (default: all); "
        "utilization includes polling cost, scale includes peak RSS",
    )
    args = parser.parse_args(argv)
    unknown = set(args.phases) - set(PHASES)
    if unknown or not args.phases:
        parser.error(f"--phases: choose among {','.join(PHASES)} (got {','.join(args.phases)})")
    if not 0 < args.rate <= 50:
        parser.error("--rate must be within (0, 50] (the daemon's own bound)")
    started = time.time()

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the cleanup below

    signal.signal(signal.SIGTERM, on_term)
    machine = h.machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="treasury-bench-"))
    cleanup = h.Cleanup()
    bench = Bench(args, workdir, cleanup)
    print(
        f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['ram_gb']} GB RAM,"
        f" Python {machine['python']}; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"mode {bench.mode.name}; phases {','.join(args.phases)}; databases: "
        f"{', '.join(bench.backends)}; work dir {workdir}"
    )
    error: str | None = None
    try:
        asyncio.run(bench.run())
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as exc:  # report what was measured so far, then fail
        error = f"{type(exc).__name__}: {exc}"
    finally:
        problems = cleanup.run()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    figs = figures(bench)
    print()
    print(render_table(figs))
    base = bench.results.get("baseline")
    if base:
        print("\n5. baseline runs, each as its own sandbox saw it:")
        rows = {
            name: {
                "settled": base["n"] if name == "treasury" else base[name].get("completed"),
                "seconds": base["treasury_s"] if name == "treasury" else base[name]["seconds"],
                **seen,
            }
            for name, seen in base["at_sandbox"].items()
        }
        print(render_counts(rows, BASELINE_COLUMNS))
        if "skipped" in base["ccxt"]:
            print(f"ccxt baseline skipped: {base['ccxt']['skipped']}")
    counts = summary_counts(figs)
    print(
        f"\n{counts['pass']} pass, {counts['fail']} fail, {counts['n/a']} n/a; "
        f"{time.time() - started:.0f} s; load average during phases: "
        + ", ".join(f"{label} {la[0]:.1f}" for label, la in bench.loads)
    )
    daemon_problems = {d.name: d.problems() for d in bench.daemons if d.problems()}
    if daemon_problems:
        print(f"daemon warnings/errors: {daemon_problems}")
    if problems:
        print(f"cleanup problems: {problems}")
    if error:
        print(f"ERROR: {error}")
    OUT.mkdir(parents=True, exist_ok=True)
    results = {
        "mode": bench.mode.name,
        "started": started,
        "duration_s": time.time() - started,
        "machine": machine,
        "load_average": bench.loads,
        "error": error,
        "config": {
            "withdraw_rate": args.rate,
            "limit_multiplier": args.multiplier,
            "databases": bench.backends,
            "mode": bench.mode.__dict__,
            "phases": args.phases,
        },
        "figures": [f.as_json() for f in figs],
        "daemon_problems": daemon_problems,
        "phases": bench.results,
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
    try:
        plot(bench, OUT / "bench.png")
    except Exception as exc:  # the figures matter more than the picture
        print(f"plot failed: {type(exc).__name__}: {exc}")
    print(f"wrote {OUT / 'results.json'} and {OUT / 'bench.png'}")
    return 1 if error or counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
