"""The README's "PostgreSQL and the sandbox in five minutes", run as it is written: one
bash process, the venv's `treasury` on PATH, a PostgreSQL on 127.0.0.1 that lets
`postgres` in. It must end with the intent completed and both processes stopped."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import postgres_base_url, postgres_reachable

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart() -> str:
    text = README.read_text("utf-8")
    block = re.search(
        r"<!-- quickstart:start -->\n```bash\n(.*?)\n```\n<!-- quickstart:end -->", text, re.DOTALL
    )
    assert block is not None, "README: the quick-start block is missing"
    return block.group(1)


def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    if not postgres_reachable():
        msg = f"PostgreSQL not reachable at {postgres_base_url()}: the quick start needs one"
        if os.environ.get("TREASURY_REQUIRE_POSTGRES") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    if "127.0.0.1:5432" not in postgres_base_url() or shutil.which("createdb") is None:
        pytest.skip("the quick start assumes PostgreSQL's client tools and 127.0.0.1:5432")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TREASURY_") and k != "CREDENTIALS_DIRECTORY"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = "set -euo pipefail\n" + quickstart()
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the quick start did not finish in 180 s:\n{out.decode()[-4000:]}")
    finally:
        subprocess.run(
            ["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", "treasury_quickstart"],
            check=False,
            capture_output=True,
        )
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "status: completed" in text or re.search(r"status\s*:\s*completed", text), text[-3000:]
    assert "Traceback" not in text, text[-4000:]
