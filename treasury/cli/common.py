"""What every command shares: the Typer apps, the settings, the operator's name, the exit
codes, known errors as one line, and running a body against the ledger.

The database and service layers are imported where a command needs them, not here:
``treasury --help`` and ``treasury healthcheck`` start without SQLAlchemy or alembic.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import typer

from treasury.cli import output as out
from treasury.config import (
    Settings,
    SettingsError,
    load_settings,
    settings_environment,
    unknown_variables,
)
from treasury.domain.errors import DomainError, InvalidField
from treasury.domain.validation import is_unicode_text, validate_reason
from treasury.ports.store import IdempotencyConflict, NotFound

if TYPE_CHECKING:
    from treasury.adapters.db.ledger import SqlLedger
    from treasury.bootstrap import Runtime
    from treasury.domain.travel_rule import Entity
    from treasury.ports.store import Ledger

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Exactly-once Binance withdrawals from a SQL queue.",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.console.print(f"treasury {version('treasury')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Exactly-once Binance withdrawals from a SQL queue."""


whitelist_app = typer.Typer(
    no_args_is_help=True, help="The local mirror of the exchange whitelist."
)
app.add_typer(whitelist_app, name="whitelist")

T = TypeVar("T")
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_CONFIG = 3
MAX_ID = 2**31 - 1  # ids are INTEGER columns: larger ones cannot exist


def read_settings() -> Settings:
    """The settings, or exit 3 with one line naming each bad variable."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        out.fail(f"configuration: {exc}", EXIT_CONFIG)
    for line in unknown_variables(settings_environment(), settings.account_names[1:]):
        out.warn(line)
    return settings


def served_accounts(settings: Settings) -> tuple[str, ...]:
    """Every account this treasury serves (the environment's, then the accounts file's
    enabled ones), or exit 3 naming what is wrong in the accounts file."""
    from treasury.accounts_file import served_names

    try:
        return served_names(settings)
    except SettingsError as exc:
        out.fail(f"configuration: {exc}", EXIT_CONFIG)


def actor_of(name: str | None) -> str:
    """``cli:<operator>`` from ``--as``, else ``TREASURY_OPERATOR``, else the login name."""
    who = name or os.environ.get("TREASURY_OPERATOR") or getpass.getuser()
    who = who.strip()
    if not who or len(who) > 100 or any(c.isspace() for c in who):
        out.fail("--as: give an operator name without spaces", EXIT_BAD_INPUT)
    if not is_unicode_text(who):
        out.fail("--as: the name is not valid text (a byte that is not UTF-8?)", EXIT_BAD_INPUT)
    return f"cli:{who}"


def validated(fn: Callable[[], T]) -> T:
    """``fn()``, or exit 2 with the field it refused."""
    try:
        return fn()
    except InvalidField as exc:
        out.fail(str(exc), EXIT_BAD_INPUT)


def read_json_file(path: Path, option: str) -> object:
    """The JSON in ``path``, or exit 2 naming ``option`` and where the JSON breaks (the
    file's content is never echoed: it may hold personal data)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        out.fail(f"{option}: cannot read {path}: {reason}", EXIT_BAD_INPUT)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        out.fail(
            f"{option}: {path} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            EXIT_BAD_INPUT,
        )


def local_entity_of(settings: Settings, account: str, given: str | None) -> Entity | None:
    """The local entity whose questionnaire applies to ``account``: ``given`` (``--entity``)
    or the account's setting (``TREASURY_LOCAL_ENTITY``,
    ``TREASURY_ACCOUNT_<NAME>_LOCAL_ENTITY``); None when neither names one.

    Raises:
        InvalidField: ``--entity`` is no modelled entity, or not the account's.
        SettingsError: the account's setting is malformed.
    """
    from treasury.config import account_local_entity
    from treasury.domain.travel_rule import Entity, parse_entity

    configured = account_local_entity(settings, account)
    if given is None:
        return None if configured is None else Entity(configured)
    chosen = parse_entity(given, field_name="--entity")
    if configured is not None and configured != chosen.value:
        raise InvalidField(
            "--entity",
            f"{chosen.value}, but account {account} is under {configured} "
            "(TREASURY_LOCAL_ENTITY / TREASURY_ACCOUNT_<NAME>_LOCAL_ENTITY)",
        )
    return chosen


