"""Deployment files: the systemd units verify, the compose file has the expected shape,
the container entry point execs the right command, the Dockerfile keeps its promises."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "systemd" / "treasury.service"
MIGRATE_UNIT = DEPLOY / "systemd" / "treasury-migrate.service"
COMPOSE = DEPLOY / "docker" / "compose.yaml"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def directives(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


# ---- systemd ----------------------------------------------------------------------------


def test_unit_is_hardened_and_wired_for_notify() -> None:
    d = directives(UNIT)
    expected = {
        "Type": "notify",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "TimeoutStopSec": "20",
        "DynamicUser": "yes",
        "StateDirectory": "treasury",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet": "",
        "EnvironmentFile": "/etc/treasury/treasury.env",
        "LoadCredential": "treasury_binance_api_secret:/etc/treasury/api_secret",
    }
    for key, value in expected.items():
        assert d.get(key, [None])[0] == value, key
    assert "@system-service" in d["SystemCallFilter"]
    assert "ExecStartPre" not in d  # migrations are a deliberate step (treasury-migrate)
    # the stop budget covers the daemon's graceful shutdown (8 s by default)
    assert int(d["TimeoutStopSec"][0]) > 8 + 2 + 2


def _verify(tmp_path: Path, *units: Path) -> subprocess.CompletedProcess[str]:
    # verify insists that ExecStart= exists; the package is not installed at /opt here
    copies = []
    for unit in units:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/treasury/bin/treasury", "/bin/true"))
        copies.append(str(copy))
    return subprocess.run(
        ["systemd-analyze", "verify", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    result = _verify(tmp_path, UNIT, MIGRATE_UNIT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "treasury" not in result.stderr, result.stderr  # no warnings about our units


def test_env_example_names_real_settings() -> None:
    from treasury.config import Settings

    fields = {f"TREASURY_{name.upper()}" for name in Settings.model_fields}
    text = (DEPLOY / "systemd" / "treasury.env.example").read_text()
    named = set(re.findall(r"^#?(TREASURY_[A-Z_]+)=", text, re.MULTILINE))
    assert named and named <= fields, named - fields
    assert "API_SECRET=" not in text  # the secret is a credential, never in the env file


# ---- compose ----------------------------------------------------------------------------


def test_compose_minimal_shape() -> None:
    """Without a YAML parser: the services and the conditions are there, as text."""
    text = COMPOSE.read_text()
    for needle in (
        "postgres:",
        "image: postgres:16",
        "migrate:",
        "treasury:",
        "condition: service_healthy",
        "condition: service_completed_successfully",
        '"127.0.0.1:7464:7464"',
        "treasury_binance_api_secret:",
        "healthcheck:",
    ):
        assert needle in text, needle
    assert "TREASURY_BINANCE_API_SECRET" not in text  # a docker secret, not an env var


def test_compose_parses() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in this virtualenv")
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert set(services) == {"postgres", "migrate", "treasury"}
    assert services["postgres"]["image"] == "postgres:16"
    assert "healthcheck" in services["postgres"]
    assert services["migrate"]["command"] == ["migrate"]
    deps = services["treasury"]["depends_on"]
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert "treasury_binance_api_secret" in services["treasury"]["secrets"]
    assert all(p.startswith("127.0.0.1:") for p in services["treasury"]["ports"])
    assert "treasury_binance_api_secret" in doc["secrets"]


# ---- the entry point --------------------------------------------------------------------


def test_entrypoint_syntax() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    subprocess.run([bash, "-n", str(ENTRYPOINT)], check=True, timeout=30)


@pytest.fixture
def fake_treasury(tmp_path: Path) -> Path:
    """A `treasury` on PATH that prints its PID and arguments as JSON."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "treasury"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "print(json.dumps({'pid': os.getpid(), 'argv': sys.argv[1:]}))\n"
    )
    fake.chmod(0o755)
    return bin_dir


