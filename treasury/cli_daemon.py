"""Commands that talk to an exchange: run, check, sandbox, demo (registered on import)."""

from __future__ import annotations
