"""Settlement latency with ~1,000 withdrawals in flight, on Binance's real rate limits.

    .venv/bin/python bench/settlement.py                      # this tree, ~3 min
    .venv/bin/python bench/settlement.py --before 52f63b7     # and a git revision, to compare

What it measures, per sending rate (``--rates``, default 1 and 3 per second):

* **settlement latency** — from the moment the exchange finished a withdrawal (the
  sandbox's ``settle_at``) to the ledger's ``settled_at``, p50 / p99 / max over every
  withdrawal;
* **history weight per settled withdrawal** — ``withdraw/history`` requests the sandbox
  received while the measured daemon ran, times 18,000, ÷ withdrawals it settled.

How: a loader daemon (limits times 50) sends ``--n`` withdrawals to a sandbox that takes
``--processing-s`` (± a third) to finish each one, then stops. The measured daemon — the
real ``python -m treasury run`` of the tree or revision under test — then starts with
``TREASURY_EXCHANGE_LIMIT_MULTIPLIER=1`` (the client plans on Binance's own budgets) and
``TREASURY_WITHDRAW_RATE`` = the rate: it settles all of them. The poll planner reads the
configured rate; nothing is sent while it measures. The sandbox's own limits stay 50
times Binance's, so no answer is a 429: the figures are the client's planning, not the
sandbox's refusals.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness as h
from bench.lib import percentile

HISTORY_WEIGHT = 18_000


def export_revision(rev: str, into: Path) -> Path:
    """The tree of ``rev`` as plain files (``git archive``), to run its daemon."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(h.REPO), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def imported_from(pythonpath: str) -> str:
    """Where ``import treasury`` resolves with this PYTHONPATH (proves which code runs)."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    out = subprocess.run(
        [sys.executable, "-c", "import treasury; print(treasury.__file__)"],
        env=env,
        cwd=tempfile.gettempdir(),
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


async def one(
    label: str, src: Path, rate: float, args: argparse.Namespace, work: Path, cleanup: h.Cleanup
) -> dict[str, Any]:
    processing = args.processing_s
    sb = h.Sandbox(multiplier=50, processing_s=processing, jitter_s=processing / 3).start(cleanup)
    db = await h.new_database(args.db, work, cleanup)
    await h.prepare(db, sb)
    engine = h.engine_for(db)
    loader = h.Daemon(f"load-{label}-{rate:g}", db, sb, 50, 50, work).start(cleanup)
    await loader.wait_ready()
    await asyncio.sleep(1.1)  # enqueued once it is the sender (no startup hold)
    await h.bulk_enqueue(engine, args.n, f"settle-{rate:g}")

    async def all_sent() -> bool:
        counts = await h.status_counts(engine)
        return counts.get("queued", 0) == 0 and counts.get("submitting", 0) == 0

    await h.wait_until(all_sent, 120, 0.2, "every withdrawal sent")
    loader.stop()
    counts = await h.status_counts(engine)
    if counts.get("submitted", 0) < args.n * 0.9:
        raise RuntimeError(f"the loader settled too many itself: {counts}")

    measured = h.Daemon(
        f"measure-{label}-{rate:g}",
        db,
        sb,
        rate,
        1,
        work,
        extra_env={"PYTHONPATH": str(src)},
    ).start(cleanup)
    await measured.wait_ready()
    t_start = time.time()

    async def all_settled() -> bool:
        c = await h.status_counts(engine)
        return c.get("submitted", 0) == 0 and c.get("submitting", 0) == 0

    await h.wait_until(all_settled, processing * 2 + 600, 0.25, "every withdrawal settled")
    t_end = time.time()
    measured.stop()
    rows = await h.intents_table(engine)
    await engine.dispose()
    ledger = sb.ledger()
    done_at = {w.withdraw_order_id: w.settle_at_ms for w in ledger.withdrawals}
    latencies = [
        (h.ms_of(r["settled_at"]) - done_at[r["withdraw_order_id"]]) / 1000
        for r in rows
        if r["settled_at"] is not None
        and r["withdraw_order_id"] in done_at
        and h.ms_of(r["settled_at"]) / 1000 >= t_start
    ]
    hits = sb.log.between(t_start - 5, t_end + 1) if sb.log else []
    history = [x for x in hits if x.path.endswith("/withdraw/history")]
    sb.stop()
    return {
        "code": label,
        "rate": rate,
        "settled": len(latencies),
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies),
        "history_requests": len(history),
        "history_weight_per_settled": len(history) * HISTORY_WEIGHT / max(1, len(latencies)),
        "http_429": sum(1 for x in hits if x.status == 429),
    }


async def run(args: argparse.Namespace, work: Path, cleanup: h.Cleanup) -> list[dict[str, Any]]:
    trees = [("this tree", h.REPO)]
    if args.before:
        trees.insert(0, (args.before, export_revision(args.before, work / "before")))
    for label, src in trees:
        print(f"{label}: treasury imported from {imported_from(str(src))}", flush=True)
    out = []
    for label, src in trees:
        for rate in args.rates:
            print(f"[{time.strftime('%H:%M:%S')}] {label}, {rate:g} sends/s ...", flush=True)
            result = await one(label, src, rate, args, work, cleanup)
            print(f"  {result}", flush=True)
            out.append(result)
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| code | sends/s planned | settled | latency p50 | p99 | max "
        "| history requests | history weight per settled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['code']} | {r['rate']:g} | {r['settled']} | {r['p50_s']:.1f} s "
            f"| {r['p99_s']:.1f} s | {r['max_s']:.1f} s | {r['history_requests']} "
            f"| {r['history_weight_per_settled']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="settlement latency at ~1,000 in flight")
    parser.add_argument("--n", type=int, default=1000, help="withdrawals in flight")
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[1, 3])
    parser.add_argument("--processing-s", type=float, default=60.0)
    parser.add_argument("--before", help="a git revision to measure first, for comparison")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args(argv)
    from treasury.logs import configure

    configure(fmt="console", level="error")  # the in-process set-up calls stay quiet
    work = Path(tempfile.mkdtemp(prefix="treasury-settle-"))
    cleanup = h.Cleanup()
    try:
        results = asyncio.run(run(args, work, cleanup))
    finally:
        problems = cleanup.run()
        shutil.rmtree(work, ignore_errors=True)
        if problems:
            print(f"cleanup problems: {problems}")
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
