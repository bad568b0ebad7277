"""Every mistake an operator makes, through the real ``treasury`` process.

One table: each row is a command line, the environment and files it runs with, the exit
code it must end with, and what its message must name (the setting, the file or the
option). For every row the process must end within its time limit with at most two lines
on stderr, no traceback, and nothing written or sent: the database is byte for byte the
same dump afterwards, and the exchange (a recorder on loopback) saw no withdrawal.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT, EXIT_CONFIG = 0, 1, 2, 3  # the README's codes


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    code: int
    names: str  # what the message must name; "{dir}" is the case's folder
    env: dict[str, str] = field(default_factory=dict)  # "{dir}", "{recorder}", "{taken}"
    files: dict[str, str] = field(default_factory=dict)  # name -> content, in "{dir}"
    drop_env: tuple[str, ...] = ()
    offline: bool = True  # not one request may reach the exchange
    stdout_names: bool = False  # the message is on stdout (a warning run that succeeds)


ENQUEUE = ("enqueue", "--coin", "USDT", "--network", "TRX", "--address", "TXyzAbc123")
CASES = [
    # ---- settings --------------------------------------------------------------------
    Case(
        "metrics-bind-garbage",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_METRICS_BIND",
        env={"TREASURY_METRICS_BIND": "garbage"},
    ),
    Case(
        "metrics-bind-garbage-check",
        ("check",),
        EXIT_CONFIG,
        "TREASURY_METRICS_BIND",
        env={"TREASURY_METRICS_BIND": "garbage"},
    ),
    Case(
        "metrics-bind-hostname",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_METRICS_BIND",
        env={"TREASURY_METRICS_BIND": "metrics.example.com:7464"},
    ),
    Case(
        "metrics-port-taken",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_METRICS_BIND",
        env={"TREASURY_METRICS_BIND": "127.0.0.1:{taken}"},
        offline=False,
    ),
    Case(
        "webhook-not-a-url",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_ALERT_WEBHOOK_URL",
        env={"TREASURY_ALERT_WEBHOOK_URL": "notaurl"},
    ),
    Case(
        "webhook-not-a-url-check",
        ("check",),
        EXIT_CONFIG,
        "TREASURY_ALERT_WEBHOOK_URL",
        env={"TREASURY_ALERT_WEBHOOK_URL": "notaurl"},
    ),
    Case(
        "rate-not-a-number",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_WITHDRAW_RATE",
        env={"TREASURY_WITHDRAW_RATE": "fast"},
    ),
    Case(
        "wallet-unknown",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_WALLET",
        env={"TREASURY_WALLET": "savings"},
    ),
    Case(
        "account-wallet-unknown",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_ACCOUNT_DESK_WALLET",
        env={
            "TREASURY_EXTRA_ACCOUNTS": "desk",
            "TREASURY_ACCOUNT_DESK_WALLET": "margin",
            "TREASURY_ACCOUNT_DESK_API_KEY": "k",
            "TREASURY_ACCOUNT_DESK_API_SECRET": "s",
        },
    ),
    Case(
        "preflight-retry-negative",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_PREFLIGHT_RETRY_S",
        env={"TREASURY_PREFLIGHT_RETRY_S": "-1"},
    ),
    Case(
        "lag-allowance-text",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_HISTORY_LAG_ALLOWANCE_S",
        env={"TREASURY_HISTORY_LAG_ALLOWANCE_S": "ten minutes"},
    ),
    Case(
        "retired-settle-margin",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_HISTORY_LAG_ALLOWANCE_S",
        env={"TREASURY_SETTLE_MARGIN_S": "30"},
    ),
    Case(
        "resend-unknown",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_RESEND",
        env={"TREASURY_RESEND": "always"},
    ),
    Case(
        "no-credentials",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_BINANCE_API_KEY",
        drop_env=("TREASURY_BINANCE_API_KEY", "TREASURY_BINANCE_API_SECRET"),
    ),
    Case(
        "key-file-missing",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_BINANCE_PRIVATE_KEY_FILE",
        env={"TREASURY_BINANCE_PRIVATE_KEY_FILE": "{dir}/no-such.pem"},
        drop_env=("TREASURY_BINANCE_API_SECRET",),
    ),
    Case(
        "key-file-not-a-key",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_BINANCE_PRIVATE_KEY_FILE",
        env={"TREASURY_BINANCE_PRIVATE_KEY_FILE": "{dir}/key.pem"},
        files={"key.pem": "this is not a key\n"},
        drop_env=("TREASURY_BINANCE_API_SECRET",),
    ),
    Case(
        "log-level-unknown",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_LOG_LEVEL",
        env={"TREASURY_LOG_LEVEL": "loud"},
    ),
    # ---- files -----------------------------------------------------------------------
    Case(
        "policy-missing",
        ("run",),
        EXIT_CONFIG,
        "{dir}/policy.toml",
        env={"TREASURY_POLICY_FILE": "{dir}/policy.toml"},
    ),
    Case(
        "policy-bad-toml",
        ("run",),
        EXIT_CONFIG,
        "{dir}/policy.toml",
        env={"TREASURY_POLICY_FILE": "{dir}/policy.toml"},
        files={"policy.toml": "[caps\nmax = 1\n"},
    ),
    Case(
        "policy-typo",
        ("run",),
        EXIT_CONFIG,
        "{dir}/policy.toml",
        env={"TREASURY_POLICY_FILE": "{dir}/policy.toml"},
        files={"policy.toml": "[approvals]\nrequierd = 2\n"},
    ),
    Case(
        "policy-typo-apply",
        ("policy", "apply", "policy.toml", "--as", "bob", "--reason", "typo", "--yes"),
        EXIT_BAD_INPUT,
        "policy.toml: approvals: unknown key",
        files={"policy.toml": "[approvals]\nrequierd = 2\n"},
    ),
    Case(
        "policy-apply-no-reason",
        ("policy", "apply", "policy.toml", "--as", "bob", "--reason", " ", "--yes"),
        EXIT_BAD_INPUT,
        "--reason",
        files={"policy.toml": "[coins.USDT]\n"},
    ),
    # ---- the database ----------------------------------------------------------------
    Case(
        "database-url-mysql",
        ("list",),
        EXIT_CONFIG,
        "TREASURY_DATABASE_URL",
        env={"TREASURY_DATABASE_URL": "mysql://root@127.0.0.1/test"},
    ),
    Case(
        "database-url-garbage",
        ("run",),
        EXIT_CONFIG,
        "TREASURY_DATABASE_URL",
        env={"TREASURY_DATABASE_URL": "not a url"},
    ),
    Case(
        "database-sqlite-file-missing",
        ("list",),
        EXIT_CONFIG,
        "{dir}/nowhere.sqlite3",
        env={"TREASURY_DATABASE_URL": "sqlite+aiosqlite:///{dir}/nowhere.sqlite3"},
    ),
    Case(
        "database-default-file-missing",
        ("list",),
        EXIT_CONFIG,
        "treasury.sqlite3",
        drop_env=("TREASURY_DATABASE_URL",),
    ),
    Case(
        "database-postgres-refused",
        ("run",),
        EXIT_REFUSED,
        "database: unreachable",
        env={"TREASURY_DATABASE_URL": "postgres://treasury@127.0.0.1:1/treasury"},
    ),
    # ---- commands --------------------------------------------------------------------
    Case(
        "resolve-bad-outcome",
        ("resolve", "1", "--outcome", "done", "--reason", "x", "--as", "bob"),
        EXIT_BAD_INPUT,
        "--outcome",
    ),
    Case(
        "enqueue-amount-not-a-number",
        (*ENQUEUE, "--amount", "1,5"),
        EXIT_BAD_INPUT,
        "amount",
    ),
    Case(
        "enqueue-amount-negative",
        (*ENQUEUE, "--amount", "-5"),
        EXIT_BAD_INPUT,
        "amount",
    ),
    Case(
        "enqueue-wallet-unknown",
        (*ENQUEUE, "--amount", "5", "--wallet", "margin"),
        EXIT_BAD_INPUT,
        "wallet",
    ),
    Case("show-unknown", ("show", "no-such-request"), EXIT_REFUSED, "no-such-request"),
    Case("cancel-unknown", ("cancel", "999", "--reason", "x", "--as", "bob"), EXIT_REFUSED, "999"),
    # ---- the exchange down: one line, exit 1, not a traceback after retries -------------
    Case(
        "sync-exchange-down",
        ("whitelist", "sync"),
        EXIT_REFUSED,
        "exchange",
        env={"TREASURY_BINANCE_BASE_URL": "http://127.0.0.1:{closed}"},
        offline=False,
    ),
    Case(
        "check-exchange-down",
        ("check",),
        EXIT_REFUSED,
        "exchange",
        env={"TREASURY_BINANCE_BASE_URL": "http://127.0.0.1:{closed}"},
        offline=False,
    ),
    # ---- a warning, not an error: the command runs, one line names the closest setting -
    Case(
        "misspelt-variable",
        ("list",),
        EXIT_OK,
        "TREASURY_WITHDRAW_RATE",
        env={"TREASURY_WITHDRAW_RATTE": "2"},
    ),
]


class Recorder(BaseHTTPRequestHandler):
    """The exchange as far as these rows go: every request is written down and answered
    503, so nothing could be sent even by mistake."""

    seen: list[str]

    def _answer(self) -> None:
        type(self).seen.append(f"{self.command} {self.path}")
        body = b'{"code":-1001,"msg":"recorder"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("R", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def treasury(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "treasury", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated ledger with one queued intent, copied for every row."""
    folder = tmp_path_factory.mktemp("ledger")
    db = folder / "ledger.sqlite3"
    env = base_env(db, "http://127.0.0.1:9")
    code, out, err = treasury(["migrate"], env, folder)
    assert code == 0, out + err
    code, out, err = treasury(
        [
            "enqueue",
            "--coin",
            "USDT",
            "--network",
            "TRX",
            "--address",
            "TXyzAbc123",
            "--amount",
            "5",
            "--request-id",
            "first",
        ],
        env,
        folder,
    )
    assert code == 0, out + err
    return db


