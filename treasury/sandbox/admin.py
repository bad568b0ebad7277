"""The admin API under ``/_sandbox/``: faults, rule changes, the ground-truth ledger.

Unauthenticated by design (it is a test instrument) and therefore answered only to
loopback clients, whatever address the server is bound to. Every body is validated in
full before anything changes; each change becomes a journal record, so it survives a
restart like any withdrawal does. Errors are ``400 {"error": "<field>: <problem>"}``.

Endpoints (JSON bodies):

* ``GET /_sandbox/faults`` · ``POST /_sandbox/faults`` — fault knobs (see ``faults.py``),
  plus optional actions ``network``, ``account``, ``whitelist``,
  ``inject_foreign_withdrawal`` (an object or a list, same bodies as below);
* ``POST /_sandbox/network`` ``{"coin","network", "withdrawEnable"?, "withdrawMin"?, …,
  "withdrawInternalMin"?, "internal_fee"?}`` (``withdrawTag`` true still needs a
  ``memoRegex``, as in the config);
* ``POST /_sandbox/account`` ``{"account", "canWithdraw"?, "apiRestrictions"?: {flag: bool},
  "balances"?: {coin: "amount"}, "funding_balances"?: {coin: "amount"},
  "default_wallet"?: "spot"|"funding", "account_status"?: "text", "whitelist_enabled"?,
  "quota_usd"?}`` (balances are merged per coin);
* ``POST /_sandbox/whitelist`` ``{"account", "action": "add"|"remove", "coin", "network",
  "address", "addressTag"?, "name"?, "whitelisted"?: true}`` (an add replaces the same
  entry; a new one beyond the address book's 200 is refused);
* ``POST /_sandbox/foreign-withdrawal`` ``{"account", "coin", "network", "address",
  "amount", "addressTag"?, "withdrawOrderId"?, "status"?: 6|5|3, "applied_at_ms"?,
  "settle_at_ms"?, "debit"?: true, "walletType"?: 0|1}`` → ``{"id"}`` (the wallet defaults
  to the account's ``default_wallet``);
* ``GET|POST /_sandbox/clock`` ``{"advance_ms"}`` → ``{"now_ms", "server_ms"}``;
* ``GET /_sandbox/ledger`` → ``{"now_ms", "withdrawals", "apply_requests", "balances",
  "funding_balances"}`` (``balances`` is the spot wallet).

Amounts here are always the requested (gross) ones, as journaled and debited: a ledger
withdrawal's ``amount`` is what was asked for and ``fee`` the fee taken out of it, whatever
``history_amount`` makes ``withdraw/history`` show. A foreign withdrawal's ``amount`` must
exceed the network's fee, as Binance's own -4028 rule requires of every withdrawal, so its
net amount in history is never zero or negative.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from treasury.domain.money import format_amount
from treasury.netaddr import is_loopback
from treasury.sandbox.config import (
    ADDRESS_BOOK_MAX,
    API_RESTRICTION_FLAGS,
    WALLETS,
    read_account_status,
    read_balances,
    read_wallet,
)
from treasury.sandbox.configreader import ConfigError, Reader
from treasury.sandbox.ledger import Record
from treasury.sandbox.state import DECIMAL_FIELDS, NETWORK_FIELDS, Exchange

if TYPE_CHECKING:
    from treasury.sandbox.core import Sandbox

_DECIMAL_KEYS = DECIMAL_FIELDS
_BOOL_KEYS = {"withdrawEnable", "withdrawTag"}


def network_record(ex: Exchange, body: object, path: str = "network") -> Record:
    r = Reader(body, path)
    r.check_keys({"coin", "network", *NETWORK_FIELDS})
    key = (r.text("coin"), r.text("network"))
    if key not in ex.networks:
        raise ConfigError(r.path_of("network"), f"unknown coin/network {key[0]}/{key[1]}")
    changes: dict[str, object] = {}
    for name in NETWORK_FIELDS:
        if not r.has(name):
            continue
        if name in _DECIMAL_KEYS:
            changes[name] = format_amount(r.decimal(name))
        elif name in _BOOL_KEYS:
            changes[name] = r.flag(name)
        elif name.endswith("Regex"):
            changes[name] = r.regex(name)
        else:
            changes[name] = r.text(name)
    _check_tag_rule(ex, r, key, changes)
    return {"type": "network", "coin": key[0], "network": key[1], "changes": changes}


def _check_tag_rule(
    ex: Exchange, r: Reader, key: tuple[str, str], changes: dict[str, object]
) -> None:
    """A network that needs a tag keeps a ``memoRegex`` to check it against (as the config)."""
    current = ex.networks[key]
    needs_tag = changes.get("withdrawTag", current.withdraw_tag)
    if needs_tag and not changes.get("memoRegex", current.memo_regex):
        raise ConfigError(r.path_of("memoRegex"), "required when withdrawTag is true")


def account_record(ex: Exchange, body: object, path: str = "account") -> Record:
    r = Reader(body, path)
    r.check_keys(
        {"account", "canWithdraw", "canTrade", "canDeposit", "apiRestrictions", "balances",
         "funding_balances", "default_wallet", "account_status", "whitelist_enabled",
         "quota_usd"}
    )  # fmt: skip
    account = _account(ex, r)
    changes: dict[str, object] = {
        k: r.flag(k)
        for k in ("canWithdraw", "canTrade", "canDeposit", "whitelist_enabled")
        if r.has(k)
    }
    if r.has("quota_usd"):
        changes["quota_usd"] = format_amount(r.decimal("quota_usd"))
    if r.has("apiRestrictions"):
        flags = Reader(r.get("apiRestrictions"), r.path_of("apiRestrictions"))
        flags.check_keys(set(API_RESTRICTION_FLAGS))
        changes["apiRestrictions"] = {k: flags.flag(k) for k in flags.fields()}
    for wallet in ("balances", "funding_balances"):
        if r.has(wallet):
            changes[wallet] = {c: format_amount(v) for c, v in read_balances(r, wallet).items()}
    if r.has("default_wallet"):
        changes["default_wallet"] = read_wallet(r, "default_wallet")
    if r.has("account_status"):
        changes["account_status"] = read_account_status(r, "account_status")
    return {"type": "account", "account": account, "changes": changes}


def whitelist_record(ex: Exchange, body: object, path: str = "whitelist") -> Record:
    r = Reader(body, path)
    r.check_keys(
        {"account", "action", "coin", "network", "address", "addressTag", "name", "whitelisted"}
    )
    account = _account(ex, r)
    action = r.text("action", default="add")
    if action not in ("add", "remove"):
        raise ConfigError(r.path_of("action"), "must be 'add' or 'remove'")
    coin, network, address = r.text("coin"), r.text("network"), r.text("address")
    rules = ex.networks.get((coin, network))
    if rules is None:
        raise ConfigError(r.path_of("network"), f"unknown coin/network {coin}/{network}")
    if action == "add" and not re.fullmatch(rules.address_regex, address):
        raise ConfigError(r.path_of("address"), f"does not match {rules.address_regex}")
    entry = {
        "coin": coin,
        "network": network,
        "address": address,
        "addressTag": r.opt_text("addressTag") or None,
        "name": r.text("name", default=""),
        "whitelisted": r.flag("whitelisted", default=True),
    }
    if action == "add":
        _check_room(ex, r, account, entry)
    return {"type": "whitelist", "account": account, "action": action, "entry": entry}


def _check_room(ex: Exchange, r: Reader, account: str, entry: dict[str, Any]) -> None:
    """A new address-book entry must fit Binance's cap; replacing an entry always does."""
    acc = ex.accounts[account]
    known = acc.in_address_book(entry["coin"], entry["network"], entry["address"],
                                entry["addressTag"])  # fmt: skip
    if not known and len(acc.whitelist) >= ADDRESS_BOOK_MAX:
        raise ConfigError(
            r.path_of("address"),
            f"the address book is full (Binance keeps at most {ADDRESS_BOOK_MAX} entries)",
        )


