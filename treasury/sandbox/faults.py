"""Injected faults: the worst documented exchange behaviour, on demand.

See docs/CONTRACT.md, "What the exchange may do".

Faults are run-time knobs, not exchange state: they live in memory, are set at start
(``faults=`` dict or JSON file) and through ``POST /_sandbox/faults``, and are *not*
replayed after a restart. What a fault *did* is journaled with the apply request (and a
drawn history lag as the withdrawal's ``visible_at``), so replay never needs the RNG.

``withdraw/apply`` faults, each fired by a trigger: the next N calls (``{"next": N}``), a
probability drawn from a seeded RNG (``{"probability": p}``), or every call (``{}``/``true``):

* ``error_5xx_before`` — answer 503 without processing;
* ``delay_before_accept_s`` — pass the timing check, sleep, *then* process (the window in
  which Binance may still create a withdrawal after the client gave up);
* ``drop_after_accept`` — accept and journal, then drop the TCP connection, no answer;
* ``delay_after_accept_s`` — accept, then sleep before answering;
* ``error_5xx_after`` — accept, then answer 500;
* ``error_code_after`` — accept, then answer an error code (default ``-1007``).

The ``*_after`` faults only fire on calls that were accepted. Global knobs (``null``
clears one; ``{"reset": true}`` clears all, and ``seed`` reseeds the RNG):

* ``clock_skew_ms`` — added to server time and to the timestamp checks;
* ``history_lag_s`` — new withdrawals stay out of history that long: a number (every new
  withdrawal), or ``{"min": a, "max": b}`` (``min`` defaults to 0) to draw each new
  withdrawal's lag uniformly from [a, b] seconds, to the millisecond, with the seeded RNG;
* ``maintenance`` — system status 1, apply refused with -4015;
* ``outage`` — every exchange endpoint (``/api``, ``/sapi``; not ``/_sandbox/``) answers
  503 ``-1001`` before doing anything (an apply is journaled as a refused call, never
  booked);
* ``history_unavailable`` — only ``withdraw/history`` answers 503 ``-1001``;
* ``history_amount`` — ``"net"`` or ``"gross"``: which amount ``withdraw/history``
  reports (see ``config.py``); starts at, and resets to, the config's ``history_amount``.

One more ``withdraw/apply`` fault shapes what happens *after* an answer, over hours:

* ``review`` — ``{"status": 0|2, "hold_s": seconds, "then": "complete"|"cancel"}`` plus a
  trigger (``next`` / ``probability`` / neither for every call): each accepted withdrawal
  it fires on stays in ``status`` (0 email sent, 2 awaiting approval; default 2) for
  ``hold_s`` seconds of sandbox time, then either proceeds as usual (``"complete"``, the
  default: processing, then its seeded fate) or is cancelled (``"cancel"``: status 1,
  refunded to the wallet it came from). The review is journaled with the withdrawal
  (``review_status``, ``review_until``, and the pushed-back ``settle_at``), so a restart
  keeps it without the fault.

Two more shape a ``localentity/withdraw/apply`` (the travel rule; reference §11), with the
same triggers, journaled with the withdrawal like ``review``:

* ``travel_rule`` — ``{"hold_s": seconds, "then": "pass"|"fail"}``: the travel-rule check
  stays pending (``travelRuleStatus`` 1, ``withdrawalStatus`` 2) for ``hold_s``, then
  completes (0, the withdrawal proceeds) or fails (2: the withdrawal is cancelled, status
  1, and refunded: Binance documents no outcome, this is the safe worst case);
* ``history_only_in`` — ``{"history": "capital"|"localentity"}``: the withdrawal shows in
  that history only (Binance warns some withdrawals appear in only one of them).

``outage``, ``history_unavailable`` (both withdrawal histories), ``clock_skew_ms``,
``history_lag_s`` and every apply fault above apply to the local-entity endpoints too.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from treasury.sandbox.config import read_history_amount
from treasury.sandbox.configreader import ConfigError, Reader
from treasury.sandbox.withdrawals import AWAITING_APPROVAL, REVIEW_STATUSES

UNKNOWN_OUTCOME_MESSAGES = {
    -1000: "An unknown error occurred while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1006: "An unexpected response was received from the message bus. Execution status unknown.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
    -4027: "Failed to obtain tranId.",
}

APPLY_FAULTS = (
    "error_5xx_before",
    "delay_before_accept_s",
    "drop_after_accept",
    "delay_after_accept_s",
    "error_5xx_after",
    "error_code_after",
)
_DEFAULT_STATUS = {"error_5xx_before": 503, "error_5xx_after": 500, "error_code_after": 400}
_DEFAULT_CODE = {"error_5xx_before": -1001, "error_5xx_after": -1000, "error_code_after": -1007}
SWITCHES = ("maintenance", "outage", "history_unavailable")
KNOBS = (
    *APPLY_FAULTS,
    *SWITCHES,
    "clock_skew_ms",
    "history_lag_s",
    "history_amount",
    "review",
    "travel_rule",
    "history_only_in",
)
TRAVEL_RULE_ENDINGS = ("pass", "fail")
HISTORIES = ("capital", "localentity")
REVIEW_ENDINGS = ("complete", "cancel")
_SHORTHAND = {
    "delay_before_accept_s": "seconds",
    "delay_after_accept_s": "seconds",
    "error_code_after": "code",
}


@dataclass
class Trigger:
    """When a fault fires: on the next N calls, with a seeded probability, or on every call."""

    next: int | None = None  # calls left to hit; None: not counted
    probability: float | None = None  # chance per call; None (and next None): every call

    def fire(self, rng: random.Random) -> bool:
        if self.next is not None:
            if self.next <= 0:
                return False
            self.next -= 1
            return True
        if self.probability is not None:
            return rng.random() < self.probability
        return True


@dataclass
class ApplyFault(Trigger):
    seconds: float = 0.0
    status: int = 500
    code: int = -1007
    msg: str | None = None

    def body(self) -> dict[str, object]:
        msg = self.msg or UNKNOWN_OUTCOME_MESSAGES.get(self.code, "Unknown error.")
        return {"code": self.code, "msg": msg}

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class ReviewFault(Trigger):
    """Hold accepted withdrawals in a review status, then complete or cancel them."""

    status: int = AWAITING_APPROVAL  # 0 email sent or 2 awaiting approval
    hold_s: float = 0.0  # sandbox seconds in review
    then: str = "complete"  # one of REVIEW_ENDINGS

    @property
    def hold_ms(self) -> int:
        return round(self.hold_s * 1000)

    @property
    def cancels(self) -> bool:
        return self.then == "cancel"

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"status": self.status, "hold_s": self.hold_s, "then": self.then}
        return shown | {
            k: v for k in ("next", "probability") if (v := getattr(self, k)) is not None
        }


@dataclass
class TravelRuleFault(Trigger):
    """Hold local-entity withdrawals in the travel-rule check, then pass or fail them."""

    hold_s: float = 0.0
    then: str = "pass"  # one of TRAVEL_RULE_ENDINGS

    @property
    def hold_ms(self) -> int:
        return round(self.hold_s * 1000)

    @property
    def fails(self) -> bool:
        return self.then == "fail"

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"hold_s": self.hold_s, "then": self.then}
        return shown | {
            k: v for k in ("next", "probability") if (v := getattr(self, k)) is not None
        }


@dataclass
class OnlyInFault(Trigger):
    """Show local-entity withdrawals in one of the two histories only."""

    history: str = "capital"  # one of HISTORIES

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"history": self.history}
        return shown | {
            k: v for k in ("next", "probability") if (v := getattr(self, k)) is not None
        }


@dataclass(frozen=True)
class HistoryLag:
    """How long a new withdrawal stays out of history: fixed, or drawn per withdrawal."""

    min_s: float = 0.0
    max_s: float = 0.0
    drawn: bool = False  # False: always min_s (the plain-number form)

    def draw_ms(self, rng: random.Random) -> int:
        if not self.drawn:
            return round(self.min_s * 1000)
        return rng.randint(round(self.min_s * 1000), round(self.max_s * 1000))

    def to_json(self) -> object:
        return {"min": self.min_s, "max": self.max_s} if self.drawn else self.min_s


class Faults:
    def __init__(self, seed: int | None = None, *, history_amount: str = "net") -> None:
        self.rng = random.Random(seed)
        self.apply: dict[str, ApplyFault] = {}
        self.clock_skew_ms = 0
        self.history_lag = HistoryLag()
        self.maintenance = False
        self.outage = False
        self.history_unavailable = False
        self.base_history_amount = history_amount  # the config's; reset returns to it
        self.history_amount = history_amount
        self.review: ReviewFault | None = None
        self.travel_rule: TravelRuleFault | None = None
        self.history_only_in: OnlyInFault | None = None

    def fire(self, name: str) -> ApplyFault | None:
        fault = self.apply.get(name)
        return fault if fault is not None and fault.fire(self.rng) else None

    def fire_review(self) -> ReviewFault | None:
        """The review to put one accepted withdrawal under, if the fault fires for it."""
        review = self.review
        return review if review is not None and review.fire(self.rng) else None

    def fire_travel_rule(self) -> TravelRuleFault | None:
        fault = self.travel_rule
        return fault if fault is not None and fault.fire(self.rng) else None

    def fire_only_in(self) -> OnlyInFault | None:
        fault = self.history_only_in
        return fault if fault is not None and fault.fire(self.rng) else None

    def history_lag_ms(self) -> int:
        """The lag of one new withdrawal (drawn anew each call in the drawn form)."""
        return self.history_lag.draw_ms(self.rng)

    def update(self, data: object) -> None:
        """Merge settings (the body of ``POST /_sandbox/faults``); null clears one.

        Raises:
            ConfigError: naming the bad field; nothing is changed then.
        """
        r = Reader(data, "faults")
        r.check_keys({*KNOBS, "seed", "reset"})
        reset = r.get("reset", False) is True
        # a reset merges the body into a fresh set of faults (with this config's base)
        current = Faults(history_amount=self.base_history_amount) if reset else self
        apply = _merge_apply_faults(r, current.apply)
        skew = _clock_skew(r, current.clock_skew_ms)
        lag = _history_lag(r, current.history_lag)
        switches = {name: _switch(r, name, getattr(current, name)) for name in SWITCHES}
        amount = _history_amount(r, current.history_amount, self.base_history_amount)
        review = _review(r, current.review)
        travel_rule = _travel_rule(r, current.travel_rule)
        only_in = _only_in(r, current.history_only_in)
        rng = random.Random(r.opt_integer("seed")) if r.has("seed") else self.rng
        # every value checked: now change all at once
        self.apply, self.clock_skew_ms, self.history_lag = apply, skew, lag
        self.review, self.travel_rule, self.history_only_in = review, travel_rule, only_in
        self.maintenance, self.outage = switches["maintenance"], switches["outage"]
        self.history_unavailable = switches["history_unavailable"]
        self.history_amount, self.rng = amount, rng

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {name: None for name in APPLY_FAULTS}
        out.update({name: fault.to_json() for name, fault in self.apply.items()})
        out.update({name: getattr(self, name) for name in SWITCHES})
        out.update(
            clock_skew_ms=self.clock_skew_ms,
            history_lag_s=self.history_lag.to_json(),
            history_amount=self.history_amount,
            review=self.review.to_json() if self.review is not None else None,
            travel_rule=self.travel_rule.to_json() if self.travel_rule is not None else None,
            history_only_in=(
                self.history_only_in.to_json() if self.history_only_in is not None else None
            ),
        )
        return out


def read_fault_source(source: Mapping[str, object] | str | Path) -> object:
    """A faults dict as given, or parsed from a JSON file (numbers as ``Decimal``)."""
    if isinstance(source, Mapping):
        return source
    try:
        return json.loads(Path(source).read_text("utf-8"), parse_float=Decimal)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(str(source), f"cannot read faults: {exc}") from None


def _parse_fault(r: Reader, name: str) -> ApplyFault | None:
    raw = r.get(name)
    if raw is None or raw is False or raw == 0:
        return None
    fault = ApplyFault(status=_DEFAULT_STATUS.get(name, 500), code=_DEFAULT_CODE.get(name, -1007))
    if raw is True:
        return fault
    if not isinstance(raw, Mapping):
        shorthand = _SHORTHAND.get(name, "next")
        raw = {shorthand: raw}
    f = Reader(raw, r.path_of(name))
    f.check_keys({"next", "probability", "seconds", "status", "code", "msg"})
    _read_trigger(f, fault)
    if name.endswith("_s"):
        fault.seconds = f.seconds("seconds", default=0.0)
    if f.has("status"):
        fault.status = f.integer("status", minimum=100)
    if f.has("code"):
        code = f.get("code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ConfigError(f.path_of("code"), "must be an integer error code")
        fault.code = code
    fault.msg = f.opt_text("msg")
    return fault


def _read_trigger(f: Reader, trigger: Trigger) -> None:
    """Set ``next`` / ``probability`` from a fault's body (neither: every call)."""
    if f.has("next"):
        trigger.next = f.integer("next", minimum=0)
    if f.has("probability"):
        trigger.probability = f.share("probability")


