"""Controls against the sandbox: unexpected-withdrawal alarm, whitelist drift, key posture,
quota and canWithdraw holds. On both databases."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from treasury.adapters.db import migrate
from treasury.domain.status import Status
from treasury.domain.validation import validate_new_intent
from treasury.services.preflight import run_checks
from treasury.services.whitelist_sync import sync_whitelist

TRX = "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ"


async def admin(stack: Any, path: str, body: dict[str, object]) -> Any:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{stack.sandbox.url}/_sandbox/{path}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_unexpected_withdrawal_raises_one_alarm(stack_factory: Any) -> None:
    async with stack_factory() as stack:
        foreign = await admin(
            stack,
            "foreign-withdrawal",
            {
                "account": "default",
                "coin": "USDT",
                "network": "TRX",
                "address": TRX,
                "amount": "999",
                "status": 6,
            },
        )
        async with stack.daemon():
            with anyio.fail_after(10):
                while not any(a[0] == "unexpected_withdrawal" for a in stack.alerts):
                    await anyio.sleep(0.1)
            await anyio.sleep(1)  # further polls must not alarm again
        events = await stack.rt.ledger.events.recent("unexpected_withdrawal")
    alarms = [a for a in stack.alerts if a[0] == "unexpected_withdrawal"]
    assert len(alarms) == 1
    assert foreign["id"] in alarms[0][1]
    assert [e.subject for e in events] == [foreign["id"]]


async def test_our_own_withdrawals_raise_no_alarm(stack_factory: Any) -> None:
    async with stack_factory() as stack:
        new = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="20")
        intent, _ = await stack.rt.ledger.intents.enqueue(new, actor="test")
        async with stack.daemon():
            [done] = await stack.wait_settled([intent.id])
            await anyio.sleep(1)
    assert done.status is Status.COMPLETED
    assert not [a for a in stack.alerts if a[0] == "unexpected_withdrawal"]


def synced(stack: Any) -> dict[str, Any]:
    """The daemon's own sync: the account, and where it remembers what it saw."""
    return {"account": stack.rt.ctx.config.account, "seen": stack.rt.ctx.seen}


async def test_whitelist_drift_in_both_directions(stack_factory: Any) -> None:
    async with stack_factory() as stack:
        ledger = stack.rt.ledger
        before = {e.key: e for e in await ledger.whitelist.all()}
        assert (("USDT", "TRX", TRX, "")) in before
        await admin(
            stack,
            "whitelist",
            {
                "account": "default",
                "action": "remove",
                "coin": "USDT",
                "network": "TRX",
                "address": TRX,
            },
        )
        new_addr = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"
        await admin(
            stack,
            "whitelist",
            {
                "account": "default",
                "action": "add",
                "coin": "USDT",
                "network": "TRX",
                "address": new_addr,
                "name": "n",
            },
        )
        drift = await sync_whitelist(
            stack.rt.exchange, ledger.whitelist, ledger.events, **synced(stack)
        )
        after = {e.key: e for e in await ledger.whitelist.all()}
        kinds = [e.kind for e in await ledger.events.recent()]
        again = await sync_whitelist(
            stack.rt.exchange, ledger.whitelist, ledger.events, **synced(stack)
        )
    assert drift.disabled == [("USDT", "TRX", TRX, "")]
    assert drift.added == [("USDT", "TRX", new_addr, "")]
    assert after[("USDT", "TRX", TRX, "")].enabled is False
    assert after[("USDT", "TRX", new_addr, "")].enabled is True
    assert "whitelist_disabled" in kinds and "whitelist_added" in kinds
    assert not again.changed