def reason_of(text: str, *, default: str | None = None) -> str:
    """``--reason``, stripped, or exit 2 naming it: blank is no reason (``default`` if the
    command has one), and it must be text a person can read later."""
    return validated(lambda: validate_reason(text, field="--reason", default=default))


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body, turning known errors into one clear line."""
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    from treasury.policy_file import PolicyError
    from treasury.ports.exchange import ExchangeError
    from treasury.services.admin import Refused

    try:
        return anyio.run(fn)
    except BaseExceptionGroup as group:  # a task group's one failure, wrapped
        sole = _sole(group)
        if sole is None:
            raise
        error: BaseException = sole
    except Exception as exc:
        error = exc
    if isinstance(error, InvalidField):
        out.fail(str(error), EXIT_BAD_INPUT)
    if isinstance(error, UnicodeEncodeError) or isinstance(
        getattr(error, "orig", None), UnicodeEncodeError
    ):
        # a byte in argv that is not UTF-8 reached the database, which refused all of it
        out.fail("an argument is not valid text (a byte that is not UTF-8?)", EXIT_BAD_INPUT)
    if isinstance(error, (Refused, NotFound, IdempotencyConflict, DomainError)):
        out.fail(str(error), EXIT_REFUSED)
    if isinstance(error, SettingsError):
        out.fail(f"configuration: {error}", EXIT_CONFIG)
    if isinstance(error, PolicyError):
        out.fail(f"policy: {error}", EXIT_CONFIG)
    if isinstance(error, ExchangeError):
        out.fail(f"the exchange: {error}", EXIT_REFUSED)
    if isinstance(error, IntegrityError):
        out.fail(f"the database refused the change: {_db_message(error)}", EXIT_REFUSED)
    if isinstance(error, DBAPIError) and _sqlstate(error) == INSUFFICIENT_PRIVILEGE:
        out.fail(
            f"the database refused: {_db_message(error)}: this database login's role may not "
            "do that (README, Database roles)",
            EXIT_REFUSED,
        )
    if isinstance(error, OSError) and error.filename is not None:
        # a file the command had to read (a key, the policy), not the database
        out.fail(f"cannot read {error.filename}: {error.strerror or error}", EXIT_CONFIG)
    if isinstance(error, (OperationalError, DBAPIError, OSError)):
        out.fail(f"database unavailable: {_db_message(error)}", EXIT_CONFIG)
    raise error


INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL: a role's grants do not allow the statement


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error (asyncpg's ``sqlstate``, psycopg's ``pgcode``)."""
    orig = getattr(error, "orig", None)
    for source in (orig, getattr(orig, "__cause__", None)):
        code = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside nested single-member groups, if that is all there is."""
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner


def with_ledger(body: Callable[[Ledger], Awaitable[T]], settings: Settings | None = None) -> T:
    """Open the ledger (refusing a schema that is not at head), run ``body`` on it, close.

    The settings are read here unless given; errors end the command as ``run`` says.
    """
    chosen = read_settings() if settings is None else settings

    async def main() -> T:
        async with _open_ledger(chosen) as ledger:
            return await body(ledger)

    return run(main)


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).splitlines()[0][:300]


@asynccontextmanager
async def _open_ledger(settings: Settings) -> AsyncIterator[SqlLedger]:
    """The process's one engine (``bootstrap.open_ledger``), refused unless at head."""
    from treasury.adapters.db import migrate as migrations
    from treasury.adapters.db.engine import sqlite_path, sync_url
    from treasury.bootstrap import open_ledger

    shown = sync_url(settings.database_url)  # the password hidden
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        # opening it would create an empty file: say which database was looked for
        raise SettingsError(
            f"no database at {path} ({shown}, from TREASURY_DATABASE_URL or its default): "
            "set TREASURY_DATABASE_URL, or run `treasury migrate` to create it"
        )
    async with open_ledger(settings) as ledger:
        current = await migrations.current_revision(ledger.engine)
        head = migrations.head_revision()
        if current != head:
            state = "empty" if current is None else f"at revision {current}"
            raise SettingsError(
                f"the database {shown} is {state}, the code expects {head}: run `treasury migrate`"
            )
        yield ledger


def with_runtime(body: Callable[[Runtime], Awaitable[T]], settings: Settings) -> T:
    """``with_ledger`` for commands that also talk to the exchange: the runtime is built
    on the same engine (one per process)."""

    async def main() -> T:
        from treasury.bootstrap import runtime

        async with _open_ledger(settings) as ledger, runtime(settings, ledger=ledger) as rt:
            return await body(rt)

    return run(main)
