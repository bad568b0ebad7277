"""A setting or field that takes one of a few names (a ``StrEnum``), parsed one way."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from treasury.domain.errors import InvalidField

E = TypeVar("E", bound=StrEnum)


def parse_choice(kind: type[E], value: object, field: str, noun: str) -> E:
    """``value`` as a member of ``kind`` (a member passes through).

    Raises:
        InvalidField: naming ``field``, what ``value`` is not (``noun``) and the choices.
    """
    if isinstance(value, kind):
        return value
    if isinstance(value, str) and value in (m.value for m in kind):
        return kind(value)
    choices = " or ".join(m.value for m in kind)
    raise InvalidField(field, f"{value!r} is not {noun}: use {choices}")
