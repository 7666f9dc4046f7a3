"""Malformed and hostile events (missing fields, wrong types, huge strings, unknown sources) sent
to each function: rejected, logged whole, counted in EventsRejected, never raised (a raised error
would be retried, then parked in the dead-letter queue, for an event that can never succeed).
tests/unit/test_event_fuzz.py draws thousands more with hypothesis."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from drainctl.world.world import World
from tests.integration.test_world_end_to_end import metrics_in, total

EVENTS = Path(__file__).resolve().parents[2] / "events"


def event_file(name: str) -> dict[str, Any]:
    loaded = json.loads((EVENTS / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def changed(name: str, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The event file with one field set (or deleted, for `...`)."""
    event = copy.deepcopy(event_file(name))
    parent = event
    for part in path[:-1]:
        parent = parent[part]
    if value is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return event


TERMINATE = "asg-terminate-lifecycle-action.json"
SPOT = "ec2-spot-interruption-warning.json"
STOPPED = "ecs-task-stopped-forced-kill.json"
TICK = "scheduled-reconcile.json"

HOSTILE = [
    ("LifecycleFunction", "missing token", changed(TERMINATE, ("detail", "LifecycleActionToken"), ...)),
    (
        "LifecycleFunction",
        "instance id of the wrong type",
        changed(TERMINATE, ("detail", "EC2InstanceId"), 12345),
    ),
    (
        "LifecycleFunction",
        "huge hook name",
        changed(TERMINATE, ("detail", "LifecycleHookName"), "x" * 200_000),
    ),
    ("LifecycleFunction", "unknown source", changed(TERMINATE, ("source",), "evil.corp")),
    ("LifecycleFunction", "time without a zone", changed(TERMINATE, ("time",), "2026-01-01T00:00:00")),
    (
        "LifecycleFunction",
        "spot warning for no instance",
        changed(SPOT, ("detail", "instance-id"), "../../etc"),
    ),
    ("LifecycleFunction", "spot warning without detail", changed(SPOT, ("detail",), ...)),
    ("TaskStateFunction", "task ARN of the wrong type", changed(STOPPED, ("detail", "taskArn"), ["arn"])),
    (
        "TaskStateFunction",
        "huge stopped reason",
        changed(STOPPED, ("detail", "stoppedReason"), "y" * 200_000),
    ),
    ("TaskStateFunction", "unknown source", changed(STOPPED, ("source",), "aws.s3")),
    ("ReconcileFunction", "someone else's event", changed(TICK, ("source",), "evil.corp")),
]


@pytest.mark.parametrize(("function", "what", "event"), HOSTILE, ids=[f"{f}: {w}" for f, w, _ in HOSTILE])
def test_a_malformed_event_is_rejected_logged_whole_and_counted(
    world: World, function: str, what: str, event: dict[str, Any]
) -> None:
    # GIVEN a running world
    world.create_fleet(1)

    # WHEN the function is handed the malformed event (as a misrouted rule or a direct invoke would)
    delivery = world.invoke_function(function, event)

    # THEN it answered (no exception: nothing for Lambda to retry), rejecting the event
    ((action, reason),) = [(s["action"], s["reason"]) for s in delivery.result["steps"]]
    assert action == "reject"
    assert len(reason) < 1_000
    # THEN the event is in its log whole, and EventsRejected counted it
    (invocation,) = [i for i in world.lambdas.invocations if i.function == function]
    lines = [json.loads(line) for line in invocation.output.split("\n") if line.startswith("{")]
    (logged,) = [line for line in lines if line.get("message") == "event rejected"]
    assert logged["event"] == event
    assert total(metrics_in([invocation]), "EventsRejected") == 1
    assert "livekit-drain-events-rejected" in {f.alarm.name for f in world.alarms_firing()}
