"""Randomized torture: seeded SIGKILLs and exchange faults; the invariants hold every round.

Small by default (3 rounds of ~8 intents); ``TREASURY_TORTURE_ROUNDS`` sets the number
of rounds and ``TREASURY_TORTURE_SEED`` the seed. The large documented run is
``torture/run.py``.
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
    results = await run_rounds(rounds, seed, "sqlite", tmp_path, concurrency=3, log=print)
    report = summary(results)
    print(report)
    failed = [r for r in results if not r.passed]
    assert not failed, report
