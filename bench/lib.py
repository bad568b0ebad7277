"""Pure helpers of the benchmark: statistics, verdicts, the printed table.

Nothing here does I/O, so ``tests/unit/test_bench_lib.py`` can check it quickly.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


@dataclass(frozen=True)
class SteadyRate:
    rate_per_s: float  # events per second inside the window
    events: int  # events inside the window
    start_s: float
    end_s: float


def steady_rate(times_s: Iterable[float], trim: float = 0.05) -> SteadyRate:
    """Events per second, leaving out the first and last ``trim`` share of the events.

    The rate is (events in the window - 1) ÷ (last - first): the gaps between events,
    so a perfect pacer at ``r``/s gives exactly ``r`` whatever the count.
    """
    if not 0 <= trim < 0.5:
        raise ValueError("trim must be within [0, 0.5)")
    ordered = sorted(times_s)
    cut = int(len(ordered) * trim)
    window = ordered[cut : len(ordered) - cut] if cut else ordered
    if len(window) < 2 or window[-1] <= window[0]:
        return SteadyRate(
            math.nan,
            len(window),
            window[0] if window else math.nan,
            window[-1] if window else math.nan,
        )
    return SteadyRate(
        (len(window) - 1) / (window[-1] - window[0]), len(window), window[0], window[-1]
    )


def peak_concurrency(intervals: Iterable[tuple[float, float]]) -> int:
    """Most intervals ``[start, end)`` open at one instant."""
    edges: list[tuple[float, int]] = []
    for start, end in intervals:
        if end > start:
            edges.append((start, 1))
            edges.append((end, -1))
    edges.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    peak = open_ = 0
    for _, delta in edges:
        open_ += delta
        peak = max(peak, open_)
    return peak


def ratio(numerator: float, denominator: float) -> float:
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def check(value: float | None, op: str, target: float) -> bool | None:
    """Compare ``value`` to ``target`` with ``op`` in ``<``, ``<=``, ``>``, ``>=``, ``==``.

    Returns None when the value is missing (the figure could not be measured).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    match op:
        case "<":
            return value < target
        case "<=":
            return value <= target
        case ">":
            return value > target
        case ">=":
            return value >= target
        case "==":
            return value == target
    raise ValueError(f"unknown operator {op!r}")


@dataclass
class Figure:
    """One line of the report."""

    key: str
    label: str
    value: float | None
    unit: str = ""
    op: str | None = None  # None: informative, no target
    target: float | None = None
    context: str = ""  # configured rate, database, sizes… shown next to the figure
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.op is None or self.target is None:
            return None
        return check(self.value, self.op, self.target)

    def as_json(self) -> dict[str, object]:
        value = self.value
        if isinstance(value, float) and math.isnan(value):
            value = None
        return {
            "key": self.key,
            "label": self.label,
            "value": value,
            "unit": self.unit,
            "target": None if self.op is None else f"{self.op} {_num(self.target)}",
            "pass": self.passed,
            "context": self.context,
            **self.extra,
        }


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0:
        return "0"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return f"{int(value):,}" if abs(value) < 1e15 else f"{value:g}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def verdict_text(passed: bool | None, informative: bool) -> str:
    if informative:
        return "info"
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def render_table(figures: Sequence[Figure]) -> str:
    """A plain-text table: figure, value, target, verdict, context."""
    header = ("figure", "value", "target", "result", "configured / context")
    rows = [header]
    for f in figures:
        value = _num(f.value) + (f" {f.unit}" if f.unit and f.value is not None else "")
        target = "" if f.op is None else f"{f.op} {_num(f.target)}"
        rows.append((f.label, value, target, verdict_text(f.passed, f.op is None), f.context))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = []
    for n, r in enumerate(rows):
        cells = [
            r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i]) for i in range(len(widths))
        ]
        lines.append("  ".join(cells) + "  " + r[-1])
        if n == 0:
            lines.append("-" * (sum(widths) + 2 * len(widths) + len(header[-1])))
    return "\n".join(lines)


def summary_counts(figures: Sequence[Figure]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "n/a": 0, "info": 0}
    for f in figures:
        if f.op is None:
            counts["info"] += 1
        elif f.passed is None:
            counts["n/a"] += 1
        else:
            counts["pass" if f.passed else "fail"] += 1
    return counts


