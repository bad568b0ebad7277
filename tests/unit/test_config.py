"""Settings: defaults, one clear line per bad variable, secret files, .env, and no leaks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr
from typer.testing import CliRunner

from treasury.cli import app
from treasury.config import DEFAULT_DATABASE_URL, Settings, SettingsError, load_settings
from treasury.logs import _RedactingFormatter

SECRET = "s3cr3t-VALUE-for-tests-7f6e5d4c3b2a"
API_KEY = "apikey-VALUE-for-tests-0a1b2c3d4e5f"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No .env of the developer's checkout, and logging restored after CLI runs."""
    monkeypatch.chdir(tmp_path)
    saved = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    yield
    root.handlers[:] = [
        h for h in root.handlers if not isinstance(h.formatter, _RedactingFormatter)
    ]
    root.setLevel(level)
    structlog.configure(**saved)


@pytest.fixture
def with_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREASURY_BINANCE_API_SECRET", SECRET)
    monkeypatch.setenv("TREASURY_BINANCE_API_KEY", API_KEY)


def test_defaults() -> None:
    s = load_settings()
    assert s.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///treasury.sqlite3"
    assert s.binance_base_url == "https://api.binance.com"
    assert s.binance_api_key is None and s.binance_api_secret is None
    assert s.binance_private_key_file is None
    assert s.withdraw_rate == 1.0
    assert s.recv_window_ms == 5000
    assert s.account == "default"
    assert s.allow_unrestricted_ip_key is False
    assert s.log_format == "auto" and s.log_level == "info"
    with pytest.raises(SettingsError, match="TREASURY_BINANCE_API_KEY: missing"):
        s.require_exchange_credentials()


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREASURY_WITHDRAW_RATE", "2.5")
    monkeypatch.setenv("TREASURY_RECV_WINDOW_MS", "60000")
    monkeypatch.setenv("TREASURY_DATABASE_URL", "postgresql://u@db/treasury")
    monkeypatch.setenv("TREASURY_BINANCE_BASE_URL", "http://127.0.0.1:8080/")
    s = load_settings()
    assert s.withdraw_rate == 2.5 and s.recv_window_ms == 60000
    assert s.database_url == "postgresql://u@db/treasury"
    assert s.binance_base_url == "http://127.0.0.1:8080"


def _key_file(tmp_path: Path) -> str:
    path = tmp_path / "key.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n")
    return str(path)


BAD = [
    ("TREASURY_WITHDRAW_RATE", "0"),
    ("TREASURY_WITHDRAW_RATE", "abc"),
    ("TREASURY_WITHDRAW_RATE", "51"),
    ("TREASURY_RECV_WINDOW_MS", "70000"),
    ("TREASURY_RECV_WINDOW_MS", "5.5"),
    ("TREASURY_DATABASE_URL", "mysql://x"),
    ("TREASURY_DATABASE_URL", "not a url"),
    ("TREASURY_BINANCE_BASE_URL", "http://example.com"),
    ("TREASURY_BINANCE_BASE_URL", "ftp://api.binance.com"),
    ("TREASURY_BINANCE_PRIVATE_KEY_FILE", "/nonexistent/treasury/key.pem"),
    ("TREASURY_LOG_FORMAT", "xml"),
    ("TREASURY_ALLOW_UNRESTRICTED_IP_KEY", "perhaps"),
]


@pytest.mark.parametrize(("var", "value"), BAD, ids=[f"{v}={x}" for v, x in BAD])
def test_bad_setting_names_the_variable_and_not_the_secret(
    monkeypatch: pytest.MonkeyPatch, with_secret: None, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"{var}: "), message
    assert "\n" not in message
    assert SECRET not in message and API_KEY not in message


def test_secret_and_key_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_secret: None
) -> None:
    monkeypatch.setenv("TREASURY_BINANCE_PRIVATE_KEY_FILE", _key_file(tmp_path))
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "TREASURY_BINANCE_API_SECRET" in message
    assert "TREASURY_BINANCE_PRIVATE_KEY_FILE" in message
    assert "not both" in message and "\n" not in message
    assert SECRET not in message and "not really" not in message


def test_several_bad_settings_are_all_named_on_one_line(
    monkeypatch: pytest.MonkeyPatch, with_secret: None
) -> None:
    monkeypatch.setenv("TREASURY_WITHDRAW_RATE", "0")
    monkeypatch.setenv("TREASURY_RECV_WINDOW_MS", "70000")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "TREASURY_WITHDRAW_RATE" in message and "TREASURY_RECV_WINDOW_MS" in message
    assert "\n" not in message and SECRET not in message


