"""The one module that wires the worker into livekit-agents.

``python -m livekit_drain_worker start`` runs `main`: the preflight checks, then livekit-agents'
own CLI with the options built here. SIGTERM makes that CLI drain: the worker reports itself
full, takes no new job, and waits up to ``drain_timeout`` for its calls to end.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from livekit.agents import AgentServer, JobContext, WorkerOptions, cli
from livekit.agents.utils.hw import get_cpu_monitor

from livekit_drain_worker.load import ActiveJobsLoad, idle_processes, load_threshold
from livekit_drain_worker.logs import configure_logging
from livekit_drain_worker.preflight import Preflight, PreflightError, preflight
from livekit_drain_worker.protection import (
    ScaleInProtection,
    TaskProtectionClient,
    keep_protection,
)
from livekit_drain_worker.quiesce import QuiesceKeeper, attach_quiesce
from livekit_drain_worker.rescue import rescue_join_attributes
from livekit_drain_worker.tagging import TaggedEntrypoint, TaggingRequestHandler

PROTECTION_SYNC_SECONDS = 10.0

logger = logging.getLogger(__name__)


def build_worker_options(checked: Preflight) -> WorkerOptions:
    settings = checked.settings
    return WorkerOptions(
        entrypoint_fnc=TaggedEntrypoint[JobContext](checked.entrypoint, checked.task_arn),
        request_fnc=TaggingRequestHandler(checked.task_arn, rescue_join_attributes),
        load_fnc=ActiveJobsLoad(settings.max_jobs),
        load_threshold=load_threshold(settings.max_jobs),
        num_idle_processes=idle_processes(settings.max_jobs, get_cpu_monitor().cpu_count()),
        drain_timeout=settings.drain_timeout_seconds,
        port=settings.health_port,
    )


class ProtectionKeeper:
    """Starts `keep_protection` on the worker's event loop once the worker has started."""

    def __init__(self, server: AgentServer, protection: ScaleInProtection) -> None:
        self.server = server
        self.protection = protection
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            keep_protection(
                self.protection,
                lambda: len(self.server.active_jobs),
                interval_seconds=PROTECTION_SYNC_SECONDS,
            ),
            name="ecs_task_protection",
        )


def protection_hold_cap(checked: Preflight) -> int:
    """How long one spell of task protection may hold a deploy: drain timeout + stop timeout
    (the stop timeout the preflight checked, else the least it requires)."""
    settings = checked.settings
    stop = checked.stop_budget.stop_timeout_seconds or checked.stop_budget.required_seconds
    return settings.drain_timeout_seconds + stop


def build_server(
    checked: Preflight, environ: Mapping[str, str] | None = None
) -> tuple[AgentServer, ProtectionKeeper | None]:
    """The worker, and its protection keeper when task protection is on."""
    options = build_worker_options(checked)
    metadata = checked.metadata
    quiesce: QuiesceKeeper | None = attach_quiesce(
        options,
        os.environ if environ is None else environ,
        cluster=None if metadata is None else metadata.cluster,
        task_arn=checked.task_arn,
    )
    server = AgentServer.from_server_options(options)
    if quiesce is not None:
        server.on("worker_started", quiesce.start)
    settings = checked.settings
    if not (settings.task_protection and checked.agent_uri is not None):
        return server, None
    protection = ScaleInProtection(
        TaskProtectionClient(checked.agent_uri),
        expires_in_minutes=settings.task_protection_minutes,
        max_hold_seconds=protection_hold_cap(checked),
    )
    keeper = ProtectionKeeper(server, protection)
    server.on("worker_started", keeper.start)
    return server, keeper


def main() -> int:
    configure_logging()
    try:
        checked = preflight(os.environ)
    except PreflightError as error:
        logger.error(str(error), extra={"exit_code": error.exit_code})
        return error.exit_code
    server, _ = build_server(checked)
    cli.run_app(server)
    return 0