def foreign_spec(
    ex: Exchange, body: object, path: str = "inject_foreign_withdrawal"
) -> dict[str, Any]:
    r = Reader(body, path)
    r.check_keys(
        {"account", "coin", "network", "address", "addressTag", "amount", "withdrawOrderId",
         "status", "applied_at_ms", "settle_at_ms", "debit", "id", "walletType"}
    )  # fmt: skip
    spec: dict[str, Any] = {
        "account": _account(ex, r),
        "coin": r.text("coin"),
        "network": r.text("network"),
    }
    if (spec["coin"], spec["network"]) not in ex.networks:
        raise ConfigError(
            r.path_of("network"), f"unknown coin/network {spec['coin']}/{spec['network']}"
        )
    spec["address"] = r.text("address")
    spec["addressTag"] = r.opt_text("addressTag") or None
    spec["amount"] = format_amount(r.decimal("amount", positive=True))
    spec["withdrawOrderId"] = r.opt_text("withdrawOrderId")
    spec["debit"] = r.flag("debit", default=True)
    spec["walletType"] = _wallet_type(ex, r, spec["account"])
    for key in ("applied_at_ms", "settle_at_ms"):
        if r.has(key):
            spec[key] = r.integer(key, minimum=0)
    if r.has("status"):
        status = r.integer("status")
        if status not in (3, 5, 6):
            raise ConfigError(
                r.path_of("status"), "must be 6 (completed), 5 (failure) or 3 (rejected)"
            )
        spec["status"] = status
    if r.has("id"):
        spec["id"] = r.text("id")
        if spec["id"] in ex.by_id:
            raise ConfigError(r.path_of("id"), "already used")
    _check_foreign_amount(ex, r, spec)
    return spec


