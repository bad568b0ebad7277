"""Settings: environment variables ``TREASURY_*``, a ``.env`` file, and secret files.

Secret files are read from ``/run/secrets`` (docker) and ``$CREDENTIALS_DIRECTORY``
(systemd ``LoadCredential=``) when those exist; a file is named after the variable,
e.g. ``treasury_binance_api_secret``. A bad setting stops start-up with one line per
problem naming the variable; values are never echoed, so a secret cannot leak there.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from treasury.domain.validation import ACCOUNT_RE
from treasury.netaddr import console_base_url, default_console_base_url, is_loopback, parse_bind

ENV_PREFIX = "TREASURY_"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///treasury.sqlite3"
DEFAULT_METRICS_BIND = "127.0.0.1:7464"
HISTORY_LAG_FLOOR_S = 120.0
# Settings that were renamed: set under the old name, they would be silently ignored.
RENAMED = {
    "TREASURY_SETTLE_MARGIN_S": "TREASURY_HISTORY_LAG_ALLOWANCE_S (default 600 s, at least "
    "120 s against a real exchange)",
}


class SettingsError(Exception):
    """One or more settings are missing or wrong; the message names each variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    database_url: str = Field(default=DEFAULT_DATABASE_URL, repr=False)  # may hold a password
    binance_base_url: str = "https://api.binance.com"
    binance_api_key: SecretStr | None = None
    binance_api_secret: SecretStr | None = None
    binance_private_key_file: Path | None = None
    binance_private_key_passphrase: SecretStr | None = None
    withdraw_rate: float = Field(default=1.0, gt=0, le=50)
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    intake_interval_s: float = Field(default=0.5, gt=0, le=60)
    intake_listening_s: float = Field(default=5.0, gt=0, le=60)
    recv_window_ms: int = Field(default=5000, ge=100, le=60000)
    apply_recv_window_ms: int = Field(default=5000, ge=100, le=60000)
    http_timeout_s: float = Field(default=10.0, gt=0, le=120)
    apply_timeout_s: float = Field(default=6.0, gt=0, le=60)
    # Only ever raised against the sandbox (benchmarks): Binance's budgets are fixed.
    exchange_limit_multiplier: float = Field(default=1.0, ge=1.0, le=10000)
    # How many treasury processes send from this host's IP address: each plans on that
    # share of the IP's weight budgets (Binance counts and bans by IP, whichever key).
    ip_shared_by: int = Field(default=1, ge=1, le=1000)
    # How late a withdrawal may still show up in withdraw/history. Binance documents no
    # bound; absence counts only after this (see README: "Why ten minutes").
    history_lag_allowance_s: float = Field(default=600.0, ge=0, le=86400)
    resend: Literal["auto", "manual"] = "auto"
    # The wallet an intent without one debits (the account's default; extra accounts:
    # TREASURY_ACCOUNT_<NAME>_WALLET). Always sent as walletType: Binance's own default is
    # the wallet chosen in the account's settings, which the API does not report.
    wallet: Literal["spot", "funding"] = "spot"
    # Who pays an internal transfer's fee (a destination that is a Binance account; the
    # client cannot know before sending): "recipient" (ours) gets amount - fee, so every
    # withdrawal takes exactly its amount, as on chain; "sender" (Binance's default) is
    # debited amount + fee. Always sent as transactionFeeFlag (extra accounts:
    # TREASURY_ACCOUNT_<NAME>_INTERNAL_FEE_PAYER, else this).
    internal_fee_payer: Literal["sender", "recipient"] = "recipient"
    # The Binance local entity the account is held under, when it enforces the travel rule
    # (JP or EU; extra accounts: TREASURY_ACCOUNT_<NAME>_LOCAL_ENTITY, else this): every
    # withdrawal then needs a questionnaire, checked locally against that entity's form.
    local_entity: Literal["JP", "EU"] | None = None
    sweep_interval_s: float = Field(default=300.0, gt=0, le=86400)
    exchange_unreachable_alert_s: float = Field(default=300.0, gt=0, le=86400)
    reconcile_interval_s: float = Field(default=10.0, gt=0, le=3600)
    reconcile_give_up_s: float = Field(default=3600.0, gt=0)
    hold_backoff_s: float = Field(default=30.0, gt=0, le=3600)
    max_hold_s: float = Field(default=86400.0, gt=0)
    max_settle_age_s: float = Field(default=86400.0, gt=0)
    rules_ttl_s: float = Field(default=300.0, gt=0)
    account: str = "default"
    # More accounts served by the same daemon, comma-separated (e.g. "sub1,sub2"); each
    # reads TREASURY_ACCOUNT_<NAME>_API_KEY and _API_SECRET or _PRIVATE_KEY_FILE.
    extra_accounts: str = ""
    worker_id: str | None = None
    policy_file: Path | None = None
    # more accounts, from a TOML file re-read every accounts_reload_s and on SIGHUP
    accounts_file: Path | None = None
    accounts_reload_s: float = Field(default=10.0, gt=0, le=3600)
    allow_unrestricted_ip_key: bool = False
    whitelist_sync_interval_s: float = Field(default=0, ge=0, le=86400)
    # `run` started while the exchange is down or in maintenance: how often it checks again
    preflight_retry_s: float = Field(default=15.0, gt=0, le=600)
    # a hand-added (or unverified) address-book entry is usable this long after it was added
    manual_whitelist_cooling_s: float = Field(default=86400, ge=0, le=365 * 86400)
    lease_ttl_s: float = Field(default=15.0, ge=2, le=600)
    shutdown_grace_s: float = Field(default=8.0, gt=0, le=60)
    metrics_bind: str | None = DEFAULT_METRICS_BIND  # "off" disables; loopback unless explicit
    # `treasury api`: HOST:PORT of the HTTP API for bots (loopback unless --allow-remote)
    api_bind: str = "127.0.0.1:7465"
    # the console's URL as the browser opens it: the passkeys' origin and relying party
    # (default http://localhost:<port of api_bind>)
    console_base_url: str | None = None
    alert_webhook_url: str | None = None
    alert_format: Literal["json", "slack", "telegram"] = "json"
    alert_telegram_chat_id: str | None = None
    # webhooks (migration 0016): the key the subscriptions' signing secrets derive from
    webhook_key: SecretStr | None = None
    webhook_max_retry_s: float = Field(default=86400.0, gt=0, le=30 * 86400)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_poll_s: float = Field(default=1.0, gt=0, le=60)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def account_names(self) -> tuple[str, ...]:
        """``TREASURY_ACCOUNT``, then ``TREASURY_EXTRA_ACCOUNTS`` as written (in order)."""
        extra = (a.strip() for a in self.extra_accounts.split(","))
        return (self.account, *(a for a in extra if a))

    @field_validator("local_entity", mode="before")
    @classmethod
    def _local_entity(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().upper() or None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from treasury.adapters.db.engine import UnsupportedDatabase, normalize_url

        try:
            normalize_url(value)
        except UnsupportedDatabase as exc:
            raise ValueError(str(exc)) from None
        except Exception as exc:  # sqlalchemy raises several kinds; they may quote the URL
            raise ValueError(
                f"not a database URL ({type(exc).__name__}): expected sqlite:///PATH or "
                "postgresql://USER@HOST/DB"
            ) from None
        return value

    @field_validator("binance_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username or parts.password or not parts.hostname:
            raise ValueError("must be a plain https:// URL with a host and no credentials")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("plain http is allowed only for a loopback sandbox; use https://")
        if parts.scheme not in ("https", "http"):
            raise ValueError("must be https:// (plain http only for a loopback sandbox)")
        return value.rstrip("/")

    @field_validator("metrics_bind")
    @classmethod
    def _metrics_bind(cls, value: str | None) -> str | None:
        parse_bind(value)  # its ValueError names the problem (the value is not secret)
        return value

    @field_validator("api_bind")
    @classmethod
    def _api_bind(cls, value: str) -> str:
        if parse_bind(value, "API bind") is None:
            raise ValueError("the API's bind cannot be off: give HOST:PORT")
        return value

    @field_validator("console_base_url")
    @classmethod
    def _console_base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return console_base_url(value)

    @property
    def console_base(self) -> str:
        """The console's base URL: ``TREASURY_CONSOLE_BASE_URL`` or the loopback default."""
        return self.console_base_url or default_console_base_url(self.api_bind)

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            # not echoed: a webhook URL often carries its token
            raise ValueError("must be an https:// URL with a host")
        return value.strip()

    @field_validator("binance_private_key_file")
    @classmethod
    def _key_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("file does not exist or is not a regular file")
        return value

    @model_validator(mode="after")
    def _lag_allowance_floor(self) -> Settings:
        host = urlsplit(self.binance_base_url).hostname or ""
        if self.history_lag_allowance_s < HISTORY_LAG_FLOOR_S and not is_loopback(host):
            raise ValueError(
                f"TREASURY_HISTORY_LAG_ALLOWANCE_S must be at least {HISTORY_LAG_FLOOR_S:.0f} s "
                "against a real exchange (Binance documents no bound on how late history "
                "shows a withdrawal); lower values are for the loopback sandbox only"
            )
        return self

    @model_validator(mode="after")
    def _one_signing_method(self) -> Settings:
        if self.binance_api_secret is not None and self.binance_private_key_file is not None:
            raise ValueError(
                "set either TREASURY_BINANCE_API_SECRET or TREASURY_BINANCE_PRIVATE_KEY_FILE, "
                "not both"
            )
        return self

    def require_webhook_key(self) -> str:
        """``TREASURY_WEBHOOK_KEY``, registered as a secret.

        Raises:
            SettingsError: it is unset or too short to be a key.
        """
        from treasury.logs import register_secret

        key = self.webhook_key.get_secret_value() if self.webhook_key is not None else ""
        if len(key) < 32:
            raise SettingsError(
                "TREASURY_WEBHOOK_KEY: set it to a random key of at least 32 characters "
                "(e.g. `openssl rand -hex 32`); webhook signing secrets are derived from it"
            )
        register_secret(key)
        return key

    def require_exchange_credentials(self) -> None:
        """Raise SettingsError unless an API key and one signing method are configured."""
        missing = []
        if self.binance_api_key is None:
            missing.append(f"{ENV_PREFIX}BINANCE_API_KEY: missing")
        if self.binance_api_secret is None and self.binance_private_key_file is None:
            missing.append(
                f"{ENV_PREFIX}BINANCE_API_SECRET or {ENV_PREFIX}BINANCE_PRIVATE_KEY_FILE: missing"
            )
        if missing:
            raise SettingsError("; ".join(missing))


class _MetricsBindOnly(BaseSettings):
    model_config = Settings.model_config

    metrics_bind: str | None = DEFAULT_METRICS_BIND


def load_metrics_bind() -> str | None:
    """``TREASURY_METRICS_BIND`` alone, read from the same places as the settings but
    without checking the others: a health probe needs no database URL or credentials.

    Raises:
        SettingsError: the value cannot be read as text.
    """
    try:
        return _MetricsBindOnly(_secrets_dir=_secret_dirs() or None).metrics_bind
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


@dataclass(frozen=True)
class AccountCredentials:
    name: str
    api_key: SecretStr
    api_secret: SecretStr | None
    private_key_file: Path | None
    passphrase: SecretStr | None
    wallet: str = "spot"  # the default wallet of this account's intents
    internal_fee_payer: str = "recipient"  # who pays an internal transfer's fee
    local_entity: str | None = None  # JP or EU: the travel rule's questionnaire applies
    withdraw_rate: float | None = None  # sends/s of this account (None: TREASURY_WITHDRAW_RATE)


def account_variable(name: str, key: str) -> str:
    """``TREASURY_ACCOUNT_<NAME>_<KEY>``: the name upper-cased, ``-`` and ``.`` as ``_``."""
    return f"{ENV_PREFIX}ACCOUNT_{name.upper().replace('-', '_').replace('.', '_')}_{key}"


def _account_value(name: str, key: str) -> str | None:
    """TREASURY_ACCOUNT_<NAME>_<KEY> from the environment, else from a secret file."""
    var = account_variable(name, key)
    if var in os.environ:
        return os.environ[var]
    for directory in _secret_dirs():
        path = directory / var.lower()
        if path.is_file():
            return path.read_text().strip()
    return None


def account_credentials(settings: Settings, *, with_file: bool = True) -> list[AccountCredentials]:
    """The accounts this daemon serves and their keys; the first is ``account``, then
    ``TREASURY_EXTRA_ACCOUNTS``, then the enabled accounts of ``TREASURY_ACCOUNTS_FILE``.

    Raises:
        SettingsError: a named account lacks its key or signing method, or the accounts
            file is wrong.
    """
    env = env_credentials(settings)
    if not with_file:
        return env
    from treasury.accounts_file import file_credentials

    return [*env, *file_credentials(settings)]


def env_credentials(settings: Settings) -> list[AccountCredentials]:
    """The accounts of the environment (``TREASURY_ACCOUNT``, ``TREASURY_EXTRA_ACCOUNTS``)."""
    settings.require_exchange_credentials()
    assert settings.binance_api_key is not None
    result = [
        AccountCredentials(
            settings.account,
            settings.binance_api_key,
            settings.binance_api_secret,
            settings.binance_private_key_file,
            settings.binance_private_key_passphrase,
            settings.wallet,
            settings.internal_fee_payer,
            settings.local_entity,
        )
    ]
    for name in settings.account_names[1:]:
        if not ACCOUNT_RE.match(name):
            raise SettingsError(f"{ENV_PREFIX}EXTRA_ACCOUNTS: {name!r} is not a valid name")
        if name in (c.name for c in result):
            raise SettingsError(f"{ENV_PREFIX}EXTRA_ACCOUNTS: {name!r} is listed twice")
        prefix = account_variable(name, "").removesuffix("_")
        key = _account_value(name, "API_KEY")
        secret = _account_value(name, "API_SECRET")
        key_file = _account_value(name, "PRIVATE_KEY_FILE")
        passphrase = _account_value(name, "PRIVATE_KEY_PASSPHRASE")
        if not key:
            raise SettingsError(f"{prefix}_API_KEY: missing")
        if bool(secret) == bool(key_file):
            raise SettingsError(
                f"{prefix}_API_SECRET or {prefix}_PRIVATE_KEY_FILE: set exactly one"
            )
        if key_file and not Path(key_file).is_file():
            raise SettingsError(f"{prefix}_PRIVATE_KEY_FILE: file does not exist")
        wallet = _account_value(name, "WALLET") or settings.wallet
        if wallet not in ("spot", "funding"):
            raise SettingsError(f"{prefix}_WALLET: {wallet!r} is not a wallet: use spot or funding")
        payer = _account_value(name, "INTERNAL_FEE_PAYER") or settings.internal_fee_payer
        if payer not in ("sender", "recipient"):
            raise SettingsError(
                f"{account_variable(name, 'INTERNAL_FEE_PAYER')}: {payer!r} is not a fee "
                "payer: use sender or recipient"
            )
        result.append(
            AccountCredentials(
                name,
                SecretStr(key),
                SecretStr(secret) if secret else None,
                Path(key_file) if key_file else None,
                SecretStr(passphrase) if passphrase else None,
                wallet,
                payer,
                account_local_entity(settings, name),
            )
        )
    return result


def account_local_entity(settings: Settings, name: str) -> str | None:
    """The local entity ``name`` is held under (``JP``, ``EU``), or None: the primary
    account's is ``TREASURY_LOCAL_ENTITY``; another's is
    ``TREASURY_ACCOUNT_<NAME>_LOCAL_ENTITY``, else ``TREASURY_LOCAL_ENTITY``. Needs no
    exchange credentials (the address book's commands read it).

    Raises:
        SettingsError: the account's variable names no modelled entity.
    """
    if name == settings.account:
        return settings.local_entity
    if name not in settings.account_names:
        from treasury.accounts_file import read_accounts_file

        found = [a for a in read_accounts_file(settings, keys=False) if a.name == name]
        return found[0].local_entity if found else None
    value = (_account_value(name, "LOCAL_ENTITY") or "").strip().upper()
    if not value:
        return settings.local_entity
    if value not in ("JP", "EU"):
        raise SettingsError(
            f"{account_variable(name, 'LOCAL_ENTITY')}: {value!r} is not a modelled local "
            "entity: use JP or EU"
        )
    return value


def _secret_dirs() -> list[Path]:
    dirs = [Path("/run/secrets")]
    cred = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred:
        dirs.append(Path(cred))
    return [d for d in dirs if d.is_dir()]


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(p) for p in err["loc"] if p != "__root__"]
        name = f"{ENV_PREFIX}{loc[0].upper()}" if loc else "settings"
        msg = err["msg"].removeprefix("Value error, ")
        # a check across settings names its variables itself
        lines.append(msg if not loc and msg.startswith(ENV_PREFIX) else f"{name}: {msg}")
    return "; ".join(lines)


# TREASURY_* variables that are not settings but are read elsewhere (the CLI's operator
# name; the test suite's and the torture run's own switches).
NOT_SETTINGS = frozenset(
    {
        "TREASURY_OPERATOR",
        "TREASURY_TEST_POSTGRES_URL",
        "TREASURY_REQUIRE_POSTGRES",
        "TREASURY_TORTURE_ROUNDS",
        "TREASURY_TORTURE_SEED",
        "TREASURY_REQUIRE_BROWSER",
        "TREASURY_REFRESH_DOCS",
        "TREASURY_AXE_SCRIPT",
    }
)
ACCOUNT_KEYS = (
    "API_KEY",
    "API_SECRET",
    "PRIVATE_KEY_FILE",
    "PRIVATE_KEY_PASSPHRASE",
    "WALLET",
    "INTERNAL_FEE_PAYER",
    "LOCAL_ENTITY",
)


def unknown_variables(environ: Mapping[str, str], accounts: Sequence[str] = ()) -> list[str]:
    """One warning per ``TREASURY_*`` variable that nothing reads, with the closest known
    name: a misspelt setting is otherwise silently ignored (its default applies)."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    known |= {account_variable(a, k) for a in accounts for k in ACCOUNT_KEYS}
    warnings = []
    for var in sorted(environ):
        name = var.upper()
        if not name.startswith(ENV_PREFIX) or name in known or name in RENAMED:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        if name.startswith(f"{ENV_PREFIX}ACCOUNT_") and name.endswith(ACCOUNT_KEYS):
            hint = f"an account's variables need the account in {ENV_PREFIX}EXTRA_ACCOUNTS"
        elif close:
            hint = f"did you mean {close[0]}?"
        else:
            hint = "no setting has this name"
        warnings.append(f"{var} is ignored: {hint}")
    return warnings


def settings_environment() -> dict[str, str]:
    """The variables settings are read from: ``.env`` in the working directory (as
    pydantic-settings reads it), overridden by the process environment."""
    from dotenv import dotenv_values

    found = {k: v or "" for k, v in dotenv_values(".env").items()} if Path(".env").is_file() else {}
    return found | dict(os.environ)


SECRET_SUFFIXES = ("API_SECRET", "API_KEY", "PRIVATE_KEY_PASSPHRASE", "WEBHOOK_KEY")
MASK = "[secret]"


def mask_secrets(message: str, environ: Mapping[str, str]) -> str:
    """``message`` with every secret variable's value replaced by ``[secret]``, and every
    secret part of a URL variable (a password, an alert webhook's path).

    A message quotes what was wrong with a plain setting (a bind, a URL's shape). If an
    operator pasted a key into that setting, the quote would show the key: whatever a
    message says, no secret's value leaves in it. Values under 8 characters are no key
    and are left, so that masking never garbles an ordinary message.
    """
    values = set()
    for name, value in environ.items():
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        if upper.endswith(SECRET_SUFFIXES):
            values.add(value)
        elif upper.endswith("_URL"):
            values.update(_url_secrets(value, whole=upper.endswith("WEBHOOK_URL")))
    for value in sorted((v for v in values if len(v) >= 8), key=len, reverse=True):
        message = message.replace(value, MASK)
    return message


def _url_secrets(url: str, *, whole: bool) -> set[str]:
    """The secret parts of a URL variable: its password (a database URL's), and for an
    alert webhook (Slack's and Telegram's carry their token in the path) the URL itself
    and each part of its path and query."""
    # the userinfo ends at the last "@" (urlsplit ends it at the first "/", and a password
    # may hold one), the password at its first ":"
    userinfo = url.partition("://")[2].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    found = {password, unquote(password)} if password else set()
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL at all: nothing more to take apart
        return found | ({url} if whole else set())
    if whole:
        found.add(url)
        segments = [p for p in parts.path.split("/") if p]
        found.update(segments)
        found.update(p.removeprefix("bot") for p in segments)  # Telegram: /bot<TOKEN>/…
        found.update(v for pair in parts.query.split("&") for v in pair.split("=") if v)
    return found


def load_settings(**overrides: object) -> Settings:
    """Read the settings, or raise SettingsError with one clear line naming each problem."""
    renamed = [f"{old}: renamed to {new}" for old, new in RENAMED.items() if old in os.environ]
    if renamed:
        raise SettingsError("; ".join(renamed))
    try:
        return Settings(_secrets_dir=_secret_dirs() or None, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(mask_secrets(_describe(exc), settings_environment())) from None
