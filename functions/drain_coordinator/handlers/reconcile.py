"""Every minute (EventBridge Scheduler): adopt instances held in `Terminating:Wait` without a drain,
advance every open drain (most urgent deadline first, several at once), then follow every
stopping worker task (sample its calls, warn before a kill, catch a lost STOPPED)."""

from __future__ import annotations

import queue
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from drain_coordinator import wiring
from drain_coordinator.coordinator import (
    Coordinator,
    DrainStep,
    HeldMetric,
    emit_held,
    worker_mode,
)
from drain_coordinator.domain.records import DrainRecord
from drain_coordinator.integrations import aws_clients
from drain_coordinator.integrations.autoscaling import AutoScalingError
from drain_coordinator.integrations.store import DrainStore, StoreError, TaskStopStore
from drain_coordinator.observability import MetricName, logger, metrics, put_metric, tracer
from drain_coordinator.settings import Settings

# Stop taking new drains when less than this is left of the invocation: the rest wait one period
# (the open-drains index is ordered by deadline, so the next tick starts with the most urgent).
_RESERVE_MILLIS = 10_000
# What EventBridge Scheduler (or a classic EventBridge schedule) sends; an empty payload is a
# manual `aws lambda invoke`. Reconcile reads nothing else from its event.
_SCHEDULE_SOURCES = ("aws.scheduler", "aws.events")


class TriggerRejectedError(ValueError):
    """The invocation is no schedule tick."""


@dataclass(frozen=True, slots=True)
class _Work:
    """One unit of a tick: advance an open drain, or adopt an instance that has none."""

    index: int
    record: DrainRecord | None = None
    orphan: str | None = None

    @property
    def instance_id(self) -> str:
        return self.record.instance_id if self.record is not None else str(self.orphan)


@dataclass
class _Outcome:
    steps: list[dict[str, Any]] = field(default_factory=list)
    held: list[HeldMetric] = field(default_factory=list)
    failure: Exception | None = None


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        check_trigger(event)
    except TriggerRejectedError as exc:
        logger.warning("event rejected", extra={"reason": str(exc), "event": event})
        put_metric(MetricName.EVENTS_REJECTED)
        return {"steps": [{"action": "reject", "reason": str(exc)}], "deferred": 0}
    config = wiring.settings()
    coordinator = wiring.coordinator()
    drains = list(coordinator.store_open_drains())
    orphans = coordinator.orphans(config.asg_name, {d.instance_id for d in drains})
    # Orphans first: their hook's heartbeat timer may be about to run out.
    work = [_Work(i, orphan=o) for i, o in enumerate(orphans)]
    work += [_Work(len(work) + i, record=d) for i, d in enumerate(drains)]
    lanes = _lanes(coordinator, config, min(config.reconcile_concurrency, len(work)))
    outcomes, deferred = _run(lanes, work, config, context.get_remaining_time_in_millis)
    steps: list[dict[str, Any]] = []
    failure: Exception | None = None
    for outcome in outcomes:
        emit_held(outcome.held)
        steps += outcome.steps
        failure = failure or outcome.failure

    tracker = wiring.task_tracker()
    for stop in tracker.open_stops():
        if context.get_remaining_time_in_millis() < _RESERVE_MILLIS:
            deferred += 1
            continue
        try:
            steps.append(tracker.follow(stop))
        except StoreError as exc:
            logger.exception("task stop not followed this tick", extra={"taskArn": stop.task_arn})
            steps.append({"action": "error", "task_arn": stop.task_arn, "error": str(exc)})
        finally:
            logger.remove_keys(["taskArn", "containerInstanceArn"])
    if deferred:
        logger.warning(
            "reconcile ran out of time: drains deferred to the next tick",
            extra={"deferred": deferred},
        )
    if failure is not None:
        # Every other drain was advanced; the invocation still fails, so the error is seen
        # (function-errors alarm, the dead-letter queue) instead of being swallowed.
        raise failure
    return {"steps": steps, "deferred": deferred}


