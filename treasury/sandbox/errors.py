"""Binance's error answers: ``{"code": int, "msg": str}`` with the HTTP status Binance uses.

One exception type carries the code, the message and the HTTP status, so every check in
the sandbox can simply raise and the HTTP layer renders it the same way. Messages are
Binance's own wording where it is published (reference §5); codes are stable, messages
are not, so clients must key on the code.

Choices where Binance's documents are silent (also listed in the package README):

* bad integer / decimal syntax → ``-1100``; a value out of its range → ``-1130``;
* history window too long (over 90 days, or over 7 days with ``withdrawOrderId``) → ``-1127``;
  ``startTime`` after ``endTime`` → ``-1128``; more than 45 ids in ``idList`` → ``-1130``;
* ``exchangeInfo`` with both ``symbol`` and ``symbols`` → ``-1128``, a ``symbols`` that
  is not a JSON array of names → ``-1100``.
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """An answer in Binance's error shape; raise it anywhere below the HTTP layer."""

    def __init__(
        self,
        code: int,
        msg: str,
        *,
        http_status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal_characters(name: str, legal: str) -> ApiError:
    return ApiError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def invalid_value(name: str) -> ApiError:
    return ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")


def duplicate_parameter() -> ApiError:
    return ApiError(-1101, "Duplicate values for a parameter detected.")


def bad_key_format() -> ApiError:
    return ApiError(-2014, "API-key format invalid.", http_status=401)


def rejected_key() -> ApiError:
    return ApiError(-2015, "Invalid API-key, IP, or permissions for action.", http_status=401)


def invalid_signature() -> ApiError:
    return ApiError(-1022, "Signature for this request is not valid.")


def timestamp_ahead() -> ApiError:
    return ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def timestamp_outside_window() -> ApiError:
    return ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def recv_window_too_big() -> ApiError:
    return ApiError(-1131, "recvWindow must be less than 60000")


def interval_too_big() -> ApiError:
    return ApiError(-1127, "Lookup interval is too big.")


def invalid_symbol() -> ApiError:
    return ApiError(-1121, "Invalid symbol.")


def bad_combination(detail: str) -> ApiError:
    return ApiError(-1128, f"Combination of optional parameters invalid. {detail}".strip())


def travel_rule_required() -> ApiError:
    """``capital/withdraw/apply`` from an account under a travel-rule local entity: Binance's
    code and text as quoted in binance/binance-connector-java#137."""
    return ApiError(
        -4104,
        "Please note that withdrawals are not permitted due to travel rule restrictions. "
        "To facilitate the withdrawal process, please refer to Travel Rule documentation.",
    )


def internal_error() -> ApiError:
    """What an outage answers: 503 -1001, the request not processed."""
    return ApiError(
        -1001,
        "Internal error; unable to process your request. Please try again.",
        http_status=503,
    )


UNSIGNED_INT = "^[0-9]{1,20}$"
DECIMAL = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