def chain_medians(chains: Sequence[Sequence[float]]) -> tuple[list[float], int]:
    """Median of each step of time chains ``[t0, t1, …, tn]`` (steps ``t1-t0``, …).

    Chains that go backwards (an event missing or out of order) are left out; returns
    the medians and how many chains were used.
    """
    usable = [c for c in chains if all(b >= a for a, b in itertools.pairwise(c))]
    if not usable:
        return [], 0
    steps = len(usable[0]) - 1
    medians = []
    for i in range(steps):
        medians.append(percentile([c[i + 1] - c[i] for c in usable if len(c) > i + 1], 50))
    return medians, len(usable)


def first_after(sorted_times: Sequence[float], after: float, before: float) -> float | None:
    """The first time in ``sorted_times`` within ``(after, before]``, if any."""
    import bisect

    i = bisect.bisect_right(sorted_times, after)
    if i < len(sorted_times) and sorted_times[i] <= before:
        return sorted_times[i]
    return None


# -- the baselines ---------------------------------------------------------------------------

CCXT_FINAL = frozenset({"ok", "failed", "canceled"})


def ccxt_final_status(transactions: Iterable[Mapping[str, object]], withdraw_id: str) -> str | None:
    """The unified status of ``withdraw_id`` in a ``fetch_withdrawals`` answer, once final.

    ccxt maps Binance's withdrawal statuses to ``pending`` (0 email sent, 2 awaiting
    approval, 4 processing), ``ok`` (6), ``failed`` (3 rejected, 5 failure) and
    ``canceled`` (1). None while the withdrawal is absent or still pending; an unknown
    status (ccxt passes unmapped ones through as they came) is not final either.
    """
    for tx in transactions:
        if tx.get("id") == withdraw_id:
            status = tx.get("status")
            return status if isinstance(status, str) and status in CCXT_FINAL else None
    return None


def request_counts(requests: Iterable[tuple[str, int | None]]) -> dict[str, int]:
    """What one runner cost the sandbox, from its request log's ``(path, status)`` pairs:
    ``withdraw/apply`` calls, ``withdraw/history`` calls, other calls, and 429 answers."""
    out = {"apply": 0, "history": 0, "other": 0, "http_429": 0}
    for path, status in requests:
        if path.endswith("/withdraw/apply"):
            out["apply"] += 1
        elif path.endswith("/withdraw/history"):
            out["history"] += 1
        else:
            out["other"] += 1
        if status == 429:
            out["http_429"] += 1
    return out


def duplicate_withdrawals(order_ids: Iterable[str | None], intended_without_id: int = 0) -> int:
    """Withdrawals booked beyond one per intended withdrawal.

    Those carrying a withdrawOrderId: every one past the first with the same id. Those
    without (the ccxt loop sends none): every one past ``intended_without_id``.
    """
    seen: dict[str, int] = {}
    without = 0
    for oid in order_ids:
        if oid is None:
            without += 1
        else:
            seen[oid] = seen.get(oid, 0) + 1
    return sum(n - 1 for n in seen.values()) + max(0, without - intended_without_id)


def render_counts(rows: Mapping[str, Mapping[str, object]], columns: Sequence[str]) -> str:
    """A small plain-text table: one row per runner, one column per count."""
    header = ["", *columns]
    lines = [[name, *(_cell(r.get(c)) for c in columns)] for name, r in rows.items()]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    out = []
    for row in [header, *lines]:
        out.append(
            "  ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)
            )
        )
    return "\n".join(out)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _num(value)
    return str(value)


# -- many accounts (bench/fleet_bench.py) ------------------------------------------------