@pytest.mark.parametrize(
    "url",
    ["http://127.evil.example", "http://localhost.evil.example", "http://localhost@evil.example"],
)
def test_plain_http_only_for_a_real_loopback_host(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TREASURY_BINANCE_BASE_URL", url)
    with pytest.raises(SettingsError, match="TREASURY_BINANCE_BASE_URL"):
        load_settings()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://localhost:9000",
        "http://[::1]:8080",
        "https://api.binance.com",
    ],
)
def test_loopback_sandbox_and_https_are_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("TREASURY_BINANCE_BASE_URL", url)
    assert load_settings().binance_base_url == url


def test_secret_is_read_from_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "treasury_binance_api_secret").write_text(SECRET + "\n")  # as `echo` writes it
    (creds / "treasury_binance_api_key").write_text(API_KEY)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    s = load_settings()
    assert isinstance(s.binance_api_secret, SecretStr)
    assert s.binance_api_secret.get_secret_value() == SECRET
    assert s.binance_api_key is not None and s.binance_api_key.get_secret_value() == API_KEY
    for shown in (repr(s), str(s), repr(s.binance_api_secret), str(s.binance_api_secret)):
        assert SECRET not in shown and API_KEY not in shown
    assert "**********" in repr(s.binance_api_secret)
    s.require_exchange_credentials()  # both present: no error


def test_bad_value_in_a_secret_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_secret: None
) -> None:
    (tmp_path / "treasury_withdraw_rate").write_text("0")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(SettingsError, match=r"^TREASURY_WITHDRAW_RATE: ") as info:
        load_settings()
    assert SECRET not in str(info.value)


def test_missing_credentials_directory_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "does-not-exist"))
    assert load_settings().binance_api_secret is None


def test_dotenv_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "# deployment settings\n"
        "TREASURY_WITHDRAW_RATE=2.5\n"
        f"TREASURY_BINANCE_API_SECRET={SECRET}\n"
        "TREASURY_ACCOUNT=desk-2\n"
        "UNRELATED=1\n"
    )
    s = load_settings()
    assert s.withdraw_rate == 2.5 and s.account == "desk-2"
    assert s.binance_api_secret is not None
    assert s.binance_api_secret.get_secret_value() == SECRET
    monkeypatch.setenv("TREASURY_WITHDRAW_RATE", "3")  # the environment wins over .env
    assert load_settings().withdraw_rate == 3.0


def test_bad_value_in_dotenv_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"TREASURY_RECV_WINDOW_MS=70000\nTREASURY_BINANCE_API_SECRET={SECRET}\n"
    )
    with pytest.raises(SettingsError, match=r"^TREASURY_RECV_WINDOW_MS: ") as info:
        load_settings()
    assert SECRET not in str(info.value)


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        s.withdraw_rate = 5  # type: ignore[misc]
    assert isinstance(s, Settings)


# ---- the commands stop on a bad setting -------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["check"],
        ["run"],
        ["whitelist", "sync"],
        ["list"],
        [
            "enqueue",
            "--coin",
            "USDT",
            "--network",
            "TRX",
            "--address",
            "T1",
            "--amount",
            "1",
            "--as",
            "a",
        ],
    ],
    ids=lambda c: " ".join(c[:2]),
)
@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TREASURY_WITHDRAW_RATE", "0"),
        ("TREASURY_RECV_WINDOW_MS", "70000"),
        ("TREASURY_DATABASE_URL", "mysql://x"),
    ],
)
def test_command_with_a_bad_setting_exits_3_with_one_line(
    monkeypatch: pytest.MonkeyPatch, with_secret: None, command: list[str], var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    result = CliRunner().invoke(app, command)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: configuration: {var}: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert SECRET not in result.output and API_KEY not in result.output


def test_check_without_credentials_names_what_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check"])
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert "TREASURY_BINANCE_API_KEY: missing" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_history_lag_allowance_has_a_floor_against_a_real_exchange(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TREASURY_HISTORY_LAG_ALLOWANCE_S", "30")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "TREASURY_HISTORY_LAG_ALLOWANCE_S must be at least 120 s" in str(err.value)
    # the loopback sandbox may use less (tests, the demo)
    settings = load_settings(binance_base_url="http://127.0.0.1:8080")
    assert settings.history_lag_allowance_s == 30
    monkeypatch.setenv("TREASURY_HISTORY_LAG_ALLOWANCE_S", "120")
    assert load_settings().history_lag_allowance_s == 120


def test_safe_defaults_for_the_exchange_as_record_of_truth() -> None:
    settings = load_settings()
    assert settings.history_lag_allowance_s == 600
    assert settings.resend == "auto"
    assert settings.sweep_interval_s == 300
    assert settings.exchange_unreachable_alert_s == 300


def test_a_renamed_setting_is_refused_not_silently_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TREASURY_SETTLE_MARGIN_S", "30")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(
        "TREASURY_SETTLE_MARGIN_S: renamed to TREASURY_HISTORY_LAG_ALLOWANCE_S"
    )


def test_resend_mode_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREASURY_RESEND", "sometimes")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "TREASURY_RESEND" in str(err.value) and "sometimes" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("90m", 5_400_000), ("12h", 43_200_000), ("7d", 604_800_000), ("3600", 3_600_000)],
)
def test_reconcile_since_durations(text: str, ms: int) -> None:
    from treasury.cli.exchange import parse_since

    assert parse_since(text) == ms