def _entry(bin_dir: Path, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    proc = subprocess.Popen(
        ["/bin/sh", str(ENTRYPOINT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=30)
    return proc, out, err


@pytest.mark.parametrize(
    ("args", "argv"),
    [
        ((), ["run"]),
        (("run",), ["run"]),
        (("migrate",), ["migrate"]),
        (("check", "--help"), ["check", "--help"]),
    ],
)
def test_entrypoint_execs_the_command(
    fake_treasury: Path, args: tuple[str, ...], argv: list[str]
) -> None:
    proc, out, _ = _entry(fake_treasury, *args)
    assert proc.returncode == 0
    seen = json.loads(out)
    assert seen["argv"] == argv
    # exec: the daemon *is* the process docker started (and signals), no shell in between
    assert seen["pid"] == proc.pid


def test_entrypoint_refuses_other_commands(fake_treasury: Path) -> None:
    proc, out, err = _entry(fake_treasury, "enqueue", "--coin", "USDT")
    assert proc.returncode == 64 and out == "" and "unknown command" in err


def test_entrypoint_reads_no_secret() -> None:
    code = "\n".join(
        line for line in ENTRYPOINT.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    assert "secrets" not in code and "export" not in code and "$(" not in code


# ---- the image ----------------------------------------------------------------------------


def test_dockerfile_promises() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2  # multi-stage
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0"))
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)
    assert entry and json.loads(entry.group(1)) == ["/usr/local/bin/treasury-entrypoint"]
    health = re.search(r"^  CMD (\[.*\])$", text.split("HEALTHCHECK")[1], re.MULTILINE)
    assert health and json.loads(health.group(1)) == ["treasury", "healthcheck"]
    assert "curl" not in text.split("HEALTHCHECK")[1]
    assert "deploy/docker/entrypoint.sh" in text
    assert os.access(ENTRYPOINT, os.X_OK)
    # dependencies from the pinned, hashed lock; the package itself adds none
    assert re.search(r"pip install --require-hashes -r requirements/runtime\.txt", text)
    assert re.search(r"pip install --no-deps /src", text)
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!requirements/runtime.txt" in ignore


# ---- pinning the base images by digest -----------------------------------------------


def test_pin_images_rewrites_each_registry_image_to_its_current_digest(tmp_path: Path) -> None:
    """`deploy/docker/pin-images` against a stand-in `docker` that answers like
    `docker buildx imagetools inspect`: registry images get `tag@digest`, a second run
    replaces the digest rather than stacking one, the locally built image is left alone,
    and `--check` tells pinned from unpinned without the network."""
    for name in ("Dockerfile", "compose.yaml"):
        shutil.copy(DEPLOY / "docker" / name, tmp_path / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        "# docker buildx imagetools inspect TAG: a digest made from $DIGEST_SEED and the tag\n"
        'tag="$4"\n'
        'case "$tag" in *@*) echo "asked for a digest, not a tag: $tag" >&2; exit 1;; esac\n'
        'printf "Name: %s\\nMediaType: application/vnd.oci.image.index.v1+json\\n" "$tag"\n'
        'printf "Digest: sha256:%s\\n" "$(printf %s "$DIGEST_SEED$tag" | sha256sum | cut -c1-64)"\n'
    )
    fake.chmod(0o755)
    script = DEPLOY / "docker" / "pin-images"
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def pin(*args: str, seed: str = "a") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), "--root", str(tmp_path), *args],
            env=env | {"DIGEST_SEED": seed},
            capture_output=True,
            text=True,
            check=False,
        )

    before = pin("--check")
    assert before.returncode == 1 and "python:3.11-slim" in before.stdout, before
    assert pin().returncode == 0
    digest = re.compile(r"@sha256:[0-9a-f]{64}$", re.MULTILINE)
    dockerfile = (tmp_path / "Dockerfile").read_text()
    compose = (tmp_path / "compose.yaml").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    assert re.search(r"^\s+image: postgres:16@sha256:[0-9a-f]{64}$", compose, re.M)
    assert "image: treasury:local\n" in compose
    assert pin("--check").returncode == 0
    first = digest.findall(dockerfile)
    assert pin(seed="b").returncode == 0  # a newer image behind the same tag
    again = (tmp_path / "Dockerfile").read_text()
    assert digest.findall(again) != first and again.count("@sha256:") == 1
    # everything but the image references is untouched
    strip = lambda text: digest.sub("", text)  # noqa: E731
    assert strip(again) == strip((DEPLOY / "docker" / "Dockerfile").read_text())
