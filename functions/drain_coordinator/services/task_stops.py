"""Task stops followed from SIGTERM to STOPPED: open a record, sample the calls, judge the end.

The companion of drains.py for ECS Task State Change events. When a stopped task sat on an
instance that is draining, that drain is looked at at once: the instance is released in seconds
after its last worker exits, not at the next tick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from drain_coordinator.domain.events import EventRejectedError
from drain_coordinator.domain.rescue import worries_of
from drain_coordinator.domain.task_stops import (
    DEFAULT_WORKER_CONTAINER,
    Judgement,
    TaskStateChange,
    TaskStopRecord,
    Verdict,
    at_risk,
    close_unobserved,
    close_with,
    judge,
    task_change_from,
)
from drain_coordinator.integrations.autoscaling import AutoScalingError
from drain_coordinator.integrations.ecs import DEFAULT_STOP_TIMEOUT, EcsError
from drain_coordinator.integrations.livekit import LiveKitProbeError
from drain_coordinator.integrations.secrets import CredentialsError
from drain_coordinator.integrations.store import StaleDrainError, StoreError
from drain_coordinator.observability import (
    MetricName,
    logger,
    put_metric,
    put_metric_by,
    put_metric_for_service,
)
from drain_coordinator.services.discovery import audit
from drain_coordinator.services.drains import Coordinator, DrainStep, TaskStopStorePort
from drain_coordinator.services.rescue import Rescuer

# ECS's stoppedReason for a task a service deployment replaces.
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-errors.html
_DEPLOYMENT_REASON = "(deployment "


def _by_deploy(reason: str) -> bool:
    return _DEPLOYMENT_REASON in reason


_PREFETCH_VALID_SECONDS = 60.0  # a batch read serves the run that read it, not a later look


class RoomIndexUnreadableError(Exception):
    """The room index could not be read: which rooms the task holds is unknown."""


_PROBE_ERRORS = (LiveKitProbeError, CredentialsError, EcsError, RoomIndexUnreadableError)


class TaskEcsPort(Protocol):
    def stop_timeout_of(self, task_definition_arn: str) -> int: ...
    def describe_task(self, task_arn: str) -> dict[str, Any] | None: ...
    def describe_tasks(self, task_arns: Any) -> dict[str, dict[str, Any]]: ...
    def ec2_instance_of(self, container_instance_arn: str) -> str | None: ...


class TaskSessionsPort(Protocol):
    def discover(self, task_arns: Any, within: float | None = None, among: Any = None) -> dict[str, str]: ...
    def room_names(self, within: float | None = None) -> list[str]: ...
    def still_held(self, rooms: Any, within: float | None = None) -> dict[str, str]: ...
    def callers_still_in(self, rooms: Any) -> dict[str, str]: ...


class RoomIndexPort(Protocol):
    def rooms_held_by(self, task_arns: Any, *, with_left: bool = False) -> dict[str, str]: ...
    def indexed(self, rooms: Any) -> set[str]: ...
    def record_agent(self, room: str, task_arn: str, identity: str, at: float) -> None: ...


@dataclass(frozen=True, slots=True)
class TaskStep:
    action: str  # task_stopping | task_stopped | task_sampled | at_risk | skip | stale
    task_arn: str
    verdict: str | None = None
    dropped_sessions: int | None = None
    sessions: int | None = None
    reason: str | None = None
    error: str | None = None
    exit_code: int | None = None
    instance_id: str | None = None
    service: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in _fields(self).items() if v is not None}


def _fields(step: TaskStep) -> dict[str, Any]:
    return {name: getattr(step, name) for name in TaskStep.__slots__}


@dataclass
class TaskStopTracker:
    store: TaskStopStorePort
    ecs: TaskEcsPort
    sessions: TaskSessionsPort
    drains: Coordinator
    clock: Callable[[], float]
    cluster: str
    at_risk_seconds: float = 60.0
    worker_container: str = DEFAULT_WORKER_CONTAINER
    # The hosts' ECS_CONTAINER_STOP_TIMEOUT: assumed when the task definition cannot be read.
    host_stop_timeout: int = DEFAULT_STOP_TIMEOUT
    # What the webhooks learned of which task holds which room: counts the calls of a worker
    # that died on its own (no stop record), whose agent LiveKit no longer shows.
    room_index: RoomIndexPort | None = None
    # With a rescuer, a stop that would end its calls (SIGKILL at stopTimeout, the worker giving
    # up its drain_timeout, or a deploy's stop under RescueOnDeploy) hands them to healthy workers.
    rescuer: Rescuer | None = None
    worker_drain_timeout: int | None = None
    # A run's open stops, described in one batch before its looks (prefetch): ARN -> ECS's
    # description, None when ECS no longer knows the task.
    _prefetched: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)
    _prefetched_at: float = field(default=0.0, repr=False)

    def prefetch(self, records: Iterable[TaskStopRecord]) -> None:
        """Before a run of looks: every open stop's task described at once (DescribeTasks, 100
        to a request) instead of one request per stop. On failure each look asks for itself."""
        self._prefetched, self._prefetched_at = {}, self.clock()
        arns = sorted({r.task_arn for r in records if r.is_open})
        if not arns:
            return
        try:
            found = self.ecs.describe_tasks(arns)
        except EcsError as exc:
            logger.warning("task stops not described in a batch: each look asks", extra={"error": str(exc)})
            return
        self._prefetched = {arn: found.get(arn) for arn in arns}

    def on_change(self, change: TaskStateChange) -> list[dict[str, Any]]:
        logger.append_keys(taskArn=change.task_arn, containerInstanceArn=change.container_instance_arn)
        existing = self.store.get(change.task_arn)
        if existing is not None and not existing.is_open:
            logger.info("task stop already judged: duplicate or late event ignored")
            return [TaskStep("skip", change.task_arn, reason="already_judged").as_dict()]
        if not change.stopped:
            if existing is not None:
                return [TaskStep("skip", change.task_arn, reason="duplicate").as_dict()]
            return [self._open(change).as_dict()]
        steps = [self._judge(existing, change).as_dict()]
        steps += [s.as_dict() for s in self._release_drain_of(change)]
        return steps

    def follow(self, record: TaskStopRecord, within: float | None = None) -> dict[str, Any]:
        """Reconcile's look at an open task stop: STOPPED already (a lost event)? else sample
        (LiveKit asked within what is left of `within` seconds)."""
        logger.append_keys(taskArn=record.task_arn, containerInstanceArn=record.container_instance_arn)
        now = self.clock()
        try:
            described = self._described(record.task_arn, now)
        except EcsError as exc:
            return TaskStep("task_sampled", record.task_arn, error=str(exc)).as_dict()
        if described is not None and described.get("lastStatus") == "STOPPED":
            change = task_change_from(described, observed_at=now)
            return self._judge(record, change).as_dict()
        if described is None:
            return self._close_unobserved(record, now).as_dict()
        left = None if within is None else within - (self.clock() - now)
        try:
            held = self.sessions.still_held(record.watched_rooms, within=left)
        except _PROBE_ERRORS as exc:
            put_metric(MetricName.PROBE_ERRORS)
            return TaskStep("task_sampled", record.task_arn, error=str(exc)).as_dict()
        put_metric(MetricName.SESSIONS_REMAINING, len(held))
        self._rescue(record, held, set(record.watched_rooms))
        updated = replace(record, watched_rooms=held, sessions_remaining=len(held))
        step = TaskStep("task_sampled", record.task_arn, sessions=len(held), service=record.service or None)
        if at_risk(updated, now, self.at_risk_seconds) and not record.at_risk_warned:
            updated = replace(updated, at_risk_warned=True)
            logger.warning(
                "calls at risk: the task will be SIGKILLed with calls still up",
                extra={
                    "sessions": len(held),
                    "secondsToKill": round(record.kill_at - now, 1),
                    "stopTimeout": record.stop_timeout,
                    "ecsService": record.service,
                },
            )
            step = replace(step, action="at_risk")
        if updated == record:
            return step.as_dict()  # nothing changed: no write
        try:
            self.store.save(updated)
        except StaleDrainError:
            return replace(step, action="stale").as_dict()
        return step.as_dict()

    def _described(self, task_arn: str, now: float) -> dict[str, Any] | None:
        if task_arn in self._prefetched and now - self._prefetched_at < _PREFETCH_VALID_SECONDS:
            return self._prefetched.pop(task_arn)
        return self.ecs.describe_task(task_arn)

    def open_stops(self) -> Iterator[TaskStopRecord]:
        return self.store.open_stops()

    # -- internals -------------------------------------------------------------------------------

    def _open(self, change: TaskStateChange) -> TaskStep:
        now = self.clock()
        record = self._new_record(change, now)
        try:
            rooms = self._rooms_of(change.task_arn)
            record = replace(record, watched_rooms=rooms, sessions_remaining=len(rooms))
        except _PROBE_ERRORS as exc:
            put_metric(MetricName.PROBE_ERRORS)
            logger.warning("could not see the stopping task's calls", extra={"error": str(exc)})
        if not self.store.create(record):
            return TaskStep("skip", change.task_arn, reason="duplicate")
        self._rescue(record, record.watched_rooms, set())
        logger.info(
            "task stopping",
            extra={
                "sessions": record.sessions_remaining,
                "stopTimeout": record.stop_timeout,
                "reason": change.stopped_reason,
                "ecsService": record.service,
            },
        )
        return TaskStep(
            "task_stopping",
            change.task_arn,
            sessions=record.sessions_remaining,
            reason=change.stopped_reason or None,
            service=record.service or None,
        )

    def _callers_up(self, watched: dict[str, str]) -> int:
        """The callers still in the task's rooms. A look LiveKit failed is tried once more: the
        callers a dead worker left hang up within seconds, so the next tick would be too late to
        count them, and one call past its own bound (a latency tail, a 429) is no outage."""
        try:
            return len(self.sessions.callers_still_in(watched))
        except LiveKitProbeError as exc:
            logger.info("the stopped task's calls not counted at the first try", extra={"error": str(exc)})
            return len(self.sessions.callers_still_in(watched))

    def _judge(self, record: TaskStopRecord | None, change: TaskStateChange) -> TaskStep:
        """The calls first, ECS after: the callers a dead worker left on the line hang up within
        seconds, so a slow or hung ECS (the stop timeout, the instance) must not come before
        them. Only LiveKit and the room index are asked before the count."""
        now = self.clock()
        created = record is None
        if record is None:
            # STOPPED with no stopping record (that event was lost or comes later, or the task
            # died with its host, never told to stop): judge from what is still visible, and the
            # rooms the webhooks saw its agent in: a killed worker's agent has left them already.
            watched = self._rooms_seen_at_stop(change.task_arn)
            remaining = 0
        else:
            watched, remaining = record.watched_rooms, record.sessions_remaining or 0
        watched = {**self._indexed_rooms(change.task_arn), **watched}
        counted = True
        try:
            calls_up = self._callers_up(watched)
        except _PROBE_ERRORS as exc:
            put_metric(MetricName.PROBE_ERRORS)
            calls_up, counted = remaining, False  # the last count seen is the best we know
            logger.warning("could not check the stopped task's calls", extra={"error": str(exc)})
        if record is None:
            record = self._new_record(change, now)
        record = replace(record, watched_rooms=watched)
        judgement = judge(
            change,
            record.stop_timeout,
            calls_up,
            self.worker_container,
            calls_counted=counted,
            drain_timeout=self.worker_drain_timeout,
        )
        closed = close_with(record, judgement, change)
        try:
            if created:
                if not self.store.create(closed):
                    return TaskStep("skip", change.task_arn, reason="already_judged")
            else:
                self.store.save(closed)
        except StaleDrainError:
            return TaskStep("stale", change.task_arn)
        instance_id = self._instance_of(change)
        self._emit(closed, judgement, instance_id)
        return TaskStep(
            "task_stopped",
            change.task_arn,
            verdict=judgement.verdict.value,
            dropped_sessions=judgement.dropped_sessions,
            exit_code=judgement.exit_code,
            reason=judgement.reason or None,
            instance_id=instance_id,
            service=closed.service or None,
        )

    def _close_unobserved(self, record: TaskStopRecord, now: float) -> TaskStep:
        try:
            calls_up = len(self.sessions.callers_still_in(record.watched_rooms))
        except _PROBE_ERRORS as exc:
            put_metric(MetricName.PROBE_ERRORS)
            calls_up = record.sessions_remaining or 0
            logger.warning("could not check the vanished task's calls", extra={"error": str(exc)})
        closed = close_unobserved(record, calls_up, now)
        try:
            self.store.save(closed)
        except StaleDrainError:
            return TaskStep("stale", record.task_arn)
        judgement = Judgement(Verdict.UNOBSERVED, calls_up, None, closed.reason, None)
        self._emit(closed, judgement, None)
        return TaskStep(
            "task_stopped",
            record.task_arn,
            verdict=Verdict.UNOBSERVED.value,
            dropped_sessions=calls_up,
            reason=closed.reason,
            service=record.service or None,
        )

    def _rescue(self, record: TaskStopRecord, rooms: dict[str, str], watched_before: set[str]) -> None:
        """The stop's calls, with what ends them: the SIGKILL at stopTimeout, or sooner the
        worker giving up its drain (livekit-agents' drain_timeout); a deploy's stop (ECS's
        stoppedReason "Scaling activity initiated by (deployment ...)")."""
        if self.rescuer is None:
            return
        ends_at = record.kill_at
        if self.worker_drain_timeout is not None:
            ends_at = min(ends_at, record.stopping_at + self.worker_drain_timeout)
        calls = worries_of(
            rooms,
            sigkill_at={record.task_arn: ends_at},
            stopped_by_deploy=frozenset({record.task_arn}) if _by_deploy(record.reason) else frozenset(),
        )
        self.rescuer.look(calls, also_settle=watched_before)

    def _rooms_of(self, task_arn: str) -> dict[str, str]:
        """The rooms the task's agent still holds: those the room index names for it, asked of
        LiveKit by name, and the audit's (discovery.py) for the ones the index missed. A stopping
        task takes no new job: the set can only shrink from here. Without an index, a scan."""
        if self.room_index is None:
            return self.sessions.discover([task_arn])
        try:
            indexed = self.room_index.rooms_held_by([task_arn])
            held = self.sessions.still_held(indexed) if indexed else {}
            missed = audit(self.sessions, self.room_index, [task_arn], indexed, lambda: None, self.clock())
            return {**held, **missed}
        except StoreError as exc:
            raise RoomIndexUnreadableError(str(exc)) from exc

    def _rooms_seen_at_stop(self, task_arn: str) -> dict[str, str]:
        try:
            return self._rooms_of(task_arn)
        except _PROBE_ERRORS as exc:
            put_metric(MetricName.PROBE_ERRORS)
            logger.warning("could not see the stopped task's calls", extra={"error": str(exc)})
            return {}

    def _indexed_rooms(self, task_arn: str) -> dict[str, str]:
        """Rooms the webhooks saw this task's agent join, those it left lately included: a
        worker that crashed, ran out of memory or went with its host has left LiveKit by the
        time ECS reports it (its leave webhook may be handled first), but its callers are still
        there. No ECS request: this counts the calls of a task whose drain never learned it."""
        if self.room_index is None:
            return {}
        try:
            return self.room_index.rooms_held_by([task_arn], with_left=True)
        except StoreError as exc:
            logger.warning("could not read the room index", extra={"error": str(exc)})
            return {}

    def _new_record(self, change: TaskStateChange, now: float) -> TaskStopRecord:
        try:
            stop_timeout = self.ecs.stop_timeout_of(change.task_definition_arn)
        except EcsError as exc:
            logger.warning(
                "stopTimeout unknown: the hosts' ECS_CONTAINER_STOP_TIMEOUT is assumed",
                extra={"error": str(exc), "stopTimeout": self.host_stop_timeout},
            )
            stop_timeout = self.host_stop_timeout
        return TaskStopRecord(
            task_arn=change.task_arn,
            cluster_arn=change.cluster_arn,
            container_instance_arn=change.container_instance_arn,
            service=change.service,
            family=change.family,
            stopping_at=change.stopping_at or change.observed_at,
            stop_timeout=stop_timeout,
            opened_at=now,
            # Why ECS stops it, kept while open (a deploy's stop may be rescued); the judgement
            # replaces it with the stop's own reason.
            reason=change.stopped_reason or "",
        )

    def _instance_of(self, change: TaskStateChange) -> str | None:
        if not change.container_instance_arn:
            return None
        try:
            return self.ecs.ec2_instance_of(change.container_instance_arn)
        except EcsError:
            return None

    def _emit(self, record: TaskStopRecord, judgement: Judgement, instance_id: str | None) -> None:
        put_metric_by(MetricName.DRAIN_COMPLETED, "Outcome", judgement.verdict.value)
        if judgement.stop_seconds is not None:
            put_metric(MetricName.DRAIN_SECONDS, judgement.stop_seconds)
        if judgement.pages_as_forced_kill:
            put_metric(MetricName.FORCED_KILLS)
            put_metric_for_service(MetricName.FORCED_KILLS, self.cluster, record.service)
        if judgement.dropped_sessions:
            put_metric(MetricName.DROPPED_SESSIONS, judgement.dropped_sessions)
            put_metric_for_service(
                MetricName.DROPPED_SESSIONS, self.cluster, record.service, judgement.dropped_sessions
            )
        log = logger.warning if judgement.killed or judgement.dropped_sessions else logger.info
        log(
            "task stopped",
            extra={
                "verdict": judgement.verdict.value,
                "droppedSessions": judgement.dropped_sessions,
                "callsCounted": judgement.calls_counted,
                "exitCode": judgement.exit_code,
                "reason": judgement.reason,
                "stopSeconds": judgement.stop_seconds,
                "stopTimeout": record.stop_timeout,
                "ecsService": record.service,
                "instanceID": instance_id,
            },
        )

    def _release_drain_of(self, change: TaskStateChange) -> list[DrainStep]:
        """A worker left a draining instance: look at that drain now, not at the next tick. The
        drain is found by the task's key (one read), not by reading every open drain; a drain
        that never saw the task is left to reconcile."""
        if not change.container_instance_arn:
            return []
        try:
            drain = self.drains.drain_of_task(change.task_arn)
        except StoreError as exc:
            logger.warning(
                "drain of the stopped task not found: left to reconcile", extra={"error": str(exc)}
            )
            return []
        if drain is None or drain.container_instance_arn != change.container_instance_arn:
            return []
        try:
            return [self.drains.advance(drain)]
        except (AutoScalingError, StoreError) as exc:
            # A shortcut only (Auto Scaling throttled, say): the verdict stands, and the next
            # reconcile tick looks at the drain again. Failing the event would retry its verdict.
            logger.warning("drain not released on the stop: left to reconcile", extra={"error": str(exc)})
            return [DrainStep(action="error", instance_id=drain.instance_id, error=str(exc))]


__all__ = ["EventRejectedError", "TaskStep", "TaskStopTracker"]