def per_account_utilization(
    applies: Iterable[tuple[str, float]], rate_per_s: float
) -> dict[str, float]:
    """Each account's sends per second over its active window ÷ ``rate_per_s``.

    ``applies`` are ``(account, time in s)`` pairs, one per withdrawal the exchange
    booked. The active window runs from the account's first send to its last; the rate is
    (sends - 1) ÷ (last - first), the gaps between sends, so a perfect pacer gives exactly
    1.0 whatever the count. An account with fewer than two sends gets NaN.
    """
    times: dict[str, list[float]] = {}
    for account, t in applies:
        times.setdefault(account, []).append(t)
    out: dict[str, float] = {}
    for account, ts in times.items():
        ts.sort()
        span = ts[-1] - ts[0]
        out[account] = (len(ts) - 1) / span / rate_per_s if len(ts) > 1 and span > 0 else math.nan
    return out


def spread(values: Iterable[float]) -> dict[str, float]:
    """p5, median, min and max of the values that are numbers (NaN when there are none)."""
    known = [v for v in values if not math.isnan(v)]
    return {
        "p5": percentile(known, 5),
        "median": percentile(known, 50),
        "min": min(known) if known else math.nan,
        "max": max(known) if known else math.nan,
    }


def share_ratio(holders: Mapping[str, str], members: Iterable[str]) -> float:
    """max ÷ min accounts per member, from ``{account: holder}``; a member holding nothing
    counts as 0 (ratio inf); NaN without members."""
    counts = {m: 0 for m in members}
    for holder in holders.values():
        if holder in counts:
            counts[holder] += 1
    if not counts:
        return math.nan
    low = min(counts.values())
    return math.inf if low == 0 else max(counts.values()) / low


def all_held_by(holders: Mapping[str, str], accounts: Iterable[str], alive: Iterable[str]) -> bool:
    """Every account has a live lease (is in ``holders``) held by one of ``alive``."""
    members = set(alive)
    return all(holders.get(a) in members for a in accounts)


def profile_top(collapsed: str, n: int = 12) -> dict[str, list[tuple[str, float]]]:
    """The top entries of a py-spy ``--format raw`` profile (one ``frame;frame;… count``
    line per stack, outermost first), as fractions of all samples:

    * ``self``: the innermost frame (where the CPU was);
    * ``package``: the package of the innermost frame outside the standard library
      (``sqlalchemy``, ``asyncpg``, ``treasury.adapters``…), else the standard module
      (``stdlib:selector_events``: the event loop's own socket work);
    * ``treasury``: the innermost of treasury's own files on the stack, which is the
      code that asked for the work, whichever library did it."""
    counts: dict[str, dict[str, int]] = {"self": {}, "package": {}, "treasury": {}}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        packages = [_package_of(frame) for frame in frames]
        outside = [p for p in packages if not p.startswith("stdlib:")]
        ours = [
            _file_of(f) for f, p in zip(frames, packages, strict=True) if p.startswith("treasury")
        ]
        for kind, name in (
            ("self", frames[-1]),
            ("package", outside[-1] if outside else packages[-1]),
            ("treasury", ours[-1] if ours else "(none: the event loop, libraries)"),
        ):
            counts[kind][name] = counts[kind].get(name, 0) + count
    if total == 0:
        return {kind: [] for kind in counts}

    def top(by: Mapping[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(name, count / total) for name, count in ranked]

    return {kind: top(by) for kind, by in counts.items()}


def _file_of(frame: str) -> str:
    """``commit (/r/treasury/adapters/db/ledger.py:5)`` → ``treasury/adapters/db/ledger.py``."""
    path = frame.rpartition(" (")[2].rstrip(")").rpartition(":")[0]
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[len(parts) - 1 - parts[::-1].index("treasury") :])


def _package_of(frame: str) -> str:
    """``execute (sqlalchemy/engine/base.py:1234)`` → ``sqlalchemy``. py-spy names a file
    relative to its ``sys.path`` entry, so the first part is the top-level package;
    treasury's own code is told apart by its second level (``treasury.adapters``) and the
    standard library is ``stdlib:`` + its module (``stdlib:asyncio``)."""
    _, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif "treasury" in parts:
        parts = parts[len(parts) - 1 - parts[::-1].index("treasury") :]
    if not parts:
        return "?"
    top = parts[0].removesuffix(".py")
    if top in sys.stdlib_module_names or top.startswith("<frozen"):
        return f"stdlib:{top}"
    if top == "treasury" and len(parts) > 2:
        return f"treasury.{parts[1]}"
    return top
