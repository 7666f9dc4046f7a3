"""`drainctl replay EVENT.json`: a local world built to match the event's ids, the event delivered
to the real handler, the coordinator run on the virtual clock until the drain ends.

Prints one JSON line per action taken, then a summary line.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from drain_coordinator.domain.task_stops import ContainerExit, worker_container_of
from drainctl.template import TemplateError
from drainctl.world.aws import ACCOUNT_ID, REGION, LocalAwsError
from drainctl.world.fleet import CallEnd, Worker
from drainctl.world.webhooks import WEBHOOK_FUNCTION, request_body, resign
from drainctl.world.world import Delivery, World, WorldConfig

QUIET_ACTIONS = {"wait", "task_sampled"}  # looks that changed nothing are not actions taken
LIFECYCLE_FUNCTION = "LifecycleFunction"
TASK_STATE_FUNCTION = "TaskStateFunction"
RECONCILE_FUNCTION = "ReconcileFunction"
MAX_EVENT_BYTES = 256 * 1024  # EventBridge's largest event (PutEvents: 256 KB)
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-account-settings.html#ecs-resource-ids
_TASK_ARN = re.compile(
    r"^arn:aws[a-z-]*:ecs:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):task/"
    r"(?:(?P<cluster>[A-Za-z0-9_-]{1,255})/)?(?P<id>[A-Za-z0-9]{1,64})$"
)
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
_ACCOUNT = re.compile(r"^\d{12}$")


class ReplayInputError(ValueError):
    """The event cannot be replayed: not JSON, not an object, or of a kind no handler takes."""


class HandlerRejectedError(ReplayInputError):
    """The handler itself rejected the file's event (exit 2, its reason on stderr)."""


@dataclass(frozen=True)
class ReplayOptions:
    sessions: int = 3
    call_seconds: tuple[float, float] = (180.0, 480.0)
    call_seconds_given: bool = False  # task stops pick lengths that fit the event unless told
    seed: int = 7
    template: Path | None = None
    params: Mapping[str, str] | None = None
    format: str = "json"  # or "text": a timeline like the demo's


def load_event(path: Path) -> dict[str, Any]:
    event = json.loads(read_text(path, "event file", limit=MAX_EVENT_BYTES))
    if not isinstance(event, dict):
        raise ReplayInputError(f"{path}: an event is a JSON object")
    return event


