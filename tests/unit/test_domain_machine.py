from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from treasury.domain import machine
from treasury.domain.errors import IllegalTransition
from treasury.domain.status import TERMINAL, Status


def test_terminal_statuses_have_no_way_out() -> None:
    for status in TERMINAL:
        assert machine.TRANSITIONS[status] == frozenset()


def test_every_status_is_in_the_table() -> None:
    assert set(machine.TRANSITIONS) == set(Status)


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(Status, Status)))
def test_transition_matches_the_table(src: Status, dst: Status) -> None:
    if dst in machine.TRANSITIONS[src]:
        event = machine.transition(7, src, dst, reason="because", actor="worker")
        assert (event.intent_id, event.from_status, event.to_status) == (7, src, dst)
        assert event.reason == "because" and event.actor == "worker"
    else:
        with pytest.raises(IllegalTransition):
            machine.transition(7, src, dst, reason="because", actor="worker")


def test_nothing_goes_back_to_queued_once_submitted_without_a_person() -> None:
    # After the exchange accepted it, only settlement or a person may move it.
    assert Status.QUEUED not in machine.TRANSITIONS[Status.SUBMITTED]
    assert Status.SUBMITTING not in machine.TRANSITIONS[Status.SUBMITTED]


def test_cancel_only_before_submission() -> None:
    assert {Status.QUEUED, Status.AWAITING_APPROVAL} == machine.CANCELLABLE


@pytest.mark.parametrize(("reason", "actor"), [("", "worker"), ("why", " ")])
def test_transition_needs_reason_and_actor(reason: str, actor: str) -> None:
    with pytest.raises(ValueError, match="needs"):
        machine.transition(1, Status.QUEUED, Status.CANCELLED, reason=reason, actor=actor)


def test_domain_imports_no_io_libraries() -> None:
    forbidden = {
        "anyio",
        "sqlalchemy",
        "httpx",
        "pydantic",
        "pydantic_settings",
        "structlog",
        "asyncio",
        "treasury.config",
        "treasury.adapters",
    }
    root = Path(__file__).parents[2] / "treasury" / "domain"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in forbidden), (
                    f"{path.name} imports {name}"
                )
