"""Smoke tests of the benchmark's pure helpers (bench/lib.py), the baselines' included."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.lib import (
    Figure,
    ccxt_final_status,
    chain_medians,
    check,
    duplicate_withdrawals,
    first_after,
    peak_concurrency,
    percentile,
    render_counts,
    render_table,
    request_counts,
    steady_rate,
    summary_counts,
)


def test_percentile() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([5], 99) == 5
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 99) == 99
    assert percentile([3, 1, 2], 0) == 1 and percentile([3, 1, 2], 100) == 3


def test_steady_rate_of_a_perfect_pacer_is_its_rate() -> None:
    times = [i / 50 for i in range(1000)]
    r = steady_rate(times, 0.05)
    assert r.events == 900
    assert abs(r.rate_per_s - 50) < 1e-9


def test_steady_rate_ignores_slow_start_and_tail() -> None:
    times = [0.0, 5.0] + [10 + i / 10 for i in range(96)] + [40.0, 60.0]
    assert abs(steady_rate(times, 0.05).rate_per_s - 10) < 0.5
    assert math.isnan(steady_rate([1.0], 0.05).rate_per_s)


def test_peak_concurrency() -> None:
    assert peak_concurrency([]) == 0
    assert peak_concurrency([(0, 10), (1, 2), (1.5, 3), (2, 4)]) == 3  # (1,2) ends at 2
    assert peak_concurrency([(0, 1), (1, 2)]) == 1


def test_check_and_figures() -> None:
    assert check(0.96, ">=", 0.95) is True
    assert check(0.5, "<=", 0.05) is False
    assert check(float("nan"), "<", 1) is None
    figs = [
        Figure("a", "one", 0.97, "", ">=", 0.95, "ctx"),
        Figure("b", "two", 7.0, "ms"),
        Figure("c", "three", 0.2, "", "<=", 0.05),
    ]
    assert summary_counts(figs) == {"pass": 1, "fail": 1, "n/a": 0, "info": 1}
    table = render_table(figs)
    assert "PASS" in table and "FAIL" in table and "info" in table and "ctx" in table
    assert figs[0].as_json()["target"] == ">= 0.950"


def test_chain_medians_and_first_after() -> None:
    medians, used = chain_medians([[0, 1, 3], [0, 2, 3], [5, 4, 6]])
    assert used == 2 and medians == [1.5, 1.5]
    assert first_after([1, 2, 3], 1, 3) == 2
    assert first_after([1, 2, 3], 3, 9) is None
    assert first_after([1, 5], 1, 4) is None


def test_ccxt_final_status_is_the_unified_status_once_final() -> None:
    seen = [
        {"id": "a", "status": "pending"},
        {"id": "b", "status": "ok"},
        {"id": "c", "status": "failed"},
        {"id": "d", "status": "canceled"},
        {"id": "e", "status": "7"},  # unmapped: ccxt passes it through as it came
        {"id": "f", "status": None},
    ]
    assert ccxt_final_status(seen, "a") is None
    assert ccxt_final_status(seen, "b") == "ok"
    assert ccxt_final_status(seen, "c") == "failed"
    assert ccxt_final_status(seen, "d") == "canceled"
    assert ccxt_final_status(seen, "e") is None
    assert ccxt_final_status(seen, "f") is None
    assert ccxt_final_status(seen, "missing") is None
    assert ccxt_final_status([], "a") is None


def test_request_counts_by_kind_and_429s() -> None:
    counts = request_counts(
        [
            ("/sapi/v1/capital/withdraw/apply", 200),
            ("/sapi/v1/capital/withdraw/apply", 429),
            ("/sapi/v1/capital/withdraw/history", 200),
            ("/api/v3/exchangeInfo", 200),
            ("/sapi/v1/capital/config/getall", None),  # connection dropped, no answer
        ]
    )
    assert counts == {"apply": 2, "history": 1, "other": 2, "http_429": 1}


def test_duplicate_withdrawals_by_id_and_surplus_without_id() -> None:
    assert duplicate_withdrawals([]) == 0
    assert duplicate_withdrawals(["a", "b", "a", "a"]) == 2
    assert duplicate_withdrawals([None, None, None], intended_without_id=3) == 0
    assert duplicate_withdrawals([None, None, None], intended_without_id=2) == 1
    assert duplicate_withdrawals(["a", "a", None], intended_without_id=1) == 1
    assert duplicate_withdrawals([None], intended_without_id=2) == 0  # fewer is not a duplicate


def test_render_counts() -> None:
    table = render_counts(
        {"treasury": {"apply": 25, "seconds": 5.151}, "ccxt": {"apply": 25}},
        ("apply", "seconds"),
    )
    lines = table.splitlines()
    assert lines[0].split() == ["apply", "seconds"]
    assert lines[1].split() == ["treasury", "25", "5.151"]
    assert lines[2].split() == ["ccxt", "25", "-"]


def test_per_account_utilization_and_spread() -> None:
    from bench.lib import per_account_utilization, spread

    applies = [("a", 10.0 + i) for i in range(20)]  # 1/s exactly
    applies += [("b", 5.0 + 2 * i) for i in range(10)]  # 0.5/s
    applies += [("c", 3.0)]  # one send: no window
    util = per_account_utilization(reversed(applies), 1.0)
    assert util["a"] == 1.0 and util["b"] == 0.5 and math.isnan(util["c"])
    s = spread(util.values())
    assert s["min"] == 0.5 and s["max"] == 1.0 and s["median"] == 0.75
    assert abs(s["p5"] - 0.525) < 1e-9
    assert per_account_utilization([("a", 0.0), ("a", 0.5)], 2.0) == {"a": 1.0}
    assert math.isnan(spread([])["p5"])


def test_share_ratio_and_takeover() -> None:
    from bench.lib import all_held_by, share_ratio

    holders = {f"x{i}": ("A" if i < 34 else "B" if i < 68 else "C") for i in range(100)}
    assert abs(share_ratio(holders, ["A", "B", "C"]) - 34 / 32) < 1e-9
    assert share_ratio(holders, ["A", "B", "C", "D"]) == math.inf
    assert math.isnan(share_ratio({}, []))
    assert not all_held_by(holders, holders, ["B", "C"])
    assert all_held_by({k: "B" for k in holders}, holders, ["B", "C"])
    assert not all_held_by({"x1": "B"}, ["x1", "x2"], ["B"])  # x2 has no live lease


def test_profile_top_ranks_self_time_and_packages() -> None:
    from bench.lib import profile_top

    raw = "\n".join(
        [
            "run (asyncio/base_events.py:1);execute (sqlalchemy/engine/base.py:9) 6",
            "run (asyncio/base_events.py:1);commit (/r/treasury/adapters/db/ledger.py:5);"
            "execute (sqlalchemy/engine/base.py:9) 3",
            "run (asyncio/base_events.py:1);sign (/r/treasury/adapters/binance/sign.py:2) 1",
            "garbage line",
        ]
    )
    top = profile_top(raw, n=3)
    assert top["self"][0] == ("execute (sqlalchemy/engine/base.py:9)", 0.9)
    # the innermost frame outside the standard library
    assert top["package"] == [("sqlalchemy", 0.9), ("treasury.adapters", 0.1)]
    # the innermost of treasury's files: who asked for the work
    assert dict(top["treasury"]) == {
        "(none: the event loop, libraries)": 0.6,
        "treasury/adapters/db/ledger.py": 0.3,
        "treasury/adapters/binance/sign.py": 0.1,
    }
    assert profile_top("") == {"self": [], "package": [], "treasury": []}
    only_loop = profile_top("run (asyncio/base_events.py:1);write (asyncio/selector_events.py:3) 2")
    assert only_loop["package"] == [("stdlib:asyncio", 1.0)]
