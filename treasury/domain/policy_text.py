"""The withdrawal policy as text: parse it strictly, write it canonically, diff two.

The text is strict on purpose: a misspelt key (``daily_cpa``) silently ignored would
mean a cap that is not enforced, so unknown keys are errors. Amounts are parsed with
``parse_float=Decimal`` and accepted as TOML decimals, integers or strings; a binary
float never touches an amount. Each error is one message that names the source, the key
path (``coins.USDT.daily_cap``) and the problem.

The ledger keeps each version of the policy as its *canonical* text (``canonical``): one
spelling per policy, keys in a fixed order, amounts as exact decimal strings, so two
documents that mean the same thing have the same text and the same sha256, a no-op change
is recognised, and ``diff`` can name each key path whose value changed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal

from treasury.domain.errors import InvalidField
from treasury.domain.money import format_amount, parse_amount
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
    "policy_changes_need_approval",
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
UNSET = "(unset)"


class PolicyError(Exception):
    """The policy text is missing, unreadable or not acceptable; the message says where."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


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
        changes = data.get("policy_changes_need_approval", False)
        if not isinstance(changes, bool):
            raise self.error(
                "policy_changes_need_approval", f"must be true or false, got {_kind(changes)}"
            )
        return Policy(
            coins=coins,
            default=default,
            deny_unlisted_coins=deny,
            approval_expiry_hours=hours,
            address_book_approvals_required=book,
            policy_changes_need_approval=changes,
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


def canonical(policy: Policy) -> str:
    """The one TOML text of ``policy``: ``parse_policy(canonical(p)) == p``.

    Top-level keys are always written (a default spelled out is still a decision);
    a coin's limits only when set; ``approvals_required`` only with a threshold (the
    parser refuses it alone). Amounts are quoted exact decimals.
    """
    lines = [
        f"address_book_approvals_required = {policy.address_book_approvals_required}",
        f"approval_expiry_hours = {policy.approval_expiry_hours}",
        f"deny_unlisted_coins = {_bool(policy.deny_unlisted_coins)}",
        f"policy_changes_need_approval = {_bool(policy.policy_changes_need_approval)}",
    ]
    sections = [("default", policy.default)] if policy.default is not None else []
    sections += [(f"coins.{coin}", policy.coins[coin]) for coin in sorted(policy.coins)]
    for name, rules in sections:
        assert rules is not None
        lines += ["", f"[{name}]"]
        lines += [f"{key} = {value}" for key, value in _coin_values(rules).items()]
    return "\n".join(lines) + "\n"


def digest(document: str) -> str:
    """The sha256 (hex) of a canonical document, as the ledger records it."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def diff(old: Policy | None, new: Policy) -> list[str]:
    """What changes from ``old`` to ``new``, one line per key path, in key order:
    ``coins.USDT.daily_cap: 1000 -> 5000``, ``coins.BTC: added``. Empty: the same policy.

    Without ``old`` (no policy yet) every key of ``new`` is listed as set."""
    before = _flat(old) if old is not None else {}
    after = _flat(new)
    lines = []
    for path in sorted(before.keys() | after.keys(), key=_order):
        was, now = before.get(path), after.get(path)
        if was == now:
            continue
        if now == _SECTION or was == _SECTION:
            lines.append(f"{path}: {'added' if now == _SECTION else 'removed'}")
            continue
        lines.append(f"{path}: {UNSET if was is None else was} -> {UNSET if now is None else now}")
    return lines


_SECTION = "[table]"


def _flat(policy: Policy) -> dict[str, str]:
    """Every key path of ``policy`` with its value as the canonical text writes it;
    a table present maps to ``_SECTION`` (a coin listed without limits is a decision)."""
    flat = {
        "address_book_approvals_required": str(policy.address_book_approvals_required),
        "approval_expiry_hours": str(policy.approval_expiry_hours),
        "deny_unlisted_coins": _bool(policy.deny_unlisted_coins),
        "policy_changes_need_approval": _bool(policy.policy_changes_need_approval),
    }
    sections = [("default", policy.default)] if policy.default is not None else []
    sections += [(f"coins.{coin}", rules) for coin, rules in policy.coins.items()]
    for name, rules in sections:
        assert rules is not None
        flat[name] = _SECTION
        for key, value in _coin_values(rules).items():
            flat[f"{name}.{key}"] = value.strip('"')
    return flat


def _order(path: str) -> tuple[int, str]:
    """Top-level keys first, then [default], then the coins by name."""
    rank = 2 if path.startswith("coins.") else 1 if path.startswith("default") else 0
    return rank, path


def _coin_values(rules: CoinPolicy) -> dict[str, str]:
    values = {
        key: f'"{format_amount(getattr(rules, key))}"'
        for key in AMOUNT_KEYS
        if getattr(rules, key) is not None
    }
    if rules.approval_threshold is not None:
        values["approvals_required"] = str(rules.approvals_required)
    return values


def _bool(value: bool) -> str:
    return "true" if value else "false"
