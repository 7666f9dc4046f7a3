"""`drainctl replay EVENT.json`: a local world built to match the event's ids, the event delivered
to the real handler, the coordinator run on the virtual clock until the drain ends.

Prints one JSON line per action taken, then a summary line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from drain_coordinator.domain.task_stops import ContainerExit, worker_container_of
from drainctl.world.fleet import CallEnd, Worker
from drainctl.world.world import Delivery, World, WorldConfig

QUIET_ACTIONS = {"wait", "task_sampled"}  # looks that changed nothing are not actions taken
LIFECYCLE_FUNCTION = "LifecycleFunction"
TASK_STATE_FUNCTION = "TaskStateFunction"
RECONCILE_FUNCTION = "ReconcileFunction"


class ReplayInputError(ValueError):
    """The event cannot be replayed: not JSON, not an object, or of a kind no handler takes."""


@dataclass(frozen=True)
class ReplayOptions:
    sessions: int = 3
    call_seconds: tuple[float, float] = (180.0, 480.0)
    call_seconds_given: bool = False  # task stops pick lengths that fit the event unless told
    seed: int = 7
    template: Path | None = None
    params: Mapping[str, str] | None = None


def load_event(path: Path) -> dict[str, Any]:
    try:
        event = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ReplayInputError(f"{path}: no such file") from exc
    except json.JSONDecodeError as exc:
        raise ReplayInputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(event, dict):
        raise ReplayInputError(f"{path}: an EventBridge event is a JSON object")
    return event


def parse_call_seconds(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split("-", 1))
    except ValueError as exc:
        raise ReplayInputError(f"--call-seconds takes A-B (seconds), not {text!r}") from exc
    if not 0 < low <= high:
        raise ReplayInputError(f"--call-seconds needs 0 < A <= B, got {text!r}")
    return low, high


def replay(event: Mapping[str, Any], options: ReplayOptions, out: TextIO | None = None) -> int:
    """Exit status: 0 when replayed, 2 when the handler rejected the event."""
    out = out or sys.stdout
    kind = _kind_of(event)
    started_at = _event_time(event)
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    assert isinstance(detail, dict)
    config = WorldConfig(
        params=dict(options.params or {}),
        start=started_at,
        seed=options.seed,
        template=options.template,
        hook_name=str(detail["LifecycleHookName"]) if detail.get("LifecycleHookName") else None,
    )
    if detail.get("AutoScalingGroupName"):
        config.group_name = str(detail["AutoScalingGroupName"])
    if kind == "task":
        config.cluster = str(detail.get("clusterArn", "")).rsplit("/", 1)[-1] or config.cluster
        stopping_at = _parse_time(detail.get("stoppingAt"), "detail.stoppingAt")
        config.start = min(started_at, stopping_at or started_at) - 1
    with World(config) as world:
        emit = _emitter(world, started_at, out)
        if kind == "terminate":
            return _replay_terminate(world, event, detail, options, emit, out)
        if kind == "task":
            return _replay_task(world, event, detail, options, emit, out, started_at)
        if kind == "ec2":
            return _replay_ec2(world, event, detail, options, emit, out)
        function = RECONCILE_FUNCTION if kind == "schedule" else LIFECYCLE_FUNCTION
        delivery = world.invoke_function(function, event)
        emit(delivery)
        rejected = any(s.get("action") == "reject" for s in _steps(delivery))
        _summary(out, outcome=None, heartbeats=0, dropped=0, instance_state=None, calls=0, drain_seconds=None)
        return 2 if rejected else 0


def _replay_terminate(
    world: World,
    event: Mapping[str, Any],
    detail: Mapping[str, Any],
    options: ReplayOptions,
    emit: Callable[[Delivery], None],
    out: TextIO,
) -> int:
    instance_id = str(detail.get("EC2InstanceId", ""))
    token = str(detail.get("LifecycleActionToken", ""))
    _instance_with_calls(world, instance_id, options)
    # Auto Scaling holds the instance under the event's own token; the world's copy of the event
    # is dropped: the one replayed is the file's.
    world.aws.terminate_instance(instance_id, lifecycle_action_token=token)
    world.take_pending_events()
    first = world.invoke_function(LIFECYCLE_FUNCTION, event)
    emit(first)
    if any(s.get("action") == "reject" for s in _steps(first)):
        _summary(
            out,
            outcome=None,
            heartbeats=0,
            dropped=0,
            instance_state=world.instance_state(instance_id),
            calls=options.sessions,
            drain_seconds=None,
        )
        return 2

    def ended() -> bool:
        action = world.aws.lifecycle.action_for(instance_id)
        return action is None or not action.is_open

    limit = float(world.params["DrainDeadline"]) + 2 * world.period
    world.run(ended, limit_seconds=limit, on_delivery=emit)
    # One more second: the fleet sees the instance go, and any call still on it is dropped.
    world.step(1.0)
    action = world.aws.lifecycle.action_for(instance_id)
    record = world.drain_record(instance_id)
    _summary(
        out,
        outcome=record.outcome.value if record and record.outcome else None,
        heartbeats=action.heartbeats if action else 0,
        dropped=len([c for c in world.fleet.calls_on(instance_id) if c.dropped]),
        instance_state=world.instance_state(instance_id),
        calls=options.sessions,
        drain_seconds=(action.ended_at - action.started_at) if action and action.ended_at else None,
    )
    return 0


def _instance_with_calls(world: World, instance_id: str, options: ReplayOptions) -> Worker:
    """The event's instance in the group, one worker on it holding `options.sessions` calls."""
    try:
        world.create_fleet([instance_id], workers_per_instance=1)
    except Exception as exc:
        raise ReplayInputError(f"cannot build a world for instance {instance_id!r}: {exc}") from exc
    (worker,) = world.workers_on(instance_id)
    low, high = options.call_seconds
    for _ in range(options.sessions):
        world.fleet.start_call(worker, world.clock.now(), world.rng.uniform(low, high))
    return worker


