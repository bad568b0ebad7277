"""Binance error codes → what the caller must do. The one table; every row names its source.

Source keys are those of ``docs/binance-capital-api.md`` (§5): ERR =
spot ``errors.md``, WERR = Wallet error-code page, REST = ``rest-api.md``, SDK = official
connector, CCXT, and [INFERENCE] where the decision is ours and no source states it.

Decisions, for ``withdraw/apply`` (a read endpoint maps ``UNKNOWN`` to ``NOT_SENT``: a GET
changes nothing, so "did it happen?" has no meaning there):

* ``NOT_SENT``: rate limits and the timestamp check reject before processing.
* ``REJECTED`` + ``permanent``: the request as built will never pass. -4021 (multiple),
  -4022 (below minimum) and -4028 (amount ≤ fee) are permanent *for this intent*: its
  amount is fixed, and the worker re-reads the coin rules before a new attempt anyway.
* ``REJECTED`` temporary: account or balance state that can change by itself.
* ``UNKNOWN``: the server says the execution status is unknown, or the code is one we do
  not know. An undocumented code is never read as "nothing happened".

Not withdrawal codes although popular guides quote them for withdrawals: ``-3005``
(TRANSFER_OUT_NOT_ALLOWED) and ``-3006`` (EXCEED_MAX_BORROWABLE) are margin codes (WERR),
and ``3102`` appears in no source at all. They are deliberately absent: if one ever came
back from withdraw/apply it would be read as an unknown outcome.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from treasury.ports.exchange import Reason as Reason  # the vocabulary lives in the port


class Outcome(enum.Enum):
    NOT_SENT = "not_sent"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class CodeRule:
    code: int
    outcome: Outcome
    permanent: bool  # meaningful for REJECTED only
    reason: Reason
    meaning: str
    source: str


_NS, _RJ, _UK = Outcome.NOT_SENT, Outcome.REJECTED, Outcome.UNKNOWN
_P, _T = True, False  # permanent / temporary (REJECTED rows only)
_R = Reason

# fmt: off
_ROWS: tuple[tuple[int, Outcome, bool, Reason, str, str], ...] = (
    # generic server errors: "execution status unknown"
    (-1000, _UK, _T, _R.SERVER_ERROR, "unknown error while processing", "ERR, WERR"),
    (-1001, _UK, _T, _R.SERVER_ERROR, "internal error; docs say retry",
     "ERR; [INFERENCE] a POST that moves money is reconciled, not retried"),
    (-1004, _UK, _T, _R.SERVER_ERROR, "server busy", "WERR; [INFERENCE] unknown for a POST"),
    (-1006, _UK, _T, _R.SERVER_ERROR, "unexpected response, status unknown", "ERR"),
    (-1007, _UK, _T, _R.TIMEOUT, "backend timeout, status unknown", "ERR, REST"),
    (-1008, _UK, _T, _R.SERVER_ERROR, "server busy", "ERR; [INFERENCE] unknown for a POST"),
    # not processed
    (-1003, _NS, _T, _R.RATE_LIMITED, "too much request weight / IP banned",
     "ERR; [INFERENCE] not processed"),
    (-1021, _NS, _T, _R.CLOCK_SKEW, "timestamp outside recvWindow", "ERR, WERR, REST timing"),
    (-4005, _NS, _T, _R.RATE_LIMITED, "too many new requests", "WERR; [INFERENCE]"),
    # rejected, permanent: this request will never pass
    (-1002, _RJ, _P, _R.AUTH, "unauthorized", "ERR, WERR"),
    (-1013, _RJ, _P, _R.BAD_REQUEST, "invalid message, rejected by the API", "ERR"),
    (-1022, _RJ, _P, _R.AUTH, "invalid signature", "ERR, WERR"),
    (-1100, _RJ, _P, _R.BAD_REQUEST, "illegal characters in a parameter", "ERR, WERR"),
    (-1101, _RJ, _P, _R.BAD_REQUEST, "too many or duplicate parameters", "ERR, WERR"),
    (-1102, _RJ, _P, _R.BAD_REQUEST, "mandatory parameter missing or malformed", "ERR, WERR"),
    (-1103, _RJ, _P, _R.BAD_REQUEST, "unknown parameter", "ERR"),
    (-1104, _RJ, _P, _R.BAD_REQUEST, "not all parameters were read", "ERR, WERR"),
    (-1105, _RJ, _P, _R.BAD_REQUEST, "parameter empty", "ERR, WERR"),
    (-1106, _RJ, _P, _R.BAD_REQUEST, "parameter sent when not required", "ERR, WERR"),
    (-1111, _RJ, _P, _R.AMOUNT, "precision over the asset maximum", "WERR"),
    (-1127, _RJ, _P, _R.BAD_REQUEST, "lookup interval too big (history window)", "ERR, WERR"),
    (-1128, _RJ, _P, _R.BAD_REQUEST, "combination of optional parameters invalid", "ERR, WERR"),
    (-1130, _RJ, _P, _R.BAD_REQUEST, "data sent for a parameter is invalid", "ERR, WERR"),
    (-1131, _RJ, _P, _R.BAD_REQUEST, "recvWindow must be less than 60000", "WERR"),
    (-2014, _RJ, _P, _R.AUTH, "API-key format invalid", "ERR"),
    # Temporary, not permanent: Binance also sends -2015 during temporary bans (CCXT
    # handle_errors), and failing every queued intent for good on a burst would be worse
    # than holding them; the worker's maximum hold still ends them eventually.
    (-2015, _RJ, _T, _R.AUTH, "invalid API-key, IP, or permissions for action",
     "ERR (CCXT: also sent during temporary bans)"),
    (-4007, _RJ, _P, _R.ADDRESS, "address validation failed", "WERR"),
    (-4008, _RJ, _P, _R.ADDRESS, "address tag validation failed", "WERR"),
    (-4012, _RJ, _P, _R.WHITELIST, "whitelist is not opened", "WERR"),
    (-4013, _RJ, _P, _R.ACCOUNT, "2FA is not opened", "WERR"),
    (-4018, _RJ, _P, _R.ASSET, "asset does not exist", "WERR"),
    (-4021, _RJ, _P, _R.AMOUNT, "amount must be a multiple of withdrawIntegerMultiple",
     "WERR; [INFERENCE] permanent for a fixed amount"),
    (-4022, _RJ, _P, _R.AMOUNT, "amount below the minimum",
     "WERR; [INFERENCE] permanent for a fixed amount"),
    (-4028, _RJ, _P, _R.AMOUNT, "amount must exceed the fee",
     "WERR; [INFERENCE] permanent for a fixed amount"),
    (-4032, _RJ, _P, _R.ACCOUNT, "withdraw verification exception", "WERR; [INFERENCE]"),
    (-4033, _RJ, _P, _R.ADDRESS, "illegal address", "WERR"),
    (-4034, _RJ, _P, _R.ADDRESS, "address suspected of fake", "WERR"),
    (-4035, _RJ, _P, _R.WHITELIST, "address not on the whitelist", "WERR"),
    (-4104, _RJ, _P, _R.TRAVEL_RULE, "travel rule: use the local-entity endpoint",
     "binance-connector-java#137"),
    (-4106, _RJ, _P, _R.ADDRESS, "address tag not supported for this network", "SDK"),
    # rejected, temporary: may pass later
    (-4014, _RJ, _T, _R.ACCOUNT, "no withdrawal within 2 minutes of login", "WERR"),
    (-4015, _RJ, _T, _R.ACCOUNT, "withdraw is limited", "WERR"),
    (-4016, _RJ, _T, _R.ACCOUNT, "within 24 hours after a password change", "WERR"),
    (-4017, _RJ, _T, _R.ACCOUNT, "within 24 hours after releasing 2FA", "WERR"),
    (-4019, _RJ, _T, _R.ASSET, "asset not open for withdrawal", "WERR"),
    (-4023, _RJ, _T, _R.QUOTA, "over the 24 h maximum", "WERR"),
    (-4024, _RJ, _T, _R.BALANCE, "you do not have this asset", "WERR"),
    (-4025, _RJ, _T, _R.BALANCE, "asset holding below zero", "WERR"),
    (-4026, _RJ, _T, _R.BALANCE, "insufficient balance", "WERR"),
    (-4036, _RJ, _T, _R.ADDRESS_COOLING, "new address usable only after some hours", "WERR"),
    (-4060, _RJ, _T, _R.ASSET, "asset locked until deposit confirmations", "WERR"),
    # documented, but not a definitive answer to a withdraw: unknown
    (-4027, _UK, _T, _R.SERVER_ERROR, "failed to obtain tranId", "WERR; [INFERENCE]"),
    (-4029, _UK, _T, _R.UNKNOWN_CODE, "record not found (not an apply answer)",
     "WERR; [INFERENCE]"),
    (-4030, _UK, _T, _R.UNKNOWN_CODE, "'confirmation of successful withdrawal' (unclear)",
     "WERR; CCXT flags a possible doc bug; [INFERENCE]"),
    (-4031, _UK, _T, _R.UNKNOWN_CODE, "cancellation failed (not an apply answer)",
     "WERR; [INFERENCE]"),
)
# fmt: on

RULES: dict[int, CodeRule] = {
    code: CodeRule(
        code=code,
        outcome=outcome,
        permanent=permanent,
        reason=reason,
        meaning=meaning,
        source=source,
    )
    for code, outcome, permanent, reason, meaning, source in _ROWS
}


def rule_for(code: int) -> CodeRule:
    """The table row for ``code``; an undocumented code is an unknown outcome."""
    known = RULES.get(code)
    if known is not None:
        return known
    return CodeRule(
        code=code,
        outcome=Outcome.UNKNOWN,
        permanent=False,
        reason=Reason.UNKNOWN_CODE,
        meaning="undocumented error code",
        source="[INFERENCE] never read an unknown code as 'nothing happened'",
    )
