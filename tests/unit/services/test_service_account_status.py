"""``GET /sapi/v1/account/status``: anything but ``Normal`` holds sending, with the
exchange's own words as the reason; ``treasury check`` shows it as a warning."""

from __future__ import annotations

from services_world import World

from treasury.domain.status import Status as S
from treasury.services.preflight import run_checks

RESTRICTED = "Withdrawals restricted: the account is under review"


async def test_a_restricted_account_holds_with_the_exchanges_text(world: World) -> None:
    world.exchange.status_text = RESTRICTED
    intent = await world.enqueue("10")
    held = await world.process(intent.id)
    assert held.status is S.QUEUED and world.exchange.withdraw_requests() == []
    assert "under review" in (held.status_reason or ""), held.status_reason
    world.exchange.status_text = "Normal"
    world.ctx.view.standing_changed()  # what the next refresh of the cached standing sees
    world.clock.advance(3600)
    assert (await world.process(intent.id)).status is S.SUBMITTED


async def test_check_warns_on_a_restricted_account_and_passes_a_normal_one(world: World) -> None:
    async def schema() -> tuple[str | None, str]:
        return "head", "head"

    normal = await run_checks(world.exchange, schema=schema, allow_unrestricted_ip=False)
    world.exchange.status_text = RESTRICTED
    restricted = await run_checks(world.exchange, schema=schema, allow_unrestricted_ip=False)
    [before] = [c for c in normal if c.name == "account status"]
    [after] = [c for c in restricted if c.name == "account status"]
    assert (before.ok, before.warning, before.detail) == (True, False, "Normal")
    assert after.ok and after.warning and "under review" in after.detail
