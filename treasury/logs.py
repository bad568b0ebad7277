"""Logging: structlog, JSON when not on a terminal, readable on one, and redacted.

Redaction does not trust call sites. Keys that name a secret are masked, and every
secret value registered at start-up (API secret, private key, passphrase) is cut out
of any string in the event, whatever key it was passed under. A travel-rule
questionnaire or profile (a key naming ``questionnaire`` or ``travel_rule``) is personal
data: only its coded answers are logged (``travel_rule.redacted``), never a name. Tracebacks are
rendered without frame locals, which could otherwise carry a secret. httpx logs full
URLs (a signed URL carries the signature) at INFO, so its logger is held at WARNING.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from treasury.domain.travel_rule import redacted

REDACTED = "[REDACTED]"
_SECRET_KEYS = ("secret", "signature", "private_key", "passphrase", "password", "api_key")
# personal data (the travel rule's beneficiary): logged as its redacted form only
_PERSONAL_KEYS = ("questionnaire", "travel_rule")
_secrets: set[str] = set()


def register_secret(value: str | bytes | None) -> None:
    """Remember a secret value so that no log line can ever contain it."""
    if not value:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) >= 6:  # a very short value would redact ordinary words
        _secrets.add(text)
        for line in text.splitlines():
            if len(line.strip()) >= 16:
                _secrets.add(line.strip())


def forget_secrets() -> None:
    _secrets.clear()


def mask_key(key: str) -> str:
    """An API key as it may be shown: first and last four characters."""
    return f"{key[:4]}…{key[-4:]}" if len(key) > 12 else "****"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, bytes):
        return _scrub(value.decode("utf-8", "replace"))
    return value if value is None or isinstance(value, bool | int | float) else _scrub(repr(value))


def _redact_item(key: object, value: Any) -> Any:
    name = str(key).lower()
    if any(p in name for p in _PERSONAL_KEYS) and value is not None:
        return _scrub(redacted(value))
    if any(s in name for s in _SECRET_KEYS) and value not in (None, "", False):
        if "api_key" in name and isinstance(value, str):
            return mask_key(value)
        return REDACTED
    return _scrub(value)


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys and registered secret values."""
    for key in list(event.keys()):
        event[key] = _redact_item(key, event[key])
    return event


def configure(*, fmt: str = "auto", level: str = "info", stream: Any = None) -> None:
    """Set up structlog and the stdlib root logger once, at start-up."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # the standard library's records (alembic, uvicorn, ...) in the same format as ours:
    # one JSON object per line in JSON mode, never plain text among them
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        _RedactingFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access", "asyncio", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    def format(self, record: logging.LogRecord) -> str:
        text: str = _scrub(super().format(record))
        return text


def scrub_text(text: str) -> str:
    """Remove registered secret values from arbitrary text (e.g. an error for the screen)."""
    result: str = _scrub(text)
    return result


def iter_secrets() -> Iterable[str]:
    return tuple(_secrets)
