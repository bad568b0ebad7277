"""The local-entity (travel-rule) read endpoints: the fixed lists and the history view.

The lists are a small fixed data set (Binance's real ones are long and change): the two
VASPs of Binance's documented example (``BINANCE``, HashKey Global) plus one sandbox VASP,
a few countries, and AU's regions (the region list "currently only supports AU"). A
VASP's ``identifier`` is what a questionnaire's ``vasp`` takes since 2026-02-27; the
identifiers other than ``BINANCE`` are the sandbox's own ([INFERENCE]: Binance shows no
example identifier).

History (``/sapi/v1`` and ``/sapi/v2/localentity/withdraw/history``): only withdrawals made
through ``localentity/withdraw/apply`` carry a ``trId``, so only they can be listed (the
v2 page: withdrawals made through ``capital/withdraw/apply`` may be missing). Filters:
``trId``, ``txId``, ``withdrawOrderId`` (comma-separated lists), ``network``, ``coin``,
``travelRuleStatus``; windows, ``offset`` and ``limit`` as the capital history. A
withdrawal the ``history_only_in`` fault marked ``"capital"`` is left out here, one marked
``"localentity"`` is left out of the capital history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from treasury.sandbox import errors, history
from treasury.sandbox.withdrawals import Withdrawal

VASPS: tuple[dict[str, str], ...] = (
    {"vaspName": "Binance", "vaspCode": "BINANCE", "identifier": "BINANCE"},
    {
        "vaspName": "HashKeyGlobal",
        "vaspCode": "NVBH3Z_nNEHjvqbUfkaL",
        "identifier": "hashkeyglobal",
    },
    {"vaspName": "Sandbox Exchange", "vaspCode": "SANDBOXEX", "identifier": "sandbox-exchange"},
)
VASP_IDENTIFIERS = frozenset(v["identifier"] for v in VASPS)
LAST_UPDATED_MS = 1_780_000_000_000  # the fixed data's "lastUpdated"


def _country(code: str, name: str, regions: bool = False) -> dict[str, object]:
    return {
        "countryCode": code,
        "countryName": name,
        "blockType": "supported",
        "depositAllowed": True,
        "withdrawalAllowed": True,
        "hasRegionRestrictions": regions,
    }


COUNTRIES: tuple[dict[str, object], ...] = (
    _country("au", "Australia", regions=True),
    _country("cn", "China"),
    _country("fr", "France"),
    _country("jp", "Japan"),
    _country("pl", "Poland"),
    _country("ua", "Ukraine"),
    _country("us", "United States"),
)
REGIONS: Mapping[str, tuple[str, ...]] = {"au": ("New South Wales", "Victoria", "Queensland")}


def country_list() -> dict[str, object]:
    return {"countries": list(COUNTRIES), "lastUpdated": LAST_UPDATED_MS}


def region_list(params: Mapping[str, str]) -> dict[str, object]:
    """Regions of ``countryCode`` (mandatory); a country without any answers an empty list."""
    code = (params.get("countryCode") or "").strip().lower()
    if not code:
        raise errors.mandatory("countryCode")
    names = REGIONS.get(code, ())
    regions = [
        {
            "regionName": n,
            "blockType": "supported",
            "depositAllowed": True,
            "withdrawalAllowed": True,
        }
        for n in names
    ]
    return {"countryCode": code, "regions": regions, "lastUpdated": LAST_UPDATED_MS if names else 0}


def select(
    candidates: Iterable[Withdrawal], params: Mapping[str, str], now_ms: int, *, gross: bool
) -> list[dict[str, object]]:
    """The local-entity history items matching ``params``, newest first, one page."""
    q = history.parse_query({k: v for k, v in params.items() if k != "status"}, now_ms)
    tr_ids = _list(params, "trId")
    tx_ids = _list(params, "txId")
    order_ids = _list(params, "withdrawOrderId")
    network = params.get("network") or None
    tr_status = history.int_param(params, "travelRuleStatus")
    if tr_status is not None and tr_status not in (0, 1, 2):
        raise errors.invalid_value("travelRuleStatus")
    rows = [
        w
        for w in candidates
        if w.tr_id is not None
        and w.only_in != "capital"
        and q.start_ms <= w.applied_at_ms <= q.end_ms
        and w.visible_at_ms <= now_ms
        and (q.coin is None or w.coin == q.coin)
        and (network is None or w.network == network)
        and (order_ids is None or w.withdraw_order_id in order_ids)
        and (tr_ids is None or str(w.tr_id) in tr_ids)
        and (tx_ids is None or w.history_item(now_ms, gross=gross)["txId"] in tx_ids)
        and (tr_status is None or w.travel_rule_status(now_ms) == tr_status)
    ]
    rows.sort(key=lambda w: (w.applied_at_ms, w.seq), reverse=True)
    return [w.local_history_item(now_ms, gross=gross) for w in rows[q.offset : q.offset + q.limit]]


def _list(params: Mapping[str, str], name: str) -> frozenset[str] | None:
    raw = params.get(name)
    if not raw:
        return None
    listed = frozenset(i.strip() for i in raw.split(",") if i.strip())
    if len(listed) > history.MAX_IDS:
        raise errors.invalid_value(name)
    return listed