def _review(r: Reader, current: ReviewFault | None) -> ReviewFault | None:
    """``{"status"?, "hold_s", "then"?, "next"?|"probability"?}``, or null (no review)."""
    if not r.has("review"):
        return current
    raw = r.get("review")
    if raw is None:
        return None
    f = Reader(raw, r.path_of("review"))
    f.check_keys({"status", "hold_s", "then", "next", "probability"})
    if not f.has("hold_s"):
        raise ConfigError(f.path_of("hold_s"), "is required")
    status = f.integer("status", default=AWAITING_APPROVAL)
    if status not in REVIEW_STATUSES:
        raise ConfigError(f.path_of("status"), "must be 0 (email sent) or 2 (awaiting approval)")
    then = f.text("then", default="complete")
    if then not in REVIEW_ENDINGS:
        raise ConfigError(f.path_of("then"), f"must be 'complete' or 'cancel', got {then!r}")
    review = ReviewFault(status=status, hold_s=f.seconds("hold_s", default=0.0), then=then)
    _read_trigger(f, review)
    return review


def _travel_rule(r: Reader, current: TravelRuleFault | None) -> TravelRuleFault | None:
    """``{"hold_s"?, "then"?: "pass"|"fail", "next"?|"probability"?}``, or null (none)."""
    if not r.has("travel_rule"):
        return current
    raw = r.get("travel_rule")
    if raw is None:
        return None
    f = Reader(raw, r.path_of("travel_rule"))
    f.check_keys({"hold_s", "then", "next", "probability"})
    then = f.text("then", default="pass")
    if then not in TRAVEL_RULE_ENDINGS:
        raise ConfigError(f.path_of("then"), f"must be 'pass' or 'fail', got {then!r}")
    fault = TravelRuleFault(hold_s=f.seconds("hold_s", default=0.0), then=then)
    _read_trigger(f, fault)
    return fault


