"""A small typed reader over parsed JSON that names the failing field in every error.

Kept apart from :mod:`treasury.sandbox.config` so the config module reads as the list of
fields it is, and so the admin API can reuse the same checks on its JSON bodies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

RSA_MIN_BITS = 2048  # Binance accepts 2048- and 4096-bit RSA keys

_MISSING = object()


class ConfigError(ValueError):
    """A configuration (or admin request) value is not acceptable; ``field`` is its path."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field or 'config'}: {problem}")
        self.field = field
        self.problem = problem


class Reader:
    """Typed access to one JSON object (or array), remembering where it sits."""

    def __init__(self, data: object, path: str) -> None:
        self.data = data
        self.path = path

    def path_of(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def _object(self) -> Mapping[str, object]:
        if not isinstance(self.data, Mapping):
            raise ConfigError(self.path, f"must be a JSON object, got {_kind(self.data)}")
        return self.data

    def as_dict(self) -> dict[str, object]:
        return {str(k): v for k, v in self._object().items()}

    def fields(self) -> list[str]:
        return [str(k) for k in self._object()]

    def has(self, key: str) -> bool:
        return key in self._object()

    def check_keys(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.fields()) - allowed)
        if unknown:
            raise ConfigError(self.path_of(unknown[0]), "unknown field")

    def get(self, key: str, default: object = _MISSING) -> object:
        obj = self._object()
        if key in obj:
            return obj[key]
        if default is _MISSING:
            raise ConfigError(self.path_of(key), "is required")
        return default

    def items(self) -> Iterator[Reader]:
        if not isinstance(self.data, list):
            raise ConfigError(self.path, f"must be a JSON array, got {_kind(self.data)}")
        for i, item in enumerate(self.data):
            yield Reader(item, self.path_of(i))

    def text(self, key: str, default: object = _MISSING) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(self.path_of(key), f"must be a string, got {_kind(value)}")
        return value

    def opt_text(self, key: str) -> str | None:
        value = self.get(key, None)
        if value is None:
            return None
        return self.text(key)

    def flag(self, key: str, default: object = _MISSING) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(self.path_of(key), f"must be true or false, got {_kind(value)}")
        return value

    def integer(self, key: str, default: object = _MISSING, *, minimum: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.path_of(key), f"must be an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise ConfigError(self.path_of(key), f"must be at least {minimum}")
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if self.get(key, None) is None else self.integer(key)

    def decimal(self, key: str, default: object = _MISSING, *, positive: bool = False) -> Decimal:
        """A non-negative exact decimal, given as a string (preferred) or a JSON number."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise ConfigError(self.path_of(key), f"must be a decimal string, got {_kind(value)}")
        try:
            amount = Decimal(value) if not isinstance(value, Decimal) else value
        except InvalidOperation:
            raise ConfigError(self.path_of(key), f"{value!r} is not a decimal number") from None
        if not amount.is_finite() or amount < 0 or (positive and amount == 0):
            rule = "greater than 0" if positive else "a finite number >= 0"
            raise ConfigError(self.path_of(key), f"must be {rule}")
        return amount

    def seconds(self, key: str, default: float) -> float:
        """A duration (not money, so a binary float is acceptable here)."""
        value = self._number(key, default)
        if value < 0:
            raise ConfigError(self.path_of(key), "must be >= 0")
        return value

    def share(self, key: str) -> float:
        """A probability between 0 and 1 (not money, so a binary float is acceptable)."""
        value = self._number(key, 0.0)
        if not 0 <= value <= 1:
            raise ConfigError(self.path_of(key), "must be between 0 and 1")
        return value

    def _number(self, key: str, default: float) -> float:
        value = self.get(key, default)
        if isinstance(value, float):
            return value
        if isinstance(value, str | int | Decimal) and not isinstance(value, bool):
            return float(self.decimal(key))
        raise ConfigError(self.path_of(key), f"must be a number, got {_kind(value)}")

    def regex(self, key: str, default: object = _MISSING) -> str:
        pattern = self.text(key, default)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(self.path_of(key), f"invalid regular expression: {exc}") from None
        return pattern

    def ed25519_key(self, key: str) -> Ed25519PublicKey:
        public = self._public_key(key)
        if not isinstance(public, Ed25519PublicKey):
            raise ConfigError(self.path_of(key), "is not an Ed25519 public key")
        return public

    def rsa_key(self, key: str) -> RSAPublicKey:
        """An RSA public key (PEM) of at least 2048 bits, the smallest Binance accepts."""
        public = self._public_key(key)
        if not isinstance(public, RSAPublicKey):
            raise ConfigError(self.path_of(key), "is not an RSA public key")
        if public.key_size < RSA_MIN_BITS:
            minimum = f"must have at least {RSA_MIN_BITS} bits (Binance's minimum)"
            raise ConfigError(self.path_of(key), f"{minimum}, has {public.key_size}")
        return public

    def _public_key(self, key: str) -> object:
        pem = self.text(key)
        try:
            return load_pem_public_key(pem.encode())
        except ValueError:
            raise ConfigError(self.path_of(key), "is not a PEM public key") from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