async def test_intent_to_a_destination_dropped_by_the_exchange_is_rejected(
    stack_factory: Any,
) -> None:
    async with stack_factory() as stack:
        ledger = stack.rt.ledger
        await admin(
            stack,
            "whitelist",
            {
                "account": "default",
                "action": "remove",
                "coin": "USDT",
                "network": "TRX",
                "address": TRX,
            },
        )
        await sync_whitelist(stack.rt.exchange, ledger.whitelist, ledger.events, **synced(stack))
        new = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="20")
        intent, _ = await ledger.intents.enqueue(new, actor="test")
        async with stack.daemon():
            [done] = await stack.wait_settled([intent.id])
    assert done.status is Status.REJECTED
    assert "disabled" in (done.status_reason or "")


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"apiRestrictions": {"enableWithdrawals": False}}, "withdraw permission"),
        ({"apiRestrictions": {"ipRestrict": False}}, "ip restriction"),
        ({"canWithdraw": False}, "canWithdraw"),
        ({"quota_usd": "0"}, "withdraw quota"),
    ],
)
async def test_check_fails_on_each_bad_posture(
    stack_factory: Any, change: dict[str, object], failing: str
) -> None:
    async with stack_factory() as stack:
        schema = migrate.schema_probe(stack.rt.settings.database_url)
        good = await run_checks(stack.rt.exchange, schema=schema, allow_unrestricted_ip=False)
        await admin(stack, "account", {"account": "default", **change})
        bad = await run_checks(stack.rt.exchange, schema=schema, allow_unrestricted_ip=False)
    assert all(c.ok for c in good), good
    assert [c.name for c in bad if not c.ok] == [failing]


async def test_unrestricted_ip_can_be_allowed_explicitly_with_a_warning(
    stack_factory: Any,
) -> None:
    async with stack_factory() as stack:
        await admin(
            stack, "account", {"account": "default", "apiRestrictions": {"ipRestrict": False}}
        )
        checks = await run_checks(
            stack.rt.exchange,
            schema=migrate.schema_probe(stack.rt.settings.database_url),
            allow_unrestricted_ip=True,
        )
    [ip] = [c for c in checks if c.name == "ip restriction"]
    assert ip.ok and ip.warning


async def test_maintenance_holds_then_releases(stack_factory: Any) -> None:
    async with stack_factory() as stack:
        await admin(stack, "faults", {"maintenance": True})
        new = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="20")
        intent, _ = await stack.rt.ledger.intents.enqueue(new, actor="test")
        async with stack.daemon():
            with anyio.fail_after(10):
                while "maintenance" not in (
                    (await stack.rt.ledger.intents.get(intent.id)).status_reason or ""
                ):
                    await anyio.sleep(0.1)
            held = await stack.rt.ledger.intents.get(intent.id)
            await admin(stack, "faults", {"maintenance": False})
            stack.rt.ctx.view.standing_changed()
            [done] = await stack.wait_settled([intent.id])
    assert held.status is Status.QUEUED and held.withdraw_order_id is None
    assert done.status is Status.COMPLETED


async def test_can_withdraw_false_alerts_and_holds(stack_factory: Any) -> None:
    async with stack_factory() as stack:
        ledger = stack.rt.ledger
        first = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="20")
        a, _ = await ledger.intents.enqueue(first, actor="test")
        async with stack.daemon():
            await stack.wait_settled([a.id])
            await admin(stack, "account", {"account": "default", "canWithdraw": False})
            stack.rt.ctx.view.standing_changed()
            second = validate_new_intent(coin="USDT", network="TRX", address=TRX, amount="21")
            b, _ = await ledger.intents.enqueue(second, actor="test")
            with anyio.fail_after(10):
                while not any(x[0] == "can_withdraw_false" for x in stack.alerts) or (
                    "canWithdraw" not in ((await ledger.intents.get(b.id)).status_reason or "")
                ):
                    await anyio.sleep(0.1)
            held = await ledger.intents.get(b.id)
    assert held.status is Status.QUEUED
    assert "canWithdraw" in (held.status_reason or "")


async def test_intent_for_an_unserved_account_gets_a_reason_and_an_alert(
    stack_factory: Any,
) -> None:
    from treasury.services.watch import flag_unserved

    async with stack_factory() as stack:
        ledger = stack.rt.ledger
        typo = validate_new_intent(
            coin="USDT", network="TRX", address=TRX, amount="20", account="defualt"
        )
        intent, _ = await ledger.intents.enqueue(typo, actor="sql")
        async with stack.daemon():
            await anyio.sleep(0.5)  # the daemon holds the lease of "default" only
            flagged = await flag_unserved(stack.rt.ctx, after_s=0)
            again = await flag_unserved(stack.rt.ctx, after_s=0)
        after = await ledger.intents.get(intent.id)
        events = await ledger.intents.events(intent.id)
    assert (flagged, again) == (1, 0)
    assert after.status is Status.QUEUED
    assert "defualt" in (after.status_reason or "")
    assert events[-1].kind == "hold"
    assert [a for a in stack.alerts if a[2] == intent.id]
