"""The ports: what services depend on instead of adapters.

* ``exchange`` — the exchange and its error tree;
* ``store`` — the ledger's stores, the unit of work around one intent, their errors;
* ``clock`` — the time.

Services import the domain and these modules only (a contract in ``pyproject.toml``
that CI checks); adapters implement them; the composition root wires them.
"""

from treasury.ports.exchange import Exchange

__all__ = ["Exchange"]
