"""Quiesce: stop taking new calls once this worker's container instance is DRAINING.

With ``minimumHealthyPercent: 100`` ECS sends SIGTERM to a task on a DRAINING instance only once
its replacement is placed and healthy, minutes later on a full cluster or behind a slow health
check (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html).
Until then livekit-agents reports the worker available and LiveKit keeps dispatching calls to it
(https://docs.livekit.io/agents/server/#worker-lifecycle), and every such call lengthens the
instance's drain. The quiesce looks at the container instance's status every
``LIVEKIT_DRAIN_QUIESCE_SECONDS`` (10) and, while it is DRAINING, makes the worker report full
load, so LiveKit sends it no new job; the calls it holds go on. Back to ACTIVE (a warm pool's
instance coming back), the worker takes calls again.

Where the status comes from, the options weighed:
- the task metadata endpoint v4 (``$ECS_CONTAINER_METADATA_URI_V4/task``) and the agent's
  introspection API (``:51678/v1/metadata``) name the task and the container instance but never
  the instance's status (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4.html,
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-introspection.html);
  the introspection API is on the host's loopback, out of reach of a bridge-mode task anyway;
- a signal written by the drain coordinator would need a store both reach, and would miss
  DRAINING set by anyone else (ECS managed draining, the agent's Spot draining, an operator);
- ``DescribeTasks`` (the task's container instance, once) then ``DescribeContainerInstances``
  (its status) with the task role: the status ECS itself acts on, whoever set it. This is the one
  used. The task role needs ``ecs:DescribeTasks`` and ``ecs:DescribeContainerInstances`` (the
  template grants both, scoped to the cluster). Two small calls per poll per task.

A failed look changes nothing: the worker keeps its last state and tries again next poll (a
failure here costs the quiesce, never a call). ``LIVEKIT_DRAIN_QUIESCE=false`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

QUIESCE_ENV = "LIVEKIT_DRAIN_QUIESCE"
QUIESCE_SECONDS_ENV = "LIVEKIT_DRAIN_QUIESCE_SECONDS"
DEFAULT_QUIESCE_SECONDS = 10.0
DRAINING = "DRAINING"
FULL_LOAD = 1.0  # at or above any load_threshold: livekit-agents reports the worker full

logger = logging.getLogger(__name__)


class InstanceStatusError(Exception):
    """The container instance's status could not be read this time."""


class InstanceStatusSource(Protocol):
    def status(self) -> str: ...


class EcsContainerInstanceStatus:
    """The status ECS gives this task's container instance (ACTIVE, DRAINING, ...), through the
    ECS API with the task role's credentials. `client` is a boto3 ECS client."""

    def __init__(self, client: Any, cluster: str, task_arn: str) -> None:
        self._client = client
        self._cluster = cluster
        self._task_arn = task_arn
        self._container_instance_arn: str | None = None

    def status(self) -> str:
        try:
            if self._container_instance_arn is None:
                tasks = self._client.describe_tasks(cluster=self._cluster, tasks=[self._task_arn])
                found = tasks.get("tasks", [])
                if not found or not found[0].get("containerInstanceArn"):
                    raise InstanceStatusError(f"ECS does not place task {self._task_arn} on an instance")
                # A task never moves: its container instance is read once.
                self._container_instance_arn = str(found[0]["containerInstanceArn"])
            answer = self._client.describe_container_instances(
                cluster=self._cluster, containerInstances=[self._container_instance_arn]
            )
        except InstanceStatusError:
            raise
        except Exception as error:  # botocore's ClientError, BotoCoreError and network errors
            raise InstanceStatusError(f"{type(error).__name__}: {error}") from error
        instances = answer.get("containerInstances", [])
        if not instances:
            raise InstanceStatusError(f"ECS does not describe {self._container_instance_arn}")
        return str(instances[0].get("status", "UNKNOWN"))


class QuiesceState:
    """Whether the worker is quiesced; plain data, so the worker options that hold it stay
    picklable."""

    def __init__(self) -> None:
        self.quiesced = False