def base_env(db: Path, exchange: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREASURY_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    return env | {
        "TREASURY_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "TREASURY_BINANCE_BASE_URL": exchange,
        "TREASURY_BINANCE_API_KEY": "bad-input-key",
        "TREASURY_BINANCE_API_SECRET": "bad-input-secret-never-printed",
        "TREASURY_METRICS_BIND": "off",
        "TREASURY_LOG_FORMAT": "json",
    }


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_input_ends_in_one_line_naming_it_with_nothing_written_or_sent(
    case: Case, template: Path, recorder: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = recorder
    seen.clear()
    db = tmp_path / "ledger.sqlite3"
    shutil.copy(template, db)
    before = dump(db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        marks = {
            "{dir}": str(tmp_path),
            "{taken}": str(taken.getsockname()[1]),
            "{closed}": str(free_port()),
        }

        def fill(text: str) -> str:
            for mark, value in marks.items():
                text = text.replace(mark, value)
            return text

        env = base_env(db, url) | {k: fill(v) for k, v in case.env.items()}
        for name in case.drop_env:
            env.pop(name, None)
        for name, content in case.files.items():
            (tmp_path / name).write_text(content)
        code, out, err = treasury(list(case.argv), env, tmp_path)

    said = f"exit {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert code == case.code, said
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 2, said
    assert "Traceback" not in out + err, said
    message = out if case.stdout_names else err
    assert fill(case.names) in message, said
    assert "bad-input-secret-never-printed" not in out + err
    assert dump(db) == before, f"the ledger changed\n{said}"
    assert not (tmp_path / "treasury.sqlite3").exists(), "a database file was created"
    assert not [r for r in seen if "withdraw/apply" in r], seen
    if case.offline:
        assert seen == [], f"requests reached the exchange: {seen}\n{said}"
