"""The daemon publishes its exchange view and ``treasury api``'s preview reads it: the
worker against the sandbox over HTTP, the API over real HTTP, one ledger (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
from test_http_api import Api
from test_http_api import api as api  # the fixture, re-exported

from treasury.domain.money import format_amount
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.domain.view_snapshot import ViewSnapshot, from_json, key_of
from treasury.domain.wallet import Wallet
from treasury.ports.clock import utcnow
from treasury.runtime.daemon import Daemon
from treasury.sandbox.config import default_config

TRX = default_config().accounts["default"].whitelisted("USDT", "TRX")[0].address


@asynccontextmanager
async def _daemon(stack: Any, publish_view_s: float) -> AsyncIterator[Daemon]:
    daemon = Daemon(
        stack.rt.ctx,
        pace=stack.rt.exchange.apply_limiter.note_sent_at,
        publish_view_s=publish_view_s,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        try:
            yield daemon
        finally:
            daemon.stop()


async def _published(stack: Any, timeout: float = 20) -> ViewSnapshot:
    """The first snapshot with rules, spot balances and the account's standing."""
    with anyio.fail_after(timeout):
        while True:
            text = await stack.rt.ledger.state.published(key_of("default"))
            if text is not None:
                snap = from_json(text)
                if snap.coins and Wallet.SPOT in snap.balances and snap.standing is not None:
                    return snap
            await anyio.sleep(0.1)


async def test_the_daemon_publishes_its_view_and_the_preview_passes_on_it(
    stack_factory: Any, api: Api
) -> None:
    """An idle daemon fetches nothing, so it has nothing to publish; once it has sent a
    withdrawal its view holds the sandbox's rules and balances and it publishes them (no
    exchange call of its own), and the API's preview passes its checks on that view."""
    async with stack_factory() as stack:
        ledger = stack.rt.ledger
        before = Decimal((await stack.sandbox_state())["balances"]["default"]["USDT"])
        async with _daemon(stack, publish_view_s=0.2) as daemon:
            with anyio.fail_after(15):
                while not (daemon.is_sender and daemon.swept):
                    await anyio.sleep(0.05)
            await anyio.sleep(0.5)  # a few publishing ticks
            assert await ledger.state.published(key_of("default")) is None  # nothing cached
            new = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="15")
            intent, _ = await ledger.intents.enqueue(new, actor="test")
            [done] = await stack.wait_settled([intent.id])
            assert done.status is Status.COMPLETED, done
            snap = await _published(stack)
        # the sandbox's rules, balances and standing as the daemon last fetched them
        assert snap.account == "default" and snap.fetched_at <= utcnow()
        rules = await stack.rt.exchange.coin_configs()
        assert set(snap.coins) == set(rules)
        assert {n.network: n for n in snap.coins["USDT"].networks} == {
            n.network: n for n in rules["USDT"].networks
        }
        after = Decimal((await stack.sandbox_state())["balances"]["default"]["USDT"])
        free = snap.free(Wallet.SPOT, "USDT")
        # fetched before the send (less what it committed) or after it
        assert free is not None and after <= free <= before - Decimal(15), (after, free, before)
        assert snap.standing is not None and snap.standing.can_withdraw
        assert snap.quota is not None and snap.wallet is Wallet.SPOT
        (trx,) = [n for n in rules["USDT"].networks if n.network == "TRX"]

        body = {"coin": "USDT", "network": "TRX", "address": TRX, "amount": "15"}
        async with api.client() as http:
            r = await http.post("/v1/preview", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            checks = {c["name"]: c["result"] for c in out["checks"]}
            for name in ("balance", "network_rules", "account_standing", "quota", "travel_rule"):
                assert checks[name] == "pass", out
            assert out["network_fee"] == format_amount(trx.withdraw_fee), out
            assert 0 <= out["snapshot_age_s"] < 60
            # more than the view says is free: the balance check would hold it
            r = await http.post("/v1/preview", json={**body, "amount": str(free + 1)})
            balance = next(c for c in r.json()["checks"] if c["name"] == "balance")
            assert balance["result"] == "fail" and balance["effect"] == "hold", r.json()
        assert [i.id for i in await ledger.intents.search(limit=10)] == [intent.id]
