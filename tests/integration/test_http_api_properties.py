"""Property-based API testing from the OpenAPI document (schemathesis): every operation of
the running app, fed requests generated from its own document (``docs/openapi.json``, which
the drift test keeps equal to the app's ``/openapi.json``), answers no 500
and nothing its document does not describe (status code, content type, body schema).

The app runs as in ``test_http_api.py``: uvicorn on a free loopback port in a thread of
its own, over a migrated SQLite ledger holding a few intents, an address-book entry and
a published exchange view, with a token holding every scope.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import checks as sc

from treasury.adapters.db import migrate
from treasury.adapters.db.engine import create_engine
from treasury.adapters.db.ledger import SqlLedger
from treasury.adapters.db.tokens import TokenStore
from treasury.domain.api_token import SCOPES
from treasury.domain.exchange import CoinConfig, NetworkRule, WithdrawQuota
from treasury.domain.fee_payer import FeePayer
from treasury.domain.view_snapshot import Standing, ViewSnapshot, key_of, to_json
from treasury.domain.wallet import Wallet
from treasury.http.app import create_app
from treasury.http.serve import deps_for
from treasury.ports.clock import utcnow

ADDRESS = "TXYZ1234567890abcdefghijklmnopqrst"
BODY = {"coin": "USDT", "network": "TRX", "address": ADDRESS, "amount": "25.50"}
CHECKS = [
    sc.not_a_server_error,
    sc.status_code_conformance,
    sc.content_type_conformance,
    sc.response_schema_conformance,
    sc.response_headers_conformance,
]


@dataclass
class Served:
    url: str
    token: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _snapshot() -> ViewSnapshot:
    rule = NetworkRule(
        coin="USDT",
        network="TRX",
        withdraw_enable=True,
        withdraw_min=Decimal("10"),
        withdraw_max=Decimal("10000"),
        withdraw_multiple=Decimal("0"),
        withdraw_fee=Decimal("1"),
        address_regex="^T[A-Za-z0-9]{33}$",
        memo_regex="",
        memo_required=False,
    )
    return ViewSnapshot(
        account="default",
        fetched_at=utcnow(),
        wallet=Wallet.SPOT,
        fee_payer=FeePayer.RECIPIENT,
        coins={
            "USDT": CoinConfig(
                coin="USDT", withdraw_all_enable=True, free=Decimal(0), networks=(rule,)
            )
        },
        balances={Wallet.SPOT: {"USDT": Decimal("100")}},
        quota=WithdrawQuota(quota=Decimal(1000), used=Decimal(0)),
        standing=Standing(
            system_normal=True, can_withdraw=True, account_status="Normal", enable_withdrawals=True
        ),
        travel_rule=None,
        travel_rule_known=True,
    )


async def _seed(url: str) -> str:
    """Migrate, make the all-scopes token, an address-book entry and the exchange view."""
    await migrate.upgrade(url)
    engine = create_engine(url)
    try:
        ledger = SqlLedger.over(engine)
        token, _ = await TokenStore(engine).create(
            "fuzz", scopes=frozenset(SCOPES), accounts=None, actor="cli:alice", reason="test"
        )
        await ledger.whitelist.add(
            account="default",
            coin="USDT",
            network="TRX",
            address=ADDRESS,
            address_tag=None,
            actor="cli:alice",
            reason="test",
            travel_rule_profile='{"entity":"JP","questionnaire":{"latinName":"Taro Yamada"}}',
        )
        await ledger.state.publish(key_of("default"), to_json(_snapshot()), by="test")
        return token
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    path: Path = tmp_path_factory.mktemp("props") / "ledger.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    token = anyio.run(_seed, url)
    port = _free_port()
    engine = create_engine(url)
    app = create_app(deps_for(SqlLedger.over(engine), cooling_s=0))
    # every request is authenticated; a limit on failures would only hide answers
    app.state.deps.limiter.limit = 10**9
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await engine.dispose()

    thread = threading.Thread(target=anyio.run, args=(serve,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            for _ in range(500):
                if server.started:
                    break
                threading.Event().wait(0.02)
            assert server.started
            auth = {"Authorization": f"Bearer {token}"}
            for n in range(3):  # intents of this client, for get/cancel to find
                r = http.post("/v1/intents", json=BODY, headers={**auth, "Idempotency-Key": f"{n}"})
                assert r.status_code == 201, r.text
        yield Served(base, token)
    finally:
        server.should_exit = True
        thread.join(10)


# the app's own document: tests/unit/test_openapi_document.py keeps it equal to the app's
schema = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "docs/openapi.json")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_to_its_document(case: Any, served: Served) -> None:
    case.call_and_validate(
        base_url=served.url,
        headers={"Authorization": f"Bearer {served.token}"},
        checks=CHECKS,
        timeout=10,
    )
