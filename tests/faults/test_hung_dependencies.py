"""A dependency that stops answering for the whole event (the world's `hang`:
drainctl/world/hostile.py), with botocore's real retries: each attempt waits out its client's
read timeout and each backoff its jittered delay, a LiveKit call its own bound, all on the
virtual clock. The coordinator must end every invocation inside the function's timeout and keep
every hook alive with heartbeats until the drain's deadline, counting the probe errors and the
calls the deadline cuts."""

from __future__ import annotations

from typing import Any

import pytest

from drain_coordinator.integrations.aws_clients import PROBE_CONFIG, total_attempts
from drainctl.world.fleet import Call, CallEnd
from drainctl.world.lifecycle_actions import LifecycleAction
from drainctl.world.world import World
from tests.integration.test_world_end_to_end import (
    emitted_metrics,
    looks_for,
    run_until_released,
    scale_in,
    start_calls,
    total,
)


@pytest.mark.parametrize("dependency", ["ecs", "livekit"])
def test_a_hung_dependency_holds_every_drain_with_heartbeats_and_no_invocation_overruns(
    world: World, dependency: str
) -> None:
    # GIVEN six instances whose workers DRAINING does not stop (standalone tasks), each with a call
    # longer than the drain deadline, scaled in and looked at once
    instances = world.create_fleet(6)
    for instance_id in instances:
        for worker in world.workers_on(instance_id):
            worker.service = ""
        start_calls(world, instance_id, [[3000.0]])
    world.step(1.0)  # the calls' webhooks index their rooms, as long before any scale-in
    for instance_id in instances:
        scale_in(world, instance_id)
    world.step(1.0)
    hung_at = world.clock.now()
    # AND then the dependency answering none of the coordinator's requests for the rest of the event
    world.hostility.hang(dependency)

    # WHEN the drains run to their end, and the invocations still running then (the stopped
    # tasks' events among them) end too
    actions = [run_until_released(world, instance_id) for instance_id in instances]
    world.run(lambda: not world.time.parked, limit_seconds=world.period)

    # THEN no hook expired: every one was heartbeated until the deadline released it
    deadline = float(world.params["DrainDeadline"])
    for action in actions:
        assert action.ended_by == "CONTINUE"
        assert action.ended_at is not None
        assert action.ended_at >= action.started_at + deadline - world.period
        assert action.heartbeats >= int(deadline // world.hook_heartbeat_timeout)
    # THEN every invocation ended inside its function's timeout, though the dependency never
    # answered: after two looks failed, the rest of the run held its drains without asking
    assert not world.lambdas.timed_out()
    ticks = [i for i in world.lambdas.invocations if i.function == "ReconcileFunction"]
    hung = world.client_side.hung_requests[dependency]
    assert hung > 0
    if dependency == "ecs":
        per_look = total_attempts(PROBE_CONFIG)
        assert hung <= len(ticks) * 2 * per_look + len(instances) * 2 * per_look
    # THEN each held look counted a probe error, the alarm fired, and the calls cut at the
    # deadline were counted
    for instance_id in instances:
        looks = [s["action"] for t, s in looks_for(world, instance_id) if t > hung_at]
        assert looks[-1] == "complete"
        assert set(looks[:-1]) == {"hold"}
    metrics = emitted_metrics(world)
    assert total(metrics, "ProbeErrors") >= len(instances)
    # (counted once each, by the stop of the task that held it; the by-service copies aside)
    by_stack = [m for m in metrics if m.name == "DroppedSessions" and "ServiceName" not in m.dimensions]
    assert sum(m.value for m in by_stack) == len(instances)
    fired = {f.alarm.name for f in world.alarms_firing()}
    assert {"livekit-drain-probe-errors", "livekit-drain-dropped-sessions"} <= fired
    assert "livekit-drain-hooks-expired" not in fired


class EcsEventsLate:
    """EventBridge handing over the ECS task events `seconds` after they happened, so the agents'
    leave webhooks are handled first: nothing orders LiveKit's webhooks and EventBridge's events."""

    def __init__(self, world: World, seconds: float) -> None:
        self._world = world
        self._take = world.take_pending_events
        self._seconds = seconds
        self.held: list[tuple[float, dict[str, Any]]] = []

    def __call__(self) -> list[dict[str, Any]]:
        now = self._world.clock.now()
        out: list[dict[str, Any]] = []
        for event in self._take():
            if event["source"] == "aws.ecs":
                self.held.append((now + self._seconds, event))
            else:
                out.append(event)
        out += [event for due, event in self.held if due <= now]
        self.held = [(due, event) for due, event in self.held if due > now]
        return out


def _hung_ecs_scale_in(world: World) -> tuple[list[str], list[Call], float]:
    """Four instances of two service workers, each worker with a call longer than the drain
    deadline (one also with a short one), then ECS answering none of the coordinator's requests
    from before the scale-in to the end: no drain ever learns its container instance or tasks."""
    instances = world.create_fleet(4, workers_per_instance=2)
    calls = [c for i in instances for c in start_calls(world, i, [[3000.0], [3000.0, 60.0]])]
    world.step(1.0)  # the calls' joins reach the webhooks (when LiveKit sends them)
    world.hostility.hang("ecs")
    hung_at = world.clock.now()
    for instance_id in instances:
        scale_in(world, instance_id)
    return instances, calls, hung_at


def _assert_held_to_the_deadline_under_a_hung_ecs(
    world: World, instances: list[str], actions: list[LifecycleAction], hung_at: float
) -> None:
    deadline = float(world.params["DrainDeadline"])
    for instance_id, action in zip(instances, actions, strict=True):
        assert action.ended_by == "CONTINUE"
        assert action.ended_at is not None
        assert action.ended_at >= action.started_at + deadline - world.period
        assert action.heartbeats >= int(deadline // world.hook_heartbeat_timeout)
        looks = [s["action"] for t, s in looks_for(world, instance_id) if t >= hung_at]
        assert looks[-1] == "complete"
        assert set(looks[:-1]) <= {"hold", "drain_started"}
        record = world.drain_record(instance_id)
        assert record is not None and record.container_instance_arn is None
    assert not world.lambdas.timed_out()
    assert total(emitted_metrics(world), "ProbeErrors") >= len(instances)


@pytest.mark.parametrize("stopped_late", [False, True], ids=["stopped-at-once", "stopped-after-the-leaves"])
def test_ecs_hung_for_the_whole_event_counts_every_call_the_deadline_cuts(
    world: World, monkeypatch: pytest.MonkeyPatch, stopped_late: bool
) -> None:
    # GIVEN ECS hung from before the scale-in of four instances whose calls outlive the deadline,
    # the calls' rooms indexed by their agents' join webhooks; and, in one case, EventBridge
    # handing over the tasks' STOPPED events after the agents' leave webhooks were handled
    if stopped_late:
        monkeypatch.setattr(world, "take_pending_events", EcsEventsLate(world, 5.0))
    instances, calls, hung_at = _hung_ecs_scale_in(world)

    # WHEN the drains run to their deadline, the instances go, and the events of the tasks that
    # went with them (ECS's "Task State Change" to STOPPED: events, not API calls) are handled
    actions = [run_until_released(world, instance_id) for instance_id in instances]
    world.run(lambda: False, limit_seconds=world.period)

    # THEN no hook expired, every instance was held to its deadline, each look a probe error
    _assert_held_to_the_deadline_under_a_hung_ecs(world, instances, actions, hung_at)
    # THEN every call still up at the deadline was cut with its instance (the world's ground
    # truth), and counted once, though no drain ever saw it: by the stop of the task that held
    # it, from the room index, before any ECS request
    cut = [c for c in calls if c.dropped]
    assert len(cut) == 2 * len(instances)
    assert {c.end for c in cut} == {CallEnd.INSTANCE_TERMINATED}
    metrics = emitted_metrics(world)
    by_stack = [m for m in metrics if m.name == "DroppedSessions" and "ServiceName" not in m.dimensions]
    assert sum(m.value for m in by_stack) == len(cut)
    fired = {f.alarm.name: f.value for f in world.alarms_firing(hung_at)}
    assert fired["livekit-drain-dropped-sessions"] == len(cut)
    assert {"livekit-drain-probe-errors", "livekit-drain-drains-at-deadline"} <= set(fired)
    assert "livekit-drain-hooks-expired" not in fired


def test_a_worker_that_drained_its_calls_while_livekit_hung_is_judged_graceful_not_a_drop(
    world: World,
) -> None:
    # GIVEN an instance whose worker holds one call that ends well inside the worker's drain
    # timeout, scaled in: ECS tells the worker to stop (DRAINING) and its stop is followed, one
    # call counted
    (victim,) = world.create_fleet(1)
    (call,) = start_calls(world, victim, [[240.0]])
    world.step(1.0)
    scale_in(world, victim)
    world.run(lambda: world.clock.now() >= call.started_at + 120, limit_seconds=300)
    since = world.clock.now()
    # AND then LiveKit stops answering the coordinator for the rest of the event
    world.hostility.hang("livekit")

    # WHEN the call ends, the worker exits 0 on its own (its drain is over, long before its
    # drain timeout), and its STOPPED event is judged while LiveKit cannot be asked
    action = run_until_released(world, victim)
    world.run(lambda: not world.time.parked, limit_seconds=world.period)

    # THEN no call was dropped (the world's truth), and none is counted: a clean exit before the
    # drain timeout means the worker's drain ended with no call left, whatever the last count
    # LiveKit gave; no dropped-sessions or forced-kills page
    assert not call.dropped
    assert action.ended_by == "CONTINUE"
    metrics = [m for m in emitted_metrics(world) if "ServiceName" not in m.dimensions]
    assert total(metrics, "DroppedSessions") == 0
    assert total(metrics, "DrainCompleted", Outcome="graceful") == 1
    fired = {f.alarm.name for f in world.alarms_firing(since)}
    assert not {"livekit-drain-dropped-sessions", "livekit-drain-forced-kills"} & fired
