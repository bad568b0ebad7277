"""The one exception tree of the Binance adapter, split by what the caller must do.

::

    ExchangeError                 base: endpoint, code, http_status, reason
    ├── NotSent                   the request provably did nothing: safe to send again
    │   ├── IpBanned              HTTP 418: every call pauses until ``until``
    │   └── ResponseInvalid       a READ endpoint answered with a body we cannot use
    ├── Rejected                  a definitive "no"; ``permanent`` says whether it can ever pass
    └── OutcomeUnknown            withdraw/apply only: it may or may not have been executed

* ``NotSent``: retry (the client already did, for reads, a bounded number of times).
  ``retry_after_s`` is the exchange's own wait, when it gave one.
* ``Rejected(permanent=True)``: this request will never pass as it is (bad address, not
  whitelisted, amount below minimum...): give up and tell a person.
  ``Rejected(permanent=False)``: the exchange refused *now* (balance, account lock, daily
  cap...): the same request may pass later.
* ``OutcomeUnknown``: only ``withdraw/apply`` raises it. Funds may be moving. The client
  NEVER retries it; the caller must look the withdrawal up in ``withdraw/history`` (by
  ``withdraw_order_id``) and must not send anything again until that settles it. It
  carries the signed ``timestamp_ms`` and ``recv_window_ms``: once the exchange's clock is
  past ``timestamp_ms + recv_window_ms`` no late copy of the request can be accepted.

Messages never contain the API secret, the private key, a signature or the signed query;
the exchange's own ``msg`` is included after scrubbing (see ``transport``).
"""

from __future__ import annotations

from datetime import datetime

from treasury.ports.exchange import (
    ExchangeError,
    NotSent,
    OutcomeUnknown,
    Reason,
    Rejected,
)

__all__ = [
    "ExchangeError",
    "IpBanned",
    "NotSent",
    "OutcomeUnknown",
    "Reason",
    "Rejected",
    "ResponseInvalid",
]


class IpBanned(NotSent):
    """HTTP 418: the IP is banned; every call on every pool waits until ``until`` (UTC)."""

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        until: datetime,
        retry_after_s: float,
        code: int | None = None,
        http_status: int | None = 418,
    ) -> None:
        super().__init__(
            detail,
            endpoint=endpoint,
            reason=Reason.IP_BANNED,
            code=code,
            http_status=http_status,
            retry_after_s=retry_after_s,
        )
        self.until = until


class ResponseInvalid(NotSent):
    """A read endpoint's body does not parse or misses a field; reading again is safe."""

    outcome = "invalid_response"

    def __init__(self, *, endpoint: str, field: str, problem: str) -> None:
        super().__init__(
            f"response field {field!r} {problem}",
            endpoint=endpoint,
            reason=Reason.INVALID_RESPONSE,
        )
        self.field = field
        self.problem = problem
