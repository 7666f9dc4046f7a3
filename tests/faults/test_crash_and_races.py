"""A Lambda that dies between acting and saving, and two looks at one drain at once: every save is
conditional on the version read, so the table keeps one truth and the next look carries on."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from botocore.awsrequest import AWSRequest

from drain_coordinator import wiring
from drain_coordinator.domain.records import DrainOutcome
from drain_coordinator.observability import metrics
from drainctl.world.world import World
from tests.faults.conftest import HandlerFaults, SimulatedCrashError
from tests.integration.test_world_end_to_end import (
    AwsCalls,
    actions_taken,
    emitted_metrics,
    run_until_released,
    scale_in,
    start_calls,
    steps_for,
    total,
)


def saves_a_drain_with_heartbeats(request: AWSRequest) -> bool:
    """A PutItem of a drain record that counts a heartbeat: the save after one was sent."""
    item = json.loads(request.body or b"{}").get("Item", {})
    return item.get("kind", {}).get("S") == "drain" and item.get("heartbeats", {}).get("N") == "1"


def test_a_crash_after_a_heartbeat_before_its_save_loses_nothing(
    world: World, handler_faults: HandlerFaults
) -> None:
    # GIVEN a drain whose first heartbeat is sent, then the function dies before saving it
    (victim,) = world.create_fleet(1)
    (call,) = start_calls(world, victim, [[world.hook_heartbeat_timeout + 200.0]])
    crash = handler_faults.crash("dynamodb", "PutItem", when=saves_a_drain_with_heartbeats)
    scale_in(world, victim)

    # WHEN the world runs into the crash
    with pytest.raises(SimulatedCrashError):
        world.run(lambda: False, limit_seconds=world.hook_heartbeat_timeout)
    sent = world.aws.lifecycle.action_for(victim)
    stored = wiring.coordinator().store.get(victim)

    # THEN Auto Scaling has the heartbeat, the table does not: the record is the one read before
    assert crash.crashed == 1
    assert sent is not None
    assert sent.heartbeats == 1
    assert stored is not None
    assert stored.heartbeats == 0
    assert stored.is_open

    # WHEN the next ticks run (the crash does not repeat)
    action = run_until_released(world, victim)

    # THEN the next look, deciding again from the stored record, sent the heartbeat again and
    # saved it: the hook never ran out, the drain completed once, nothing was dropped
    record = wiring.coordinator().store.get(victim)
    assert record is not None
    assert action.ended_by == "CONTINUE"
    assert record.outcome is DrainOutcome.DRAINED
    assert record.heartbeats == action.heartbeats - 1  # the one whose save died
    assert len(actions_taken(world, victim, "complete")) == 1
    assert call.end is not None
    assert world.fleet.dropped_calls == []


def drop_task_events(world: World) -> list[dict[str, Any]]:
    """Task state events are left undelivered: the drain is advanced by reconcile alone."""
    return [e for e in World.take_pending_events(world) if e["source"] != "aws.ecs"]


def test_two_looks_racing_on_one_drain_keep_the_first_save_as_the_truth(
    world: World, aws_calls: AwsCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a drain whose worker has exited, not yet looked at since: task events and LiveKit
    # webhooks are left undelivered, reconcile alone advances the drain
    monkeypatch.setattr(world, "take_pending_events", lambda: drop_task_events(world))
    monkeypatch.setattr(world.livekit, "on_room_event", None)
    (victim,) = world.create_fleet(1)
    (worker,) = world.workers_on(victim)
    start_calls(world, victim, [[30.0]])
    scale_in(world, victim)
    world.run(lambda: worker.stopped_at is not None, limit_seconds=world.period - 5)
    # AND a second look (another reconcile run) that read the drain at the same version
    other = wiring.build(wiring.settings(), clock=world.clock.now)
    read_by_both = other.store.get(victim)
    assert read_by_both is not None

    # WHEN the first completes the drain, then the second, late, does the same
    first = world.tick()
    metrics.clear_metrics()
    printed_by_second = io.StringIO()
    with contextlib.redirect_stdout(printed_by_second):
        second = other.advance(read_by_both)
    emitted_by_second = printed_by_second.getvalue() + json.dumps(metrics.metric_set)

    # THEN the first completed it as drained; the second found the action gone and its save
    # refused: its record was dropped, and it emitted no completion
    ((_, completed),) = actions_taken(world, victim, "complete")
    assert completed["outcome"] == "drained"
    assert second.action == "stale"
    assert "DrainCompleted" not in emitted_by_second
    # THEN the table holds the first look's record, saved once on top of the version both read
    record = other.store.get(victim)
    assert record is not None
    assert record.outcome is DrainOutcome.DRAINED
    assert record.version == read_by_both.version + 1
    assert total(emitted_metrics(world), "DrainCompleted", Outcome="drained") == 1
    assert aws_calls[("autoscaling", "CompleteLifecycleAction")] == 2
    assert world.aws.lifecycle.action_for(victim) is not None
    assert [s["action"] for s in first.result["steps"]] == ["complete"]
    assert [s for _, s in steps_for(world, victim) if s["action"] == "error"] == []