@pytest.mark.parametrize("text", ["", "0", "-5m", "1.5h", "90d", "soon", "١٢h"])
def test_reconcile_refuses_a_bad_since(text: str) -> None:
    result = CliRunner().invoke(app, ["reconcile", "--since", text])
    assert result.exit_code == 2
    assert "--since" in result.output or "duration" in result.output


def test_a_misspelt_variable_is_named_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from treasury.config import unknown_variables

    environ = {
        "TREASURY_WITHDRAW_RATTE": "5",
        "treasury_poll_intervall_s": "1",
        "TREASURY_WITHDRAW_RATE": "2",
        "TREASURY_OPERATOR": "alice",
        "TREASURY_ACCOUNT_SUB_API_KEY": "k",
        "TREASURY_ACCOUNT_OTHER_API_KEY": "k",
        "TREASURY_NONSENSE": "1",
        "PATH": "/bin",
    }
    assert unknown_variables(environ, ["sub"]) == [
        "TREASURY_ACCOUNT_OTHER_API_KEY is ignored: an account's variables need the account "
        "in TREASURY_EXTRA_ACCOUNTS",
        "TREASURY_NONSENSE is ignored: no setting has this name",
        "TREASURY_WITHDRAW_RATTE is ignored: did you mean TREASURY_WITHDRAW_RATE?",
        "treasury_poll_intervall_s is ignored: did you mean TREASURY_POLL_INTERVAL_S?",
    ]


def test_the_cli_warns_of_a_misspelt_variable_in_the_environment_or_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TREASURY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    monkeypatch.setenv("TREASURY_WITHDRAW_RATTE", "5")
    (tmp_path / ".env").write_text("TREASURY_SHUTDOWN_GRACE=3\n")
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert (
        "warning: TREASURY_SHUTDOWN_GRACE is ignored: did you mean TREASURY_SHUTDOWN_GRACE_S?"
        in lines
    )
    assert (
        "warning: TREASURY_WITHDRAW_RATTE is ignored: did you mean TREASURY_WITHDRAW_RATE?" in lines
    )


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u:pw@db.example/treasury", "postgresql+asyncpg"),
        ("postgresql://u@db.example/treasury", "postgresql+asyncpg"),
        ("sqlite:///ledger.sqlite3", "sqlite+aiosqlite"),
    ],
)
def test_database_urls_as_operators_write_them(url: str, driver: str) -> None:
    from treasury.adapters.db.engine import normalize_url

    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:hunter2@x/y", "unsupported database 'mysql': use sqlite:///PATH or postgresql"),
        ("postgresql+psycopg2://u:hunter2@x/y", "unsupported driver 'postgresql+psycopg2'"),
        ("hunter2 is not a url", "not a database URL (ArgumentError): expected sqlite:///PATH"),
    ],
)
def test_a_bad_database_url_says_what_to_write_and_never_the_password(
    monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("TREASURY_DATABASE_URL", url)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(f"TREASURY_DATABASE_URL: {says}"), str(err.value)
    assert "hunter2" not in str(err.value)


def test_a_command_on_a_missing_sqlite_file_names_it_and_creates_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TREASURY_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert result.stderr.startswith(
        f"error: configuration: no database at {tmp_path / 'treasury.sqlite3'} "
    ), result.stderr
    assert "treasury migrate" in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no empty ledger left behind


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("TREASURY_METRICS_BIND", "garbage", "port must be a number"),
        ("TREASURY_METRICS_BIND", "example.com:9464", "give an IP address"),
        ("TREASURY_ALERT_WEBHOOK_URL", "notaurl", "must be an https:// URL with a host"),
        ("TREASURY_ALERT_WEBHOOK_URL", "ftp://hooks.example/t0ken", "must be an https:// URL"),
    ],
)
def test_metrics_bind_and_webhook_are_checked_at_start_in_one_line(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, says: str
) -> None:
    """They used to pass the settings and fail later in the daemon with a traceback."""
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(f"{var}: "), str(err.value)
    assert says in str(err.value)
    assert "t0ken" not in str(err.value)


