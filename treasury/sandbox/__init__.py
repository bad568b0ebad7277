"""A faithful local stand-in for Binance's capital (withdrawal) API.

Binance's testnet has no withdrawals, so the project ships this: the target of the
worker's end-to-end tests, the demo's exchange, and the ground truth of the torture tests
(its journal says exactly which withdrawals were created). Start it with
``python -m treasury.sandbox`` or, in-process, :func:`running_sandbox` /
:class:`SandboxThread`; read its journal with :func:`read_ledger`.
"""

from __future__ import annotations

from treasury.sandbox.clock import ManualClock, SystemClock
from treasury.sandbox.config import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEMO_ED25519_PRIVATE_KEY_PEM,
    SUB_API_KEY,
    SUB_API_SECRET,
    ConfigError,
    SandboxConfig,
    WhitelistEntry,
    default_config,
    load_config,
    parse_config,
)
from treasury.sandbox.core import Sandbox, open_sandbox
from treasury.sandbox.ledger import ApplyRequest, Ledger, LedgerWithdrawal, read_ledger
from treasury.sandbox.server import (
    RunningSandbox,
    SandboxTask,
    SandboxThread,
    running_sandbox,
    serve,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEMO_ED25519_PRIVATE_KEY_PEM",
    "SUB_API_KEY",
    "SUB_API_SECRET",
    "ApplyRequest",
    "ConfigError",
    "Ledger",
    "LedgerWithdrawal",
    "ManualClock",
    "RunningSandbox",
    "Sandbox",
    "SandboxConfig",
    "SandboxTask",
    "SandboxThread",
    "SystemClock",
    "WhitelistEntry",
    "default_config",
    "load_config",
    "open_sandbox",
    "parse_config",
    "read_ledger",
    "running_sandbox",
    "serve",
]
