"""The ``treasury`` command: operators' admin CLI and the daemon's entry point.

Every command refuses bad input with one line naming the problem and a non-zero
exit, and writes nothing in that case.

One module per group of commands, each registering its commands on ``common.app``:

* ``common``   the Typer apps, settings, the operator's name, exit codes, known errors
               as one line, ``with_ledger`` (open the ledger, run a body on it)
* ``output``   how things are shown: rich tables for people, JSON for scripts
* ``schema``   migrate
* ``intents``  enqueue, list, show, cancel, resolve, resend, approve
* ``controls`` pause, resume, whitelist add / list / remove
* ``operators`` operator keygen / add / list / remove (who may approve, with which key)
* ``policy``   policy apply / approve / show / history (the versioned policy in the ledger)
* ``exchange`` run, check, whitelist sync, reconcile, sandbox, demo
* ``health``   healthcheck (the container's probe of ``/readyz``)
* ``webhooks`` webhook add / list / remove / deliveries / run (receivers of the outbox)
* ``db``       db roles (least-privilege PostgreSQL roles for the daemon, operators, bots)
* ``tokens``   token create / list / revoke (the HTTP API's clients)
* ``api``      api (serve the HTTP API for bots, ``treasury.http``)
"""

from __future__ import annotations

from typing import Any

# The order of the imports is the order of `treasury --help`.
# isort: off
from treasury.cli import schema, intents, controls, operators, policy, exchange  # noqa: F401
from treasury.cli import health, db, tokens, api  # noqa: F401
from treasury.cli import webhooks, console  # noqa: F401

# isort: on
from treasury.cli.common import app

__all__ = ["app", "main"]


def main() -> Any:
    return app()
