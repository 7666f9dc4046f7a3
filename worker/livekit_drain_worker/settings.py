"""The worker's settings, read once from the environment at start, and the stop-timeout check.

A draining worker waits up to ``drain_timeout`` for its calls to end; ECS waits ``stopTimeout``
after SIGTERM and then kills the container. The worker refuses to start (exit code 78,
EX_CONFIG) when ``stopTimeout < drain_timeout + margin``: it would be killed mid-drain, and
every call still running at that moment would drop.

The task metadata endpoint does not expose a container's stop timeout, so the task definition
passes the value it gives ``stopTimeout`` to the container as
``ECS_CONTAINER_STOP_TIMEOUT_SECONDS``, from the same template parameter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from livekit_drain_worker.task_identity import TaskMetadata

EX_UNAVAILABLE = 69  # sysexits.h: a service the worker needs (task metadata) is unavailable
EX_CONFIG = 78  # sysexits.h: configuration error

DRAIN_TIMEOUT_ENV = "LIVEKIT_DRAIN_TIMEOUT_SECONDS"
STOP_MARGIN_ENV = "LIVEKIT_DRAIN_STOP_MARGIN_SECONDS"
STOP_TIMEOUT_ENV = "ECS_CONTAINER_STOP_TIMEOUT_SECONDS"
MAX_JOBS_ENV = "LIVEKIT_MAX_JOBS"
TASK_PROTECTION_ENV = "LIVEKIT_DRAIN_TASK_PROTECTION"
TASK_PROTECTION_MINUTES_ENV = "LIVEKIT_DRAIN_TASK_PROTECTION_MINUTES"
HEALTH_PORT_ENV = "LIVEKIT_HEALTH_PORT"
AGENT_ENTRYPOINT_ENV = "LIVEKIT_AGENT_ENTRYPOINT"

DEFAULT_DRAIN_TIMEOUT_SECONDS = 600
DEFAULT_STOP_MARGIN_SECONDS = 60
DEFAULT_MAX_JOBS = 8
DEFAULT_TASK_PROTECTION_MINUTES = 60
# livekit-agents serves its health check on this port in production mode.
DEFAULT_HEALTH_PORT = 8081
DEFAULT_AGENT_ENTRYPOINT = "livekit_drain_worker.example_agent:entrypoint"

# What ECS uses on the EC2 launch type when neither the container's stopTimeout nor the host's
# ECS_CONTAINER_STOP_TIMEOUT is set.
ECS_DEFAULT_STOP_TIMEOUT_SECONDS = 30
FARGATE_MAX_STOP_TIMEOUT_SECONDS = 120
# ECS UpdateTaskProtection accepts 1 minute to 48 hours.
MAX_TASK_PROTECTION_MINUTES = 2880

logger = logging.getLogger(__name__)


class SettingsError(Exception):
    """An environment variable holds a value the worker cannot run with."""


class StopTimeoutTooShortError(SettingsError):
    """ECS would kill the container before the worker's drain could end."""


class StopTimeoutSource(StrEnum):
    TASK_DEFINITION = "task_definition"  # ECS_CONTAINER_STOP_TIMEOUT_SECONDS
    ECS_DEFAULT = "ecs_default"  # on ECS, nothing declared: ECS's own default applies
    UNCHECKED = "unchecked"  # not on ECS and nothing declared


@dataclass(frozen=True)
class WorkerSettings:
    drain_timeout_seconds: int
    stop_margin_seconds: int
    stop_timeout_seconds: int | None
    max_jobs: int
    task_protection: bool
    task_protection_minutes: int
    health_port: int
    agent_entrypoint: str

    @property
    def required_stop_timeout_seconds(self) -> int:
        return self.drain_timeout_seconds + self.stop_margin_seconds


@dataclass(frozen=True)
class StopBudget:
    """The outcome of a passing stop-timeout check."""

    stop_timeout_seconds: int | None
    required_seconds: int
    source: StopTimeoutSource


