"""Fuzz: every TREASURY_* variable with random values → load_settings() returns Settings or
raises SettingsError, and no secret ever shows in the message (or in the Settings' repr).

The API secret is a random secret-looking string; the API key and passphrase are too, and
now and then a secret is also embedded where it could be echoed back: in the database URL's
password or in the alert webhook's path.
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treasury.config import ENV_PREFIX, Settings, SettingsError, load_settings

# ``scratch_env`` is function-scoped on purpose: each example resets the variables itself.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEEP = {"TREASURY_TEST_POSTGRES_URL", "TREASURY_REQUIRE_POSTGRES", "TREASURY_TORTURE_ROUNDS"}

FIELDS = sorted(Settings.model_fields)
SECRET_FIELDS = ("binance_api_secret", "binance_api_key", "binance_private_key_passphrase")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory without .env, holding a regular file and a subdirectory for path values."""
    path = tmp_path_factory.mktemp("settings-fuzz")
    (path / "key.pem").write_text("not a key\n")
    (path / "policy.toml").write_text("[default]\n")
    (path / "adir").mkdir()
    return path


@pytest.fixture
def scratch_env(workdir: Path) -> Iterator[Path]:
    """Run in ``workdir`` with no TREASURY_* or CREDENTIALS_DIRECTORY left behind.

    Not monkeypatch: hypothesis runs many examples in one test call, and each example
    sets its own variables (``apply_env``), so the cleanup must be per example.
    """
    saved_cwd = os.getcwd()
    os.chdir(workdir)
    try:
        yield workdir
    finally:
        os.chdir(saved_cwd)
        apply_env({})


def apply_env(values: dict[str, str]) -> None:
    for name in [k for k in os.environ if k.startswith(ENV_PREFIX) and k not in KEEP]:
        del os.environ[name]
    os.environ.pop("CREDENTIALS_DIRECTORY", None)
    for field, value in values.items():
        os.environ[f"{ENV_PREFIX}{field.upper()}"] = value


# Environment values cannot hold NUL or lone surrogates (os.environ refuses them).
env_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)
secrets = st.text(alphabet=string.ascii_letters + string.digits + "-_+/=", min_size=24, max_size=64)
numbers = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "1",
            "0.5",
            "1e3",
            "1e-9",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "1e308",
            "1e309",
            "9" * 30,
            "0x10",
            "1_000",
            " 5 ",
            "5s",
            "",
            "true",
            "10",
            "50",
            "50.0000001",
            "60000",
            "60001",
            "99",
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
)
flags = st.sampled_from(
    ["true", "false", "1", "0", "yes", "no", "on", "off", "TRUE", "maybe", "", " true", "2"]
)
urls = st.one_of(
    st.sampled_from(
        [
            "https://api.binance.com",
            "http://127.0.0.1:8080",
            "http://localhost:1/",
            "http://[::1]:9",
            "http://example.com",
            "ftp://x",
            "https://",
            "https://user:pw@host",
            "http://[::1",
            "https://[zz]",
            "//host",
            "https:///path",
            "https://h?x=1",
            "",
            "javascript:alert(1)",
        ]
    ),
    env_text,
)
db_urls = st.one_of(
    st.sampled_from(
        [
            "sqlite:///x.sqlite3",
            "sqlite+aiosqlite:///:memory:",
            "postgresql://u@h/db",
            "postgresql+asyncpg://u@h:5432/db",
            "postgresql+psycopg2://u@h/db",
            "mysql://u@h/db",
            "sqlite://",
            "postgresql://u@[x/db",
            "postgresql://u@h:99999/db",
            "://",
            "",
            "sqlite+pysqlite:///x",
        ]
    ),
    env_text,
)
paths = st.one_of(
    st.sampled_from(["key.pem", "adir", "missing.pem", "", ".", "/", "policy.toml"]), env_text
)

BY_FIELD: dict[str, st.SearchStrategy[str]] = {
    "database_url": db_urls,
    "binance_base_url": urls,
    "alert_webhook_url": urls,
    "binance_private_key_file": paths,
    "policy_file": paths,
    "allow_unrestricted_ip_key": flags,
    "alert_format": st.sampled_from(["json", "slack", "telegram", "JSON", "xml", ""]),
    "log_format": st.sampled_from(["auto", "json", "console", "text", ""]),
    "internal_fee_payer": st.sampled_from(["sender", "recipient", "Sender", "both", ""]),
    "log_level": st.sampled_from(["debug", "info", "warning", "error", "INFO", "trace", ""]),
    "metrics_bind": st.sampled_from(["off", "127.0.0.1:9464", "0.0.0.0:1", ":", ""]),
}


def value_for(field: str) -> st.SearchStrategy[str]:
    if field in SECRET_FIELDS:
        return secrets
    if field in BY_FIELD:
        return st.one_of(BY_FIELD[field], env_text)
    annotation = str(Settings.model_fields[field].annotation)
    if "float" in annotation or "int" in annotation:
        return st.one_of(numbers, env_text)
    return env_text


