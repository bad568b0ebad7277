"""The seven safety invariants of docs/CONTRACT.md, checked against the ground truth.

The database says what the service believes; the sandbox's journal says what the
exchange saw and did. Every e2e test ends with :func:`assert_invariants`; the torture
runner counts :func:`check_invariants` violations per round instead of stopping.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from harness import API_SECRET, SETTLED, TERMINAL, World

from treasury.domain.money import format_amount
from treasury.sandbox.ledger import Ledger

FORBIDDEN_IN_LOGS = (API_SECRET, "signature=")


@dataclass
class Snapshot:
    intents: list[dict[str, Any]]
    events: list[dict[str, Any]]
    whitelist: list[dict[str, Any]]
    ledger: Ledger
    texts: list[str] = field(default_factory=list)  # logs and CLI output
    # rows of ``unmatched_withdrawals``: withdrawals of our namespace the ledger knows it
    # cannot account for (a restore from backup lost their intents)
    unmatched: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def take(cls, w: World) -> Snapshot:
        return cls(
            intents=await w.intents(),
            events=await w.events(),
            whitelist=await w.whitelist(),
            ledger=w.sandbox.ledger(),
            texts=[*(d.logs() for d in w.daemons), *w.cli_outputs],
            unmatched=await w.sql("SELECT * FROM unmatched_withdrawals ORDER BY id"),
        )


def _amount(value: object) -> Decimal | None:
    """The DB's amount, exactly; None when it came back as anything but text/Decimal."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value)
    if isinstance(value, bytes):
        return Decimal(value.decode())
    return None


