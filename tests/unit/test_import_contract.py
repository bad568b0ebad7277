"""The layering contract (pyproject.toml, [tool.importlinter]) holds, and it can fail.

The second test copies the package, makes one service import SQLAlchemy — the kind of
shortcut the contract exists to stop — and checks that `lint-imports` refuses it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(cwd: Path, package_parent: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layers_hold() -> None:
    result = lint(ROOT, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_a_service_importing_a_driver_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "treasury", tmp_path / "treasury", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    service = tmp_path / "treasury" / "services" / "settle.py"
    service.write_text(service.read_text() + "\nimport sqlalchemy  # a shortcut\n")
    result = lint(tmp_path, tmp_path)
    assert result.returncode != 0
    assert "Services depend on the domain and the ports only BROKEN" in result.stdout
    assert "treasury.services.settle -> sqlalchemy" in result.stdout
