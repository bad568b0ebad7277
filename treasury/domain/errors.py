"""Errors raised by the pure domain. Each names what is wrong so a person can act."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises."""


class InvalidField(DomainError):
    """A field of an intent, a whitelist entry or a command is not acceptable."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class IllegalTransition(DomainError):
    """A status change that the intent state machine does not allow."""

    def __init__(self, intent_id: int | None, from_status: str, to_status: str) -> None:
        who = f"intent {intent_id}" if intent_id is not None else "intent"
        super().__init__(f"{who}: cannot go from {from_status} to {to_status}")
        self.from_status = from_status
        self.to_status = to_status
