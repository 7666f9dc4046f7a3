"""The real-worker tests run the worker as the image and the task definition do, and the fleet
model's worker drains on the timings of the pinned livekit-agents."""

from __future__ import annotations

import json
import re
from pathlib import Path

from livekit.agents import WorkerOptions

from drainctl.world import fleet
from drainctl.world.real_worker import IMAGE_ARGV, IMAGE_ENVIRONMENT, RealWorker, task_environment
from livekit_drain_worker.app import build_worker_options
from livekit_drain_worker.preflight import preflight
from tests.worker.test_worker_dockerfile import instructions, only

REPO = Path(__file__).resolve().parents[2]


def dockerfile_env(pairs: list[tuple[str, str]]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in only(pairs, "ENV").split())


def test_the_subprocess_runs_the_images_entrypoint_and_command() -> None:
    # GIVEN the Dockerfile's exec-form ENTRYPOINT and CMD
    pairs = instructions(REPO / "worker" / "Dockerfile")

    # WHEN they are joined as Docker joins them
    argv = json.loads(only(pairs, "ENTRYPOINT")) + json.loads(only(pairs, "CMD"))

    # THEN the real-worker harness runs exactly that argv
    assert tuple(argv) == IMAGE_ARGV


def test_the_subprocess_has_the_images_environment_and_the_task_definitions(
    agent_server_for_env: object,
) -> None:
    # GIVEN the image's ENV and the template's worker container environment
    image_env = dockerfile_env(instructions(REPO / "worker" / "Dockerfile"))
    image_env.pop("PYTHONPATH")  # /app in the image; the harness points at worker/ instead

    # WHEN the harness builds a worker's environment
    worker = RealWorker(agent_server_for_env, drain_timeout_seconds=2)  # type: ignore[arg-type]

    # THEN it holds every image variable and every task-definition variable
    assert image_env == dict(IMAGE_ENVIRONMENT)
    for name in image_env:
        assert name in worker.environ
    assert set(task_environment()) <= set(worker.environ)
    assert worker.environ["LIVEKIT_DRAIN_TIMEOUT_SECONDS"] == "2"


def test_the_packaged_worker_keeps_livekit_agents_job_shutdown_grace_the_fleet_model_uses() -> None:
    # GIVEN the options the packaged worker builds, and livekit-agents' own default
    checked = preflight({"LIVEKIT_DRAIN_TIMEOUT_SECONDS": "7"})
    options = build_worker_options(checked)
    default = WorkerOptions(entrypoint_fnc=checked.entrypoint)

    # WHEN their drain timers are read
    # THEN the drain timeout is the setting, and the jobs' shutdown grace is the one the fleet
    # model's worker waits after drain_timeout (a new livekit-agents default breaks this)
    assert options.drain_timeout == 7
    assert options.shutdown_process_timeout == default.shutdown_process_timeout
    assert default.shutdown_process_timeout == fleet.JOB_SHUTDOWN_GRACE_SECONDS


def test_the_dockerfile_names_the_init_process_the_task_definition_enables() -> None:
    # GIVEN the Dockerfile and the template's worker container
    dockerfile = (REPO / "worker" / "Dockerfile").read_text()
    template = (REPO / "template.yaml").read_text()

    # WHEN the signal path is read
    # THEN both say an init forwards SIGTERM (initProcessEnabled), which the harness mirrors by
    # signalling the worker process alone
    assert re.search(r"initProcessEnabled", dockerfile)
    assert re.search(r"InitProcessEnabled: true", template)
