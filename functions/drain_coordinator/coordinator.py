"""The drain coordinator: look (probe), decide (pure), act (Auto Scaling), remember (store), emit.

Handlers parse and wire; this module is the one place that sequences I/O around `decide()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from drain_coordinator.domain.decide import (
    Action,
    Complete,
    DrainPolicy,
    Heartbeat,
    Hold,
    Wait,
    apply,
    decide,
)
from drain_coordinator.domain.events import TerminateRequested
from drain_coordinator.domain.probe import Probe, WorkerTask
from drain_coordinator.domain.records import DrainOutcome, DrainRecord, LifecycleRef
from drain_coordinator.domain.task_stops import TaskStopRecord
from drain_coordinator.integrations.autoscaling import LifecycleActionGoneError
from drain_coordinator.integrations.ecs import EcsError
from drain_coordinator.integrations.livekit import LiveKitProbeError
from drain_coordinator.integrations.secrets import CredentialsError
from drain_coordinator.integrations.store import StaleDrainError
from drain_coordinator.observability import MetricName, logger, put_metric, put_metric_by

ECS_PENDING = "pending"  # the container instance lookup failed at open: retried on each look
ECS_NOT_REGISTERED = "not_registered"  # the EC2 instance is no ECS container instance


class LifecycleActionsPort(Protocol):
    def record_heartbeat(self, ref: LifecycleRef) -> None: ...
    def complete(self, ref: LifecycleRef, result: str = "CONTINUE") -> None: ...


class EcsPort(Protocol):
    def container_instance_of(self, ec2_instance_id: str) -> str | None: ...
    def drain(self, container_instance_arn: str) -> None: ...
    def worker_tasks_on(self, container_instance_arn: str) -> tuple[WorkerTask, ...]: ...


class SessionsPort(Protocol):
    def discover(self, task_arns: Any) -> dict[str, str]: ...
    def still_held(self, rooms: Any) -> dict[str, str]: ...


class TaskStopStorePort(Protocol):
    def get(self, task_arn: str) -> TaskStopRecord | None: ...
    def create(self, record: TaskStopRecord) -> bool: ...
    def save(self, record: TaskStopRecord) -> TaskStopRecord: ...
    def open_stops(self) -> Iterator[TaskStopRecord]: ...


class StorePort(Protocol):
    def open_drain(self, record: DrainRecord) -> bool: ...
    def open_drains(self) -> Iterator[DrainRecord]: ...
    def get(self, instance_id: str) -> DrainRecord | None: ...
    def save(self, record: DrainRecord) -> DrainRecord: ...


@dataclass(frozen=True, slots=True)
class DrainStep:
    """What one look did to one drain: a log line, a replay line, a handler's return value."""

    action: str  # drain_started | heartbeat | hold | wait | complete | skip | stale
    instance_id: str
    sessions: int | None = None
    tasks: int | None = None
    outcome: str | None = None
    dropped_sessions: int | None = None
    error: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {
                "action": self.action,
                "instance_id": self.instance_id,
                "sessions": self.sessions,
                "tasks": self.tasks,
                "outcome": self.outcome,
                "dropped_sessions": self.dropped_sessions,
                "error": self.error,
                "reason": self.reason,
            }.items()
            if v is not None
        }


