"""Ways to run the sandbox: as a process (the CLI), in a thread, refusing remote hosts."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, encode, sign, usdt_trx

from treasury.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    SandboxTask,
    SandboxThread,
    parse_config,
    read_ledger,
    running_sandbox,
)

ROOT = Path(__file__).resolve().parents[3]


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the sandbox printed nothing in time"
    return proc.stdout.readline().strip()


def _module(*args: str) -> list[str]:
    return [sys.executable, "-m", "treasury.sandbox", *args]


def test_module_starts_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"maintenance": True}))
    with subprocess.Popen(
        _module("--port", "0", "--state", str(state), "--faults", str(faults)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        try:
            line = _read_line(proc, 20)
            assert line.startswith("sandbox listening on http://127.0.0.1:")
            url = line.removeprefix("sandbox listening on ")
            with httpx.Client(base_url=url) as http:
                assert http.get("/sapi/v1/system/status").json()["status"] == 1
                query = encode({**usdt_trx(), "timestamp": int(time.time() * 1000)})
                query += f"&signature={sign(DEFAULT_API_SECRET, query)}"
                http.post("/_sandbox/faults", json={"maintenance": False})
                applied = http.post(
                    f"/sapi/v1/capital/withdraw/apply?{query}",
                    headers={"X-MBX-APIKEY": DEFAULT_API_KEY},
                )
                assert applied.status_code == 200, applied.text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert len(read_ledger(state).withdrawals) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "non-loopback"),  # noqa: S104 - the point of the test
        (["--config", "/nonexistent/sandbox.json"], "cannot read"),
    ],
)
def test_module_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = subprocess.run(
        _module("--port", "0", *args), cwd=ROOT, capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


async def test_running_sandbox_refuses_remote_hosts() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        async with running_sandbox(host="192.0.2.1"):
            pass


async def test_running_sandbox_reports_the_real_port() -> None:
    async with running_sandbox(config=parse_config(BASE_CONFIG)) as sandbox:
        assert sandbox.port > 0
        assert sandbox.url == f"http://127.0.0.1:{sandbox.port}"
        async with httpx.AsyncClient(base_url=sandbox.url) as http:
            assert (await http.get("/api/v3/time")).status_code == 200


def test_sandbox_thread_for_synchronous_tests(tmp_path: Path) -> None:
    state = tmp_path / "s.jsonl"
    with SandboxThread(config=parse_config(BASE_CONFIG), state_path=state) as sandbox:
        query = encode({**usdt_trx(withdrawOrderId="t-1"), "timestamp": int(time.time() * 1000)})
        query += f"&signature={sign(DEFAULT_API_SECRET, query)}"
        with httpx.Client(base_url=sandbox.url) as http:
            response = http.post(
                f"/sapi/v1/capital/withdraw/apply?{query}",
                headers={"X-MBX-APIKEY": DEFAULT_API_KEY},
            )
            assert response.status_code == 200, response.text
        assert [w.withdraw_order_id for w in sandbox.ledger().withdrawals] == ["t-1"]
    assert len(read_ledger(state).withdrawals) == 1
    with pytest.raises(RuntimeError):
        _ = sandbox.url  # stopped


async def test_leaving_the_block_stops_everything_even_a_stuck_request() -> None:
    """Structured shutdown: a handler stuck in a 60 s delay is cancelled within uvicorn's
    graceful timeout, and no task of the server outlives the block."""
    before = set(asyncio.all_tasks())
    faults = {"delay_after_accept_s": {"seconds": 60}}
    outcome: list[str] = []

    async def apply(url: str) -> None:
        query = encode(
            {**usdt_trx(withdrawOrderId="stuck-1"), "timestamp": int(time.time() * 1000)}
        )
        query += f"&signature={sign(DEFAULT_API_SECRET, query)}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                answer = await http.post(
                    f"/sapi/v1/capital/withdraw/apply?{query}",
                    headers={"X-MBX-APIKEY": DEFAULT_API_KEY},
                )
            outcome.append(str(answer.status_code))
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    async with anyio.create_task_group() as tg:
        async with running_sandbox(config=parse_config(BASE_CONFIG), faults=faults) as sb:
            tg.start_soon(apply, sb.url)
            with anyio.fail_after(10):
                while not sb.ledger().withdrawals:  # accepted, now sleeping 60 s
                    await anyio.sleep(0.01)
            started = time.monotonic()
        stopped_in = time.monotonic() - started
    assert stopped_in < 5, stopped_in  # graceful 2 s, then the stuck handler is cancelled
    assert outcome and outcome != ["200"], outcome  # never answered as a success
    assert set(asyncio.all_tasks()) - before == set()


async def test_an_error_in_the_block_surfaces_as_itself_not_as_a_group() -> None:
    before = set(asyncio.all_tasks())
    with pytest.raises(LookupError, match="from the caller") as caught:
        async with running_sandbox(config=parse_config(BASE_CONFIG)):
            raise LookupError("from the caller")
    assert type(caught.value) is LookupError
    assert set(asyncio.all_tasks()) - before == set()


async def test_sandbox_task_starts_and_stops_across_tasks() -> None:
    """What a pytest-asyncio fixture needs: start in one task, stop in another."""
    before = set(asyncio.all_tasks())
    holder: list[SandboxTask] = []

    async def set_up() -> None:
        holder.append(await SandboxTask.start(config=parse_config(BASE_CONFIG)))

    await asyncio.get_running_loop().create_task(set_up())
    async with httpx.AsyncClient(base_url=holder[0].running.url) as http:
        assert (await http.get("/api/v3/time")).status_code == 200
    await asyncio.get_running_loop().create_task(holder[0].stop())
    assert set(asyncio.all_tasks()) - before == set()
