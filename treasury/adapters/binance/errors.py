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

from treasury.adapters.binance.codes import Reason


class ExchangeError(Exception):
    """Base of every error the Binance adapter raises about an exchange call.

    Attributes:
        endpoint: the request path, e.g. ``/sapi/v1/capital/withdraw/apply``.
        code: Binance's error ``code`` when the body carried one.
        http_status: the HTTP status when a response arrived.
        reason: a short machine-readable category (``Reason``), for metrics and routing.
        detail: the human explanation without the endpoint prefix.
    """

    outcome = "error"  # the label passed to the ``on_call`` metrics hook

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        reason: Reason,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        self.detail = detail
        self.endpoint = endpoint
        self.reason = reason
        self.code = code
        self.http_status = http_status
        facts = [f"reason={reason.value}"]
        if code is not None:
            facts.append(f"code={code}")
        if http_status is not None:
            facts.append(f"http={http_status}")
        super().__init__(f"{endpoint}: {detail} ({', '.join(facts)})")


class NotSent(ExchangeError):
    """The request was not executed: nothing changed, sending it again is safe."""

    outcome = "not_sent"

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        reason: Reason,
        code: int | None = None,
        http_status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(
            detail, endpoint=endpoint, reason=reason, code=code, http_status=http_status
        )
        self.retry_after_s = retry_after_s


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


class Rejected(ExchangeError):
    """The exchange gave a definitive answer: the request was refused and did nothing."""

    outcome = "rejected"

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        reason: Reason,
        permanent: bool,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(
            detail, endpoint=endpoint, reason=reason, code=code, http_status=http_status
        )
        self.permanent = permanent


class OutcomeUnknown(ExchangeError):
    """withdraw/apply may have been executed. Reconcile through withdraw/history first."""

    outcome = "unknown"

    def __init__(
        self,
        detail: str,
        *,
        endpoint: str,
        reason: Reason,
        timestamp_ms: int,
        recv_window_ms: int,
        withdraw_order_id: str,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(
            detail, endpoint=endpoint, reason=reason, code=code, http_status=http_status
        )
        self.timestamp_ms = timestamp_ms
        self.recv_window_ms = recv_window_ms
        self.withdraw_order_id = withdraw_order_id

    @property
    def last_acceptable_ms(self) -> int:
        """Exchange time after which no copy of this request can still be accepted."""
        return self.timestamp_ms + self.recv_window_ms