def _replay_ec2(
    world: World,
    event: Mapping[str, Any],
    detail: Mapping[str, Any],
    options: ReplayOptions,
    emit: Callable[[Delivery], None],
    out: TextIO,
) -> int:
    """A Spot interruption warning (the reclaim follows two minutes later, whatever happens) or a
    rebalance recommendation (a normal drain starts early when RebalanceDrain=true)."""
    instance_id = str(detail.get("instance-id", ""))
    worker = _instance_with_calls(world, instance_id, options)
    spot = event.get("detail-type") == "EC2 Spot Instance Interruption Warning"
    if spot:
        world.spot.interrupt(instance_id)  # schedules the reclaim; its event is the file's
        world.take_pending_events()
    first = world.invoke_function(LIFECYCLE_FUNCTION, event)
    emit(first)
    rejected = any(s.get("action") == "reject" for s in _steps(first))
    if not rejected:

        def settled() -> bool:
            gone = world.instance_state(instance_id) == "Terminated" or instance_id in world.spot.reclaimed
            return gone and worker.stopped_at is not None

        started = spot or any(s.get("action") in ("drain_started", "rebalance") for s in _steps(first))
        limit = float(world.params["DrainDeadline"]) + 2 * world.period if started else 0.0
        world.run(settled, limit_seconds=limit, on_delivery=emit)
        world.run(lambda: False, limit_seconds=2 * world.period, on_delivery=emit)  # late verdicts
    calls = world.fleet.calls_on(instance_id)
    out.write(
        json.dumps(
            {
                "summary": {
                    "instance_state": world.instance_state(instance_id),
                    "dropped_sessions": sum(1 for c in calls if c.dropped),
                    "calls": len(calls),
                    "alarms": [f.alarm.name for f in world.alarms_firing()],
                }
            }
        )
        + "\n"
    )
    return 2 if rejected else 0