def load_settings(environ: Mapping[str, str] | None = None) -> WorkerSettings:
    """Read and validate every setting; raises `SettingsError` naming the variable."""
    env = os.environ if environ is None else environ
    stop_timeout = _optional_int(env, STOP_TIMEOUT_ENV, minimum=1)
    return WorkerSettings(
        drain_timeout_seconds=_int(env, DRAIN_TIMEOUT_ENV, DEFAULT_DRAIN_TIMEOUT_SECONDS, minimum=1),
        stop_margin_seconds=_int(env, STOP_MARGIN_ENV, DEFAULT_STOP_MARGIN_SECONDS, minimum=0),
        stop_timeout_seconds=stop_timeout,
        max_jobs=_int(env, MAX_JOBS_ENV, DEFAULT_MAX_JOBS, minimum=1),
        task_protection=_bool(env, TASK_PROTECTION_ENV, default=False),
        task_protection_minutes=_int(
            env,
            TASK_PROTECTION_MINUTES_ENV,
            DEFAULT_TASK_PROTECTION_MINUTES,
            minimum=1,
            maximum=MAX_TASK_PROTECTION_MINUTES,
        ),
        health_port=_int(env, HEALTH_PORT_ENV, DEFAULT_HEALTH_PORT, minimum=1, maximum=65535),
        agent_entrypoint=env.get(AGENT_ENTRYPOINT_ENV, "").strip() or DEFAULT_AGENT_ENTRYPOINT,
    )


def check_stop_timeout(settings: WorkerSettings, metadata: TaskMetadata | None) -> StopBudget:
    """Refuse a stop timeout shorter than the drain plus its margin.

    `metadata` is None when not running on ECS: then a declared stop timeout is still checked,
    and a missing one only warns.
    """
    required = settings.required_stop_timeout_seconds
    declared = settings.stop_timeout_seconds

    if declared is None and metadata is None:
        logger.warning(
            "Stop timeout not declared and not running on ECS: stop-timeout check skipped",
            extra={"env_var": STOP_TIMEOUT_ENV, "required_seconds": required},
        )
        return StopBudget(None, required, StopTimeoutSource.UNCHECKED)

    if declared is None:
        effective, source = ECS_DEFAULT_STOP_TIMEOUT_SECONDS, StopTimeoutSource.ECS_DEFAULT
        origin = (
            f"{STOP_TIMEOUT_ENV} is not set, so this worker assumes ECS's default stop timeout "
            f"of {ECS_DEFAULT_STOP_TIMEOUT_SECONDS} s"
        )
    else:
        effective, source = declared, StopTimeoutSource.TASK_DEFINITION
        origin = f"{STOP_TIMEOUT_ENV} declares a stop timeout of {declared} s"

    if metadata is not None and (metadata.launch_type or "").upper() == "FARGATE":
        # Fargate caps stopTimeout whatever the task definition asks for.
        effective = min(effective, FARGATE_MAX_STOP_TIMEOUT_SECONDS)
        origin += f", capped at {FARGATE_MAX_STOP_TIMEOUT_SECONDS} s on Fargate"

    if effective < required:
        raise StopTimeoutTooShortError(
            f"Refusing to start: stop timeout {effective} s is shorter than drain timeout "
            f"{settings.drain_timeout_seconds} s + margin {settings.stop_margin_seconds} s "
            f"= {required} s; ECS would kill calls this worker is still draining ({origin}). "
            f"Set the task definition's stopTimeout, {STOP_TIMEOUT_ENV} and the hosts' "
            f"ECS_CONTAINER_STOP_TIMEOUT to at least {required}, or lower {DRAIN_TIMEOUT_ENV} "
            f"to at most {max(effective - settings.stop_margin_seconds, 0)}."
        )
    return StopBudget(effective, required, source)


def _int(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int,
    maximum: int | None = None,
) -> int:
    value = _optional_int(env, name, minimum=minimum, maximum=maximum)
    return default if value is None else value


def _optional_int(
    env: Mapping[str, str],
    name: str,
    *,
    minimum: int,
    maximum: int | None = None,
) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise SettingsError(f"{name} must be at least {minimum}{upper}, got {value}")
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")