@st.composite
def environments(draw: st.DrawFn) -> tuple[dict[str, str], str, str | None]:
    """(variables, the API secret, a second secret embedded in a URL variable or None)."""
    secret = draw(secrets)
    chosen = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=len(FIELDS)))
    values = {f: draw(value_for(f)) for f in chosen}
    values["binance_api_secret"] = secret
    where = draw(st.sampled_from(["nowhere", "database_url", "alert_webhook_url"]))
    embedded = None if where == "nowhere" else draw(secrets)
    if where == "database_url":
        values[where] = f"postgresql://treasury:{embedded}@db.internal:5432/treasury"
    elif where == "alert_webhook_url":
        values[where] = f"https://hooks.example.com/services/{embedded}"
    return values, secret, embedded


NUMERIC = [f for f in FIELDS if Settings.model_fields[f].annotation in (int, float)]


@FUZZ
@given(environments())
def test_settings_load_or_fail_with_one_clear_settings_error(
    scratch_env: Path,
    case: tuple[dict[str, str], str, str | None],
) -> None:
    values, secret, embedded = case
    apply_env(values)
    hidden = {values[f] for f in SECRET_FIELDS if f in values}
    try:
        loaded = load_settings()
    except SettingsError as exc:
        message = str(exc)
        assert message.startswith((ENV_PREFIX, "settings:")), message
        for value in (*hidden, embedded):
            assert value is None or value not in message, f"a secret leaked into: {message}"
        return
    # Loaded: the secrets are kept and hidden, and every number is a real number. (The
    # URL variables are plain text by design; see the report about database_url.)
    assert loaded.binance_api_secret is not None
    assert loaded.binance_api_secret.get_secret_value() == secret
    plain = [v for f, v in values.items() if f not in SECRET_FIELDS]
    for value in hidden:
        if not any(value in other for other in plain):  # not also given as plain text
            assert value not in repr(loaded) and value not in str(loaded)
    for field in NUMERIC:
        number = getattr(loaded, field)
        assert type(number) in (int, float) and not math.isnan(number), (field, number)


@FUZZ
@given(field=st.sampled_from(FIELDS), value=env_text)
def test_one_variable_at_a_time(scratch_env: Path, field: str, value: str) -> None:
    """Each variable alone, with arbitrary text: the error names that variable."""
    apply_env({field: value})
    try:
        load_settings()
    except SettingsError as exc:
        message = str(exc)
    else:
        return
    assert f"{ENV_PREFIX}{field.upper()}" in message, (field, value, message)


# ---- found by this fuzzing and fixed ------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "1e300"])
def test_a_cooling_period_that_cannot_be_a_date_is_refused(scratch_env: Path, value: str) -> None:
    """It was accepted, and `treasury whitelist add` then crashed in timedelta()."""
    apply_env({"manual_whitelist_cooling_s": value})
    with pytest.raises(SettingsError, match="TREASURY_MANUAL_WHITELIST_COOLING_S"):
        load_settings()


def test_a_secret_pasted_into_a_plain_setting_is_masked_in_the_error(scratch_env: Path) -> None:
    """Found in CI: TREASURY_API_BIND held the same text as the API key, and the bind's
    error quoted it (and called it the metrics bind). The message now names the API bind
    and shows ``[secret]`` where the key was."""
    key = "00000000000000000000000="
    apply_env({"binance_api_key": key, "api_bind": key, "binance_api_secret": "s" * 32})
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert key not in message
    assert "TREASURY_API_BIND: API bind '[secret]': port must be a number" in message


@pytest.mark.parametrize(
    ("plain", "quoted"),
    [
        ("console_base_url", "TREASURY_CONSOLE_BASE_URL: console base URL '[secret]"),
        ("metrics_bind", "TREASURY_METRICS_BIND: metrics bind '[secret]"),
    ],
)
@pytest.mark.parametrize(
    ("where", "url", "secret"),
    [
        ("database_url", "postgresql://treasury:{s}@db.internal:5432/treasury", "Zq" + "0" * 22),
        # a password holding "/", which ends urlsplit's userinfo early
        (
            "database_url",
            "postgresql://treasury:{s}@db.internal:5432/treasury",
            "Zq" + "0" * 21 + "/",
        ),
        ("alert_webhook_url", "https://hooks.example.com/services/{s}", "Zq" + "0" * 22),
        (
            "alert_webhook_url",
            "https://api.telegram.org/bot{s}/sendMessage?chat_id=1",
            "Zq" + "0" * 22,
        ),
    ],
)
def test_a_url_secret_pasted_into_a_plain_setting_is_masked_in_the_error(
    scratch_env: Path, where: str, url: str, secret: str, plain: str, quoted: str
) -> None:
    """Found in CI: the password of the database URL (or an alert webhook's token) was
    also given as a plain setting whose error quotes the value."""
    apply_env({where: url.format(s=secret), plain: secret, "binance_api_secret": "s" * 32})
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert secret not in message, message
    assert quoted in message, message