def check_trigger(event: Any) -> None:
    if not isinstance(event, Mapping):
        raise TriggerRejectedError(f"event is a {type(event).__name__}, not an object")
    if not event:
        return
    source, detail_type = event.get("source"), event.get("detail-type")
    if source not in _SCHEDULE_SOURCES or detail_type != "Scheduled Event":
        raise TriggerRejectedError(f"not a schedule tick: {str(source)[:256]!r} / {str(detail_type)[:256]!r}")


def _run(
    lanes: list[Coordinator], work: list[_Work], config: Settings, remaining_millis: Callable[[], int]
) -> tuple[list[_Outcome], int]:
    """Every unit of work, each lane (a worker thread) taking the next one until none is left or
    the invocation's time runs short. Outcomes come back in the order of `work`."""
    pending: queue.SimpleQueue[_Work] = queue.SimpleQueue()
    for item in work:
        pending.put(item)
    outcomes: list[_Outcome | None] = [None] * len(work)
    deferred: list[int] = []

    def lane(coordinator: Coordinator) -> None:
        while True:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                return
            if remaining_millis() < _RESERVE_MILLIS:
                deferred.append(item.index)
                continue
            outcomes[item.index] = _process(coordinator, item, config)

    if len(lanes) <= 1:
        for coordinator in lanes:
            lane(coordinator)
    else:
        with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="reconcile") as pool:
            for future in [pool.submit(lane, coordinator) for coordinator in lanes]:
                future.result()
    return [o for o in outcomes if o is not None], len(deferred)


def _process(coordinator: Coordinator, item: _Work, config: Settings) -> _Outcome:
    outcome = _Outcome()
    with worker_mode() as held:
        try:
            steps: list[DrainStep]
            if item.record is not None:
                steps = [coordinator.advance(item.record)]
            else:
                steps = coordinator.adopt(str(item.orphan), config.asg_name, config.hook_name)
            outcome.steps = [step.as_dict() for step in steps]
        except (AutoScalingError, StoreError) as exc:
            # One drain's failure must not starve the others; it is looked at again next tick.
            logger.exception("drain not advanced this tick", extra={"instanceID": item.instance_id})
            outcome.steps = [{"action": "error", "instance_id": item.instance_id, "error": str(exc)}]
        except Exception as exc:  # isolated here, raised again once every drain had its look
            logger.exception("drain failed unexpectedly", extra={"instanceID": item.instance_id})
            outcome.steps = [{"action": "error", "instance_id": item.instance_id, "error": repr(exc)}]
            outcome.failure = exc
        outcome.held = list(held)
    return outcome


# One set of stores per worker thread, kept across warm invocations (for the coordinator they
# were made from): boto3 resources, like the DynamoDB Table behind the stores, must not be
# shared between threads; clients may.
_lane_cache: list[tuple[Coordinator, list[Coordinator]]] = []


def _lanes(coordinator: Coordinator, config: Settings, count: int) -> list[Coordinator]:
    if count <= 1:
        return [coordinator][: max(count, 0)]
    if not isinstance(coordinator.store, DrainStore):
        # In-memory stores (tests, the local tools) are plain dicts: shared safely under the GIL.
        return [coordinator] * count
    cached = next((lanes for owner, lanes in _lane_cache if owner is coordinator), [])
    if len(cached) < count:
        # Built here, in one thread: creating boto3 resources is not thread-safe either.
        cached = [_with_own_stores(coordinator, config) for _ in range(count)]
        _lane_cache[:] = [(coordinator, cached)]
    return cached[:count]


def _with_own_stores(coordinator: Coordinator, config: Settings) -> Coordinator:
    table = aws_clients.resource("dynamodb").Table(config.table_name)
    task_stops = (
        TaskStopStore(table, ttl_days=config.record_ttl_days) if coordinator.task_stops is not None else None
    )
    return replace(
        coordinator, store=DrainStore(table, ttl_days=config.record_ttl_days), task_stops=task_stops
    )


__all__ = ["TriggerRejectedError", "check_trigger", "handler"]
