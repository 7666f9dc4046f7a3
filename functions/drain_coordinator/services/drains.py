"""The drain coordinator: look (probe), decide (pure), act (Auto Scaling), remember (store), emit.

Handlers parse and wire; this module is the one place that sequences I/O around `decide()`.

A drain starts four ways: the terminate lifecycle action's event (`start_drain`); reconcile
finding an instance in `Terminating:Wait` whose event was never handled (`adopt`); a Spot
interruption warning (`spot_interruption`); an opted-in rebalance recommendation, which only
terminates the instance in its group so that the lifecycle action starts the drain (`rebalance`).
On a group whose warm pool takes scaled-in instances back, a launch action of the stack's launch
hook brings a drained instance back into service (`instance_launched`).

A look never lets the hook's timer wait for a probe: a heartbeat that is due is sent first, and
the probe runs within the time the caller gives it (`within`); a probe that cannot finish in
time holds the drain, as any failed probe does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from drain_coordinator.domain.deadline import DeadlinePolicy, extended_deadline
from drain_coordinator.domain.decide import (
    Action,
    Complete,
    DrainPolicy,
    Heartbeat,
    Hold,
    Wait,
    apply,
    decide,
    heartbeat_due,
)
from drain_coordinator.domain.discovery import discovery_plan
from drain_coordinator.domain.events import (
    LaunchRequested,
    RebalanceRecommended,
    SpotInterruption,
    TerminateRequested,
)
from drain_coordinator.domain.probe import Probe, WorkerTask
from drain_coordinator.domain.records import DrainOutcome, DrainRecord, LifecycleRef, save_needed
from drain_coordinator.domain.rescue import worries_of
from drain_coordinator.domain.schedule import Breaker
from drain_coordinator.domain.task_stops import TaskStopRecord
from drain_coordinator.integrations.autoscaling import (
    AutoScalingError,
    InstanceNotTerminableError,
    LifecycleActionGoneError,
)
from drain_coordinator.integrations.ecs import EcsError
from drain_coordinator.integrations.livekit import LiveKitProbeError
from drain_coordinator.integrations.secrets import CredentialsError
from drain_coordinator.integrations.store import StaleDrainError, StoreError
from drain_coordinator.observability import MetricName, logger, put_metric, put_metric_by
from drain_coordinator.services.discovery import audit
from drain_coordinator.services.rescue import Rescuer

ECS, LIVEKIT = "ECS", "LiveKit"  # the dependencies a probe asks, as the breaker names them
# The breaker of the run under way in this thread of control (Coordinator.breaker).
_run_breaker: ContextVar[Breaker | None] = ContextVar("run_breaker", default=None)
ECS_PENDING = "pending"  # the container instance lookup failed at open: retried on each look
ECS_NOT_REGISTERED = "not_registered"  # the EC2 instance is no ECS container instance

# record.extra["trigger"]: what opened a drain other than its lifecycle action's event
TRIGGER_ADOPTED = "adopted"
TRIGGER_SPOT = "spot"


class LifecycleActionsPort(Protocol):
    def record_heartbeat(self, ref: LifecycleRef) -> None: ...
    def complete(self, ref: LifecycleRef, result: str = "CONTINUE") -> None: ...


@runtime_checkable
class GroupPort(Protocol):
    """What the lifecycle adapter can also tell about the group; without it (an in-memory fake)
    there is no orphan sweep and no rebalance drain."""

    def waiting_instances(self, asg_name: str) -> list[str]: ...
    def group_of(self, instance_id: str) -> str | None: ...
    def capacity_rebalance(self, asg_name: str) -> bool: ...
    def terminate_keeping_capacity(self, instance_id: str) -> None: ...


class EcsPort(Protocol):
    def container_instance_of(self, ec2_instance_id: str) -> str | None: ...
    def drain(self, container_instance_arn: str) -> None: ...
    def activate(self, container_instance_arn: str) -> bool: ...
    def worker_tasks_on(self, container_instance_arn: str) -> tuple[WorkerTask, ...]: ...
    def describe_workers(self, task_arns: Any) -> dict[str, WorkerTask]: ...


class SessionsPort(Protocol):
    def discover(self, task_arns: Any, within: float | None = None, among: Any = None) -> dict[str, str]: ...
    def still_held(self, rooms: Any, within: float | None = None) -> dict[str, str]: ...
    def room_names(self, within: float | None = None) -> list[str]: ...


class RoomIndexPort(Protocol):
    """What the webhooks told of which task's agent holds which room (integrations/room_index.py)."""

    def rooms_held_by(self, task_arns: Any) -> dict[str, str]: ...
    def indexed(self, rooms: Any) -> set[str]: ...
    def record_agent(self, room: str, task_arn: str, identity: str, at: float) -> None: ...


