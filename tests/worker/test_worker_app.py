"""The wiring into livekit-agents, against its real types."""

from __future__ import annotations

import asyncio
import pickle
import socket

from livekit.agents import WorkerOptions

from livekit_drain_worker.app import build_server, build_worker_options
from livekit_drain_worker.example_agent import entrypoint as example_entrypoint
from livekit_drain_worker.healthcheck import healthy
from livekit_drain_worker.load import ActiveJobsLoad
from livekit_drain_worker.preflight import preflight
from livekit_drain_worker.tagging import TaggedEntrypoint, TaggingRequestHandler
from livekit_drain_worker.testing import LocalEcsEndpoints


def free_port() -> int:
    # The worker listens on all interfaces, so port 0 could give IPv4 and IPv6 different ports:
    # take a port that is free now instead.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_worker_options_carry_drain_timeout_load_and_session_tag(
    ecs: LocalEcsEndpoints,
) -> None:
    # GIVEN a worker on ECS with a 15-minute drain and 4 call slots
    checked = preflight(
        {
            **ecs.environ(),
            "LIVEKIT_DRAIN_TIMEOUT_SECONDS": "900",
            "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "960",
            "LIVEKIT_MAX_JOBS": "4",
        }
    )

    # WHEN its livekit-agents options are built
    options = build_worker_options(checked)

    # THEN livekit-agents gets the drain timeout, the job-count load and the tagging handlers
    assert isinstance(options, WorkerOptions)
    assert options.drain_timeout == 900
    assert isinstance(options.load_fnc, ActiveJobsLoad)
    assert options.load_fnc.max_jobs == 4
    assert options.load_threshold == 3.5 / 4
    assert options.port == 8081
    assert isinstance(options.request_fnc, TaggingRequestHandler)
    assert options.request_fnc.task_arn == ecs.task_arn
    assert isinstance(options.entrypoint_fnc, TaggedEntrypoint)
    assert options.entrypoint_fnc.entrypoint is example_entrypoint


def test_worker_options_can_be_pickled_as_livekit_agents_requires(
    ecs: LocalEcsEndpoints,
) -> None:
    # GIVEN the worker's options
    options = build_worker_options(preflight({**ecs.environ(), "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660"}))

    # WHEN they are pickled and unpickled
    copy = pickle.loads(pickle.dumps(options))  # noqa: S301 - our own object

    # THEN the tagging handler still knows the task
    assert copy.request_fnc.task_arn == ecs.task_arn
    assert copy.drain_timeout == 600


def test_running_worker_serves_its_health_check_and_keeps_protection(
    ecs: LocalEcsEndpoints,
) -> None:
    # GIVEN a worker with task protection on, on a free health port, one call slot
    checked = preflight(
        {
            **ecs.environ(),
            "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660",
            "LIVEKIT_DRAIN_TASK_PROTECTION": "true",
            "LIVEKIT_HEALTH_PORT": str(free_port()),
            "LIVEKIT_MAX_JOBS": "1",
        }
    )
    # (the quiesce would ask the real ECS API: off here, tested in test_worker_quiesce.py)
    server, keeper = build_server(checked, {"LIVEKIT_DRAIN_QUIESCE": "false"})
    assert keeper is not None

    async def start_check_stop() -> tuple[bool, bool]:
        started = asyncio.Event()
        server.on("worker_started", started.set)
        run = asyncio.create_task(server.run(devmode=False, unregistered=True))
        await started.wait()
        health = await asyncio.to_thread(healthy, server.worker_info.http_port)
        keeper_running = keeper.task is not None and not keeper.task.done()
        await server.aclose()
        await asyncio.gather(run, return_exceptions=True)
        return health, keeper_running

    # WHEN it runs (without registering with a LiveKit server)
    health, keeper_running = asyncio.run(start_check_stop())

    # THEN the health check passes, the protection keeper runs, and an idle worker
    # asked for no protection
    assert health is True
    assert keeper_running is True
    assert ecs.protection_requests == []
