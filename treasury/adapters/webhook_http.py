"""The webhook runner's HTTP: one POST, its answer as a ``PostResult``.

The client is the runner's own (never the exchange client: it carries no exchange
credentials). Errors name the failure, never the URL (a token may sit in it), and a
receiver's reply is scrubbed and cut before it is recorded.
"""

from __future__ import annotations

import httpx

from treasury.logs import scrub_text
from treasury.ports.webhooks import PostResult


def client(timeout_s: float) -> httpx.AsyncClient:
    """The runner's client: no redirects (a receiver moved is a receiver to re-add)."""
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)


def result_of(reply: httpx.Response) -> PostResult:
    status = reply.status_code
    if 200 <= status < 300:
        return PostResult(status, None)
    detail = f"HTTP {status}: {scrub_text(reply.text[:200])}".rstrip(": ")
    return PostResult(status, detail, _retry_after(reply))


def _retry_after(reply: httpx.Response) -> float:
    """A ``Retry-After`` in seconds (the HTTP-date form is not used by webhook hosts)."""
    try:
        return max(0.0, float(reply.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0


class HttpPoster:
    def __init__(self, http: httpx.AsyncClient, *, timeout_s: float = 10.0) -> None:
        self.http = http
        self.timeout_s = timeout_s

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult:
        try:
            reply = await self.http.post(url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:  # no str(exc): it may carry the URL
            return PostResult(None, type(exc).__name__)
        return result_of(reply)
