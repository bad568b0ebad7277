"""The preflight: which failures stop `treasury run` and which it starts and waits out."""

from __future__ import annotations

import pytest
from services_world import World

from treasury.domain.exchange import SystemStatus
from treasury.ports.exchange import Reason
from treasury.services.preflight import Check, failing, may_start, run_all_checks, run_checks
from treasury.testing import not_sent, rejected


async def head() -> tuple[str | None, str]:
    return "head", "head"


async def checks(world: World) -> list[Check]:
    return await run_checks(world.exchange, schema=head, allow_unrestricted_ip=False)


async def test_everything_passing_starts_at_once(world: World) -> None:
    result = await checks(world)
    assert may_start(result) and failing(result) == []


async def test_an_unreachable_exchange_is_waited_out(world: World) -> None:
    world.exchange.script("sync_clock", not_sent(endpoint="/api/v3/time"))
    result = await checks(world)
    [clock] = failing(result)
    assert clock.name == "clock" and clock.waits
    assert may_start(result)  # started, but nothing known of the key yet: nothing is sent


async def test_maintenance_canwithdraw_and_quota_are_waited_out(world: World) -> None:
    world.exchange.script("system_status", SystemStatus(normal=False, message="system upgrade"))
    world.exchange.can_withdraw = False
    world.exchange.script(
        "withdraw_quota",
        not_sent(endpoint="/sapi/v1/capital/withdraw/quota", reason=Reason.SERVER_ERROR),
    )
    result = await checks(world)
    assert {c.name for c in failing(result)} == {"system status", "canWithdraw", "withdraw quota"}
    assert may_start(result)


async def test_what_an_operator_must_fix_stops_the_start(world: World) -> None:
    refused = rejected(
        "invalid API key", permanent=True, reason=Reason.AUTH, endpoint="/api/v3/account"
    )
    world.exchange.script("account", refused)
    result = await checks(world)
    [key] = failing(result)
    assert key.name == "api key" and not key.waits and "refused" in key.detail
    assert not may_start(result)

    async def old_schema() -> tuple[str | None, str]:
        return "0006", "0007"

    stale = await run_checks(world.exchange, schema=old_schema, allow_unrestricted_ip=False)
    assert not may_start(stale)


async def test_every_account_is_held_to_the_primarys_rules(world: World) -> None:
    """A second account's key without an IP restriction stops the start like the first's,
    and its lines name the account."""
    from treasury.domain.exchange import ApiRestrictions
    from treasury.testing import FakeExchange

    loose = FakeExchange()
    loose.restrictions = ApiRestrictions(
        ip_restrict=False, enable_withdrawals=True, enable_reading=True
    )
    result = await run_all_checks(
        [("main", world.exchange), ("desk2", loose)], schema=head, allow_unrestricted_ip=False
    )
    [bad] = failing(result)
    assert bad.name.startswith("account desk2: ") and not bad.waits
    assert not may_start(result)
    assert [c.name for c in result if c.name.startswith("account desk2: ")] == [
        f"account desk2: {c.name}" for c in await checks(world) if c.name != "database"
    ]


async def test_a_failing_database_stops_the_start_before_any_exchange_is_asked(
    world: World,
) -> None:
    from treasury.testing import FakeExchange

    async def broken() -> tuple[str | None, str]:
        raise OSError("connection refused")

    other = FakeExchange()
    result = await run_all_checks(
        [("main", world.exchange), ("desk2", other)],
        schema=broken,
        allow_unrestricted_ip=False,
        exchange_without_database=False,
    )
    assert [c.name for c in result] == ["database"]
    assert world.exchange.calls == [] and other.calls == []


async def test_an_account_under_a_local_entity_is_named_and_started(world: World) -> None:
    world.exchange.local_entity = "JP"
    result = await checks(world)
    [line] = [c for c in result if c.name == "travel rule"]
    assert line.ok and not line.warning and "local entity JP (the JP questionnaire)" in line.detail
    assert may_start(result)
    world.exchange.local_entity = "AE"  # an entity whose form is not modelled: a warning
    [line] = [c for c in await checks(world) if c.name == "travel rule"]
    assert line.ok and line.warning and "does not model" in line.detail
    world.exchange.local_entity = "JP"
    world.exchange.script(
        "travel_rule_requirement",
        not_sent(endpoint="/sapi/v1/localentity/questionnaire-requirements"),
    )
    [unknown] = [c for c in await checks(world) if c.name == "travel rule"]
    assert not unknown.ok and unknown.waits


@pytest.mark.parametrize(
    ("detected", "configured", "ok", "words"),
    [
        ("JP", "JP", True, "local entity JP"),
        ("PL", "EU", True, "local entity PL"),  # Poland and France answer the EU form
        ("FR", "EU", True, "local entity FR"),
        ("JP", None, True, "local entity JP"),  # the exchange's answer stands
        ("PL", "JP", False, "under PL (EU), but the setting says JP"),
        ("AE", "EU", False, "under AE (an entity not modelled here)"),
        (None, "EU", True, "needs no questionnaire"),  # warned, harmless
    ],
)
async def test_the_setting_and_the_exchange_must_agree_on_the_local_entity(
    world: World, detected: str | None, configured: str | None, ok: bool, words: str
) -> None:
    """Profiles are checked against the configured entity's questionnaire: the wrong one
    would have checked them against the wrong form, so a disagreement stops the start."""
    world.exchange.local_entity = detected
    result = await run_checks(
        world.exchange, schema=head, allow_unrestricted_ip=False, local_entity=configured
    )
    [line] = [c for c in result if c.name == "travel rule"]
    assert (line.ok, words in line.detail) == (ok, True), line
    assert may_start(result) is ok
