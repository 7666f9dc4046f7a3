"""Everything the worker checks before it registers with LiveKit, without livekit-agents.

A failed check ends the process with a sysexits code and one log line that says what to fix:
78 (EX_CONFIG) for a setting, 69 (EX_UNAVAILABLE) for an unreachable metadata endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from livekit_drain_worker.entrypoint import EntrypointError, resolve_entrypoint
from livekit_drain_worker.protection import AGENT_URI_ENV
from livekit_drain_worker.settings import (
    EX_CONFIG,
    EX_UNAVAILABLE,
    SettingsError,
    StopBudget,
    WorkerSettings,
    check_stop_timeout,
    load_settings,
)
from livekit_drain_worker.task_identity import TaskMetadata, TaskMetadataError, read_task_metadata

logger = logging.getLogger(__name__)


class PreflightError(Exception):
    """The worker must not start; `exit_code` is the process's exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Preflight:
    settings: WorkerSettings
    metadata: TaskMetadata | None
    stop_budget: StopBudget
    entrypoint: Callable[[Any], Awaitable[None]]
    agent_uri: str | None

    @property
    def task_arn(self) -> str | None:
        return None if self.metadata is None else self.metadata.task_arn


def preflight(
    environ: Mapping[str, str],
    *,
    read_metadata: Callable[[Mapping[str, str]], TaskMetadata | None] = read_task_metadata,
) -> Preflight:
    try:
        settings = load_settings(environ)
    except SettingsError as error:
        raise PreflightError(str(error), EX_CONFIG) from error

    try:
        metadata = read_metadata(environ)
    except TaskMetadataError as error:
        raise PreflightError(str(error), EX_UNAVAILABLE) from error

    try:
        stop_budget = check_stop_timeout(settings, metadata)
    except SettingsError as error:
        raise PreflightError(str(error), EX_CONFIG) from error

    try:
        entrypoint = resolve_entrypoint(settings.agent_entrypoint)
    except EntrypointError as error:
        raise PreflightError(str(error), EX_CONFIG) from error

    agent_uri = environ.get(AGENT_URI_ENV, "").strip() or None
    if settings.task_protection and agent_uri is None:
        logger.warning(
            "task protection asked for but the ECS agent endpoint is not set: protection off",
            extra={"env_var": AGENT_URI_ENV},
        )

    logger.info(
        "worker settings",
        extra={
            "task_arn": None if metadata is None else metadata.task_arn,
            "drain_timeout_seconds": settings.drain_timeout_seconds,
            "stop_timeout_seconds": stop_budget.stop_timeout_seconds,
            "stop_timeout_source": stop_budget.source.value,
            "required_stop_timeout_seconds": stop_budget.required_seconds,
            "max_jobs": settings.max_jobs,
            "task_protection": settings.task_protection and agent_uri is not None,
            "agent_entrypoint": settings.agent_entrypoint,
        },
    )
    return Preflight(settings, metadata, stop_budget, entrypoint, agent_uri)
