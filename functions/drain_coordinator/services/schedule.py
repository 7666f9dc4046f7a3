"""A reconcile tick, sequenced: plan every unit of work (domain/schedule.py), send what one
invocation cannot cover to the work queue as shards, and do the rest here within the time left.

A run of work (the tick's own share, or one shard in the advance function) goes in two passes:
1. every heartbeat that is due, closest to expiry first: nothing a probe does can delay one (one
   that fails, throttled most often, is tried once more after the others);
2. the looks, most urgent first, each within its share of the invocation's time; what does not
   fit is deferred (counted) and is among the first of the next tick.
Metrics are printed after each unit, so an invocation that times out loses none already earned.
A look that changed nothing but its own time saves nothing: the run records all such looks in
one write when it ends, and the next tick reads those records for its order (`with_looks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from drain_coordinator.domain.decide import DrainPolicy
from drain_coordinator.domain.records import DrainRecord
from drain_coordinator.domain.schedule import (
    LookLimits,
    Shard,
    WorkItem,
    WorkKind,
    heartbeats_due,
    look_budget,
    looks_kept_until,
    overdue,
    plan_tick,
    with_looks,
    work_items,
)
from drain_coordinator.domain.task_stops import TaskStopRecord
from drain_coordinator.integrations.autoscaling import AutoScalingError
from drain_coordinator.integrations.store import StoreError
from drain_coordinator.integrations.work_queue import WorkQueueError
from drain_coordinator.observability import MetricName, flush_metrics, logger, put_metric
from drain_coordinator.services.drains import Coordinator, DrainStep

T = TypeVar("T")
_DRAIN_LOG_KEYS = ["asgName", "lifecycleHookName", "lifecycleActionToken", "instanceID"]
_TASK_LOG_KEYS = ["taskArn", "containerInstanceArn"]
_NO_DECISION = frozenset({"error", "skip", "reject"})
HEARTBEAT_ROUNDS = 2  # a renewal that failed gets one more try in the same run, after the others


class WorkQueuePort(Protocol):
    def send(self, shards: Sequence[Shard]) -> int: ...


class TaskStopsPort(Protocol):
    def open_stops(self) -> Iterator[TaskStopRecord]: ...
    def follow(self, record: TaskStopRecord, within: float | None = None) -> dict[str, Any]: ...
    def prefetch(self, records: Iterable[TaskStopRecord]) -> None: ...
    @property
    def store(self) -> Any: ...


@dataclass
class RunResult:
    steps: list[dict[str, Any]] = field(default_factory=list)
    deferred: int = 0
    shards_sent: int = 0
    # An unexpected error, raised again once every other unit had its turn.
    failure: Exception | None = None
    # The last unit's error, if it failed (which renewals are worth a second try).
    last_error: Exception | None = None
    # When each drain's hook had a decision (heartbeat, wait or complete) in this run, on the
    # coordinator's clock: an invocation's decisions are spread over its run, not made at its end.
    decided_at: dict[str, list[float]] = field(default_factory=dict)

    def add(self, steps: Iterable[dict[str, Any]], at: float) -> None:
        for step in steps:
            self.steps.append(step)
            if "instance_id" in step and step["action"] not in _NO_DECISION:
                self.judged([str(step["instance_id"])], at)

    def judged(self, instance_ids: Iterable[str], at: float) -> None:
        for instance_id in instance_ids:
            self.decided_at.setdefault(instance_id, []).append(round(at, 3))

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "deferred": self.deferred,
            "shards_sent": self.shards_sent,
            "decided_at": self.decided_at,
        }

    def decided(self) -> list[str]:
        """The drains whose hook had a decision in this run (heartbeat, wait or complete)."""
        return sorted(self.decided_at)


@dataclass
class Scheduler:
    drains: Coordinator
    task_stops: TaskStopsPort
    asg_name: str
    hook_name: str
    clock: Callable[[], float]
    queue: WorkQueuePort | None = None
    shard_size: int = 20
    # Shards the work queue runs at once (its MaximumConcurrency); None: no limit known.
    concurrency: int | None = None
    # Heartbeats a period the tick spreads the hooks' renewals under (None: only the due ones).
    heartbeat_budget: int | None = None
    limits: LookLimits = field(default_factory=LookLimits)

    @property
    def policy(self) -> DrainPolicy:
        return self.drains.policy

    def tick(self, remaining_seconds: Callable[[], float]) -> RunResult:
        """Every open drain, orphan and task stop: the first shard here, the rest to the queue."""
        now = self.clock()
        drains = list(self.drains.store_open_drains())
        drains = with_looks(drains, self._recent_looks(now)) if drains else drains
        orphans = self.drains.orphans(self.asg_name, {d.instance_id for d in drains})
        stops = list(self.task_stops.open_stops())
        late = sum(1 for d in drains if overdue(d, now, self.policy))
        if late:
            # Each was missed by at least one tick: the coordinator is short of time or capacity.
            put_metric(MetricName.DRAINS_DEFERRED, late)
            logger.warning("drains not looked at for more than one period", extra={"overdue": late})
        items = work_items(orphans, drains, [(s.task_arn, s.kill_at) for s in stops], self.policy)
        known = {d.instance_id: d for d in drains}
        known_stops = {s.task_arn: s for s in stops}
        result = RunResult()
        mine = items
        if len(items) > self.shard_size and self.queue is not None:
            plan = plan_tick(
                items, known, now, self.policy, self.shard_size, self.concurrency, self.heartbeat_budget
            )
            sent = [Shard(now, tuple(p), looks=False) for p in plan.heartbeat_shards]
            sent += [Shard(now, tuple(p)) for p in plan.look_shards]
            try:
                # Heartbeat-only shards first: nothing sent waits behind a look.
                result.shards_sent = self.queue.send(sent) if sent else 0
            except WorkQueueError as exc:
                # No fan-out this tick: do what fits here, most urgent first, and defer the rest.
                logger.error(
                    "work queue refused the shards: the tick does what fits alone", extra={"error": str(exc)}
                )
            else:
                mine = plan.own
                result.deferred += len(plan.deferred)
                # The tick's own heartbeat decision for each drain it leaves unlooked: not due
                # before the next tick (rule 6 of domain/schedule.py); looked at first next tick.
                beaten = {i.key for part in plan.heartbeat_shards for i in part}
                result.add(
                    (
                        {"action": "wait", "reason": "look_deferred", "instance_id": i.key}
                        for i in plan.deferred
                        if i.kind is WorkKind.DRAIN and i.key not in beaten
                    ),
                    now,
                )
                if plan.deferred:
                    logger.warning(
                        "more looks than the work queue runs at once: deferred to the next tick",
                        extra={"deferred": len(plan.deferred)},
                    )
        self._run(mine, remaining_seconds, known, known_stops, result, run=_run_key(now, mine))
        return result

    def run_shard(self, shard: Shard, remaining_seconds: Callable[[], float]) -> RunResult:
        """One shard from the work queue: its records read afresh, then the same two passes."""
        result = RunResult()
        stale = shard.stale(self.clock(), self.policy)
        if stale:
            # A later tick has planned these looks again, but it may be waiting for a free
            # invocation too: the heartbeats that are due still go out, only the looks are dropped.
            logger.info("shard superseded by a later tick: heartbeats only", extra={"tickAt": shard.tick_at})
            result.add([{"action": "skip", "reason": "stale_shard", "items": len(shard.items)}], self.clock())
        # Read by key, 100 to a BatchGetItem, not one request per record.
        drain_keys = [i.key for i in shard.items if i.kind is WorkKind.DRAIN]
        stop_keys = [i.key for i in shard.items if i.kind is WorkKind.TASK_STOP]
        read = self.drains.store.get_many(drain_keys) if drain_keys else {}
        known = {key: record for key, record in read.items() if record.is_open}
        read_stops = self.task_stops.store.get_many(stop_keys) if stop_keys else {}
        known_stops = {key: stop for key, stop in read_stops.items() if stop.is_open}
        items = [
            i for i in shard.items if i.kind is WorkKind.ORPHAN or i.key in known or i.key in known_stops
        ]
        self._run(
            items,
            remaining_seconds,
            known,
            known_stops,
            result,
            looks=shard.looks and not stale,
            renew_all=not shard.looks and not stale,
            run=_run_key(shard.tick_at, list(shard.items)),
        )
        return result

    def _recent_looks(self, now: float) -> dict[str, float]:
        try:
            return self.drains.store.recent_looks(now)
        except StoreError as exc:
            # Each drain then counts as looked at when its record last changed: this tick's order
            # may not put the drains deferred last time first, but it still has every drain.
            logger.warning(
                "the runs' looks not read: ordered by the records alone", extra={"error": str(exc)}
            )
            return {}

    def _record_looks(self, run: str, looks: dict[str, float]) -> None:
        """The looks of this run that saved nothing, in one write: the next tick's order reads
        them. Lost (the write failed, the invocation died first), those drains come first next
        tick, as deferred ones do."""
        if not looks:
            return
        try:
            self.drains.store.record_looks(run, looks, looks_kept_until(self.clock(), self.policy))
        except StoreError as exc:
            logger.warning(
                "looks not recorded: those drains come first next tick",
                extra={"looks": len(looks), "error": str(exc)},
            )

    # -- the two passes ------------------------------------------------------------------------

    def _run(
        self,
        items: list[WorkItem],
        remaining_seconds: Callable[[], float],
        drains: dict[str, DrainRecord],
        stops: dict[str, TaskStopRecord],
        result: RunResult,
        looks: bool = True,
        renew_all: bool = False,
        run: str = "",
    ) -> None:
        """`renew_all`: a heartbeat-only shard, whose every hook the tick chose to renew now; in
        other runs, the due hooks and those the tick marked `renew` (early, to spread them).
        `run` names this run's record of its looks."""
        self.drains.start_run()
        mine = [drains[i.key] for i in items if i.kind is WorkKind.DRAIN and i.key in drains]
        early = {i.key for i in items if i.renew} if not renew_all else {r.instance_id for r in mine}
        now = self.clock()
        due = {r.instance_id for r in heartbeats_due(mine, now, self.policy)}
        # The heartbeat decision for every hook of the run: renewed below, or not due before the
        # next tick (its look, if there is time for one, may decide more).
        renewing = due | early
        result.judged((r.instance_id for r in mine if r.instance_id not in renewing), now)
        beats = sorted(
            (r for r in mine if r.instance_id in renewing),
            key=lambda r: (r.heartbeat_expires_at, r.instance_id),
        )
        self._renew(beats, early, drains, result, remaining_seconds)
        if not looks:
            return
        # The tasks of every drain and stop of this run, described in batches before the looks.
        self.drains.prefetch(mine)
        self.task_stops.prefetch(
            stops[i.key] for i in items if i.kind is WorkKind.TASK_STOP and i.key in stops
        )
        # This run's own (not the Coordinator's, which the invocations of a process share).
        unsaved: dict[str, float] = {}
        self._looks(items, remaining_seconds, drains, stops, result, unsaved)
        # In the time the looks leave (LookLimits.reserve_seconds); an invocation that dies
        # first records nothing, as a Lambda timeout runs no `finally`.
        self._record_looks(run, unsaved)

    def _looks(
        self,
        items: list[WorkItem],
        remaining_seconds: Callable[[], float],
        drains: dict[str, DrainRecord],
        stops: dict[str, TaskStopRecord],
        result: RunResult,
        unsaved: dict[str, float],
    ) -> None:
        for position, item in enumerate(items):
            if item.kind is WorkKind.DRAIN and item.key not in drains:
                continue
            within = look_budget(remaining_seconds(), len(items) - position, self.limits)
            if within is None:
                result.deferred += len(items) - position
                logger.warning(
                    "out of time: looks deferred to the next tick (their heartbeats were sent)",
                    extra={"deferred": len(items) - position},
                )
                # A hook that fell due while the looks ran is renewed now, not a tick later; each
                # other deferred drain's heartbeat decision is on the record this run holds: its
                # hook needs nothing before the next tick.
                now = self.clock()
                left = [
                    drains[i.key] for i in items[position:] if i.kind is WorkKind.DRAIN and i.key in drains
                ]
                fell_due = heartbeats_due(left, now, self.policy)
                self._renew(fell_due, set(), drains, result, remaining_seconds)
                renewed = {r.instance_id for r in fell_due}
                result.add(
                    (
                        {"action": "wait", "reason": "look_deferred", "instance_id": r.instance_id}
                        for r in left
                        if r.instance_id not in renewed
                    ),
                    now,
                )
                break
            key = ("task_arn" if item.kind is WorkKind.TASK_STOP else "instance_id", item.key)
            steps = self._unit(partial(self._do, item, within, drains, stops, unsaved), key, result)
            result.add(steps or [], self.clock())

    def _renew(
        self,
        beats: list[DrainRecord],
        early: set[str],
        drains: dict[str, DrainRecord],
        result: RunResult,
        remaining_seconds: Callable[[], float],
    ) -> None:
        """Send these hooks' heartbeats, closest to expiry first, while the invocation has time.

        A renewal that failed (Auto Scaling throttled it past botocore's retries, most often:
        its rate is shared with every other invocation) is tried once more after the others,
        when the bucket has refilled. A drain not renewed is not looked at either (dropped from
        `drains`): it is first next tick."""
        for _round in range(HEARTBEAT_ROUNDS):
            failed: list[DrainRecord] = []
            for record in beats:
                if remaining_seconds() < self.limits.reserve_seconds:
                    break
                beaten = self._unit(
                    partial(self.drains.heartbeat_if_due, record, early=record.instance_id in early),
                    ("instance_id", record.instance_id),
                    result,
                )
                if beaten is None:
                    # Refused by Auto Scaling: tried again. Any other failure (the save, a bug)
                    # may have sent the heartbeat already: the next tick decides afresh.
                    if isinstance(result.last_error, AutoScalingError):
                        failed.append(record)
                    else:
                        drains.pop(record.instance_id, None)
                    continue
                saved, step = beaten
                if step is not None:
                    result.add([step.as_dict()], self.clock())
                if saved is None:
                    drains.pop(record.instance_id, None)  # closed (gone) or saved elsewhere: no look
                else:
                    drains[record.instance_id] = saved
            beats = failed
        for record in beats:
            drains.pop(record.instance_id, None)

    def _do(
        self,
        item: WorkItem,
        within: float,
        drains: dict[str, DrainRecord],
        stops: dict[str, TaskStopRecord],
        unsaved: dict[str, float],
    ) -> list[dict[str, Any]]:
        match item.kind:
            case WorkKind.ORPHAN:
                adopted: list[DrainStep] = self.drains.adopt(item.key, self.asg_name, self.hook_name, within)
                return [s.as_dict() for s in adopted]
            case WorkKind.DRAIN:
                return [self.drains.advance(drains[item.key], within, unsaved).as_dict()]
            case WorkKind.TASK_STOP:
                return [self.task_stops.follow(stops[item.key], within)] if item.key in stops else []

    def _unit(self, work: Callable[[], T], key: tuple[str, str], result: RunResult) -> T | None:
        """One unit of work: its failure isolated (looked at again next tick), its metrics and
        log keys flushed when it ends."""
        result.last_error = None
        try:
            return work()
        except (AutoScalingError, StoreError) as exc:
            result.last_error = exc
            logger.exception("not advanced this tick", extra={key[0]: key[1]})
            result.add([{"action": "error", key[0]: key[1], "error": str(exc)}], self.clock())
        except Exception as exc:  # isolated here, raised again once every unit had its turn
            result.last_error = exc
            logger.exception("failed unexpectedly", extra={key[0]: key[1]})
            result.add([{"action": "error", key[0]: key[1], "error": repr(exc)}], self.clock())
            result.failure = result.failure or exc
        finally:
            flush_metrics()
            logger.remove_keys(_DRAIN_LOG_KEYS + _TASK_LOG_KEYS)
        return None


def _run_key(tick_at: float, items: Sequence[WorkItem]) -> str:
    """A run's name: its tick and its first unit (a tick's runs hold different units)."""
    return f"{tick_at:.3f}#{items[0].key}" if items else f"{tick_at:.3f}"
