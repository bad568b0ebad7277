"""The pinned, hashed requirements (``requirements/*.txt``) agree with ``pyproject.toml``.

The Docker image and CI install from them with ``--require-hashes``; a dependency added
to ``pyproject.toml`` without running ``requirements/refresh`` fails here, not in a build.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for each pinned requirement in a lock file."""
    found: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
        elif not line.startswith(" "):
            current = None
    return found


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    if extra is not None:
        names += project["optional-dependencies"][extra]
    return [Requirement(n) for n in names]


@pytest.mark.parametrize(("lock", "extra"), [("runtime.txt", None), ("dev.txt", "dev")])
def test_every_declared_dependency_is_pinned_within_its_range_with_hashes(
    lock: str, extra: str | None
) -> None:
    locked = pins(ROOT / "requirements" / lock)
    assert locked, f"no pins read from requirements/{lock}"
    for req in declared(extra):
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements/{lock}: run requirements/refresh"
        version, _ = locked[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {req.name}=={version}, outside {req.specifier}: "
            "run requirements/refresh"
        )
    unhashed = sorted(n for n, (_, hashes) in locked.items() if hashes == 0)
    assert not unhashed, f"pinned without a hash in requirements/{lock}: {unhashed}"


def test_runtime_pins_are_the_same_versions_as_dev_pins() -> None:
    """The image and CI run the same versions of what they share."""
    runtime, dev = pins(ROOT / "requirements/runtime.txt"), pins(ROOT / "requirements/dev.txt")
    differ = {n: (v, dev[n][0]) for n, (v, _) in runtime.items() if n in dev and dev[n][0] != v}
    assert not differ, f"runtime vs dev versions differ: {differ}: run requirements/refresh"
    assert set(runtime) <= set(dev)