def _check_foreign_amount(ex: Exchange, r: Reader, spec: dict[str, Any]) -> None:
    amount = Decimal(spec["amount"])
    fee = ex.networks[(spec["coin"], spec["network"])].withdraw_fee
    if amount <= fee:
        raise ConfigError(r.path_of("amount"), f"must exceed the network fee ({fee})")
    wallet_balance = ex.accounts[spec["account"]].free_in(spec["walletType"], spec["coin"])
    if spec["debit"] and amount > wallet_balance:
        raise ConfigError(r.path_of("amount"), "more than the wallet's balance")


def _wallet_type(ex: Exchange, r: Reader, account: str) -> int:
    """The foreign withdrawal's wallet: ``walletType`` 0 or 1, else the account's default."""
    if not r.has("walletType"):
        return ex.accounts[account].default_wallet
    wallet_type = r.integer("walletType")
    if wallet_type not in WALLETS.values():
        raise ConfigError(r.path_of("walletType"), "must be 0 (spot) or 1 (funding)")
    return wallet_type


_ACTIONS: dict[str, Callable[[Exchange, object, str], Record]] = {
    "network": network_record,
    "account": account_record,
    "whitelist": whitelist_record,
}


def apply_fault_body(ex: Exchange, body: object, *, include_actions: bool) -> list[str]:
    """Set fault knobs and run actions; all is validated before anything changes.

    Returns:
        The ids of injected foreign withdrawals.
    """
    r = Reader(body, "faults")
    actions = {*_ACTIONS, "inject_foreign_withdrawal"}
    records: list[Record] = []
    foreign: list[dict[str, Any]] = []
    for name in sorted(actions & set(r.fields())):
        raw = r.get(name)
        items = raw if isinstance(raw, list) else [raw]
        for i, item in enumerate(items):
            path = f"faults.{name}[{i}]"
            if name == "inject_foreign_withdrawal":
                foreign.append(foreign_spec(ex, item, path))
            else:
                records.append(_ACTIONS[name](ex, item, path))
    knobs = {k: v for k, v in r.as_dict().items() if k not in actions}
    ex.faults.update(knobs)
    if not include_actions:
        return []
    for record in records:
        ex.commit(record)
    return [ex.new_foreign_withdrawal(spec).id for spec in foreign]


