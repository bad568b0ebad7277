"""The CLI's error boundary: every known failure ends as one line and its exit code, even
when it comes out of a task group wrapped in an exception group."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from treasury.cli.common import EXIT_BAD_INPUT, EXIT_CONFIG, EXIT_REFUSED, run
from treasury.config import SettingsError
from treasury.domain.errors import InvalidField
from treasury.policy_file import PolicyError
from treasury.testing import not_sent


def raising(exc: BaseException) -> Callable[[], object]:
    async def body() -> object:
        raise exc

    return body


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (SettingsError("TREASURY_METRICS_BIND: taken"), EXIT_CONFIG, "configuration: TREASURY_"),
        (
            ExceptionGroup("tg", [ExceptionGroup("inner", [SettingsError("TREASURY_X: bad")])]),
            EXIT_CONFIG,
            "configuration: TREASURY_X: bad",
        ),
        (InvalidField("amount", "not a number"), EXIT_BAD_INPUT, "amount"),
        (
            UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"),
            EXIT_BAD_INPUT,
            "an argument is not valid text",
        ),
        (
            FileNotFoundError(2, "No such file or directory", "/etc/treasury/policy.toml"),
            EXIT_CONFIG,
            "cannot read /etc/treasury/policy.toml: No such file or directory",
        ),
        (ConnectionRefusedError(111, "Connection refused"), EXIT_CONFIG, "database unavailable"),
        (
            PolicyError("/etc/treasury/policy.toml", None, "invalid TOML: Invalid value"),
            EXIT_CONFIG,
            "policy: /etc/treasury/policy.toml: invalid TOML",
        ),
        (
            not_sent("no connection could be made", endpoint="/api/v3/time"),
            EXIT_REFUSED,
            "the exchange: /api/v3/time: no connection could be made",
        ),
    ],
)
def test_a_known_failure_is_one_line_and_its_exit_code(
    capsys: pytest.CaptureFixture[str], exc: BaseException, code: int, line: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(raising(exc))
    assert exit_.value.code == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and line in err, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


def test_an_unknown_failure_or_several_are_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError):
        run(raising(ZeroDivisionError("bug")))
    both = ExceptionGroup("tg", [SettingsError("a"), SettingsError("b")])
    with pytest.raises(ExceptionGroup):
        run(raising(both))


def test_a_bot_can_catch_the_apis_errors_from_treasury_api() -> None:
    import treasury.api as api
    from treasury.domain import errors
    from treasury.ports import store

    assert api.InvalidField is errors.InvalidField
    assert api.IdempotencyConflict is store.IdempotencyConflict
    assert api.NotFound is store.NotFound
    assert {"InvalidField", "IdempotencyConflict", "NotFound"} <= set(api.__all__)
