"""Log redaction: registered secrets never reach a log line, whatever the call site does."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from treasury import logs
from treasury.logs import REDACTED, configure, forget_secrets, mask_key, register_secret, scrub_text

SECRET = "Zq9-api-secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIHnwvSkKrSL0Tgb6VrQ3eQyW5b8qR1tX0h2jZx4kN9pL\n"
    "-----END PRIVATE KEY-----\n"
)
PEM_BODY = PEM.splitlines()[1]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    httpx_level = logging.getLogger("httpx").level
    yield
    root.handlers[:] = [
        h for h in root.handlers if not isinstance(h.formatter, logs._RedactingFormatter)
    ]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(httpx_level)
    structlog.configure(**saved)
    forget_secrets()


@pytest.fixture
def stream() -> io.StringIO:
    s = io.StringIO()
    configure(fmt="json", level="debug", stream=s)
    register_secret(SECRET)
    return s


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def no_leak(stream: io.StringIO, *secrets: str) -> None:
    text = stream.getvalue()
    for secret in secrets or (SECRET,):
        assert secret not in text, text
        # not even JSON-escaped
        assert json.dumps(secret)[1:-1] not in text, text


def test_registered_secret_is_cut_out_of_any_string_under_any_key(stream: io.StringIO) -> None:
    log = structlog.get_logger("t")
    log.info("x", blob=f"query=a&k={SECRET}&z=1", url=f"https://api/x?{SECRET}")
    (rec,) = records(stream)
    assert rec["blob"] == f"query=a&k={REDACTED}&z=1"
    assert rec["url"] == f"https://api/x?{REDACTED}"
    no_leak(stream)


def test_secret_in_the_event_text_and_in_positional_args(stream: io.StringIO) -> None:
    log = structlog.get_logger("t")
    log.info(f"signed with {SECRET}")
    log.info("signed with %s", SECRET)
    assert [r["event"] for r in records(stream)] == [f"signed with {REDACTED}"] * 2
    no_leak(stream)


def test_secret_nested_in_containers(stream: io.StringIO) -> None:
    log = structlog.get_logger("t")
    log.info(
        "x",
        data={"outer": [SECRET, {"inner": f"a{SECRET}b"}]},
        pair=("k", SECRET),
        raw=SECRET.encode(),
    )
    (rec,) = records(stream)
    assert rec["data"] == {"outer": [REDACTED, {"inner": f"a{REDACTED}b"}]}
    assert rec["pair"] == ["k", REDACTED]
    assert rec["raw"] == REDACTED
    no_leak(stream)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(lambda: ValueError(f"bad signature for {SECRET}"), id="exception"),
        pytest.param(lambda: {SECRET}, id="set"),
        pytest.param(lambda: frozenset({f"k={SECRET}"}), id="frozenset"),
    ],
)
def test_secret_inside_a_non_string_value_does_not_leak(stream: io.StringIO, value: Any) -> None:
    # e.g. log.warning("failed", error=exc): the renderer falls back to repr(value)
    structlog.get_logger("t").warning("failed", error=value())
    (rec,) = records(stream)
    assert REDACTED in rec["error"]
    no_leak(stream)


@pytest.mark.parametrize(
    "key",
    [
        "secret",
        "api_secret",
        "signature",
        "private_key",
        "private_key_pem",
        "passphrase",
        "password",
        "db_password",
        "X_Signature",
    ],
)
def test_keys_that_name_a_secret_are_masked(stream: io.StringIO, key: str) -> None:
    structlog.get_logger("t").info("x", **{key: "not-registered-but-sensitive"}, other="kept")
    (rec,) = records(stream)
    assert rec[key] == REDACTED
    assert rec["other"] == "kept"
    assert "not-registered-but-sensitive" not in stream.getvalue()


def test_secret_named_keys_inside_a_dict_are_masked(stream: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "x", params={"signature": "abcdef0123456789", "amount": "10", "timestamp": 1}
    )
    (rec,) = records(stream)
    assert rec["params"] == {"signature": REDACTED, "amount": "10", "timestamp": 1}


def test_api_key_is_shown_as_first_and_last_four(stream: io.StringIO) -> None:
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    structlog.get_logger("t").info("x", api_key=key, binance_api_key="short-key")
    (rec,) = records(stream)
    assert rec["api_key"] == "vmPU…Eh8A" == mask_key(key)
    assert rec["binance_api_key"] == "****"
    assert key not in stream.getvalue() and "short-key" not in stream.getvalue()


def test_empty_secret_fields_stay_visible_as_empty(stream: io.StringIO) -> None:
    structlog.get_logger("t").info("x", api_secret=None, passphrase="")
    (rec,) = records(stream)
    assert rec["api_secret"] is None and rec["passphrase"] == ""


def test_stdlib_logging_records_are_scrubbed(stream: io.StringIO) -> None:
    std = logging.getLogger("some.library")
    std.warning("request failed: %s", f"https://x/?signature={SECRET}")
    std.error(f"plain {SECRET}")
    warning, error = records(stream)  # JSON like every other line, not plain text
    assert warning["event"] == f"request failed: https://x/?signature={REDACTED}"
    assert (warning["level"], warning["logger"]) == ("warning", "some.library")
    assert error["event"] == f"plain {REDACTED}"
    assert (error["level"], error["logger"]) == ("error", "some.library")
    no_leak(stream)


def test_httpx_info_logs_are_held_back(stream: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET https://api.binance.com/sapi?sig=abc")
    logging.getLogger("httpx").warning("httpx warning shown")
    text = stream.getvalue()
    assert "HTTP Request" not in text
    assert "httpx warning shown" in text


def _fail_holding_the_secret(log: Any, message: str = "boom") -> None:
    api_secret = SECRET  # a frame local: must never be rendered
    payload = {"signature": api_secret}
    try:
        raise RuntimeError(message)
    except RuntimeError:
        log.exception("call.failed", size=len(payload))


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_traceback_does_not_render_frame_locals(fmt: str) -> None:
    s = io.StringIO()
    configure(fmt=fmt, stream=s)
    register_secret(SECRET)
    _fail_holding_the_secret(structlog.get_logger("t"))
    text = s.getvalue()
    assert "Traceback" in text and "RuntimeError: boom" in text
    assert "_fail_holding_the_secret" in text
    no_leak(s)
    assert "api_secret =" not in text and "payload" not in text


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_exception_message_carrying_the_secret_is_scrubbed(fmt: str) -> None:
    s = io.StringIO()
    configure(fmt=fmt, stream=s)
    register_secret(SECRET)
    _fail_holding_the_secret(structlog.get_logger("t"), message=f"bad key {SECRET}")
    assert f"RuntimeError: bad key {REDACTED}" in s.getvalue()
    no_leak(s)


def test_stdlib_exception_is_scrubbed(stream: io.StringIO) -> None:
    std = logging.getLogger("some.library")
    token = SECRET
    try:
        raise ValueError(f"token {token} refused")
    except ValueError:
        std.exception("lib failed")
    text = stream.getvalue()
    assert "Traceback" in text and f"ValueError: token {REDACTED} refused" in text
    no_leak(stream)


def test_private_key_pem_lines_are_registered(stream: io.StringIO) -> None:
    register_secret(PEM.encode())
    log = structlog.get_logger("t")
    log.info("x", whole=PEM, line=f"...{PEM_BODY}...")
    (rec,) = records(stream)
    assert set(rec["whole"].split()) == {REDACTED}  # whole, or line by line
    assert rec["line"] == f"...{REDACTED}..."
    no_leak(stream, PEM_BODY)


def test_short_values_are_not_registered_and_forget_clears() -> None:
    register_secret("abc")
    register_secret(None)
    register_secret("")
    assert scrub_text("abc def") == "abc def"
    register_secret(SECRET)
    assert scrub_text(f"<{SECRET}>") == f"<{REDACTED}>"
    forget_secrets()
    assert scrub_text(f"<{SECRET}>") == f"<{SECRET}>"


def test_level_filter_applies(stream: io.StringIO) -> None:
    s = io.StringIO()
    configure(fmt="json", level="warning", stream=s)
    log = structlog.get_logger("t")
    log.info("hidden")
    log.warning("shown")
    assert [r["event"] for r in records(s)] == ["shown"]
    assert records(s)[0]["level"] == "warning"


def test_a_questionnaire_or_profile_is_logged_redacted_under_any_such_key(
    stream: io.StringIO,
) -> None:
    answers = {
        "isAddressOwner": 2,
        "bnfType": 0,
        "bnfFirstName": "Wilhelmina",
        "bnfLastName": "Quastenberg",
        "country": "pl",
        "sendTo": 1,
        "declaration": True,
    }
    profile = json.dumps({"entity": "EU", "questionnaire": answers})
    log = structlog.get_logger("t")
    log.info("x", questionnaire=answers, travel_rule_profile=profile)
    log.info("y", nested={"intent_questionnaire": json.dumps(answers)})
    log.info("z", questionnaire="free text Wilhelmina")
    first, second, third = records(stream)
    assert first["questionnaire"]["isAddressOwner"] == 2
    assert first["questionnaire"]["bnfFirstName"] == "<redacted>"
    assert first["travel_rule_profile"]["entity"] == "EU"
    assert second["nested"]["intent_questionnaire"]["bnfLastName"] == "<redacted>"
    assert third["questionnaire"] == "<redacted>"
    no_leak(stream, "Wilhelmina", "Quastenberg")
