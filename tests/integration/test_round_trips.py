"""The database round trips of one send and of a settlement do not grow (issue 19).

Counts, not timings: ``bench/round_trips.py`` drives the real services against the SQL
ledger and the scripted exchange and counts every statement, BEGIN/COMMIT/ROLLBACK and
(PostgreSQL) pool pre-ping. A new query on the send path fails here; lower the ceilings
when a change saves one (and the README's figures with them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.round_trips import PHASES, Figures, measure

# per dialect: (scenario, phase) → the most round trips it may take
SEND = {
    "sqlite": {
        "plain": {"intake": 6, "checks": 3, "commit": 9, "record": 4},
        "approved": {"intake": 6, "checks": 3, "commit": 14, "record": 4},
    },
    "postgresql": {
        "plain": {"intake": 8, "checks": 4, "commit": 11, "record": 5},
        "approved": {"intake": 8, "checks": 4, "commit": 16, "record": 5},
    },
}
# per dialect: withdrawals settled by one poll → the most round trips that poll may take
SETTLE = {
    "sqlite": {1: 7, 10: 25},
    "postgresql": {1: 9, 10: 27},
}


def _over(figures: Figures) -> list[str]:
    over = []
    for scenario, ceilings in SEND[figures.dialect].items():
        for phase in PHASES:
            got = figures.sends[scenario][phase]
            if len(got) > ceilings[phase]:
                over.append(f"send {scenario}/{phase}: {len(got)} > {ceilings[phase]}: {got}")
    for n, ceiling in SETTLE[figures.dialect].items():
        got = figures.settles[n]
        if len(got) > ceiling:
            over.append(f"settle {n}: {len(got)} > {ceiling}: {got}")
    return over


@pytest.mark.timeout(120)
async def test_round_trips_per_send_and_settlement_do_not_grow(db_url: str) -> None:
    figures = await measure(db_url)
    assert not _over(figures), "\n".join(_over(figures))
    # the commit itself is one transaction: one BEGIN, one COMMIT, nothing rolled back
    for scenario in ("plain", "approved"):
        commit = figures.sends[scenario]["commit"]
        assert (commit.count("BEGIN"), commit.count("COMMIT")) == (1, 1), commit
        assert "ROLLBACK" not in commit
        assert commit.index("INSERT intent_events") < commit.index("UPDATE withdrawal_intents")
