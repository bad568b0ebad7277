"""A new approver is announced once: whoever registered it (the CLI or raw SQL), the
people who watch the alerts hear of it, so one nobody of theirs added can be removed."""

from __future__ import annotations

import base64
import dataclasses

from services_world import World

from treasury.services import watch


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


async def test_each_operator_is_announced_once_across_rounds_and_processes(world: World) -> None:
    assert await watch.announce_operators(world.ctx) == 0  # nobody registered
    await world.ledger.operators.add("bob", key(1), actor="cli:alice")
    assert await watch.announce_operators(world.ctx) == 1
    assert await watch.announce_operators(world.ctx) == 0  # this round and every later one
    [(kind, message, about)] = world.alerts
    assert kind == "operator_added" and about is None
    assert "operator bob (key " in message and "added by cli:alice" in message
    assert "treasury operator remove bob" in message
    # another process (a standby, a restart) knows nobody yet, but the ledger remembers
    other = dataclasses.replace(world.ctx, operators_known=set())
    assert await watch.announce_operators(other) == 0
    await world.ledger.operators.add("mallory", key(2), actor="sql")
    assert await watch.announce_operators(other) == 1
    assert [m.split(" (")[0] for k, m, _ in world.alerts] == ["operator bob", "operator mallory"]
    # a removed operator is not announced
    await world.ledger.operators.add("carol", key(3), actor="cli:alice")
    await world.ledger.operators.remove("carol", actor="cli:alice", reason="typo")
    # mallory was announced by the other process, carol is gone: nothing new to say
    assert await watch.announce_operators(world.ctx) == 0
    assert len(world.alerts) == 2
