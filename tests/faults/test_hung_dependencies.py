"""A dependency that stops answering for the whole event (the world's `hang`:
drainctl/world/hostile.py), with botocore's real retries: each attempt waits out its client's
read timeout and each backoff its jittered delay, a LiveKit call its own bound, all on the
virtual clock. The coordinator must end every invocation inside the function's timeout and keep
every hook alive with heartbeats until the drain's deadline, counting the probe errors and the
calls the deadline cuts."""

from __future__ import annotations

import pytest

from drain_coordinator.integrations.aws_clients import PROBE_CONFIG, total_attempts
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
