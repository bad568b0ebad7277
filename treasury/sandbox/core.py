"""One sandbox's parts, assembled: config, clock, journal, faults, exchange, rate limiter.

The composition root of the sandbox, kept apart from HTTP (``app.py``) and from running
a server (``server.py``), so tests and the demo can hold a :class:`Sandbox` in-process
and look at its state directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from treasury.sandbox.admin import apply_fault_body
from treasury.sandbox.clock import Clock, SystemClock
from treasury.sandbox.config import SandboxConfig, default_config, load_config
from treasury.sandbox.faults import Faults, read_fault_source
from treasury.sandbox.ledger import Journal, Ledger, ledger_from_records
from treasury.sandbox.ratelimit import RateLimiter
from treasury.sandbox.state import Exchange

# Given the ASGI scope's ``client``, abort that TCP connection; False if it cannot.
ConnectionDropper = Callable[[object], bool]

FaultsSource = Mapping[str, object] | str | Path | None


@dataclass
class Sandbox:
    config: SandboxConfig
    clock: Clock
    journal: Journal
    faults: Faults
    exchange: Exchange
    limiter: RateLimiter
    drop_connection: ConnectionDropper | None = field(default=None)

    def ledger(self) -> Ledger:
        """The ground truth so far (the same as ``read_ledger`` on the state file)."""
        return ledger_from_records(list(self.journal.records))

    def set_faults(self, body: Mapping[str, object]) -> None:
        """Same as ``POST /_sandbox/faults`` (knobs and actions)."""
        apply_fault_body(self.exchange, body, include_actions=True)

    def close(self) -> None:
        self.journal.close()


def open_sandbox(
    config: SandboxConfig | None = None,
    *,
    config_path: str | Path | None = None,
    state_path: str | Path | None = None,
    faults: FaultsSource = None,
    clock: Clock | None = None,
) -> Sandbox:
    """Build a sandbox; with ``state_path``, replay that journal first.

    Actions in ``faults`` (rule changes, foreign withdrawals…) are applied only when the
    journal is new, so restarting with the same arguments does not repeat them.

    Raises:
        ConfigError: invalid config or faults, naming the field.
        JournalInUse: another sandbox holds ``state_path``.
    """
    if config is None:
        config = load_config(config_path) if config_path is not None else default_config()
    fault_state = Faults(config.timings.seed, history_amount=config.history_amount)
    clock = clock or SystemClock()
    journal = Journal(state_path, fsync=config.journal_fsync)
    fresh = not journal.records
    try:
        exchange = Exchange(config, clock=clock, journal=journal, faults=fault_state)
        if faults is not None:
            apply_fault_body(exchange, read_fault_source(faults), include_actions=fresh)
    except BaseException:
        journal.close()
        raise
    return Sandbox(config, clock, journal, fault_state, exchange, RateLimiter(config.rate_limits))