def _replay_task(
    world: World,
    event: Mapping[str, Any],
    detail: Mapping[str, Any],
    options: ReplayOptions,
    emit: Callable[[Delivery], None],
    out: TextIO,
    event_time: float,
) -> int:
    """A worker task holding N calls, told to stop and stopped as the event says."""
    task_arn = str(detail.get("taskArn", ""))
    service = str(detail.get("group", "")).removeprefix("service:") or "livekit-agents"
    (instance_id,) = world.create_fleet(1, workers_per_instance=1)
    (worker,) = world.workers_on(instance_id)
    try:
        world.ecs.rename_task(worker.task_arn, task_arn)
    except ValueError as exc:
        raise ReplayInputError(str(exc)) from exc
    world.fleet.workers[task_arn] = world.fleet.workers.pop(worker.task_arn)
    worker.task_arn = task_arn
    worker.service = service
    stopped = detail.get("lastStatus") == "STOPPED"
    stopping_at = _parse_time(detail.get("stoppingAt"), "detail.stoppingAt") or event_time
    stopped_at = _parse_time(detail.get("stoppedAt"), "detail.stoppedAt") or event_time
    exit_code, container_reason = _worker_exit(detail, str(world.params.get("WorkerContainerName", "worker")))
    asked_to_stop = detail.get("stopCode") in ("ServiceSchedulerInitiated", "UserInitiated", None)
    low, high = (
        options.call_seconds
        if options.call_seconds_given or not stopped
        else _lengths_for(exit_code, stopped_at - world.clock.now())
    )
    for _ in range(options.sessions):
        world.fleet.start_call(worker, world.clock.now(), world.rng.uniform(low, high))
    worker.scripted = stopped  # a recorded stop happens when and how the event says
    if asked_to_stop or not stopped:
        world.run(lambda: world.clock.now() >= stopping_at, limit_seconds=stopping_at - world.clock.now() + 1)
        world.fleet.sigterm(worker, world.clock.now(), str(detail.get("stoppedReason", "")))
        pending = world.take_pending_events()
        if not stopped:
            pending = [dict(event)]  # the file's own stopping event stands for the world's
        for each in pending:
            for delivery in world.deliver(each):
                emit(delivery)
    if not stopped:
        world.run(
            lambda: worker.stopped_at is not None,
            limit_seconds=worker.stop_timeout + 2 * world.period,
            on_delivery=emit,
        )
        world.step(1.0)
    else:
        world.run(
            lambda: world.clock.now() >= stopped_at,
            limit_seconds=stopped_at - world.clock.now() + 1,
            on_delivery=emit,
        )
        reason = container_reason
        world.fleet.stop(
            worker,
            world.clock.now(),
            exit_code=exit_code,
            end=_call_end(exit_code, reason),
            stop_code=str(detail.get("stopCode", "")),
            reason=str(detail.get("stoppedReason", "")),
            container_reason=reason,
        )
        world.take_pending_events()  # the file's STOPPED event stands for the world's
        emit(world.invoke_function(TASK_STATE_FUNCTION, event))
    for fired in world.alarms_firing():
        out.write(
            json.dumps(
                {
                    "t": round(fired.t - event_time, 3),
                    "action": "alarm",
                    "alarm": fired.alarm.name,
                    "metric": fired.alarm.metric,
                    "value": fired.value,
                }
            )
            + "\n"
        )
    calls = [c for c in world.fleet.calls if c.task_arn == task_arn]
    out.write(
        json.dumps(
            {
                "summary": {
                    "verdict": _verdict(world),
                    "dropped_sessions": sum(1 for c in calls if c.dropped),
                    "calls": len(calls),
                    "alarms": [f.alarm.name for f in world.alarms_firing()],
                }
            }
        )
        + "\n"
    )
    return 0


def _verdict(world: World) -> str | None:
    for delivery in reversed(world.deliveries):
        for step in _steps(delivery):
            if step.get("action") == "task_stopped":
                return str(step.get("verdict"))
    return None