def test_an_account_with_a_dash_is_known_by_its_variables() -> None:
    """TREASURY_ACCOUNT_<NAME>_*: the same name mapping the credentials are read with."""
    from treasury.config import unknown_variables

    environ = {"TREASURY_ACCOUNT_TREASURY_SUB_API_KEY": "k", "TREASURY_ACCOUNT_OPS_1_WALLET": "x"}
    assert unknown_variables(environ, ["treasury-sub", "ops.1"]) == []


def test_internal_fee_payer_defaults_to_the_recipient_so_a_send_takes_its_amount(
    with_secret: None,
) -> None:
    from treasury.config import account_credentials

    settings = load_settings()
    assert settings.internal_fee_payer == "recipient"
    assert [c.internal_fee_payer for c in account_credentials(settings)] == ["recipient"]


def test_a_bad_internal_fee_payer_is_one_line_naming_the_variable_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TREASURY_INTERNAL_FEE_PAYER", "whoever")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith("TREASURY_INTERNAL_FEE_PAYER: "), message
    assert "'sender'" in message and "'recipient'" in message and "\n" not in message


def test_each_account_has_its_own_internal_fee_payer(
    with_secret: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from treasury.config import account_credentials, unknown_variables

    monkeypatch.setenv("TREASURY_INTERNAL_FEE_PAYER", "recipient")
    monkeypatch.setenv("TREASURY_EXTRA_ACCOUNTS", "ops-1,ops2")
    for name in ("OPS_1", "OPS2"):
        monkeypatch.setenv(f"TREASURY_ACCOUNT_{name}_API_KEY", "k")
        monkeypatch.setenv(f"TREASURY_ACCOUNT_{name}_API_SECRET", "s")
    monkeypatch.setenv("TREASURY_ACCOUNT_OPS_1_INTERNAL_FEE_PAYER", "sender")
    settings = load_settings()
    payers = {c.name: c.internal_fee_payer for c in account_credentials(settings)}
    assert payers == {"default": "recipient", "ops-1": "sender", "ops2": "recipient"}
    environ = {"TREASURY_ACCOUNT_OPS_1_INTERNAL_FEE_PAYER": "sender"}
    assert unknown_variables(environ, settings.account_names) == []


def test_a_bad_internal_fee_payer_of_an_account_names_its_variable(
    with_secret: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from treasury.config import account_credentials

    monkeypatch.setenv("TREASURY_EXTRA_ACCOUNTS", "ops-1")
    monkeypatch.setenv("TREASURY_ACCOUNT_OPS_1_API_KEY", "k")
    monkeypatch.setenv("TREASURY_ACCOUNT_OPS_1_API_SECRET", "s")
    monkeypatch.setenv("TREASURY_ACCOUNT_OPS_1_INTERNAL_FEE_PAYER", "true")
    with pytest.raises(SettingsError) as err:
        account_credentials(load_settings())
    assert str(err.value) == (
        "TREASURY_ACCOUNT_OPS_1_INTERNAL_FEE_PAYER: 'true' is not a fee payer: use sender or "
        "recipient"
    )


def test_local_entity_per_account(monkeypatch: pytest.MonkeyPatch) -> None:
    from treasury.config import account_local_entity, unknown_variables

    assert load_settings().local_entity is None
    monkeypatch.setenv("TREASURY_LOCAL_ENTITY", " jp ")
    monkeypatch.setenv("TREASURY_EXTRA_ACCOUNTS", "sub1,sub2")
    monkeypatch.setenv("TREASURY_ACCOUNT_SUB2_LOCAL_ENTITY", "eu")
    settings = load_settings()
    assert settings.local_entity == "JP"
    assert account_local_entity(settings, "default") == "JP"
    assert account_local_entity(settings, "sub1") == "JP"  # the primary's, by default
    assert account_local_entity(settings, "sub2") == "EU"
    assert account_local_entity(settings, "elsewhere") is None  # not served here
    env = {"TREASURY_ACCOUNT_SUB2_LOCAL_ENTITY": "eu"}
    assert unknown_variables(env, ("sub1", "sub2")) == []
    monkeypatch.setenv("TREASURY_ACCOUNT_SUB2_LOCAL_ENTITY", "KZ")
    with pytest.raises(SettingsError, match="TREASURY_ACCOUNT_SUB2_LOCAL_ENTITY: 'KZ'"):
        account_local_entity(load_settings(), "sub2")
    monkeypatch.setenv("TREASURY_LOCAL_ENTITY", "")
    assert load_settings().local_entity is None
    monkeypatch.setenv("TREASURY_LOCAL_ENTITY", "KZ")
    with pytest.raises(SettingsError, match="TREASURY_LOCAL_ENTITY"):
        load_settings()