@dataclass
class Coordinator:
    policy: DrainPolicy
    cluster: str
    drain_deadline_seconds: int
    heartbeat_timeout_seconds: int
    store: StorePort
    lifecycle: LifecycleActionsPort
    ecs: EcsPort
    sessions: SessionsPort
    clock: Callable[[], float]
    # With a task-stop store, calls still up when a drain ends early are handed to the stops
    # of their tasks and counted once, when those stop (see _hand_over).
    task_stops: TaskStopStorePort | None = None
    worker_stop_timeout_seconds: int = 900

    # -- opening -------------------------------------------------------------------------------

    def start_drain(self, trigger: TerminateRequested) -> list[DrainStep]:
        """Open a drain for a terminate lifecycle action, then look at it at once."""
        ref = trigger.lifecycle
        logger.append_keys(**ref.log_keys())
        now = self.clock()
        container_instance_arn, ecs_state = self._drain_container_instance(ref.instance_id)
        record = DrainRecord(
            lifecycle=ref,
            cluster=self.cluster,
            container_instance_arn=container_instance_arn,
            hook_started_at=trigger.hook_started_at,
            deadline_at=trigger.hook_started_at + self.drain_deadline_seconds,
            heartbeat_timeout=self.heartbeat_timeout_seconds,
            last_heartbeat_at=trigger.hook_started_at,
            opened_at=now,
            extra={"ecs": ecs_state} if ecs_state else {},
        )
        if not self.store.open_drain(record):
            logger.info("drain already open for this instance: duplicate or late event ignored")
            return [DrainStep(action="skip", instance_id=ref.instance_id, reason="duplicate")]
        put_metric(MetricName.DRAIN_STARTED)
        logger.info(
            "drain started",
            extra={
                "containerInstanceArn": container_instance_arn,
                "deadlineAt": record.deadline_at,
            },
        )
        started = DrainStep(action="drain_started", instance_id=ref.instance_id)
        return [started, self.advance(record)]

    def _drain_container_instance(self, instance_id: str) -> tuple[str | None, str | None]:
        """(container instance ARN, ECS state note). DRAINING is set before the record is saved,
        so a retried event that finds the record already open has nothing left undone."""
        try:
            arn = self.ecs.container_instance_of(instance_id)
            if arn is None:
                logger.warning("instance is not registered in the ECS cluster: no tasks to wait for")
                return None, ECS_NOT_REGISTERED
            self.ecs.drain(arn)
        except EcsError as exc:
            logger.warning("could not set the container instance to DRAINING yet", extra={"error": str(exc)})
            return None, ECS_PENDING
        return arn, None

    def store_open_drains(self) -> Iterator[DrainRecord]:
        return self.store.open_drains()

    # -- advancing -----------------------------------------------------------------------------

    def advance(self, record: DrainRecord) -> DrainStep:
        """One look at one open drain: probe, decide, act, save."""
        logger.append_keys(**record.lifecycle.log_keys())
        now = self.clock()
        record, probe = self._probe(record)
        action = decide(record, probe, now, self.policy)
        if probe.ok:
            put_metric(MetricName.SESSIONS_REMAINING, probe.session_count)
        else:
            put_metric(MetricName.PROBE_ERRORS)
            logger.warning("probe failed: holding the instance", extra={"error": probe.error})

        try:
            match action:
                case Complete():
                    self.lifecycle.complete(record.lifecycle, "CONTINUE")
                case Heartbeat() | Hold(heartbeat=True):
                    self.lifecycle.record_heartbeat(record.lifecycle)
                    put_metric(MetricName.HEARTBEATS)
                case _:
                    pass
            record = apply(record, action, probe, now)
            step = self._step_for(action, record, probe)
        except LifecycleActionGoneError as exc:
            logger.info("lifecycle action already ended: drain closed as gone", extra={"reason": str(exc)})
            record = apply(record, Wait(reason="gone"), probe, now)
            record = record.closed(DrainOutcome.GONE, now, record.sessions_remaining or 0)
            step = self._closed_step(record, probe)

        handed = 0
        if not record.is_open and record.dropped_sessions:
            handed = self._hand_over(record, probe, now)
            record = replace(record, extra={**record.extra, "handed_over": str(handed)})
        try:
            self.store.save(record)
        except StaleDrainError:
            # Another look saved this drain first; its record is the truth, ours is dropped.
            logger.warning("drain saved concurrently by another look: this look's record discarded")
            return replace(step, action="stale")
        if not record.is_open:
            self._emit_closed(record, handed)
        return step

    def _hand_over(self, record: DrainRecord, probe: Probe, now: float) -> int:
        """Calls still up on running workers when the drain ends early (deadline, gone) die when
        the instance goes, with their tasks. Each task's stop record takes its rooms, so the
        task-state judgement counts them once, with the task, the instance and the cause.
        Returns how many were handed over; the drain counts the rest itself."""
        if self.task_stops is None or not probe.ok:
            return 0
        live = {task.arn for task in probe.tasks}
        by_task: dict[str, dict[str, str]] = {}
        for room, arn in probe.sessions.items():
            if arn in live:
                by_task.setdefault(arn, {})[room] = arn
        handed = 0
        for arn, rooms in by_task.items():
            existing = self.task_stops.get(arn)
            if existing is None:
                opened = TaskStopRecord(
                    task_arn=arn,
                    cluster_arn=_cluster_arn(arn, self.cluster),
                    container_instance_arn=record.container_instance_arn,
                    service="",
                    family="",
                    stopping_at=now,
                    stop_timeout=self.worker_stop_timeout_seconds,
                    opened_at=now,
                    watched_rooms=rooms,
                    sessions_remaining=len(rooms),
                )
                if self.task_stops.create(opened):
                    handed += len(rooms)
                    continue
                existing = self.task_stops.get(arn)
            if existing is not None and existing.is_open:
                merged = {**existing.watched_rooms, **rooms}
                try:
                    self.task_stops.save(
                        replace(existing, watched_rooms=merged, sessions_remaining=len(merged))
                    )
                except StaleDrainError:
                    continue
                handed += len(rooms)
        return handed

    def _probe(self, record: DrainRecord) -> tuple[DrainRecord, Probe]:
        try:
            record = self._resolve_container_instance(record)
            tasks = (
                self.ecs.worker_tasks_on(record.container_instance_arn)
                if record.container_instance_arn
                else ()
            )
            if record.watched_rooms is not None and record.rooms_final:
                held = self.sessions.still_held(record.watched_rooms)
            else:
                # Until every worker task has been told to stop, a worker may still take a call:
                # discover again. Discovery is final from the first look where all were told.
                known = {t.arn for t in tasks} | set((record.watched_rooms or {}).values())
                final = all(t.told_to_stop for t in tasks)
                held = self.sessions.discover(sorted(known))
                record = replace(record, rooms_final=final)
            record = replace(record, watched_rooms=held)
        except (EcsError, LiveKitProbeError, CredentialsError) as exc:
            return record, Probe.failed(str(exc))
        return record, Probe(tasks=tasks, sessions=held)

    def _resolve_container_instance(self, record: DrainRecord) -> DrainRecord:
        if record.extra.get("ecs") != ECS_PENDING:
            return record
        arn, state = self._drain_container_instance(record.instance_id)
        if state == ECS_PENDING:
            raise EcsError("container instance still unresolved")
        extra = {k: v for k, v in record.extra.items() if k != "ecs"}
        if state:
            extra["ecs"] = state
        return replace(record, container_instance_arn=arn, extra=extra)

    # -- reporting -----------------------------------------------------------------------------

    def _step_for(self, action: Action, record: DrainRecord, probe: Probe) -> DrainStep:
        match action:
            case Complete():
                return self._closed_step(record, probe)
            case Heartbeat():
                return self._step("heartbeat", record, probe)
            case Hold(error=error):
                return replace(self._step("hold", record, probe), error=error)
            case Wait(reason=reason):
                return replace(self._step("wait", record, probe), reason=reason)

    def _step(self, action: str, record: DrainRecord, probe: Probe) -> DrainStep:
        return DrainStep(
            action=action,
            instance_id=record.instance_id,
            sessions=probe.session_count if probe.ok else None,
            tasks=probe.task_count if probe.ok else None,
        )

    def _closed_step(self, record: DrainRecord, probe: Probe) -> DrainStep:
        return replace(
            self._step("complete", record, probe),
            outcome=record.outcome.value if record.outcome else None,
            dropped_sessions=record.dropped_sessions,
        )

    def _emit_closed(self, record: DrainRecord, handed_over: int = 0) -> None:
        outcome = record.outcome.value if record.outcome else "unknown"
        put_metric_by(MetricName.DRAIN_COMPLETED, "Outcome", outcome)
        if record.drain_seconds is not None:
            put_metric(MetricName.DRAIN_SECONDS, record.drain_seconds)
        counted_here = record.dropped_sessions - handed_over
        if counted_here > 0:
            put_metric(MetricName.FORCED_KILLS)
            put_metric(MetricName.DROPPED_SESSIONS, counted_here)
        logger.info(
            "drain completed",
            extra={
                "outcome": outcome,
                "drainSeconds": record.drain_seconds,
                "droppedSessions": record.dropped_sessions,
                "handedToTaskStops": handed_over,
                "heartbeats": record.heartbeats,
            },
        )


def _cluster_arn(task_arn: str, cluster: str) -> str:
    """arn:aws:ecs:<region>:<account>:task/... -> the same partition, region and account's cluster."""
    prefix = task_arn.split(":task/", 1)[0]
    return f"{prefix}:cluster/{cluster}"
