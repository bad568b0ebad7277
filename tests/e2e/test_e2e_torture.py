"""Randomized torture: seeded SIGKILLs and exchange faults; the invariants hold every round.

Small by default (3 rounds of ~8 intents, two side by side); ``TREASURY_TORTURE_ROUNDS``
sets the number of rounds and ``TREASURY_TORTURE_SEED`` the seed. Round n is forced to
have one of the newer faults (n % 3: a restore from backup, a long history lag, gross
history amounts), so that even three rounds run each once; the long lag is kept to 15 s
here (the large run, ``torture/run.py``, draws up to 30 s).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from torture_rounds import run_rounds, summary

pytestmark = [pytest.mark.slow, pytest.mark.torture]


async def test_torture_rounds_keep_every_invariant(tmp_path: Path) -> None:
    rounds = int(os.environ.get("TREASURY_TORTURE_ROUNDS", "3"))
    seed = int(os.environ.get("TREASURY_TORTURE_SEED", "20261121"))
    results = await run_rounds(
        rounds, seed, "sqlite", tmp_path, concurrency=2, cover=True, long_lag_max_s=15.0, log=print
    )
    report = summary(results)
    print(report)
    failed = [r for r in results if not r.passed]
    assert not failed, report
    if rounds >= 3:
        assert sum(r.restores for r in results) >= 1, report
        assert any(r.lag != "short" for r in results), report
        assert any(r.history_amount == "gross" for r in results), report
