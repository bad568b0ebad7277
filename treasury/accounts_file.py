"""The accounts file (``TREASURY_ACCOUNTS_FILE``): more accounts for ``treasury run``.

A TOML file with one table per account::

    [accounts.desk-a]
    api_key_file = "/run/secrets/desk-a.key"        # or api_key_env = "DESK_A_KEY"
    api_secret_file = "/run/secrets/desk-a.secret"  # or api_secret_env, or
    # private_key_file = "..." (+ passphrase_file or passphrase_env)
    wallet = "spot"              # optional (default TREASURY_WALLET)
    internal_fee_payer = "recipient"  # optional (default TREASURY_INTERNAL_FEE_PAYER)
    rate = 1.0                   # optional, sends/s (default TREASURY_WITHDRAW_RATE)
    enabled = true               # optional
    local_entity = "EU"          # optional (JP or EU)

The file holds *references* to the keys (files, or names of environment variables),
never a key: the keys are read from there at each (re)load and never written anywhere.
A relative file path is relative to the accounts file's folder. The file adds to the
accounts of the environment (``TREASURY_ACCOUNT``, ``TREASURY_EXTRA_ACCOUNTS``); a name
given by both is refused. Every error names the file, the account and the key.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from treasury.config import AccountCredentials, Settings, SettingsError
from treasury.domain.validation import ACCOUNT_RE

KEYS = frozenset(
    {
        "api_key_file",
        "api_key_env",
        "api_secret_file",
        "api_secret_env",
        "private_key_file",
        "passphrase_file",
        "passphrase_env",
        "wallet",
        "internal_fee_payer",
        "rate",
        "enabled",
        "local_entity",
    }
)
MAX_RATE = 50.0  # as TREASURY_WITHDRAW_RATE


@dataclass(frozen=True)
class FileAccount:
    """One account of the file; ``credentials`` is None when it is disabled (a disabled
    account's key files need not exist)."""

    name: str
    enabled: bool
    local_entity: str | None
    credentials: AccountCredentials | None = field(repr=False)


def read_accounts_file(
    settings: Settings, path: Path | None = None, *, keys: bool = True
) -> list[FileAccount]:
    """The accounts of ``path`` (default ``TREASURY_ACCOUNTS_FILE``; none if unset),
    validated, with the enabled accounts' keys read (``keys=False``: not read, and
    ``credentials`` is None: for a command that needs only the accounts' settings).

    Raises:
        SettingsError: the file cannot be read, is not TOML, or an account is wrong
            (the message names the account and the key).
    """
    path = path or settings.accounts_file
    if path is None:
        return []
    where = f"TREASURY_ACCOUNTS_FILE ({path})"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{where}: file not found") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{where}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"accounts"})
    if unknown:
        raise SettingsError(f"{where}: unknown table or key {unknown[0]!r}: only [accounts.NAME]")
    tables = data.get("accounts", {})
    if not isinstance(tables, dict):
        raise SettingsError(f"{where}: 'accounts' must be tables: [accounts.NAME]")
    env_names = set(settings.account_names)
    result = []
    for name, table in tables.items():
        what = f"{where}: account {name!r}"
        if not ACCOUNT_RE.match(name):
            raise SettingsError(f"{what}: not a valid account name")
        if name in env_names:
            raise SettingsError(
                f"{what}: also given by the environment (TREASURY_ACCOUNT or "
                "TREASURY_EXTRA_ACCOUNTS): name each account in one place"
            )
        if not isinstance(table, dict):
            raise SettingsError(f"{what}: must be a table [accounts.{name}]")
        result.append(_account(settings, path, what, name, table, keys=keys))
    # TOML itself refuses a table defined twice: duplicate names cannot get here
    return result


def _account(
    settings: Settings, path: Path, what: str, name: str, table: dict[str, object], *, keys: bool
) -> FileAccount:
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise SettingsError(
            f"{what}: unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})"
        )

    def text(key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{what}: {key} must be a non-empty string")
        return value.strip()

    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SettingsError(f"{what}: enabled must be true or false")
    wallet = text("wallet") or settings.wallet
    if wallet not in ("spot", "funding"):
        raise SettingsError(f"{what}: wallet {wallet!r} is not a wallet: use spot or funding")
    payer = text("internal_fee_payer") or settings.internal_fee_payer
    if payer not in ("sender", "recipient"):
        raise SettingsError(
            f"{what}: internal_fee_payer {payer!r} is not a fee payer: use sender or recipient"
        )
    entity = (text("local_entity") or "").upper() or settings.local_entity
    if entity not in (None, "JP", "EU"):
        raise SettingsError(
            f"{what}: local_entity {entity!r} is not a modelled local entity: use JP or EU"
        )
    rate = table.get("rate")
    if rate is not None and (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or not 0 < rate <= MAX_RATE
    ):
        raise SettingsError(f"{what}: rate must be a number of sends/s in (0, {MAX_RATE:g}]")
    for a, b in (
        ("api_key_file", "api_key_env"),
        ("api_secret_file", "api_secret_env"),
        ("passphrase_file", "passphrase_env"),
    ):
        if a in table and b in table:
            raise SettingsError(f"{what}: set {a} or {b}, not both")
    if "api_key_file" not in table and "api_key_env" not in table:
        raise SettingsError(f"{what}: api_key_file (or api_key_env) is missing")
    secret_kinds = [
        k for k in ("api_secret_file", "api_secret_env", "private_key_file") if k in table
    ]
    if len(secret_kinds) != 1:
        raise SettingsError(
            f"{what}: set exactly one of api_secret_file, api_secret_env, private_key_file"
        )
    if "private_key_file" not in table and (
        "passphrase_file" in table or "passphrase_env" in table
    ):
        raise SettingsError(f"{what}: a passphrase goes with private_key_file only")
    # the references are checked even when disabled; the keys are read only when enabled
    refs = {k: text(k) for k in KEYS if k.endswith(("_file", "_env")) and k in table}
    if not enabled or not keys:
        return FileAccount(name, enabled, entity, None)

    def file_path(key: str) -> Path:
        ref = refs[key]
        assert ref is not None
        p = Path(ref).expanduser()
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise SettingsError(f"{what}: {key}: {p} does not exist or is not a regular file")
        return p

    def secret(file_key: str, env_key: str) -> SecretStr | None:
        if file_key in refs:
            try:
                value = file_path(file_key).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"{what}: {file_key}: cannot read ({exc})") from None
            if not value:
                raise SettingsError(f"{what}: {file_key}: the file is empty")
            return SecretStr(value)
        if env_key in refs:
            var = refs[env_key]
            assert var is not None
            value = os.environ.get(var, "").strip()
            if not value:
                raise SettingsError(f"{what}: {env_key}: variable {var} is unset or empty")
            return SecretStr(value)
        return None

    api_key = secret("api_key_file", "api_key_env")
    assert api_key is not None
    creds = AccountCredentials(
        name=name,
        api_key=api_key,
        api_secret=secret("api_secret_file", "api_secret_env"),
        private_key_file=file_path("private_key_file") if "private_key_file" in refs else None,
        passphrase=secret("passphrase_file", "passphrase_env"),
        wallet=wallet,
        internal_fee_payer=payer,
        local_entity=entity,
        withdraw_rate=float(rate) if rate is not None else None,
    )
    return FileAccount(name, True, entity, creds)


def file_credentials(settings: Settings) -> list[AccountCredentials]:
    """The enabled accounts of the accounts file, in the file's order."""
    return [a.credentials for a in read_accounts_file(settings) if a.credentials is not None]


def served_names(settings: Settings) -> tuple[str, ...]:
    """Every account this treasury serves: the environment's (``TREASURY_ACCOUNT``,
    ``TREASURY_EXTRA_ACCOUNTS``), then the accounts file's enabled ones (no key read).

    Raises:
        SettingsError: the accounts file is wrong (named).
    """
    listed = read_accounts_file(settings, keys=False)
    return (*settings.account_names, *(a.name for a in listed if a.enabled))
