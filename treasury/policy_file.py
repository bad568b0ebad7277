"""Load the withdrawal policy from a TOML file, refusing anything doubtful.

The file is strict on purpose: a misspelt key (``daily_cpa``) silently ignored
would mean a cap that is not enforced, so unknown keys are errors. Amounts are
parsed with ``parse_float=Decimal`` and accepted as TOML decimals, integers or
strings; a binary float never touches an amount. Each error is one message that
names the file, the key path (``coins.USDT.daily_cap``) and the problem.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from treasury.domain.errors import InvalidField
from treasury.domain.money import parse_amount
from treasury.domain.policy import (
    DEFAULT_APPROVAL_EXPIRY_HOURS,
    MAX_APPROVAL_EXPIRY_HOURS,
    MAX_APPROVALS,
    CoinPolicy,
    Policy,
)
from treasury.domain.validation import COIN_RE

AMOUNT_KEYS = ("max_per_intent", "daily_cap", "destination_daily_cap", "approval_threshold")
COIN_KEYS = (*AMOUNT_KEYS, "approvals_required")
TOP_KEYS = (
    "deny_unlisted_coins",
    "default",
    "coins",
    "approval_expiry_hours",
    "address_book_approvals_required",
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class PolicyError(Exception):
    """The policy file is missing, unreadable or not acceptable; the message says where."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


def load_policy(path: Path) -> Policy:
    """Read and parse the policy file at ``path``.

    Raises:
        PolicyError: the file cannot be read, is not valid TOML or breaks a rule.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(str(path), None, "policy file not found") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(str(path), None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise PolicyError(str(path), None, f"cannot read policy file: {exc.strerror}") from None
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Parse policy TOML ``text``; ``source`` names it in error messages.

    Raises:
        PolicyError: the text is not valid TOML or breaks a rule.
    """
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, None, f"invalid TOML: {exc}") from None
    except RecursionError:
        raise PolicyError(source, None, "invalid TOML: nested too deeply") from None
    except (ValueError, ArithmeticError):
        # an integer too long for int(), or a decimal exponent beyond Decimal's range
        raise PolicyError(source, None, "invalid TOML: a number is out of range") from None
    return _Parser(source).policy(data)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str | None, problem: str) -> PolicyError:
        return PolicyError(self.source, key, problem)

    def check_keys(self, table: Mapping[str, object], allowed: tuple[str, ...], at: str) -> None:
        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.error(
                    _join(at, key),
                    f"unknown key{did_you_mean}; allowed here: {', '.join(allowed)}",
                )

    def table(self, value: object, at: str) -> Mapping[str, object]:
        if not isinstance(value, dict):
            raise self.error(at, f"must be a table, got {_kind(value)}")
        return value

    def policy(self, data: Mapping[str, object]) -> Policy:
        self.check_keys(data, TOP_KEYS, "")
        deny = data.get("deny_unlisted_coins", False)
        if not isinstance(deny, bool):
            raise self.error("deny_unlisted_coins", f"must be true or false, got {_kind(deny)}")
        default = None
        if "default" in data:
            if deny:
                # Unlisted coins are refused, so [default] would never apply; someone
                # who wrote limits there expects them to be enforced.
                raise self.error(
                    "default",
                    "has no effect when deny_unlisted_coins = true; remove one of the two",
                )
            default = self.coin_policy(data["default"], "default")
        coins: dict[str, CoinPolicy] = {}
        for coin, section in self.table(data.get("coins", {}), "coins").items():
            at = _join("coins", coin)
            if not COIN_RE.fullmatch(coin):
                raise self.error(
                    at, "coin symbols are upper-case letters and digits (1-20), e.g. USDT"
                )
            coins[coin] = self.coin_policy(section, at)
        hours = data.get("approval_expiry_hours", DEFAULT_APPROVAL_EXPIRY_HOURS)
        if isinstance(hours, bool) or not isinstance(hours, int):
            raise self.error("approval_expiry_hours", f"must be a whole number, got {_kind(hours)}")
        if not 1 <= hours <= MAX_APPROVAL_EXPIRY_HOURS:
            raise self.error(
                "approval_expiry_hours",
                f"must be between 1 and {MAX_APPROVAL_EXPIRY_HOURS} hours, got {hours}",
            )
        book = data.get("address_book_approvals_required", 0)
        if isinstance(book, bool) or not isinstance(book, int):
            raise self.error(
                "address_book_approvals_required", f"must be a whole number, got {_kind(book)}"
            )
        if not 0 <= book <= MAX_APPROVALS:
            raise self.error(
                "address_book_approvals_required",
                f"must be between 0 and {MAX_APPROVALS}, got {book}",
            )
        return Policy(
            coins=coins,
            default=default,
            deny_unlisted_coins=deny,
            approval_expiry_hours=hours,
            address_book_approvals_required=book,
        )

    def coin_policy(self, value: object, at: str) -> CoinPolicy:
        section = self.table(value, at)
        self.check_keys(section, COIN_KEYS, at)
        amounts: dict[str, Decimal | None] = {}
        for key in AMOUNT_KEYS:
            raw = section.get(key)
            amounts[key] = None if raw is None else self.amount(raw, _join(at, key))
        required = self.approvals(section.get("approvals_required", 1), at)
        if "approvals_required" in section and amounts["approval_threshold"] is None:
            raise self.error(
                _join(at, "approvals_required"),
                "has no effect without approval_threshold; set the threshold above which "
                "approvals are required",
            )
        return CoinPolicy(
            max_per_intent=amounts["max_per_intent"],
            daily_cap=amounts["daily_cap"],
            destination_daily_cap=amounts["destination_daily_cap"],
            approval_threshold=amounts["approval_threshold"],
            approvals_required=required,
        )

    def amount(self, raw: object, at: str) -> Decimal:
        if not isinstance(raw, str | int | Decimal) or isinstance(raw, bool):
            raise self.error(at, f'must be an amount such as "1000.50", got {_kind(raw)}')
        try:
            return parse_amount(raw, field=at)
        except InvalidField as exc:
            raise self.error(at, exc.problem) from None

    def approvals(self, raw: object, at: str) -> int:
        key = _join(at, "approvals_required")
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise self.error(key, f"must be a whole number, got {_kind(raw)}")
        if not 1 <= raw <= MAX_APPROVALS:
            raise self.error(key, f"must be between 1 and {MAX_APPROVALS}, got {raw}")
        return raw


def _join(at: str, key: str) -> str:
    """A dotted key path as TOML spells it; odd keys are quoted so they show plainly."""
    shown = key if _BARE_KEY.fullmatch(key) else json.dumps(key)
    return f"{at}.{shown}" if at else shown


def _kind(value: object) -> str:
    """The TOML name of a value's type, for messages."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, Decimal):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
