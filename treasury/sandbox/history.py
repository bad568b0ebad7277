"""``GET /sapi/v1/capital/withdraw/history``: parameters, windows, filters, order.

Binance's rules (reference §2): window < 90 days (default: the last 90 days); with
``withdrawOrderId`` the window must be < 7 days and defaults to the last 7 days;
``idList`` takes at most 45 ids; ``limit`` defaults to 1000 and may not exceed it.
"Less than 90 days" still admits ``endTime - startTime`` of exactly 90 days
(7,776,000,000 ms): real Binance answers that window (reference §9), and ccxt asks for
it, so only a longer window is refused; the 7-day rule is read the same way. The order
of results is not documented; the sandbox answers newest first (by apply time, then
acceptance order), the order Binance's website shows. Codes where Binance is silent: bad
number syntax -1100, value out of range -1130 (also for 46+ ids), window too long
-1127, ``startTime`` after ``endTime`` -1128. Each item's ``amount`` is net of
``transactionFee`` unless the ``history_amount`` setting is ``"gross"`` (``withdrawals.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from treasury.sandbox import errors
from treasury.sandbox.withdrawals import Withdrawal

DAY_MS = 86_400_000
MAX_IDS = 45
MAX_LIMIT = 1000


@dataclass(frozen=True)
class HistoryQuery:
    coin: str | None
    withdraw_order_id: str | None
    status: int | None
    offset: int
    limit: int
    ids: frozenset[str] | None
    start_ms: int
    end_ms: int


def parse_query(params: Mapping[str, str], now_ms: int) -> HistoryQuery:
    """Read and check the parameters, filling Binance's default window."""
    woid = params.get("withdrawOrderId") or None
    status = int_param(params, "status")
    if status is not None and not 0 <= status <= 6:
        raise errors.invalid_value("status")
    offset = int_param(params, "offset") or 0
    limit = int_param(params, "limit")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise errors.invalid_value("limit")
    ids: frozenset[str] | None = None
    if params.get("idList"):
        listed = [i.strip() for i in params["idList"].split(",") if i.strip()]
        if len(listed) > MAX_IDS:
            raise errors.invalid_value("idList")
        ids = frozenset(listed)
    window = (7 if woid is not None else 90) * DAY_MS
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    if start is None and end is None:
        end = now_ms
        start = end - window + 1
    elif start is None:
        assert end is not None
        start = end - window + 1
    elif end is None:
        end = max(now_ms, start)
    if start > end:
        raise errors.bad_combination("startTime must not be after endTime.")
    if end - start > window:
        raise errors.interval_too_big()
    return HistoryQuery(
        coin=params.get("coin") or None,
        withdraw_order_id=woid,
        status=status,
        offset=offset,
        limit=limit or MAX_LIMIT,
        ids=ids,
        start_ms=start,
        end_ms=end,
    )


def select(
    candidates: Iterable[Withdrawal], q: HistoryQuery, now_ms: int, *, gross: bool
) -> list[dict[str, object]]:
    """The history items matching ``q``, newest first, one page; amounts net unless ``gross``."""
    rows = [
        w
        for w in candidates
        if q.start_ms <= w.applied_at_ms <= q.end_ms
        and w.visible_at_ms <= now_ms
        and w.only_in != "localentity"  # the history_only_in fault
        and (q.coin is None or w.coin == q.coin)
        and (q.withdraw_order_id is None or w.withdraw_order_id == q.withdraw_order_id)
        and (q.ids is None or w.id in q.ids)
        and (q.status is None or w.status(now_ms) == q.status)
    ]
    rows.sort(key=lambda w: (w.applied_at_ms, w.seq), reverse=True)
    return [w.history_item(now_ms, gross=gross) for w in rows[q.offset : q.offset + q.limit]]


def int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20:
        raise errors.illegal_characters(name, errors.UNSIGNED_INT)
    return int(raw)
