"""Task stops: one worker task followed from "told to stop" to STOPPED, and its end judged.

`judge()` is a pure function of the stop as ECS reported it and what the coordinator saw of the
task's calls. ECS keeps a deploy green whatever happened to the calls; this verdict is how the
user learns that a worker was killed with calls on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from drain_coordinator.domain.events import EventRejectedError, Skip, first_error
from drain_coordinator.domain.records import DrainStatus

TASK_STATE_DETAIL_TYPE = "ECS Task State Change"
SIGKILL_EXIT_CODE = 137  # 128 + 9
# ECS delivers SIGKILL at stoppingAt + stopTimeout; its own bookkeeping adds a few seconds.
KILL_TOLERANCE_SECONDS = 5.0
# The packaged worker's container name in template.yaml's WorkerTaskDefinition.
DEFAULT_WORKER_CONTAINER = "worker"


class Verdict(StrEnum):
    GRACEFUL = "graceful"  # exited by itself, with no call left, before stopTimeout
    FORCED_KILL = "forced_kill"  # SIGKILLed (exit 137) at or past stopTimeout, or its host went away
    OOM = "oom"  # killed by the kernel for memory
    CRASHED = "crashed"  # exited non-zero on its own
    DRAIN_TIMED_OUT = "drain_timed_out"  # exited with calls still up: the worker gave up its drain
    # ECS no longer describes the task (it keeps a stopped task about an hour) and no STOPPED
    # event came: how it ended cannot be known; the calls still without their agent are counted.
    UNOBSERVED = "unobserved"


@dataclass(frozen=True, slots=True)
class ContainerExit:
    name: str
    exit_code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class TaskStateChange:
    """An ECS Task State Change (or a DescribeTasks task: same fields), reduced to what counts."""

    task_arn: str
    cluster_arn: str
    container_instance_arn: str | None
    task_definition_arn: str
    group: str
    last_status: str
    desired_status: str
    stop_code: str
    stopped_reason: str
    stopping_at: float | None
    stopped_at: float | None
    observed_at: float
    version: int
    containers: tuple[ContainerExit, ...] = ()

    @property
    def stopped(self) -> bool:
        return self.last_status == "STOPPED"

    @property
    def service(self) -> str:
        return self.group.removeprefix("service:") if self.group.startswith("service:") else ""

    @property
    def family(self) -> str:
        return self.task_definition_arn.rsplit("/", 1)[-1].split(":", 1)[0]


# A task stop is open or closed exactly as a drain is.
TaskStopStatus = DrainStatus


@dataclass(frozen=True, slots=True)
class TaskStopRecord:
    """A stopping worker task, as stored (pk "task#<arn>")."""

    task_arn: str
    cluster_arn: str
    container_instance_arn: str | None
    service: str
    family: str
    stopping_at: float
    stop_timeout: int
    opened_at: float
    # room -> this task's ARN, for the calls the task held when it was told to stop (and since)
    watched_rooms: dict[str, str] = field(default_factory=dict)
    sessions_remaining: int | None = None
    at_risk_warned: bool = False
    status: TaskStopStatus = TaskStopStatus.OPEN
    verdict: Verdict | None = None
    dropped_sessions: int = 0
    stopped_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    version: int = 0

    @property
    def is_open(self) -> bool:
        return self.status is TaskStopStatus.OPEN

    @property
    def kill_at(self) -> float:
        return self.stopping_at + self.stop_timeout


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    dropped_sessions: int
    exit_code: int | None
    reason: str
    stop_seconds: float | None
    # False when LiveKit could not be asked at the stop: `dropped_sessions` is the last count seen
    calls_counted: bool = True

    @property
    def killed(self) -> bool:
        """SIGKILLed, out of memory, or its host gone."""
        return self.verdict in (Verdict.FORCED_KILL, Verdict.OOM)

    @property
    def pages_as_forced_kill(self) -> bool:
        """A kill is the forced-kills alarm's when it dropped calls, or when its calls could not
        be counted. An idle worker killed, known to hold no call, is counted by its outcome
        alone: it is no reason to wake anyone."""
        return self.killed and (self.dropped_sessions > 0 or not self.calls_counted)


def judge(
    change: TaskStateChange,
    stop_timeout: int | None,
    calls_still_up: int,
    worker_container: str = DEFAULT_WORKER_CONTAINER,
    *,
    calls_counted: bool = True,
    drain_timeout: int | None = None,
) -> Judgement:
    """The verdict on a STOPPED task, judged on its worker container (sidecars are ignored).

    `calls_still_up`: calls the task held that were still connected (a caller in the room) when
    it stopped; they are the calls its stop dropped, whatever the verdict.
    """
    worker = worker_container_of(change.containers, worker_container)
    exit_code = worker.exit_code if worker else None
    reason = (worker.reason if worker and worker.reason else change.stopped_reason) or ""
    stop_seconds = (
        change.stopped_at - change.stopping_at
        if change.stopped_at is not None and change.stopping_at is not None
        else None
    )
    if not calls_counted and drained_by_itself(exit_code, stop_seconds, drain_timeout):
        # LiveKit could not be asked, but the worker's own exit says it: a livekit-agents worker
        # exits 0 on SIGTERM only once its jobs have ended, or when its drain timeout gives up on
        # them (livekit-agents' CLI drains on SIGTERM: AgentServer.drain(timeout) in worker.py,
        # the packaged worker's drain_timeout). Well before that timeout no call was left; the
        # last count seen is out of date.
        calls_still_up = 0
    if worker is not None and "OutOfMemory" in worker.reason:
        verdict = Verdict.OOM
    elif exit_code == SIGKILL_EXIT_CODE or (exit_code is None and _host_went_away(change)):
        verdict = Verdict.FORCED_KILL
    elif exit_code is not None and exit_code != 0 and change.stop_code == "EssentialContainerExited":
        verdict = Verdict.CRASHED
    elif (
        stop_timeout is not None
        and stop_seconds is not None
        and stop_seconds >= stop_timeout - KILL_TOLERANCE_SECONDS
        and exit_code != 0
    ):
        verdict = Verdict.FORCED_KILL
    elif calls_still_up > 0:
        verdict = Verdict.DRAIN_TIMED_OUT
    elif exit_code not in (None, 0, 143):  # 143: ended by SIGTERM's default action, after its drain
        verdict = Verdict.CRASHED
    else:
        verdict = Verdict.GRACEFUL
    return Judgement(verdict, calls_still_up, exit_code, reason, stop_seconds, calls_counted)


def drained_by_itself(exit_code: int | None, stop_seconds: float | None, drain_timeout: int | None) -> bool:
    """The worker exited 0 before its drain timeout could have given up on a call."""
    return (
        exit_code == 0
        and stop_seconds is not None
        and drain_timeout is not None
        and stop_seconds < drain_timeout - KILL_TOLERANCE_SECONDS
    )


def close_with(record: TaskStopRecord, judgement: Judgement, change: TaskStateChange) -> TaskStopRecord:
    return replace(
        record,
        status=TaskStopStatus.CLOSED,
        verdict=judgement.verdict,
        dropped_sessions=judgement.dropped_sessions,
        stopped_at=change.stopped_at or change.observed_at,
        exit_code=judgement.exit_code,
        reason=judgement.reason,
    )


UNOBSERVED_REASON = "ECS no longer describes the task and no STOPPED event came"


def close_unobserved(record: TaskStopRecord, calls_still_up: int, now: float) -> TaskStopRecord:
    """A stop whose task ECS has forgotten: closed, so it is not looked at every minute forever."""
    return replace(
        record,
        status=TaskStopStatus.CLOSED,
        verdict=Verdict.UNOBSERVED,
        dropped_sessions=calls_still_up,
        stopped_at=now,
        reason=UNOBSERVED_REASON,
    )


def at_risk(record: TaskStopRecord, now: float, warn_before_seconds: float) -> bool:
    """Calls still up this close to the kill: say so before it happens."""
    return bool(record.sessions_remaining) and now >= record.kill_at - warn_before_seconds


def worker_container_of(containers: tuple[ContainerExit, ...], name: str) -> ContainerExit | None:
    """The container whose end is the worker's: the one named `name`.

    A task may run sidecars beside the worker (FireLens, the X-Ray daemon, an envoy proxy), and
    ECS lists a task's containers in no particular order: a sidecar that exits 0 when the task
    stops says nothing about the worker. When no container has the name, a task of one container
    is judged on it; with several, the first that failed (non-zero exit or a reason such as
    OutOfMemoryError) decides, so an unknown name can never make a dead worker look graceful.
    ECS task state change event and its `containers`:
    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html
    """
    named = [c for c in containers if c.name == name]
    if named:
        return named[0]
    if len(containers) <= 1:
        return containers[0] if containers else None
    failed = [c for c in containers if (c.exit_code not in (None, 0)) or c.reason]
    with_codes = [c for c in containers if c.exit_code is not None]
    return (failed or with_codes or list(containers))[0]


def _host_went_away(change: TaskStateChange) -> bool:
    text = change.stopped_reason.lower()
    return change.stop_code in {"TerminationNotice", "SpotInterruption"} or (
        "host ec2" in text and "terminated" in text
    )


# -- parsing -------------------------------------------------------------------------------------


def parse_task_state_event(
    raw: Mapping[str, Any], *, cluster: str, family: str = ""
) -> TaskStateChange | Skip:
    # pydantic and the models come with the first task event parsed, not with the handler's import.
    from pydantic import ValidationError

    from drain_coordinator.domain.task_stops_schema import TaskEventEnvelope

    try:
        envelope = TaskEventEnvelope.model_validate(raw)
    except ValidationError as exc:
        raise EventRejectedError(first_error(exc)) from exc
    if envelope.source != "aws.ecs" or envelope.detail_type != TASK_STATE_DETAIL_TYPE:
        raise EventRejectedError(f"unexpected {envelope.source!r} / {envelope.detail_type!r}")
    change = task_change_from(envelope.detail, observed_at=envelope.time.timestamp())
    if change.cluster_arn.rsplit("/", 1)[-1] != cluster:
        return Skip(reason="other_cluster", event_id=envelope.id)
    if family and change.family != family:
        return Skip(reason="not_a_worker_task", event_id=envelope.id)
    if change.desired_status != "STOPPED":
        return Skip(reason="not_stopping", event_id=envelope.id)
    return change


def task_change_from(detail: Mapping[str, Any], *, observed_at: float) -> TaskStateChange:
    """From an event's detail or a DescribeTasks task (boto3 gives datetimes, events give text)."""
    from pydantic import ValidationError

    from drain_coordinator.domain.task_stops_schema import TaskDetail

    try:
        task = TaskDetail.model_validate(dict(detail))
    except ValidationError as exc:
        raise EventRejectedError(first_error(exc)) from exc
    return TaskStateChange(
        task_arn=task.task_arn,
        cluster_arn=task.cluster_arn,
        container_instance_arn=task.container_instance_arn,
        task_definition_arn=task.task_definition_arn,
        group=task.group,
        last_status=task.last_status,
        desired_status=task.desired_status,
        stop_code=task.stop_code,
        stopped_reason=task.stopped_reason,
        stopping_at=task.stopping_at.timestamp() if task.stopping_at else None,
        stopped_at=task.stopped_at.timestamp() if task.stopped_at else None,
        observed_at=observed_at,
        version=task.version,
        containers=tuple(ContainerExit(c.name, c.exit_code, c.reason) for c in task.containers),
    )
