"""The large torture run: many seeded rounds of random SIGKILLs and exchange faults.

    .venv/bin/python torture/run.py --rounds 60 --seed 1 --db postgres --concurrency 2

Each round is a fresh world (database, sandbox exchange, ``treasury run`` processes);
see ``tests/e2e/torture_rounds.py`` and ``torture/README.md`` for what a round does:
crashes and apply faults, and by the round's seed a restore from backup, a long history
lag (with the allowance above it, or beyond it under TREASURY_RESEND=manual) and net or
gross history amounts. Prints a table, a ``totals:`` line, then ``N passed, N failed``;
exits 1 if any round failed (its work directory is kept and named in the table: the
daemon logs, the sandbox journal, the ledger and its backup are there). PostgreSQL comes
from TREASURY_TEST_POSTGRES_URL (default: local, trust auth).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from torture_rounds import LONG_LAG_MAX_S, as_json, run_rounds, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="torture/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="number of rounds")
    parser.add_argument("--seed", type=int, default=1, help="base seed (round n: seed*1000+n)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--intents", type=int, default=8, help="intents per round (at least)")
    parser.add_argument("--concurrency", type=int, default=2, help="rounds run side by side")
    parser.add_argument("--workdir", type=Path, help="where rounds live (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work dirs of passed rounds")
    parser.add_argument(
        "--max-lag",
        type=float,
        default=LONG_LAG_MAX_S,
        help="largest history lag X of a long-lag round, s (at least 8)",
    )
    parser.add_argument(
        "--cover",
        action="store_true",
        help="force round n to have a restore / long lag / gross (n %% 3)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.concurrency < 1 or args.intents < 2:
        parser.error("--rounds and --concurrency must be >= 1, --intents >= 2")
    if args.max_lag < 8:
        parser.error("--max-lag must be at least 8 (s)")

    base = args.workdir or Path(tempfile.mkdtemp(prefix="treasury-torture-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(
        f"torture: {args.rounds} rounds, seed {args.seed}, {args.db}, work dir {base}", flush=True
    )
    results = anyio.run(
        lambda: run_rounds(
            args.rounds,
            args.seed,
            args.db,
            base,
            concurrency=args.concurrency,
            intents=args.intents,
            cover=args.cover,
            long_lag_max_s=args.max_lag,
            log=lambda m: print(m, flush=True),
        )
    )
    print(summary(results))
    print(f"wall time {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(as_json(results), indent=2, default=str))
    if not args.keep:
        for r in results:
            if r.passed:
                shutil.rmtree(r.workdir, ignore_errors=True)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
