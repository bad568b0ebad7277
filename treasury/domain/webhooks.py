"""Webhooks, the pure part: topics, URLs a subscription may use, the derived signing
secret, the signature header, the retry schedule and which outbox rows a subscription
gets. No I/O: the runner (``services.webhooks``) and the adapters do that.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from treasury.domain.errors import InvalidField

TOPICS = ("intent.status", "alert")
SECRET_CONTEXT = "treasury-webhook:"  # noqa: S105 (a label, not a secret)
SIGNATURE_TOLERANCE_S = 300  # what receivers are told: reject t older than 5 minutes
BACKOFF_BASE_S = 5.0
BACKOFF_MAX_S = 3600.0
MAX_URL = 2000


def parse_events(text: str, *, field_name: str = "--events") -> tuple[str, ...]:
    """``intent.status,alert`` as topics, each once, in the canonical order.

    Raises:
        InvalidField: empty, or a topic that is not one of ``TOPICS``.
    """
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    if not wanted:
        raise InvalidField(field_name, f"give one or more of {', '.join(TOPICS)}")
    unknown = [t for t in wanted if t not in TOPICS]
    if unknown:
        raise InvalidField(
            field_name, f"unknown topic {unknown[0]!r}: give one or more of {', '.join(TOPICS)}"
        )
    return tuple(t for t in TOPICS if t in wanted)


def validate_url(url: str, *, field_name: str = "URL") -> str:
    """An https URL, or http to a loopback address only; no credentials in it.

    Raises:
        InvalidField: anything else (the URL is not echoed: it may hold a token).
    """
    url = url.strip()
    if not url or len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidField(field_name, f"give an http(s) URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # a bad port raises here
    except ValueError:
        raise InvalidField(field_name, "not a URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidField(field_name, "must be https:// (or http:// to a loopback address)")
    if parts.username is not None or parts.password is not None:
        raise InvalidField(field_name, "must not hold a user name or password")
    if parts.scheme == "http" and not is_loopback(host):
        raise InvalidField(
            field_name, "http:// is allowed to loopback only (127.0.0.1, ::1, localhost)"
        )
    return url


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def derive_secret(key: str, subscription_id: int) -> str:
    """A subscription's signing secret: HMAC-SHA256(key, "treasury-webhook:<id>"), hex.
    Never stored: whoever holds ``TREASURY_WEBHOOK_KEY`` can derive it again."""
    message = f"{SECRET_CONTEXT}{subscription_id}".encode()
    return "whsec_" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Treasury-Signature`` header: ``t=<unix s>,v1=<hex HMAC-SHA256(secret, "t.body")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does (the README's example, tested here): the signature matches
    and its time is within ``tolerance_s`` of ``now``."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def delivery_id(outbox_id: int, subscription_id: int) -> str:
    """Stable across attempts and restarts: one per (outbox row, subscription)."""
    return f"{outbox_id}.{subscription_id}"


def body(*, delivery: str, topic: str, created_at: datetime, data: Mapping[str, Any]) -> bytes:
    """The POST body, exactly the bytes that are signed."""
    doc = {
        "delivery_id": delivery,
        "topic": topic,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "data": dict(data),
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def backoff_s(attempts: int, *, rand: Callable[[], float] = random.random) -> float:
    """The wait after the ``attempts``-th failed attempt: exponential from
    ``BACKOFF_BASE_S``, capped at ``BACKOFF_MAX_S``, with jitter (half to all of it)."""
    exp = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** max(0, attempts - 1))
    return exp * (0.5 + rand() / 2)


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered | pending | failed
    next_attempt_at: datetime | None


def after_attempt(
    *,
    ok: bool,
    attempts: int,
    first_attempt_at: datetime,
    now: datetime,
    max_retry_s: float,
    at_least_s: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> Outcome:
    """What a delivery becomes after its ``attempts``-th attempt: delivered on 2xx; else
    pending until the next try (not sooner than the receiver's ``Retry-After``,
    ``at_least_s``, up to ``BACKOFF_MAX_S``), or failed once the next try would fall later
    than ``max_retry_s`` after the first attempt."""
    if ok:
        return Outcome("delivered", None)
    wait_s = max(backoff_s(attempts, rand=rand), min(at_least_s, BACKOFF_MAX_S))
    wait = timedelta(seconds=wait_s)
    deadline = first_attempt_at + timedelta(seconds=max_retry_s)
    if now + wait > deadline:
        if now < deadline:  # one last try at the deadline itself
            return Outcome("pending", deadline)
        return Outcome("failed", None)
    return Outcome("pending", now + wait)


@dataclass(frozen=True)
class Subscriber:
    id: int
    topics: tuple[str, ...]
    from_outbox_id: int
    disabled: bool = False


def recipients(outbox_id: int, topic: str, subscribers: Iterable[Subscriber]) -> list[int]:
    """The subscriptions an outbox row goes to: enabled, subscribed to its topic, and
    added before the row was written (a subscription sees rows after it)."""
    return [
        s.id
        for s in subscribers
        if not s.disabled and topic in s.topics and outbox_id > s.from_outbox_id
    ]