def _worker_exit(detail: Mapping[str, Any], worker_container: str) -> tuple[int | None, str]:
    """The worker container's exit code and reason, chosen as the coordinator chooses it."""
    containers = tuple(
        ContainerExit(
            str(c.get("name", "")),
            int(c["exitCode"]) if isinstance(c.get("exitCode"), int) else None,
            str(c.get("reason", "")),
        )
        for c in detail.get("containers") or []
        if isinstance(c, dict)
    )
    worker = worker_container_of(containers, worker_container)
    return (worker.exit_code, worker.reason) if worker else (None, "")


def _lengths_for(exit_code: int | None, seconds_to_stop: float) -> tuple[float, float]:
    """Calls that end before a clean exit, and outlast a kill or crash (in flight when it dies)."""
    if exit_code == 0:
        return max(1.0, 0.3 * seconds_to_stop), max(1.0, 0.9 * seconds_to_stop)
    return seconds_to_stop + 60, seconds_to_stop + 300


def _call_end(exit_code: int | None, reason: str) -> CallEnd:
    if "OutOfMemory" in reason:
        return CallEnd.OOM
    if exit_code == 137:
        return CallEnd.SIGKILL
    if exit_code is None:
        return CallEnd.INSTANCE_TERMINATED
    return CallEnd.DRAIN_TIMED_OUT


def _parse_time(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ReplayInputError(f"{where} is not a time")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ReplayInputError(f"{where} {raw!r} is not ISO 8601") from exc


def _emitter(world: World, started_at: float, out: TextIO) -> Callable[[Delivery], None]:
    def emit(delivery: Delivery) -> None:
        for step in _steps(delivery):
            if step.get("action") in QUIET_ACTIONS:
                continue
            line = {"t": round(delivery.t - started_at, 3), **step}
            out.write(json.dumps(line) + "\n")

    return emit


def _steps(delivery: Delivery) -> list[dict[str, Any]]:
    result = delivery.result if isinstance(delivery.result, dict) else {}
    steps = result.get("steps", [])
    return [s for s in steps if isinstance(s, dict)]


def _summary(out: TextIO, **fields: Any) -> None:
    summary = {
        "outcome": fields["outcome"],
        "heartbeats": fields["heartbeats"],
        "dropped_sessions": fields["dropped"],
        "instance_state": fields["instance_state"],
        "calls": fields["calls"],
        "drain_seconds": None if fields["drain_seconds"] is None else round(fields["drain_seconds"], 3),
    }
    out.write(json.dumps({"summary": summary}) + "\n")


def _kind_of(event: Mapping[str, Any]) -> str:
    source = event.get("source")
    detail_type = event.get("detail-type")
    if source == "aws.autoscaling":
        detail = event.get("detail")
        if (
            detail_type == "EC2 Instance-terminate Lifecycle Action"
            and isinstance(detail, dict)
            and "LifecycleActionToken" in detail
            and "EC2InstanceId" in detail
        ):
            return "terminate"
        return "autoscaling"
    if source == "aws.scheduler":
        return "schedule"
    if source == "aws.ec2" and detail_type in (
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
    ):
        detail = event.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("instance-id"), str):
            return "ec2"
        raise ReplayInputError("an EC2 interruption event needs detail.instance-id")
    if source == "aws.ecs" and detail_type == "ECS Task State Change":
        detail = event.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("taskArn"), str):
            return "task"
        raise ReplayInputError("an ECS Task State Change needs detail.taskArn")
    raise ReplayInputError(
        f"no handler takes events of source {source!r} and detail-type {detail_type!r} "
        "(replayable: aws.autoscaling lifecycle actions, aws.ecs task state changes, aws.ec2 Spot "
        "interruptions and rebalance recommendations, aws.scheduler ticks)"
    )


def _event_time(event: Mapping[str, Any]) -> float:
    raw = event.get("time")
    if not isinstance(raw, str):
        raise ReplayInputError("the event has no 'time'")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ReplayInputError(f"the event's time {raw!r} is not ISO 8601") from exc
