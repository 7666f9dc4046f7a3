"""EventBridge delivers at least once and in no particular order: duplicate, late and out-of-order
events change nothing twice (rule 5)."""

from __future__ import annotations

from typing import Any

import pytest

from drainctl.world.world import World
from tests.integration.test_world_end_to_end import (
    AwsCalls,
    actions_taken,
    emitted_metrics,
    run_until_released,
    scale_in,
    start_calls,
    total,
)

LIFECYCLE_DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"


def lifecycle_event(world: World) -> dict[str, Any]:
    """The terminate lifecycle event Auto Scaling just sent, taken before it is delivered."""
    (event,) = [e for e in world.take_pending_events() if e["detail-type"] == LIFECYCLE_DETAIL_TYPE]
    return event


def steps_of(deliveries: list[Any]) -> list[dict[str, Any]]:
    return [step for d in deliveries for step in d.result["steps"]]


def test_the_same_lifecycle_event_twice_opens_one_drain_and_completes_it_once(
    world: World, aws_calls: AwsCalls
) -> None:
    # GIVEN an instance with a call, scaled in, and its lifecycle event delivered twice
    (victim,) = world.create_fleet(1)
    (call,) = start_calls(world, victim, [[200.0]])
    scale_in(world, victim)
    event = lifecycle_event(world)

    # WHEN both deliveries reach the lifecycle function, then the drain runs its course
    first = world.deliver(event)
    second = world.deliver(event)
    action = run_until_released(world, victim)

    # THEN the second is a duplicate that touched neither ECS nor Auto Scaling
    assert steps_of(first)[0]["action"] == "drain_started"
    assert steps_of(second) == [{"action": "skip", "instance_id": victim, "reason": "duplicate"}]
    assert aws_calls[("ecs", "UpdateContainerInstancesState")] == 1
    # THEN one drain, completed once, with the call ended by itself
    assert total(emitted_metrics(world), "DrainStarted") == 1
    assert aws_calls[("autoscaling", "CompleteLifecycleAction")] == 1
    assert action.ended_by == "CONTINUE"
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    assert world.fleet.dropped_calls == []
    assert call.ended_at == call.ends_at


def test_a_lifecycle_event_arriving_after_its_drain_closed_is_ignored(
    world: World, aws_calls: AwsCalls
) -> None:
    # GIVEN an instance drained and released on its lifecycle event
    (victim,) = world.create_fleet(1)
    start_calls(world, victim, [[90.0]])
    scale_in(world, victim)
    event = lifecycle_event(world)
    world.deliver(event)
    run_until_released(world, victim)
    calls_before = aws_calls.copy()

    # WHEN EventBridge delivers the same event again, late
    late = world.deliver(event)

    # THEN it is acknowledged as a duplicate: the closed drain is read, nothing else is called
    assert steps_of(late) == [{"action": "skip", "instance_id": victim, "reason": "duplicate"}]
    assert aws_calls - calls_before == {("dynamodb", "GetItem"): 1}
    assert total(emitted_metrics(world), "DrainStarted") == 1
    assert len(actions_taken(world, victim, "complete")) == 1


class StoppedFirst:
    """EventBridge as it may be: a task's STOPPED event delivered before its stopping event."""

    def __init__(self, world: World) -> None:
        self._take = world.take_pending_events
        self.held: dict[str, dict[str, Any]] = {}

    def __call__(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in self._take():
            detail = event["detail"]
            if event["source"] != "aws.ecs":
                out.append(event)
            elif detail["lastStatus"] != "STOPPED":
                self.held[detail["taskArn"]] = event
            else:
                out += [
                    event,
                    *([self.held.pop(detail["taskArn"])] if detail["taskArn"] in self.held else []),
                ]
        return out


def test_a_stopped_event_before_its_stopping_event_gives_one_verdict(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker with a call, and EventBridge delivering its STOPPED event before its stopping one
    (victim,) = world.create_fleet(1)
    (worker,) = world.workers_on(victim)
    start_calls(world, victim, [[150.0]])
    reorder = StoppedFirst(world)
    monkeypatch.setattr(world, "take_pending_events", reorder)

    # WHEN the instance is scaled in and drained
    scale_in(world, victim)
    run_until_released(world, victim)

    # THEN the stop is judged once, on the STOPPED event; the stopping event that follows is late
    stops = [
        step
        for delivery in world.deliveries
        if delivery.function == "TaskStateFunction"
        for step in delivery.result["steps"]
        if step.get("task_arn") == worker.task_arn
    ]
    assert [s["action"] for s in stops] == ["task_stopped", "skip"]
    assert stops[0]["verdict"] == "graceful"
    assert stops[1]["reason"] == "already_judged"
    assert reorder.held == {}
    metrics = emitted_metrics(world)
    assert total(metrics, "DrainCompleted", Outcome="graceful") == 1
    assert total(metrics, "DrainCompleted", Outcome="drained") == 1
    assert world.fleet.dropped_calls == []


def test_the_same_stopped_event_twice_is_judged_once(world: World) -> None:
    # GIVEN a drained instance whose worker's STOPPED event was delivered
    (victim,) = world.create_fleet(1)
    (worker,) = world.workers_on(victim)
    start_calls(world, victim, [[45.0]])
    scale_in(world, victim)
    run_until_released(world, victim)
    (stopped,) = [
        d.event
        for d in world.deliveries
        if d.function == "TaskStateFunction" and d.event["detail"]["lastStatus"] == "STOPPED"
    ]

    # WHEN EventBridge delivers it again
    (again,) = world.deliver(stopped)

    # THEN it is skipped as already judged: one verdict, counted once
    assert again.result["steps"] == [
        {"action": "skip", "task_arn": worker.task_arn, "reason": "already_judged"}
    ]
    assert total(emitted_metrics(world), "DrainCompleted", Outcome="graceful") == 1