class Quiesce:
    """Each `poll` reads the instance's status and sets the state; never raises."""

    def __init__(self, source: InstanceStatusSource, state: QuiesceState | None = None) -> None:
        self.source = source
        self.state = state or QuiesceState()

    def poll(self) -> bool:
        try:
            status = self.source.status()
        except InstanceStatusError as error:
            logger.warning(
                "container instance status unknown: quiesce unchanged", extra={"error": str(error)}
            )
            return self.state.quiesced
        quiesced = status == DRAINING
        if quiesced != self.state.quiesced:
            logger.info(
                "container instance is DRAINING: taking no new call"
                if quiesced
                else "container instance is no longer DRAINING: taking calls again",
                extra={"status": status},
            )
        self.state.quiesced = quiesced
        return quiesced


class QuiescingLoad:
    """A livekit-agents ``load_fnc``: full load while quiesced, else the wrapped one's."""

    def __init__(self, inner: Callable[[Any], float], state: QuiesceState) -> None:
        self.inner = inner
        self.state = state

    def __call__(self, server: Any) -> float:
        return FULL_LOAD if self.state.quiesced else self.inner(server)


async def keep_quiesced(
    quiesce: Quiesce,
    *,
    interval_seconds: float = DEFAULT_QUIESCE_SECONDS,
    stop: asyncio.Event | None = None,
) -> None:
    """Poll every `interval_seconds` until `stop`; the ECS calls run in a thread."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        await asyncio.to_thread(quiesce.poll)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)


def quiesce_settings(environ: Mapping[str, str]) -> tuple[bool, float]:
    """(on, poll seconds) from the environment; a bad value is a `ValueError` naming it."""
    raw = environ.get(QUIESCE_ENV, "true").strip().lower()
    if raw not in ("true", "false"):
        raise ValueError(f"{QUIESCE_ENV} must be true or false, not {raw!r}")
    seconds_text = environ.get(QUIESCE_SECONDS_ENV, str(DEFAULT_QUIESCE_SECONDS))
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise ValueError(f"{QUIESCE_SECONDS_ENV} must be a number of seconds, not {seconds_text!r}") from None
    if not 1 <= seconds <= 300:
        raise ValueError(f"{QUIESCE_SECONDS_ENV} must be within 1-300 seconds, not {seconds:g}")
    return raw == "true", seconds


def ecs_status_source(cluster: str, task_arn: str) -> InstanceStatusSource | None:
    """The ECS API source with the task role's credentials (boto3 finds them through the
    container credentials endpoint), in the task's own region; None when boto3 is missing."""
    try:
        import boto3  # optional: only the ECS image needs it
    except ImportError:
        logger.warning("boto3 is not installed: the worker will not quiesce on DRAINING")
        return None
    region = task_arn.split(":")[3]
    return EcsContainerInstanceStatus(boto3.client("ecs", region_name=region), cluster, task_arn)


class QuiesceKeeper:
    """Starts `keep_quiesced` on the worker's event loop once the worker has started."""

    def __init__(self, quiesce: Quiesce, interval_seconds: float) -> None:
        self.quiesce = quiesce
        self.interval_seconds = interval_seconds
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            keep_quiesced(self.quiesce, interval_seconds=self.interval_seconds), name="ecs_quiesce"
        )


def attach_quiesce(
    options: Any,
    environ: Mapping[str, str],
    *,
    cluster: str | None,
    task_arn: str | None,
    source: Callable[[str, str], InstanceStatusSource | None] = ecs_status_source,
) -> QuiesceKeeper | None:
    """Wrap the worker options' ``load_fnc`` so a quiesced worker reports full load, and return
    the keeper to start with the worker; None (options untouched) off ECS or when turned off."""
    try:
        on, seconds = quiesce_settings(environ)
    except ValueError as error:
        logger.error("quiesce setting refused: the worker will not quiesce", extra={"error": str(error)})
        return None
    if not on or cluster is None or task_arn is None:
        return None
    status = source(cluster, task_arn)
    if status is None:
        return None
    quiesce = Quiesce(status)
    options.load_fnc = QuiescingLoad(options.load_fnc, quiesce.state)
    return QuiesceKeeper(quiesce, seconds)
