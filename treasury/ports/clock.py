"""The wall clock, in UTC. One function so that tests and fakes have one thing to replace."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