def _only_in(r: Reader, current: OnlyInFault | None) -> OnlyInFault | None:
    """``{"history": "capital"|"localentity", "next"?|"probability"?}``, or null (none)."""
    if not r.has("history_only_in"):
        return current
    raw = r.get("history_only_in")
    if raw is None:
        return None
    f = Reader(raw, r.path_of("history_only_in"))
    f.check_keys({"history", "next", "probability"})
    history = f.text("history")
    if history not in HISTORIES:
        raise ConfigError(
            f.path_of("history"), f"must be 'capital' or 'localentity', got {history!r}"
        )
    fault = OnlyInFault(history=history)
    _read_trigger(f, fault)
    return fault


def _merge_apply_faults(r: Reader, current: dict[str, ApplyFault]) -> dict[str, ApplyFault]:
    apply = dict(current)
    for name in APPLY_FAULTS:
        if r.has(name):
            fault = _parse_fault(r, name)
            if fault is None:
                apply.pop(name, None)
            else:
                apply[name] = fault
    return apply


def _clock_skew(r: Reader, current: int) -> int:
    if not r.has("clock_skew_ms"):
        return current
    raw = r.get("clock_skew_ms")
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError(r.path_of("clock_skew_ms"), "must be an integer (ms)")
    return raw


def _switch(r: Reader, name: str, current: bool) -> bool:
    if not r.has(name):
        return current
    return False if r.get(name) is None else r.flag(name)


def _history_lag(r: Reader, current: HistoryLag) -> HistoryLag:
    """A number of seconds, ``{"min"?, "max"}`` to draw per withdrawal, or null (none)."""
    if not r.has("history_lag_s"):
        return current
    raw = r.get("history_lag_s")
    if raw is None:
        return HistoryLag()
    if not isinstance(raw, Mapping):
        seconds = r.seconds("history_lag_s", default=0.0)
        return HistoryLag(min_s=seconds, max_s=seconds)
    span = Reader(raw, r.path_of("history_lag_s"))
    span.check_keys({"min", "max"})
    if not span.has("max"):
        raise ConfigError(span.path_of("max"), "is required")
    high, low = span.seconds("max", default=0.0), span.seconds("min", default=0.0)
    if low > high:
        raise ConfigError(span.path_of("min"), f"must not exceed max ({low} > {high})")
    return HistoryLag(min_s=low, max_s=high, drawn=True)


def _history_amount(r: Reader, current: str, base: str) -> str:
    if not r.has("history_amount"):
        return current
    if r.get("history_amount") is None:
        return base
    return read_history_amount(r, "history_amount", base)