def check_invariants(
    snap: Snapshot,
    *,
    rate: float = 20.0,
    tolerance_ms: float = 15.0,
    delay_before_s: float | None = None,
    require_settled: bool = True,
    allow_attention: bool = False,
) -> list[str]:
    """Every violated invariant, as one line each (empty: all hold).

    ``tolerance_ms``: how much closer than ``1/rate`` two apply calls may *arrive*. The
    daemon spaces its sends; with overlapping sends (high rates) the exchange can still
    see them up to ~12 ms closer on a loaded machine (transit jitter), hence 15 ms.
    ``delay_before_s``: the ``delay_before_accept_s`` fault was on with this delay; the
    sandbox journals such a request only after the delay, so its arrival is estimated as
    journal time minus the delay (such a request is recognised by its signed timestamp).
    """
    v: list[str] = []
    ledger = snap.ledger
    by_oid = {i["withdraw_order_id"]: i for i in snap.intents if i["withdraw_order_id"]}
    withdrawals_by_oid: dict[str, list[Any]] = defaultdict(list)
    for w in ledger.withdrawals:
        if w.withdraw_order_id is not None:
            withdrawals_by_oid[w.withdraw_order_id].append(w)

    # After a restore from backup the exchange may hold withdrawals whose intents the
    # ledger lost; once on file in ``unmatched_withdrawals`` the ledger knows them. Their
    # order ids are burned: an apply call after the one the exchange accepted is a fault.
    known_lost = {u["exchange_withdraw_id"] for u in snap.unmatched}
    burned_since: dict[str, float] = {}  # order id -> when the exchange accepted it
    for r in ledger.apply_requests:
        oid_ = r.params.get("withdrawOrderId")
        if r.withdrawal_id in known_lost and oid_:
            burned_since[oid_] = min(burned_since.get(oid_, r.at_ms), r.at_ms)

    # (1) at most one accepted withdrawal per withdrawOrderId and per intent
    for oid, dups in ledger.duplicates_by_withdraw_order_id().items():
        v.append(f"[1] {len(dups)} withdrawals for {oid}: {[d.id for d in dups]}")
    for w in ledger.withdrawals:
        if w.source == "api" and w.withdraw_order_id not in by_oid and w.id not in known_lost:
            v.append(f"[1] withdrawal {w.id} ({w.withdraw_order_id}) belongs to no intent")
    for r in ledger.apply_requests:
        oid_ = r.params.get("withdrawOrderId")
        if oid_ in burned_since and r.at_ms > burned_since[oid_]:
            v.append(
                f"[1] apply call for {oid_} at {r.at_ms}, after the exchange had "
                "accepted it for an intent the ledger lost (a burned order id)"
            )
    for i in snap.intents:
        oid, status = i["withdraw_order_id"], i["status"]
        found = withdrawals_by_oid.get(oid, []) if oid else []
        if status in ("completed", "submitted") and (
            len(found) != 1 or found[0].id != i["exchange_withdraw_id"]
        ):
            v.append(
                f"[1] intent {i['id']} is {status} as {i['exchange_withdraw_id']} but the "
                f"exchange has {[f.id for f in found]} for {oid}"
            )
        if status == "cancelled" and len(found) == 1 and found[0].final_status == 1:
            continue  # the exchange cancelled (and refunded) it: ours is cancelled too
        if status in ("queued", "rejected", "cancelled", "awaiting_approval") and found:
            v.append(
                f"[1] intent {i['id']} is {status} but the exchange has {len(found)} "
                f"withdrawal(s) for {oid}"
            )

    # (2) nothing unchecked leaves: no apply call for a rejected intent, or to a
    # destination outside the local whitelist mirror
    mirror = {
        (e["coin"], e["network"], e["address"], e["address_tag"] or None)
        for e in snap.whitelist
        if e["enabled"]
    }
    for r in ledger.apply_requests:
        p = r.params
        sent_oid = p.get("withdrawOrderId")
        intent = by_oid.get(sent_oid) if sent_oid else None
        if intent is None:
            if sent_oid not in burned_since:  # a lost intent's call is on file: known
                v.append(f"[2] apply call with withdrawOrderId {sent_oid!r} that no intent holds")
        elif intent["status"] == "rejected":
            v.append(f"[2] apply call for intent {intent['id']}, which is rejected")
        dest = (p.get("coin"), p.get("network"), p.get("address"), p.get("addressTag") or None)
        if dest not in mirror:
            v.append(f"[2] apply call to {dest}, not in the local whitelist mirror")
    for i in snap.intents:
        oid = i["withdraw_order_id"]
        if i["status"] == "rejected" and oid is not None and ledger.apply_calls_for(oid):
            v.append(f"[2] rejected intent {i['id']} had apply calls")

    # (3) nothing is lost: settled, with a reason a person can act on
    if require_settled:
        for i in snap.intents:
            if i["status"] not in SETTLED:
                v.append(f"[3] intent {i['id']} is still {i['status']} ({i['status_reason']})")
            elif i["status"] == "needs_attention" and not allow_attention:
                v.append(f"[3] intent {i['id']} needs attention: {i['status_reason']}")
            if not (i["status_reason"] or "").strip():
                v.append(f"[3] intent {i['id']} ({i['status']}) has no status_reason")

    # (4) exact amounts, digit for digit, and the destination sent is the one stored
    for i in snap.intents:
        amount = _amount(i["amount"])
        if amount is None:
            v.append(f"[4] intent {i['id']}'s amount came back as {type(i['amount']).__name__}")
            continue
        oid = i["withdraw_order_id"]
        if not oid:
            continue
        for r in ledger.apply_calls_for(oid):
            if r.params.get("amount") != format_amount(amount):
                v.append(f"[4] intent {i['id']} stores {amount}, sent {r.params.get('amount')!r}")
            sent = (
                r.params.get("coin"),
                r.params.get("network"),
                r.params.get("address"),
                r.params.get("addressTag") or None,
            )
            if sent != (i["coin"], i["network"], i["address"], i["address_tag"] or None):
                v.append(f"[4] intent {i['id']}'s destination differs from the one sent: {sent}")
        for w in withdrawals_by_oid.get(oid, []):
            if w.amount != amount or format_amount(w.amount) != format_amount(amount):
                v.append(f"[4] intent {i['id']} stores {amount}, exchange withdrew {w.amount}")

    # (5) the rate holds, also across restarts (the journal spans every daemon's life)
    v.extend(_rate_violations(ledger, rate, tolerance_ms, delay_before_s))

    # (6) secrets stay secret: logs, CLI output, database rows
    for text in snap.texts:
        for bad in FORBIDDEN_IN_LOGS:
            if bad in text:
                at = text.index(bad)
                context = text[max(0, at - 80) : at + 40]
                v.append(f"[6] {bad!r} appears in a log or CLI output: ...{context!r}")
    for row in [*snap.intents, *snap.events]:
        if any(API_SECRET in str(value) for value in row.values()):
            v.append(f"[6] the API secret is stored in a database row: {row.get('id')}")

    # (7) every change is on the record: an unbroken event chain ending at the status
    v.extend(_event_chain_violations(snap.intents, snap.events))
    return v


