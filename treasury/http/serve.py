"""Run the API: open the ledger (refusing one that is unreachable or not at head), then
serve on the bind with uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal

import uvicorn

from treasury.adapters.db.engine import connection
from treasury.adapters.db.ledger import SqlLedger
from treasury.adapters.db.tables import operators
from treasury.domain.intent import Intent
from treasury.http.app import Deps, create_app


def deps_for(
    ledger: SqlLedger,
    *,
    cooling_s: float,
    local_entities: dict[str, object] | None = None,
    console_secure: bool = False,
    console_base_url: str = "http://localhost:7465",
) -> Deps:
    """The routes' dependencies over ``ledger``: the same usage sum and operator keys the
    worker's commit reads."""
    from treasury.adapters.db.sending import usage_24h

    async def usage(intent: Intent, now: datetime) -> tuple[Decimal, Decimal]:
        async with connection(ledger.engine) as conn:
            return await usage_24h(conn, intent, now)

    async def operator_keys() -> dict[str, bytes] | None:
        async with connection(ledger.engine) as conn:
            rows = (await conn.execute(operators.select())).all()
        if not rows:
            return None
        return {r.name: base64.b64decode(r.public_key) for r in rows if r.removed_at is None}

    return Deps(
        ledger=ledger,
        cooling_s=cooling_s,
        local_entities=dict(local_entities or {}),  # type: ignore[arg-type]
        usage=usage,
        operator_keys=operator_keys,
        console_secure=console_secure,
        console_base_url=console_base_url,
    )


async def serve(
    ledger: SqlLedger, *, host: str, port: int, cooling_s: float, base_url: str | None = None
) -> None:
    from treasury.netaddr import is_loopback

    # off loopback, or behind https, the console's cookie is Secure: the browser
    # reaches it over TLS
    base = base_url or f"http://localhost:{port}"
    secure = not is_loopback(host) or base.startswith("https://")
    app = create_app(
        deps_for(ledger, cooling_s=cooling_s, console_secure=secure, console_base_url=base)
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    await uvicorn.Server(config).serve()