class TaskStopStorePort(Protocol):
    def get(self, task_arn: str) -> TaskStopRecord | None: ...
    def create(self, record: TaskStopRecord) -> bool: ...
    def save(self, record: TaskStopRecord) -> TaskStopRecord: ...
    def open_stops(self) -> Iterator[TaskStopRecord]: ...


class StorePort(Protocol):
    def open_drain(self, record: DrainRecord) -> bool: ...
    def open_drains(self) -> Iterator[DrainRecord]: ...
    def get(self, instance_id: str) -> DrainRecord | None: ...
    def get_many(self, instance_ids: Any) -> dict[str, DrainRecord]: ...
    def save(self, record: DrainRecord) -> DrainRecord: ...
    def point_tasks(self, instance_id: str, task_arns: Any, at: float) -> None: ...
    def drain_of_task(self, task_arn: str) -> DrainRecord | None: ...
    def record_looks(self, run: str, looks: Mapping[str, float], until: float) -> None: ...
    def recent_looks(self, now: float) -> dict[str, float]: ...


@dataclass(frozen=True, slots=True)
class DrainStep:
    """What one look did to one drain: a log line, a replay line, a handler's return value."""

    # drain_started | heartbeat | hold | wait | complete | skip | stale | rebalance | reactivated
    # | launch_continued
    action: str
    instance_id: str
    sessions: int | None = None
    tasks: int | None = None
    outcome: str | None = None
    dropped_sessions: int | None = None
    error: str | None = None
    reason: str | None = None
    # True on a hold or complete whose look sent the due heartbeat first
    heartbeat: bool | None = None
    # Rescues this look dispatched (calls handed to healthy workers: rescue.py)
    rescues: int | None = None

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
                "heartbeat": self.heartbeat,
                "rescues": self.rescues,
            }.items()
            if v is not None
        }


def _put(name: MetricName, value: float = 1) -> None:
    put_metric(name, value)


def _put_by(name: MetricName, dimension: str, dimension_value: str, value: float = 1) -> None:
    put_metric_by(name, dimension, dimension_value, value)


def _bind_drain_keys(ref: LifecycleRef) -> None:
    logger.append_keys(**ref.log_keys())