def _rate_violations(
    ledger: Ledger, rate: float, tolerance_ms: float, delay_before_s: float | None
) -> list[str]:
    interval = 1000.0 / rate
    # The rate is per exchange account (each account has its own key and pacer).
    by_account: dict[str, list[tuple[float, Any]]] = defaultdict(list)
    for r in ledger.apply_requests:
        t = float(r.at_ms)
        signed = r.params.get("timestamp")
        if delay_before_s and signed is not None and t - int(signed) >= delay_before_s * 1000 - 50:
            t -= delay_before_s * 1000  # journaled only after the injected delay
        by_account[str(r.account)].append((t, r.params.get("withdrawOrderId")))
    out = []
    for arrivals in by_account.values():
        arrivals.sort()
        for (t0, a), (t1, b) in itertools.pairwise(arrivals):
            if t1 - t0 < interval - tolerance_ms:
                out.append(
                    f"[5] apply calls {a} and {b} only {t1 - t0:.0f} ms apart "
                    f"(rate {rate}/s allows {interval:.0f} ms)"
                )
    return out


def _event_chain_violations(
    intents: Sequence[dict[str, Any]], events: Iterable[dict[str, Any]]
) -> list[str]:
    by_intent: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_intent[int(e["intent_id"])].append(e)
    out = []
    for i in intents:
        chain = sorted(by_intent.get(int(i["id"]), []), key=lambda e: e["id"])
        if not chain:
            out.append(f"[7] intent {i['id']} has no events")
            continue
        if chain[0]["from_status"] is not None or chain[0]["to_status"] != "queued":
            out.append(
                f"[7] intent {i['id']}'s first event is {chain[0]['from_status']} -> "
                f"{chain[0]['to_status']}"
            )
        for prev, cur in itertools.pairwise(chain):
            if cur["from_status"] != prev["to_status"]:
                out.append(
                    f"[7] intent {i['id']}: event {cur['id']} starts at "
                    f"{cur['from_status']} but the previous one ended at "
                    f"{prev['to_status']}"
                )
        for e in chain:
            if (
                not (e["reason"] or "").strip()
                or not (e["actor"] or "").strip()
                or (e["created_at"] is None)
            ):
                out.append(f"[7] event {e['id']} of intent {i['id']} lacks reason/actor/time")
        if chain[-1]["to_status"] != i["status"]:
            out.append(
                f"[7] intent {i['id']} is {i['status']} but its events end at "
                f"{chain[-1]['to_status']}"
            )
    return out


def assert_invariants(snap: Snapshot, **kw: Any) -> None:
    violations = check_invariants(snap, **kw)
    assert not violations, "invariants violated:\n" + "\n".join(violations)


def withdrawals_of(snap: Snapshot, intent: dict[str, Any]) -> list[Any]:
    oid = intent["withdraw_order_id"]
    return snap.ledger.withdrawals_for(oid) if oid else []


def counts(intents: Iterable[dict[str, Any]]) -> dict[str, int]:
    c: dict[str, int] = defaultdict(int)
    for i in intents:
        c[i["status"]] += 1
    return dict(c)


__all__ = [
    "TERMINAL",
    "Snapshot",
    "assert_invariants",
    "check_invariants",
    "counts",
    "withdrawals_of",
]
