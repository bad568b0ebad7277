"""Keep signatures out of httpx's own log lines.

httpx logs every request's full URL at INFO on the ``httpx`` logger, and a signed
Binance URL carries its ``signature``. The application keeps that logger at WARNING;
this filter is the second lock, for the day someone turns it up to debug a problem.
"""

from __future__ import annotations

import logging
import re

_SIGNATURE = re.compile(r"(signature=)[^&\s\"'>]+", re.IGNORECASE)


class SignatureRedactor(logging.Filter):
    """Rewrites ``signature=<value>`` to ``signature=<redacted>`` in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix; let logging report it
            return True
        redacted = _SIGNATURE.sub(r"\1<redacted>", message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


def install_signature_redaction(logger_name: str = "httpx") -> None:
    """Attach the redactor to ``logger_name`` once (idempotent)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, SignatureRedactor) for f in logger.filters):
        logger.addFilter(SignatureRedactor())