def read_text(path: Path, what: str, *, limit: int) -> str:
    """A small UTF-8 text file, or a one-line reason why not."""
    try:
        if path.is_dir():
            raise ReplayInputError(f"{path}: is a directory, not an {what}")
        size = path.stat().st_size
        if size > limit:
            raise ReplayInputError(f"{path}: {size} bytes, more than an {what} holds ({limit})")
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ReplayInputError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ReplayInputError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise ReplayInputError(f"{path}: empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReplayInputError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayInputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise ReplayInputError(f"{path}: JSON nested too deep") from exc
    return text


def parse_call_seconds(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split("-", 1))
    except ValueError as exc:
        raise ReplayInputError(f"--call-seconds takes A-B (seconds), not {text!r}") from exc
    if not (math.isfinite(low) and math.isfinite(high)) or not 0 < low <= high:
        raise ReplayInputError(f"--call-seconds needs 0 < A <= B, got {text!r}")
    return low, high


def replay(
    event: Mapping[str, Any], options: ReplayOptions, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Exit status: 0 when replayed, 2 when the handler rejected the event (the reason on `err`)."""
    out = out or sys.stdout
    err = err or sys.stderr
    printer = _Printer(out, options.format)
    try:
        status = _replay(event, options, printer, err)
    except HandlerRejectedError as exc:
        printer.flush()
        err.write(f"drainctl replay: the handler rejected the event: {exc}\n")
        return 2
    printer.flush()
    return status


def _replay(event: Mapping[str, Any], options: ReplayOptions, printer: _Printer, err: TextIO) -> int:
    kind = _kind_of(event)
    if kind == "webhook":
        return _replay_webhook(event, options, printer, err)
    started_at = _event_time(event)
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    assert isinstance(detail, dict)
    region, account = _where(event, detail, kind)
    config = WorldConfig(
        params=dict(options.params or {}),
        start=started_at,
        seed=options.seed,
        template=options.template,
        hook_name=str(detail["LifecycleHookName"]) if detail.get("LifecycleHookName") else None,
        region=region,
        account=account,
    )
    if detail.get("AutoScalingGroupName"):
        config.group_name = str(detail["AutoScalingGroupName"])
    if kind == "task":
        config.cluster = _cluster_of(detail) or config.cluster
        stopping_at = _parse_time(detail.get("stoppingAt"), "detail.stoppingAt")
        config.start = min(started_at, stopping_at or started_at) - 1
    with _world(config) as world:
        emit = _emitter(world, started_at, printer)
        if kind == "terminate":
            return _replay_terminate(world, event, detail, options, emit, printer)
        if kind == "task" and detail.get("desiredStatus") == "STOPPED":
            return _replay_task(world, event, detail, options, emit, printer, started_at)
        if kind == "ec2":
            return _replay_ec2(world, event, detail, options, emit, printer)
        # What the handler does with the file's event as it is: a scheduled tick, an Auto Scaling
        # notification that is not a terminate action, a task that is not being stopped (skipped,
        # as in production: the rule routes desiredStatus STOPPED only).
        function = {"schedule": RECONCILE_FUNCTION, "task": TASK_STATE_FUNCTION}.get(kind, LIFECYCLE_FUNCTION)
        delivery = world.invoke_function(function, event)
        emit(delivery)
        _raise_if_rejected(delivery)
        if kind == "task":
            printer.summary({"verdict": None, "dropped_sessions": 0, "calls": 0, "alarms": []})
        else:
            _summary(
                printer,
                outcome=None,
                heartbeats=0,
                dropped=0,
                instance_state=None,
                calls=0,
                drain_seconds=None,
            )
        return 0


@contextmanager
def _world(config: WorldConfig) -> Iterator[World]:
    """The world, or a one-line reason why the event's ids cannot build one."""
    try:
        world = World(config)
        world.start()
    except (TemplateError, LocalAwsError, ValueError, KeyError) as exc:
        raise ReplayInputError(f"cannot build a local world for this event: {exc}") from exc
    try:
        yield world
    finally:
        world.stop()


def _where(event: Mapping[str, Any], detail: Mapping[str, Any], kind: str) -> tuple[str, str]:
    """The region and account the event happened in: a task's own ARN, else the envelope's."""
    if kind == "task":
        found = _TASK_ARN.match(str(detail.get("taskArn", "")))
        if not found:
            raise ReplayInputError(
                f"detail.taskArn {str(detail.get('taskArn'))[:200]!r} is not an ECS task ARN "
                "(arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID or the old task/ID)"
            )
        return found["region"], found["account"]
    region, account = event.get("region", REGION), event.get("account", ACCOUNT_ID)
    if not isinstance(region, str) or not _REGION.match(region):
        raise ReplayInputError(f"the event's region {str(region)[:80]!r} is not an AWS region")
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise ReplayInputError(f"the event's account {str(account)[:80]!r} is not a 12-digit AWS account")
    return region, account


def _cluster_of(detail: Mapping[str, Any]) -> str | None:
    """The cluster's name: from clusterArn, else from a new-format task ARN (task/CLUSTER/ID)."""
    cluster = str(detail.get("clusterArn", "")).rsplit(":cluster/", 1)
    if len(cluster) == 2 and cluster[1]:
        return cluster[1]
    found = _TASK_ARN.match(str(detail.get("taskArn", "")))
    return found["cluster"] if found and found["cluster"] else None


def _raise_if_rejected(delivery: Delivery) -> None:
    for step in _steps(delivery):
        if step.get("action") == "reject":
            raise HandlerRejectedError(str(step.get("reason") or "no reason given"))


def _replay_webhook(event: Mapping[str, Any], options: ReplayOptions, printer: _Printer, err: TextIO) -> int:
    """A recorded LiveKit webhook (a Function URL event), through the webhook function.

    Its token expired five minutes after it was recorded: the body is signed again with the local
    LiveKit's key, as `drainctl.world.webhooks.resign` does for the tests.
    """
    body = request_body_or_none(event)
    try:
        message = json.loads(body) if body is not None else None
    except json.JSONDecodeError:
        message = None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise ReplayInputError(
            "a Function URL event whose body is not a LiveKit webhook (a JSON object with 'event'): "
            "only LiveKit's webhooks are replayed through the webhook function"
        )
    config = WorldConfig(seed=options.seed, template=options.template, params=dict(options.params or {}))
    created = message.get("createdAt")
    if isinstance(created, (int, str)) and str(created).isdigit():
        config.start = float(created)
    with _world(config) as world:
        if WEBHOOK_FUNCTION not in world.template.logical_ids():
            raise ReplayInputError(f"the template has no {WEBHOOK_FUNCTION}: no function takes webhooks")
        err.write(
            "drainctl replay: the recorded webhook's token has expired; re-signed with the local "
            "LiveKit's key\n"
        )
        request = resign(event, world.livekit.api_key, world.livekit.api_secret)
        delivery = world.invoke_url(WEBHOOK_FUNCTION, request)
        answer = dict(delivery.result) if isinstance(delivery.result, dict) else {}
        status_code = answer.pop("statusCode", None)
        took = answer.pop("action", None)
        printer.line(
            {
                "t": 0.0,
                "action": "webhook",
                "event": message["event"],
                "status_code": status_code,
                "took": took,
                **answer,
            }
        )
        printer.summary({"webhook": message["event"], "status_code": status_code})
        if status_code != 200:
            raise HandlerRejectedError(f"answered {status_code}: {answer.get('reason') or answer}")
        return 0


def request_body_or_none(event: Mapping[str, Any]) -> str | None:
    try:
        return request_body(event)
    except (ValueError, UnicodeDecodeError):
        return None


def _replay_terminate(
    world: World,
    event: Mapping[str, Any],
    detail: Mapping[str, Any],
    options: ReplayOptions,
    emit: Callable[[Delivery], None],
    out: _Printer,
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
    _raise_if_rejected(first)

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
    out: _Printer,
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
    _raise_if_rejected(first)

    def settled() -> bool:
        gone = world.instance_state(instance_id) == "Terminated" or instance_id in world.spot.reclaimed
        return gone and worker.stopped_at is not None

    started = spot or any(s.get("action") in ("drain_started", "rebalance") for s in _steps(first))
    limit = float(world.params["DrainDeadline"]) + 2 * world.period if started else 0.0
    world.run(settled, limit_seconds=limit, on_delivery=emit)
    world.run(lambda: False, limit_seconds=2 * world.period, on_delivery=emit)  # late verdicts
    calls = world.fleet.calls_on(instance_id)
    out.summary(
        {
            "instance_state": world.instance_state(instance_id),
            "dropped_sessions": sum(1 for c in calls if c.dropped),
            "calls": len(calls),
            "alarms": [f.alarm.name for f in world.alarms_firing()],
        }
    )
    return 0


def _replay_task(
    world: World,
    event: Mapping[str, Any],
    detail: Mapping[str, Any],
    options: ReplayOptions,
    emit: Callable[[Delivery], None],
    out: _Printer,
    event_time: float,
) -> int:
    """A worker task holding N calls, told to stop and stopped as the event says."""
    task_arn = str(detail.get("taskArn", ""))
    service = str(detail.get("group", "")).removeprefix("service:") or "livekit-agents"
    found = _TASK_ARN.match(task_arn)
    if found is not None and not found["cluster"]:
        # An old-format ARN, task/<id>: the account's tasks were launched before the
        # taskLongArnFormat setting (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-account-settings.html#ecs-resource-ids).
        world.aws.client("ecs").put_account_setting(name="taskLongArnFormat", value="disabled")
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
        last = world.invoke_function(TASK_STATE_FUNCTION, event)
        emit(last)
        _raise_if_rejected(last)
    for fired in world.alarms_firing():
        out.line(
            {
                "t": round(fired.t - event_time, 3),
                "action": "alarm",
                "alarm": fired.alarm.name,
                "metric": fired.alarm.metric,
                "value": fired.value,
            }
        )
    calls = [c for c in world.fleet.calls if c.task_arn == task_arn]
    out.summary(
        {
            "verdict": _verdict(world),
            "dropped_sessions": sum(1 for c in calls if c.dropped),
            "calls": len(calls),
            "alarms": [f.alarm.name for f in world.alarms_firing()],
        }
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


def _emitter(world: World, started_at: float, out: _Printer) -> Callable[[Delivery], None]:
    def emit(delivery: Delivery) -> None:
        for step in _steps(delivery):
            if step.get("action") in QUIET_ACTIONS:
                continue
            out.line({"t": round(delivery.t - started_at, 3), **step})

    return emit


def _steps(delivery: Delivery) -> list[dict[str, Any]]:
    result = delivery.result if isinstance(delivery.result, dict) else {}
    steps = result.get("steps", [])
    return [s for s in steps if isinstance(s, dict)]


def _summary(out: _Printer, **fields: Any) -> None:
    summary = {
        "outcome": fields["outcome"],
        "heartbeats": fields["heartbeats"],
        "dropped_sessions": fields["dropped"],
        "instance_state": fields["instance_state"],
        "calls": fields["calls"],
        "drain_seconds": None if fields["drain_seconds"] is None else round(fields["drain_seconds"], 3),
    }
    out.summary(summary)


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
    if source is None and detail_type is None and "requestContext" in event and "body" in event:
        return "webhook"  # a Function URL invocation: LiveKit's webhook
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
            if detail.get("desiredStatus") == "STOPPED" and not _TASK_ARN.match(detail["taskArn"]):
                raise ReplayInputError(
                    f"detail.taskArn {detail['taskArn'][:200]!r} is not an ECS task ARN "
                    "(arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID, or the old task/ID)"
                )
            return "task"
        raise ReplayInputError("an ECS Task State Change needs detail.taskArn")
    raise ReplayInputError(
        f"no handler takes events of source {source!r} and detail-type {detail_type!r} "
        "(replayable: aws.autoscaling lifecycle actions, aws.ecs task state changes, aws.ec2 Spot "
        "interruptions and rebalance recommendations, aws.scheduler ticks, LiveKit webhooks as "
        "Function URL events)"
    )


def _event_time(event: Mapping[str, Any]) -> float:
    raw = event.get("time")
    if not isinstance(raw, str):
        raise ReplayInputError("the event has no 'time'")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise ReplayInputError(f"the event's time {raw!r} is not ISO 8601") from exc


class _Printer:
    """The replay's lines: JSON, one a line (the default), or a timeline like the demo's."""

    def __init__(self, out: TextIO, format: str) -> None:
        self._out = out
        self._text = format == "text"

    def line(self, fields: Mapping[str, Any]) -> None:
        if not self._text:
            self._out.write(json.dumps(fields) + "\n")
            return
        rest = {k: v for k, v in fields.items() if k not in ("t", "action")}
        self._out.write(
            f"  {_signed_mmss(float(fields.get('t', 0.0)))}  {_describe(fields.get('action'), rest)}\n"
        )
        self._out.flush()

    def summary(self, fields: Mapping[str, Any]) -> None:
        if not self._text:
            self._out.write(json.dumps({"summary": dict(fields)}) + "\n")
            return
        self._out.write("summary\n")
        for name, value in fields.items():
            shown = ", ".join(map(str, value)) or "none" if isinstance(value, list) else value
            self._out.write(f"  {name.replace('_', ' '):<18} {shown}\n")

    def flush(self) -> None:
        self._out.flush()


def _describe(action: Any, fields: Mapping[str, Any]) -> str:
    task = str(action).startswith("task_") or action == "at_risk"
    who = (
        (fields.get("task_arn") if task else None) or fields.get("instance_id") or fields.get("task_arn", "")
    )
    who = str(who).rsplit("/", 1)[-1]
    match action:
        case "drain_started":
            return f"drain started: {who} set to DRAINING"
        case "heartbeat":
            return f"heartbeat: {who}: {fields.get('sessions')} calls on {fields.get('tasks')} workers still running"
        case "complete":
            return f"complete ({fields.get('outcome')}): {who} released, {fields.get('dropped_sessions', 0)} calls dropped"
        case "task_stopping":
            return f"task {who} told to stop holding {fields.get('sessions')} calls"
        case "at_risk":
            return f"AT RISK: task {who} will be killed with {fields.get('sessions')} calls up"
        case "task_stopped":
            return (
                f"task {who} stopped: {fields.get('verdict')}, {fields.get('dropped_sessions')} calls dropped"
            )
        case "alarm":
            return f"ALARM {fields.get('alarm')} ({fields.get('metric')} = {fields.get('value')})"
        case "webhook":
            return (
                f"webhook {fields.get('event')}: answered {fields.get('status_code')} ({fields.get('took')})"
            )
    extra = ", ".join(f"{k} {v}" for k, v in fields.items() if v not in (None, ""))
    return f"{action}: {extra}" if extra else str(action)


def _signed_mmss(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    whole = abs(round(seconds))
    return f"{sign}{whole // 60:02d}:{whole % 60:02d}"
