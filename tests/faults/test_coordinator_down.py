"""The coordinator was down (or its event lost) when the lifecycle action fired: no lifecycle event
was ever handled. Reconcile finds the instance in `Terminating:Wait` and adopts it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from drain_coordinator import wiring
from drainctl.world.world import World
from tests.integration.test_world_end_to_end import (
    actions_taken,
    emitted_metrics,
    run_until_released,
    scale_in,
    start_calls,
    steps_for,
    total,
)

LifecycleCalls = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def lifecycle_calls(world: World) -> Iterator[LifecycleCalls]:
    """The parameters of every heartbeat and completion the coordinator sends."""
    calls: LifecycleCalls = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, dict(params)))

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    for operation in ("RecordLifecycleActionHeartbeat", "CompleteLifecycleAction"):
        events.register(
            f"before-parameter-build.auto-scaling.{operation}", record, unique_id=f"faults-{operation}"
        )
    wiring.reset(clock=world.clock.now)  # a cold start: the clients see the hooks
    yield calls
    for operation in ("RecordLifecycleActionHeartbeat", "CompleteLifecycleAction"):
        events.unregister(f"before-parameter-build.auto-scaling.{operation}", unique_id=f"faults-{operation}")


def lose_the_lifecycle_event(world: World) -> None:
    lost = [e for e in world.take_pending_events() if e["source"] == "aws.autoscaling"]
    assert len(lost) == 1


def test_an_instance_whose_event_was_never_handled_is_adopted_and_drained(
    world: World, lifecycle_calls: LifecycleCalls
) -> None:
    # GIVEN an instance with calls longer than the hook's heartbeat timeout, scaled in while the
    # coordinator was down: its lifecycle event is never handled
    (victim,) = world.create_fleet(1)
    calls = start_calls(world, victim, [[250.0, 400.0]])
    started = scale_in(world, victim)
    lose_the_lifecycle_event(world)

    # WHEN reconcile runs again
    action = run_until_released(world, victim)

    # THEN its first tick found the instance in Terminating:Wait and adopted it
    steps = steps_for(world, victim)
    adopted_at, first = steps[0]
    assert first == {"action": "drain_started", "instance_id": victim, "reason": "adopted"}
    assert adopted_at - started.started_at <= world.period
    # THEN, the hook's timer being unknown, it heartbeat at once, and kept the hook alive
    assert steps[1][1]["action"] == "heartbeat"
    assert action.ended_by == "CONTINUE"
    assert action.heartbeats == len(actions_taken(world, victim, "heartbeat")) > 1
    # THEN every call to Auto Scaling named the action by its instance: the token is unknown
    assert lifecycle_calls
    for _, params in lifecycle_calls:
        assert params["InstanceId"] == victim
        assert "LifecycleActionToken" not in params
    # THEN the instance went after its last call, which ended by itself
    assert action.ended_at is not None
    assert action.ended_at >= max(c.ends_at for c in calls)
    assert world.fleet.dropped_calls == []
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    assert total(emitted_metrics(world), "DrainStarted") == 1


def test_an_adopted_drain_counts_its_deadline_from_the_first_sighting(world: World) -> None:
    # GIVEN an instance adopted one tick after its lifecycle action started
    (victim,) = world.create_fleet(1)
    start_calls(world, victim, [[5000.0]])
    started = scale_in(world, victim)
    lose_the_lifecycle_event(world)
    world.run(lambda: bool(steps_for(world, victim)), limit_seconds=world.period + 1)

    # WHEN its record is read
    record = wiring.coordinator().store.get(victim)

    # THEN the deadline runs from the first sighting (the hook's real start is unknown), so it
    # is later than the one an event would have given, by at most one period
    assert record is not None
    assert record.extra["trigger"] == "adopted"
    assert record.lifecycle.action_token == ""
    first_sighting = steps_for(world, victim)[0][0]
    assert record.hook_started_at == first_sighting
    assert record.deadline_at == first_sighting + float(world.params["DrainDeadline"])
    assert 0 < record.hook_started_at - started.started_at <= world.period


def test_a_lifecycle_event_arriving_after_the_adoption_teaches_the_drain_its_token(
    world: World, lifecycle_calls: LifecycleCalls
) -> None:
    # GIVEN an instance adopted by reconcile, and its lifecycle event delivered only afterwards
    (victim,) = world.create_fleet(1)
    start_calls(world, victim, [[420.0]])
    started = scale_in(world, victim)
    (late,) = [e for e in world.take_pending_events() if e["source"] == "aws.autoscaling"]
    world.run(lambda: bool(steps_for(world, victim)), limit_seconds=world.period + 1)
    calls_while_adopted = len(lifecycle_calls)

    # WHEN the late event reaches the lifecycle function
    (delivery,) = world.deliver(late)
    record = wiring.coordinator().store.get(victim)
    action = run_until_released(world, victim)

    # THEN it opened nothing new, and the drain now holds the action's token and real start
    assert delivery.result["steps"] == [{"action": "skip", "instance_id": victim, "reason": "duplicate"}]
    assert record is not None
    assert record.lifecycle.action_token == started.token
    assert record.hook_started_at == started.started_at
    assert record.deadline_at == started.started_at + float(world.params["DrainDeadline"])
    # THEN Auto Scaling calls carry the token from then on, and the drain ends as drained
    later = lifecycle_calls[calls_while_adopted:]
    assert later
    assert all(params.get("LifecycleActionToken") == started.token for _, params in later)
    assert action.ended_by == "CONTINUE"
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    assert world.fleet.dropped_calls == []
