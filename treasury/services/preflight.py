"""Key posture and readiness checks: ``treasury check``, and ``treasury run`` at start.

Each check is a line of a checklist. A failure an operator must fix (the database, the
key and its posture, a refusal by the exchange) stops ``run``. A failure that is the
exchange's passing state (unreachable, overloaded, in maintenance, the account not
allowed to withdraw for now, the day's quota used) ``waits``: ``run`` starts, reports
not ready with the reason, sends nothing, and checks again until everything passes. A
withdraw-enabled key without an IP restriction is refused unless the operator explicitly
allows it: such a key, once leaked, can empty the account from anywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from treasury.domain import rules
from treasury.domain.money import format_amount
from treasury.domain.travel_rule import entity_of_exchange_code, travel_rule_mismatch
from treasury.ports.exchange import Exchange, ExchangeError, Reason

MAX_OFFSET_MS = 1000
# An exchange that did not answer, or answered that it is busy: it clears by itself.
UNAVAILABLE = frozenset(
    {
        Reason.CONNECT_FAILED,
        Reason.TIMEOUT,
        Reason.DISCONNECTED,
        Reason.RATE_LIMITED,
        Reason.IP_BANNED,
        Reason.SERVER_ERROR,
    }
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False
    waits: bool = False  # a failure that clears by itself: ``run`` starts and waits


def unavailable(exc: ExchangeError) -> bool:
    return exc.reason in UNAVAILABLE


def may_start(checks: list[Check]) -> bool:
    """True when every failure is one to wait out (nothing an operator must fix)."""
    return all(c.ok or c.waits for c in checks)


def failing(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]


# The database's schema revision and the one the code expects (the composition root
# passes ``treasury.adapters.db.migrate.revisions``).
SchemaProbe = Callable[[], Awaitable[tuple[str | None, str]]]


async def run_checks(
    exchange: Exchange,
    *,
    schema: SchemaProbe | None,
    allow_unrestricted_ip: bool,
    exchange_without_database: bool = True,
    local_entity: str | None = None,
) -> list[Check]:
    """The preflight, in order. With ``exchange_without_database`` false (the daemon's
    start), a database that fails ends it there: the exchange is not asked anything.
    Without ``schema`` (a second account of the same process) only the exchange's checks
    run. ``local_entity``: the account's configured one (``JP``, ``EU``), checked against
    what the exchange says; a disagreement stops the start."""
    results: list[Check] = []
    if schema is not None:
        try:
            current, head = await schema()
            results.append(
                Check(
                    "database",
                    current == head,
                    f"at revision {current}, code expects {head}"
                    if current != head
                    else f"reachable, migrated ({head})",
                )
            )
        except Exception as exc:  # any driver error: unreachable or unusable
            results.append(Check("database", False, f"unreachable: {type(exc).__name__}: {exc}"))
        if not results[0].ok and not exchange_without_database:
            return results
    try:
        await exchange.sync_clock()
        offset = getattr(exchange, "clock_offset_ms", 0.0)
        results.append(
            Check(
                "clock", abs(offset) < MAX_OFFSET_MS * 5, f"offset to the exchange {offset:+.0f} ms"
            )
        )
    except ExchangeError as exc:
        results.append(
            Check("clock", False, f"cannot read the exchange's time: {exc}", waits=unavailable(exc))
        )
        return results
    try:
        account = await exchange.account()
        results.append(Check("api key", True, "valid (account readable)"))
    except ExchangeError as exc:
        said = "no answer" if unavailable(exc) else "refused"
        results.append(Check("api key", False, f"{said}: {exc}", waits=unavailable(exc)))
        return results
    try:
        r = await exchange.api_restrictions()
        results.append(
            Check(
                "withdraw permission",
                r.enable_withdrawals,
                "enableWithdrawals is on"
                if r.enable_withdrawals
                else "enableWithdrawals is off for this key",
            )
        )
        if r.ip_restrict:
            results.append(Check("ip restriction", True, "the key is restricted to trusted IPs"))
        elif allow_unrestricted_ip:
            results.append(
                Check(
                    "ip restriction",
                    True,
                    "NOT restricted to IPs — allowed by "
                    "TREASURY_ALLOW_UNRESTRICTED_IP_KEY; a leaked key can withdraw "
                    "from anywhere",
                    warning=True,
                )
            )
        else:
            results.append(
                Check(
                    "ip restriction",
                    False,
                    "a withdraw-enabled key without an IP "
                    "restriction is refused (set TREASURY_ALLOW_UNRESTRICTED_IP_KEY="
                    "true to override)",
                )
            )
        if r.trading_authority_expiration_time:
            # tradingAuthorityExpirationTime is the end of the key's spot/margin trading
            # permission, not of the key and not of withdrawals
            when = datetime.fromtimestamp(r.trading_authority_expiration_time / 1000, UTC)
            results.append(
                Check(
                    "trading permission",
                    True,
                    f"the key's trading permission ends {when:%Y-%m-%d %H:%M} UTC "
                    "(withdrawals do not depend on it)",
                )
            )
    except ExchangeError as exc:
        results.append(
            Check(
                "withdraw permission",
                False,
                f"cannot read key permissions: {exc}",
                waits=unavailable(exc),
            )
        )
    results.append(
        Check(
            "canWithdraw",
            account.can_withdraw,
            "the account may withdraw"
            if account.can_withdraw
            else "canWithdraw is false (the exchange does not let the account withdraw now)",
            waits=True,
        )
    )
    try:
        text = await exchange.account_status()
        normal = rules.account_status_normal(text)
        results.append(
            Check(
                "account status",
                True,
                "Normal"
                if normal
                else f"{text!r}: sending is held until the exchange reports Normal",
                warning=not normal,
            )
        )
    except ExchangeError as exc:
        results.append(
            Check("account status", False, f"unavailable: {exc}", waits=unavailable(exc))
        )
    try:
        entity = await exchange.travel_rule_requirement()
        mismatch = travel_rule_mismatch(entity, local_entity)
        if mismatch is not None:
            results.append(Check("travel rule", entity is None, mismatch, warning=entity is None))
        else:
            results.append(_travel_rule_check(entity))
    except ExchangeError as exc:
        # nothing is sent while it is unknown which endpoint the account must use
        results.append(Check("travel rule", False, f"cannot be read: {exc}", waits=True))
    try:
        status = await exchange.system_status()
        results.append(
            Check(
                "system status",
                status.normal,
                "normal" if status.normal else f"maintenance ({status.message})",
                waits=True,
            )
        )
    except ExchangeError as exc:
        results.append(Check("system status", False, f"unavailable: {exc}", waits=unavailable(exc)))
    try:
        quota = await exchange.withdraw_quota()
        results.append(
            Check(
                "withdraw quota",
                quota.remaining > 0,
                f"{format_amount(quota.remaining)} USD of "
                f"{format_amount(quota.quota)} left in 24 h",
                waits=True,
            )
        )
    except ExchangeError as exc:
        results.append(
            Check("withdraw quota", False, f"unavailable: {exc}", waits=unavailable(exc))
        )
    return results


async def run_all_checks(
    accounts: Sequence[tuple[str, Exchange]],
    *,
    schema: SchemaProbe,
    allow_unrestricted_ip: bool,
    exchange_without_database: bool = True,
    local_entities: Mapping[str, str | None] | None = None,
) -> list[Check]:
    """The preflight of every account served, the first (primary) in full, then each
    other account's exchange checks named after it: a second account's key is held to
    the same rules as the first's. With ``exchange_without_database`` false, a failing
    database ends it before any exchange is asked."""
    entities = local_entities or {}
    (first, primary), *others = accounts
    checks = await run_checks(
        primary,
        schema=schema,
        allow_unrestricted_ip=allow_unrestricted_ip,
        exchange_without_database=exchange_without_database,
        local_entity=entities.get(first),
    )
    if not exchange_without_database and not all(c.ok for c in checks if c.name == "database"):
        return checks
    for name, exchange in others:
        more = await run_checks(
            exchange,
            schema=None,
            allow_unrestricted_ip=allow_unrestricted_ip,
            local_entity=entities.get(name),
        )
        checks += [replace(c, name=f"account {name}: {c.name}") for c in more]
    return checks


def _travel_rule_check(code: str | None) -> Check:
    """What ``questionnaire-requirements`` answered, as the checklist says it."""
    if code is None:
        return Check("travel rule", True, "no questionnaire needed (capital/withdraw/apply)")
    entity = entity_of_exchange_code(code)
    if entity is None:
        return Check(
            "travel rule",
            True,
            f"the account is under Binance's local entity {code}, whose questionnaire this "
            "version does not model: its intents wait (README, travel rule)",
            warning=True,
        )
    return Check(
        "travel rule",
        True,
        f"the account is under Binance's local entity {code} (the {entity.value} "
        "questionnaire): withdrawals go through localentity/withdraw/apply with each "
        "destination's travel-rule profile (README, travel rule)",
    )
