"""Bearer tokens per client, scopes per endpoint, and a limit on failed authentication.

A failed attempt is logged with a prefix of the presented token's sha256, never the
token; after ``limit`` failures from one IP within ``window_s`` every request from it is
answered 429 with ``Retry-After`` until the window has passed.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import structlog

from treasury.domain.api_token import ApiClient, token_hint

log = structlog.get_logger("treasury.http.auth")


@dataclass
class FailureLimit:
    limit: int = 10
    window_s: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, ip: str, now: float) -> deque[float]:
        seen = self._failures.setdefault(ip, deque())
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        return seen

    def retry_after(self, ip: str) -> int | None:
        """Seconds until ``ip`` may try again; None: it may now."""
        now = time.monotonic()
        seen = self._recent(ip, now)
        if len(seen) < self.limit:
            if not seen:
                self._failures.pop(ip, None)
            return None
        return max(1, int(seen[0] + self.window_s - now + 0.999))

    def failed(self, ip: str) -> None:
        self._recent(ip, time.monotonic()).append(time.monotonic())


def log_failure(ip: str, token: str | None, why: str) -> None:
    log.warning(
        "http.auth_failed",
        client_ip=ip,
        token_sha256_prefix=None if not token else token_hint(token),
        why=why,
    )


def refusal(client: ApiClient | None) -> str | None:
    """Why ``client`` may not be served (None: it may)."""
    if client is None:
        return "unknown token"
    if client.revoked_at is not None:
        return f"the token of {client.name} was revoked"
    return None