# -- the coordinator ---------------------------------------------------------------------------


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
    # With a rescuer, each look hands the drain's doomed calls to healthy workers (rescue.py).
    rescuer: Rescuer | None = None
    # The webhooks' room -> task index: a look asks LiveKit only about the rooms it names.
    # Without one (in-memory tests), only the audit finds rooms.
    room_index: RoomIndexPort | None = None
    # A run's known tasks of its drains, described in one batch before its looks (prefetch).
    _prefetched: dict[str, tuple[WorkerTask, ...]] = field(default_factory=dict, repr=False)
    _prefetched_at: float = field(default=0.0, repr=False)

    @property
    def breaker(self) -> Breaker:
        """The breaker of the batch of looks under way (one tick, one shard): see
        domain/schedule.py. It belongs to the run, not to the long-lived coordinator, so runs
        side by side (the local world's concurrent invocations share one coordinator) each keep
        their own. A look outside any run (an event's) is never held back: a fresh one."""
        return _run_breaker.get() or Breaker()

    def start_run(self) -> None:
        """A new batch of looks: a breaker of its own."""
        _run_breaker.set(Breaker())

    # -- opening -------------------------------------------------------------------------------

    def start_drain(
        self, trigger: TerminateRequested, *, adopted: bool = False, within: float | None = None
    ) -> list[DrainStep]:
        """Open a drain for a terminate lifecycle action, then look at it at once."""
        ref = trigger.lifecycle
        _bind_drain_keys(ref)
        # A duplicate or late event (the drain is open, or closed already) touches nothing:
        # a record exists only once ECS was told DRAINING, so nothing is left undone.
        existing = self.store.get(ref.instance_id)
        if existing is not None and existing.superseded_by(ref, trigger.hook_started_at):
            logger.info(
                "instance taken again under a new lifecycle action: a new drain replaces the closed one"
            )
        elif existing is not None:
            self._learn_lifecycle_action(existing, trigger)
            logger.info("drain already exists for this instance: duplicate or late event ignored")
            return [DrainStep(action="skip", instance_id=ref.instance_id, reason="duplicate")]
        now = self.clock()
        container_instance_arn, ecs_state = self._drain_container_instance(ref.instance_id)
        extra = {"ecs": ecs_state} if ecs_state else {}
        last_heartbeat_at = trigger.hook_started_at
        if adopted:
            extra["trigger"] = TRIGGER_ADOPTED
            # How long the hook's heartbeat timer has left is unknown: count it as run out, so
            # the first look heartbeats at once.
            last_heartbeat_at = trigger.hook_started_at - self.heartbeat_timeout_seconds
        record = DrainRecord(
            lifecycle=ref,
            cluster=self.cluster,
            container_instance_arn=container_instance_arn,
            hook_started_at=trigger.hook_started_at,
            deadline_at=trigger.hook_started_at + self.drain_deadline_seconds,
            heartbeat_timeout=self.heartbeat_timeout_seconds,
            last_heartbeat_at=last_heartbeat_at,
            opened_at=now,
            extra=extra,
        )
        replacing = (
            existing
            if existing is not None and existing.superseded_by(ref, trigger.hook_started_at)
            else None
        )
        steps = self._open(
            record, reason=TRIGGER_ADOPTED if adopted else None, replacing=replacing, within=within
        )
        if steps[0].action == "skip" and not adopted:
            # Opened at the same moment by reconcile's adoption: hand it what the event knows.
            opened = self.store.get(ref.instance_id)
            if opened is not None:
                self._learn_lifecycle_action(opened, trigger)
        return steps

    def adopt(
        self, instance_id: str, asg_name: str, hook_name: str, within: float | None = None
    ) -> list[DrainStep]:
        """Drain an instance found in `Terminating:Wait` with no drain: its lifecycle event was
        never handled (the coordinator was down, the event was lost).

        Neither the token nor the hook's start is known. The action is found by instance id,
        and the first sighting stands for the start: the deadline is counted from now. The
        hook's global timeout (min(48 h, 100 x HeartbeatTimeout) from the real start) cannot be
        known either; if it ends the action first, the next heartbeat finds it gone.
        """
        now = self.clock()
        trigger = TerminateRequested(
            lifecycle=LifecycleRef(
                asg_name=asg_name, hook_name=hook_name, instance_id=instance_id, action_token=""
            ),
            hook_started_at=now,
            event_id="",
        )
        logger.warning("instance held in Terminating:Wait without a drain: adopting it")
        return self.start_drain(trigger, adopted=True, within=within)

    def orphans(self, asg_name: str, open_instances: set[str]) -> list[str]:
        """Instances of the group in `Terminating:Wait` that have no drain record at all."""
        group = self._group()
        if group is None:
            return []
        try:
            waiting = group.waiting_instances(asg_name)
        except AutoScalingError as exc:
            logger.warning("could not look for instances without a drain", extra={"error": str(exc)})
            return []
        # A closed drain's instance may still wait on another hook of the group: not ours.
        return [i for i in waiting if i not in open_instances and self.store.get(i) is None]

    def spot_interruption(self, spot: SpotInterruption, asg_name: str, hook_name: str) -> list[DrainStep]:
        """EC2 reclaims the instance in two minutes, whatever a hook says: DRAINING at once so no
        worker takes a new call, and every call still on it watched by its task's stop record,
        so the calls lost at the reclaim are counted when the tasks stop."""
        ref = LifecycleRef(
            asg_name=asg_name, hook_name=hook_name, instance_id=spot.instance_id, action_token=""
        )
        _bind_drain_keys(ref)
        logger.warning(
            "spot interruption warning: the instance is reclaimed in two minutes",
            extra={"reclaimAt": spot.reclaim_at, "instanceAction": spot.instance_action},
        )
        container_instance_arn, ecs_state = self._drain_container_instance(spot.instance_id)
        # Never completed before the reclaim: the hook cannot delay it, and an early completion
        # would only cut the calls sooner. The first look at or after the reclaim closes it.
        deadline_at = spot.reclaim_at + self.policy.slack_seconds
        existing = self.store.get(spot.instance_id)
        if existing is not None:
            return self._tighten_for_spot(existing, spot, deadline_at)
        if ecs_state == ECS_NOT_REGISTERED:
            return [DrainStep(action="skip", instance_id=spot.instance_id, reason="not_in_cluster")]
        extra = {"trigger": TRIGGER_SPOT, "reclaim_at": str(spot.reclaim_at)}
        if ecs_state:
            extra["ecs"] = ecs_state
        record = DrainRecord(
            lifecycle=ref,
            cluster=self.cluster,
            container_instance_arn=container_instance_arn,
            hook_started_at=spot.warned_at,
            deadline_at=deadline_at,
            heartbeat_timeout=self.heartbeat_timeout_seconds,
            last_heartbeat_at=spot.warned_at,
            opened_at=self.clock(),
            extra=extra,
        )
        return self._open(record, reason="spot_interruption")

    def rebalance(self, recommendation: RebalanceRecommended, asg_name: str) -> list[DrainStep]:
        """Move off an instance EC2 expects to interrupt: terminate it in the group without lowering
        the desired capacity, so a replacement launches and the terminate hook drains this one
        as any scale-in (the drain itself starts with that lifecycle action)."""
        instance_id = recommendation.instance_id
        logger.append_keys(instanceID=instance_id)
        group = self._group()
        if group is None:
            return [DrainStep(action="skip", instance_id=instance_id, reason="no_group_access")]
        try:
            if group.group_of(instance_id) != asg_name:
                return [DrainStep(action="skip", instance_id=instance_id, reason="other_group")]
            if self.store.get(instance_id) is not None:
                return [DrainStep(action="skip", instance_id=instance_id, reason="already_draining")]
            if group.capacity_rebalance(asg_name):
                # The group replaces the instance itself, then terminates it through the hook
                # (which drains it): a second replacement would be one too many.
                logger.info("rebalance recommendation: the group's own Capacity Rebalancing replaces it")
                return [DrainStep(action="skip", instance_id=instance_id, reason="group_capacity_rebalance")]
            group.terminate_keeping_capacity(instance_id)
        except InstanceNotTerminableError as exc:
            logger.info("rebalance recommendation: instance already leaving", extra={"reason": str(exc)})
            return [DrainStep(action="skip", instance_id=instance_id, reason="not_terminable")]
        logger.info("rebalance recommendation: instance terminated in its group, a replacement launches")
        return [DrainStep(action="rebalance", instance_id=instance_id, reason="terminated_with_replacement")]

    def instance_launched(self, launch: LaunchRequested) -> list[DrainStep]:
        """Complete a launch action of the stack's launch hook; first, for an instance back from
        the warm pool (a scale-in drained it and ReuseOnScaleIn sent it there), set its container
        instance ACTIVE again, so ECS places tasks on it (ECS leaves it DRAINING). The launch
        hook holds the instance in `Pending:Wait` until then, so it is never in service while
        ECS still shuns it. An ECS failure raises: the action stays open, the invocation is
        retried, and the hook's DefaultResult (CONTINUE) lets the instance in at its timeout.
        https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html"""
        ref = launch.lifecycle
        _bind_drain_keys(ref)
        steps: list[DrainStep] = []
        if launch.from_warm_pool:
            steps.append(self._reactivate(ref.instance_id))
        try:
            self.lifecycle.complete(ref, "CONTINUE")
        except LifecycleActionGoneError as exc:
            logger.info("launch action already ended", extra={"reason": str(exc)})
            return [*steps, DrainStep(action="skip", instance_id=ref.instance_id, reason="gone")]
        logger.info(
            "launch action completed",
            extra={"origin": launch.origin, "destination": launch.destination},
        )
        return [*steps, DrainStep(action="launch_continued", instance_id=ref.instance_id)]

    def _reactivate(self, instance_id: str) -> DrainStep:
        arn = self.ecs.container_instance_of(instance_id)
        if arn is None:
            # Its agent registers it when it starts: a new container instance is ACTIVE.
            return DrainStep(action="skip", instance_id=instance_id, reason="not_registered")
        existing = self.store.get(instance_id)
        if existing is not None and existing.is_open:
            # Back in the group, its terminate action is over: the drain's next look finds it
            # gone and closes it.
            logger.warning("instance back from the warm pool while its drain is still open")
        if not self.ecs.activate(arn):
            return DrainStep(action="skip", instance_id=instance_id, reason="already_active")
        _put(MetricName.INSTANCES_REACTIVATED)
        logger.info(
            "instance back from the warm pool: container instance ACTIVE again",
            extra={"containerInstanceArn": arn},
        )
        return DrainStep(action="reactivated", instance_id=instance_id)

    def _open(
        self,
        record: DrainRecord,
        reason: str | None,
        replacing: DrainRecord | None = None,
        within: float | None = None,
    ) -> list[DrainStep]:
        """Save a new drain; over `replacing` (the instance's closed drain of an earlier lifecycle
        action), conditional on that record's version, so two deliveries open one drain."""
        instance_id = record.instance_id
        if replacing is None:
            opened = self.store.open_drain(record)
        else:
            try:
                record = self.store.save(replace(record, version=replacing.version))
                opened = True
            except StaleDrainError:
                opened = False
        if not opened:
            logger.info("drain opened concurrently: duplicate or late event ignored")
            return [DrainStep(action="skip", instance_id=instance_id, reason="duplicate")]
        _put(MetricName.DRAIN_STARTED)
        logger.info(
            "drain started",
            extra={
                "containerInstanceArn": record.container_instance_arn,
                "deadlineAt": record.deadline_at,
                "trigger": record.extra.get("trigger", "lifecycle_action"),
            },
        )
        started = DrainStep(action="drain_started", instance_id=instance_id, reason=reason)
        return [started, self.advance(record, within)]

    def _learn_lifecycle_action(self, existing: DrainRecord, trigger: TerminateRequested) -> None:
        """A drain opened without its lifecycle event (adopted, or by a Spot warning) learns the
        action's token and start from the event when it arrives late."""
        if not existing.is_open or existing.lifecycle.action_token or not trigger.lifecycle.action_token:
            return
        learned = replace(
            existing,
            lifecycle=trigger.lifecycle,
            hook_started_at=min(existing.hook_started_at, trigger.hook_started_at),
            deadline_at=min(existing.deadline_at, trigger.hook_started_at + self.drain_deadline_seconds),
            last_heartbeat_at=(
                existing.last_heartbeat_at
                if existing.heartbeats
                else max(existing.last_heartbeat_at, trigger.hook_started_at)
            ),
        )
        try:
            self.store.save(learned)
        except StaleDrainError:
            return  # a look saved it first; the next duplicate delivery, if any, tries again
        logger.info("drain learned its lifecycle action from a late event")

    def _tighten_for_spot(
        self, existing: DrainRecord, spot: SpotInterruption, deadline_at: float
    ) -> list[DrainStep]:
        if not existing.is_open:
            return [DrainStep(action="skip", instance_id=spot.instance_id, reason="duplicate")]
        tightened = replace(
            existing,
            deadline_at=min(existing.deadline_at, deadline_at),
            extra={**existing.extra, "reclaim_at": str(spot.reclaim_at)},
        )
        try:
            saved = self.store.save(tightened)
        except StaleDrainError:
            return [DrainStep(action="stale", instance_id=spot.instance_id, reason="spot_interruption")]
        return [self.advance(saved)]

    def _drain_container_instance(self, instance_id: str) -> tuple[str | None, str | None]:
        """(container instance ARN, ECS state note). DRAINING is set before the record is saved,
        so a retried event that finds the record already open has nothing left undone."""
        try:
            arn = self.ecs.container_instance_of(instance_id)
            if arn is None:
                logger.warning("instance is not registered in the ECS cluster: no tasks to wait for")
                _put(MetricName.INSTANCES_NOT_REGISTERED)
                return None, ECS_NOT_REGISTERED
            self.ecs.drain(arn)
        except EcsError as exc:
            logger.warning("could not set the container instance to DRAINING yet", extra={"error": str(exc)})
            return None, ECS_PENDING
        return arn, None

    def store_open_drains(self) -> Iterator[DrainRecord]:
        return self.store.open_drains()

    def drain_of_task(self, task_arn: str) -> DrainRecord | None:
        """The open drain of the instance this worker task ran on, read by key (an event about
        the task finds it without reading every open drain)."""
        record = self.store.drain_of_task(task_arn)
        return record if record is not None and record.is_open else None

    def prefetch(self, records: Iterable[DrainRecord]) -> None:
        """Before a run of looks: the tasks every drain already knows, described for all of them
        at once (DescribeTasks, 100 to a request) instead of listed per instance. A drain that
        has not listed its instance yet, or whose batch failed, asks ECS in its own look."""
        self._prefetched, self._prefetched_at = {}, self.clock()
        known = {
            r.instance_id: r.known_tasks
            for r in records
            if r.is_open and r.known_tasks is not None and r.extra.get("ecs") != ECS_PENDING
        }
        arns = sorted({arn for tasks in known.values() for arn in tasks})
        if not known or self.breaker.is_open(ECS):
            return
        try:
            found = self.ecs.describe_workers(arns) if arns else {}
        except EcsError as exc:
            # Counted as a failed look of ECS: one more, and the run's looks stop asking it.
            self.breaker.record(ECS, ok=False)
            logger.warning(
                "drains' tasks not described in a batch: each look asks", extra={"error": str(exc)}
            )
            return
        self._prefetched = {
            instance_id: tuple(found[a] for a in sorted(tasks) if a in found)
            for instance_id, tasks in known.items()
        }

    def _group(self) -> GroupPort | None:
        return self.lifecycle if isinstance(self.lifecycle, GroupPort) else None

    # -- advancing -----------------------------------------------------------------------------

    def heartbeat_if_due(
        self, record: DrainRecord, early: bool = False
    ) -> tuple[DrainRecord | None, DrainStep | None]:
        """Renew the hook's timer now if it is due (or `early`: the tick spreads renewals), with no
        look: for a drain whose look waits (deferred, or behind others in its tick). Returns the
        record as saved (None once it is closed or was saved by another look) and the step (None
        when nothing was due)."""
        beaten, step = self._heartbeat_now(record, early)
        if beaten is None or step is None:
            return beaten, step
        try:
            return self.store.save(beaten), step
        except StaleDrainError:
            logger.warning(
                "drain saved concurrently by another look: heartbeat sent, record re-read next look"
            )
            return None, replace(step, action="stale")

    def _heartbeat_now(
        self, record: DrainRecord, early: bool = False
    ) -> tuple[DrainRecord | None, DrainStep | None]:
        """Heartbeat if due (or `early`), before (and whatever) any probe: the record after it (None
        once the drain closed, its step saying how) and the step (None when nothing was due)."""
        _bind_drain_keys(record.lifecycle)
        now = self.clock()
        due = heartbeat_due(record, now, self.policy)
        if not record.is_open or not _holds_an_action(record) or not (due or early):
            return record, None
        try:
            self.lifecycle.record_heartbeat(record.lifecycle)
        except LifecycleActionGoneError as exc:
            return None, self._close_gone(record, Probe.failed("not looked at"), now, exc)
        _put(MetricName.HEARTBEATS)
        return record.with_heartbeat(now), DrainStep(
            action="heartbeat", instance_id=record.instance_id, reason="before_look" if due else "spread"
        )

    def advance(
        self, record: DrainRecord, within: float | None = None, unsaved: dict[str, float] | None = None
    ) -> DrainStep:
        """One look at one open drain: heartbeat first if due, probe (within `within` seconds, if
        given), decide, act, save what changed, emit. A look that changed nothing but its own time
        saves nothing: it is noted in `unsaved` (instance id -> when), the run's looks that its
        caller records together (services/schedule.py); without it (an event's look) it leaves no
        trace, and the next tick looks again anyway."""
        _bind_drain_keys(record.lifecycle)
        if not record.is_open:
            return DrainStep(action="skip", instance_id=record.instance_id, reason="closed")
        look_started = self.clock()
        read = record
        beaten, early = self._heartbeat_now(record)
        if beaten is None:
            assert early is not None
            return early
        record = beaten
        watched_before = set(record.watched_rooms or {})
        left = None if within is None else within - (self.clock() - look_started)
        record, probe = self._probe(record, left)
        now = self.clock()
        record = self._extend_deadline(record, probe, now)
        rescues = self._rescue(record, probe, watched_before, now)
        action = decide(record, probe, now, self.policy)
        if probe.ok:
            _put(MetricName.SESSIONS_REMAINING, probe.session_count)
        else:
            _put(MetricName.PROBE_ERRORS)
            logger.warning("probe failed: holding the instance", extra={"error": probe.error})
        if not _holds_an_action(record):
            action = _without_auto_scaling(action)
        if probe.ok and record.is_open and "reclaim_at" in record.extra and probe.sessions:
            # Reclaimed or not, every call on a Spot instance is watched by its task's stop
            # record (killed at the reclaim), which counts it once if it is lost.
            self._hand_over(record, probe.sessions, now, kill_at=float(record.extra["reclaim_at"]))

        try:
            match action:
                case Complete() if _holds_an_action(record):
                    self.lifecycle.complete(record.lifecycle, "CONTINUE")
                case Heartbeat() | Hold(heartbeat=True):
                    self.lifecycle.record_heartbeat(record.lifecycle)
                    _put(MetricName.HEARTBEATS)
                case _:
                    pass
        except LifecycleActionGoneError as exc:
            return self._close_gone(replace(record, looked_at=now), probe, now, exc)
        record = replace(apply(record, action, probe, now), looked_at=now)
        step = self._step_for(action, record, probe)
        if rescues:
            step = replace(step, rescues=rescues)
        if early is not None:  # this look's heartbeat went first
            step = (
                replace(step, action="heartbeat", reason=None)
                if step.action == "wait"
                else replace(step, heartbeat=True)
            )
        if not save_needed(read, record):
            if unsaved is not None:
                unsaved[record.instance_id] = now
            return step
        return self._save_and_emit(record, step, now)

    def _rescue(self, record: DrainRecord, probe: Probe, watched_before: set[str], now: float) -> int:
        """Hand the drain's doomed calls to healthy workers; returns how many were dispatched.

        The drain completes at its last look before the deadline, up to one period early: that
        look is the calls' kill. A Spot drain's calls are doomed by the warning itself."""
        if self.rescuer is None or not probe.ok or not record.is_open:
            return 0
        reclaim = record.extra.get("reclaim_at")
        calls = worries_of(
            probe.sessions,
            reclaim_at=float(reclaim) if reclaim else None,
            deadline_at=record.deadline_at - self.policy.slack_seconds,
        )
        steps = self.rescuer.look(calls, also_settle=watched_before)
        return sum(1 for s in steps if s.action == "rescue_dispatched")

    def _close_gone(self, record: DrainRecord, probe: Probe, now: float, exc: Exception) -> DrainStep:
        """Auto Scaling no longer knows the action. By the record's own timers that is either an
        expiry under the coordinator (alarmed) or an end someone else chose."""
        outcome = _gone_outcome(record, now)
        log = logger.error if outcome is DrainOutcome.EXPIRED else logger.info
        log(
            "lifecycle action already ended: drain closed",
            extra={
                "outcome": outcome.value,
                "reason": str(exc),
                "heartbeatExpiresAt": record.heartbeat_expires_at,
            },
        )
        record = apply(record, Wait(reason="gone"), probe, now)
        record = record.closed(outcome, now, record.sessions_remaining or 0)
        return self._save_and_emit(record, self._closed_step(record, probe), now)

    def _save_and_emit(self, record: DrainRecord, step: DrainStep, now: float) -> DrainStep:
        handed = 0
        if not record.is_open and record.dropped_sessions:
            handed = min(record.dropped_sessions, self._hand_over(record, record.watched_rooms or {}, now))
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

    def _extend_deadline(self, record: DrainRecord, probe: Probe, now: float) -> DrainRecord:
        """A worker ECS has not told to stop yet may still take calls: the deadline waits for it
        (domain/deadline.py)."""
        policy = DeadlinePolicy(self.worker_stop_timeout_seconds, self.policy.reconcile_period_seconds)
        deadline_at = extended_deadline(record, probe, now, policy)
        if deadline_at == record.deadline_at:
            return record
        logger.info(
            "deadline extended: a worker still waits for its SIGTERM",
            extra={"deadlineAt": deadline_at, "previousDeadlineAt": record.deadline_at},
        )
        return replace(record, deadline_at=deadline_at)

    def _hand_over(
        self, record: DrainRecord, rooms: Mapping[str, str], now: float, kill_at: float | None = None
    ) -> int:
        """Calls still up when the drain ends early (deadline, gone) die when the instance goes,
        with their tasks. Each task's stop record takes its rooms, so the task-state judgement
        counts them once, with the task, the instance and the cause. A stop judged already
        counted the rooms it watched. Returns how many rooms a stop record covers; the drain
        counts the rest itself."""
        if self.task_stops is None:
            return 0
        by_task: dict[str, dict[str, str]] = {}
        for room, arn in rooms.items():
            by_task.setdefault(arn, {})[room] = arn
        handed = 0
        for arn, task_rooms in sorted(by_task.items()):
            stop_timeout = (
                max(1, int(kill_at - now)) if kill_at is not None else self.worker_stop_timeout_seconds
            )
            existing = self.task_stops.get(arn)
            if existing is None:
                opened = TaskStopRecord(
                    task_arn=arn,
                    cluster_arn=_cluster_arn(arn, self.cluster),
                    container_instance_arn=record.container_instance_arn,
                    service="",
                    family="",
                    stopping_at=now,
                    stop_timeout=stop_timeout,
                    opened_at=now,
                    watched_rooms=task_rooms,
                    sessions_remaining=len(task_rooms),
                )
                if self.task_stops.create(opened):
                    handed += len(task_rooms)
                    continue
                existing = self.task_stops.get(arn)
            if existing is None:
                continue
            if not existing.is_open:
                handed += sum(1 for room in task_rooms if room in existing.watched_rooms)
                continue
            merged = {**existing.watched_rooms, **task_rooms}
            updated = replace(existing, watched_rooms=merged, sessions_remaining=len(merged))
            if kill_at is not None:
                updated = replace(
                    updated, stop_timeout=min(existing.stop_timeout, int(kill_at - existing.stopping_at))
                )
            if updated != existing:
                try:
                    self.task_stops.save(updated)
                except StaleDrainError:
                    continue
            handed += len(task_rooms)
        return handed

    def _probe(self, record: DrainRecord, within: float | None = None) -> tuple[DrainRecord, Probe]:
        """ECS, then LiveKit. ECS calls are bounded by the probe clients' own timeouts and retries;
        LiveKit gets what is left of `within`. Out of time is a failed probe: it proves nothing.
        A dependency the breaker has given up on for this invocation is not asked at all."""
        started = self.clock()
        for dependency in (ECS, LIVEKIT):
            if self.breaker.is_open(dependency):
                return record, Probe.failed(
                    f"{dependency} failed the last looks of this invocation: not asked"
                )
        try:
            record = self._resolve_container_instance(record)
            tasks = self._tasks_of(record)
        except EcsError as exc:
            self.breaker.record(ECS, ok=False)
            return record, self._rooms_without_ecs(record, str(exc), within, started)
        self.breaker.record(ECS, ok=True)
        left = None if within is None else within - (self.clock() - started)
        if left is not None and left <= 0:
            return record, Probe.failed(f"look ran out of time ({within:.1f} s) before LiveKit was asked")
        try:
            record, held = self._rooms_held(record, tasks, started, within)
        except StoreError as exc:
            return record, Probe.failed(f"room index unreadable: {exc}")
        except (LiveKitProbeError, CredentialsError) as exc:
            self._livekit_failed(exc)
            return record, Probe.failed(str(exc))
        self.breaker.record(LIVEKIT, ok=True)
        if record.known_tasks is None and tasks:
            self._point_tasks(record, tasks)
        record = replace(record, watched_rooms=held, known_tasks=tuple(t.arn for t in tasks))
        return record, Probe(tasks=tasks, sessions=held)

    def _livekit_failed(self, exc: Exception) -> None:
        """A failed LiveKit look counts toward the breaker only when it says LiveKit is unwell: a
        429 or a look that ran out of its own budget does not stop the run's other looks."""
        if getattr(exc, "down", True):
            self.breaker.record(LIVEKIT, ok=False)

    def _tasks_of(self, record: DrainRecord) -> tuple[WorkerTask, ...]:
        """The instance's worker tasks not stopped yet: the run's batch if it has them; the
        known ones described (a DRAINING instance gets no new task); else the instance listed."""
        batched = self._prefetched.pop(record.instance_id, None)
        # Only within the run that read it: a later look (a webhook's, in a warm container) asks.
        if batched is not None and self.clock() - self._prefetched_at < self.policy.reconcile_period_seconds:
            return batched
        if not record.container_instance_arn:
            return ()
        if record.known_tasks is not None:
            if not record.known_tasks:
                return ()
            found = self.ecs.describe_workers(record.known_tasks)
            return tuple(found[a] for a in sorted(record.known_tasks) if a in found)
        return self.ecs.worker_tasks_on(record.container_instance_arn)

    def _point_tasks(self, record: DrainRecord, tasks: tuple[WorkerTask, ...]) -> None:
        try:
            self.store.point_tasks(record.instance_id, [t.arn for t in tasks], self.clock())
        except StoreError as exc:
            # A shortcut for events only: reconcile's looks find the drain all the same.
            logger.warning("tasks not pointed at their drain", extra={"error": str(exc)})

    def _rooms_held(
        self, record: DrainRecord, tasks: tuple[WorkerTask, ...], started: float, within: float | None
    ) -> tuple[DrainRecord, dict[str, str]]:
        """The rooms the drain's tasks hold: those the room index names for them and those the
        drain already watches, asked of LiveKit by name; once per drain, an audit of every room
        for the ones the index missed (domain/discovery.py)."""
        plan = discovery_plan(record, tasks, self.clock(), self.policy)
        watched = record.watched_rooms or {}
        ours = sorted({t.arn for t in tasks if not t.daemon} | set(watched.values()))
        indexed_ours = (
            self.room_index.rooms_held_by(ours) if plan.read_index and self.room_index and ours else {}
        )
        candidates = {**indexed_ours, **watched}
        missed: dict[str, str] = {}
        if plan.audit and ours:

            def left() -> float | None:
                return None if within is None else within - (self.clock() - started)

            missed = audit(self.sessions, self.room_index, ours, candidates, left, self.clock())
        left_now = None if within is None else within - (self.clock() - started)
        held = self.sessions.still_held(candidates, within=left_now) if candidates else {}
        gone = set(indexed_ours) - set(held) - set(watched)
        if gone:
            # The index named them, LiveKit no longer holds them for that task: their leave
            # webhooks were lost (the index's TTL removes the entries).
            logger.info("indexed rooms no longer held: dropped", extra={"rooms": len(gone)})
        record = replace(
            record, rooms_final=plan.final, rooms_audited=record.rooms_audited or (plan.audit and bool(ours))
        )
        return record, {**held, **missed}

    def _rooms_without_ecs(
        self, record: DrainRecord, error: str, within: float | None, started: float
    ) -> Probe:
        """ECS failed: the look fails, but the rooms it already watches are asked of LiveKit all
        the same, so the calls cut at a deadline reached while ECS is down are still counted
        (those it knows: a discovery not yet final may have missed some)."""
        if not record.watched_rooms or self.breaker.is_open(LIVEKIT):
            return Probe.failed(error)
        left = None if within is None else within - (self.clock() - started)
        try:
            seen = self.sessions.still_held(record.watched_rooms, within=left)
        except (LiveKitProbeError, CredentialsError) as exc:
            self._livekit_failed(exc)
            return Probe.failed(f"{error}; {exc}")
        self.breaker.record(LIVEKIT, ok=True)
        return Probe.failed(error, sessions_seen=seen)

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
        _put_by(MetricName.DRAIN_COMPLETED, "Outcome", outcome)
        if record.drain_seconds is not None:
            _put(MetricName.DRAIN_SECONDS, record.drain_seconds)
        counted_here = record.dropped_sessions - handed_over
        if counted_here > 0:
            _put(MetricName.FORCED_KILLS)
            _put(MetricName.DROPPED_SESSIONS, counted_here)
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


def _holds_an_action(record: DrainRecord) -> bool:
    """False for a Spot drain that never learned a lifecycle action: there is nothing to heartbeat
    or complete, and the reclaim ends the instance whatever is sent."""
    return not (record.extra.get("trigger") == TRIGGER_SPOT and not record.lifecycle.action_token)


def _gone_outcome(record: DrainRecord, now: float) -> DrainOutcome:
    # An adopted drain never knew its hook's timers: an end it cannot explain is not an expiry.
    known_timers = record.extra.get("trigger") != TRIGGER_ADOPTED or record.heartbeats > 0
    return DrainOutcome.EXPIRED if known_timers and record.expired_by(now) else DrainOutcome.GONE


def _without_auto_scaling(action: Action) -> Action:
    match action:
        case Heartbeat():
            return Wait(reason="no lifecycle action to heartbeat")
        case Hold(error=error):
            return Hold(error=error, heartbeat=False)
        case _:
            return action


def _cluster_arn(task_arn: str, cluster: str) -> str:
    """arn:aws:ecs:<region>:<account>:task/... -> the same partition, region and account's cluster."""
    prefix = task_arn.split(":task/", 1)[0]
    return f"{prefix}:cluster/{cluster}"