def _account(ex: Exchange, r: Reader) -> str:
    name = r.text("account", default="default")
    if name not in ex.accounts:
        raise ConfigError(r.path_of("account"), f"unknown account {name!r}")
    return name


# -- HTTP ---------------------------------------------------------------------------------

Handler = Callable[["Sandbox", object], dict[str, object]]


def _route(path: str, handler: Handler, methods: list[str]) -> Route:
    async def endpoint(request: Request) -> Response:
        if not _loopback(request):
            return JSONResponse({"error": "the admin API answers loopback clients only"}, 403)
        body: object = {}
        if request.method == "POST":
            raw = await request.body()
            try:
                body = json.loads(raw or b"{}", parse_float=Decimal)
            except json.JSONDecodeError as exc:
                return JSONResponse({"error": f"body is not JSON: {exc}"}, 400)
        try:
            return JSONResponse(handler(request.app.state.sandbox, body))
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, 400)

    return Route(path, endpoint, methods=methods)


def _loopback(request: Request) -> bool:
    return is_loopback(request.client.host if request.client else "")


def _faults(sb: Sandbox, body: object) -> dict[str, object]:
    if body:
        ids = apply_fault_body(sb.exchange, body, include_actions=True)
        return sb.faults.to_json() | ({"injected_ids": ids} if ids else {})
    return sb.faults.to_json()


def _commit(build: Callable[[Exchange, object], Record]) -> Handler:
    def handler(sb: Sandbox, body: object) -> dict[str, object]:
        sb.exchange.commit(build(sb.exchange, body))
        return {"ok": True}

    return handler


def _foreign(sb: Sandbox, body: object) -> dict[str, object]:
    return {"id": sb.exchange.new_foreign_withdrawal(foreign_spec(sb.exchange, body)).id}


def _clock(sb: Sandbox, body: object) -> dict[str, object]:
    if body:
        r = Reader(body, "clock")
        r.check_keys({"advance_ms"})
        sb.exchange.commit({"type": "clock", "advance_ms": r.integer("advance_ms", minimum=0)})
    now = sb.exchange.now_ms()
    return {"now_ms": now, "server_ms": now + sb.faults.clock_skew_ms}


def _ledger(sb: Sandbox, _: object) -> dict[str, object]:
    ex = sb.exchange
    now = ex.now_ms()
    ex.settle(now)
    return {
        "now_ms": now,
        "withdrawals": [w.to_record() | {"status": w.status(now)} for w in ex.withdrawals],
        "apply_requests": [r for r in sb.journal.records if r["type"] == "apply"],
        "balances": {
            name: {coin: format_amount(v) for coin, v in acc.balances.items()}
            for name, acc in ex.accounts.items()
        },
        "funding_balances": {
            name: {coin: format_amount(v) for coin, v in acc.funding_balances.items()}
            for name, acc in ex.accounts.items()
        },
    }


ADMIN_ROUTES = [
    _route("/_sandbox/faults", _faults, ["GET", "POST"]),
    _route("/_sandbox/network", _commit(network_record), ["POST"]),
    _route("/_sandbox/account", _commit(account_record), ["POST"]),
    _route("/_sandbox/whitelist", _commit(whitelist_record), ["POST"]),
    _route("/_sandbox/foreign-withdrawal", _foreign, ["POST"]),
    _route("/_sandbox/clock", _clock, ["GET", "POST"]),
    _route("/_sandbox/ledger", _ledger, ["GET"]),
]
