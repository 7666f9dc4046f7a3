"""ECS and Auto Scaling throttling and 5xx: botocore retries with backoff (adaptive mode), its waits
spent on the virtual clock; what still fails after the retries fails one look of one drain, which
the next tick looks at again. No drain is lost, no hook runs out."""

from __future__ import annotations

from drain_coordinator.integrations.aws_clients import PROBE_CONFIG, RETRY_CONFIG, total_attempts
from drain_coordinator.services.schedule import HEARTBEAT_ROUNDS
from drainctl.world.world import World
from tests.faults.conftest import HandlerFaults
from tests.integration.test_world_end_to_end import (
    actions_taken,
    emitted_metrics,
    run_until_released,
    scale_in,
    start_calls,
    steps_for,
    total,
)


def test_throttled_ecs_calls_are_retried_with_backoff_and_the_look_succeeds(
    world: World, handler_faults: HandlerFaults
) -> None:
    # GIVEN ECS throttling every ListTasks attempt of the first call but the last the probe's
    # retry policy allows
    retries = total_attempts(PROBE_CONFIG) - 1
    throttled = handler_faults.throttling("ecs", "ListTasks", times=retries)
    (victim,) = world.create_fleet(1)
    start_calls(world, victim, [[130.0]])

    # WHEN an instance is scaled in and drained
    scale_in(world, victim)
    action = run_until_released(world, victim)

    # THEN botocore retried with growing backoff, and no look failed
    assert throttled.attempts > retries
    backoffs = world.botocore_waits.backoffs
    assert len(backoffs) >= retries
    assert all(0 <= pause <= 20 for pause in backoffs)  # jittered, capped at 20 s
    looks = [s["action"] for _, s in steps_for(world, victim) if "task_arn" not in s]
    assert "hold" not in looks
    assert "error" not in looks
    # THEN the drain ended as it would have without the throttling
    assert action.ended_by == "CONTINUE"
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    assert world.fleet.dropped_calls == []


def test_auto_scaling_5xx_on_a_heartbeat_is_retried_and_the_heartbeat_lands(
    world: World, handler_faults: HandlerFaults
) -> None:
    # GIVEN Auto Scaling answering 500 to the first two heartbeat attempts, and a call that
    # outlasts the hook's heartbeat timeout
    failing = handler_faults.errors(
        "autoscaling", "RecordLifecycleActionHeartbeat", code="InternalFailure", status=500, times=2
    )
    (victim,) = world.create_fleet(1)
    (call,) = start_calls(world, victim, [[world.hook_heartbeat_timeout + 120.0]])

    # WHEN the instance is drained
    scale_in(world, victim)
    action = run_until_released(world, victim)

    # THEN the heartbeat was retried until Auto Scaling took it: every heartbeat step landed
    assert failing.attempts >= 3
    assert world.botocore_waits.backoffs
    heartbeats = actions_taken(world, victim, "heartbeat")
    assert heartbeats
    assert action.heartbeats == len(heartbeats)
    assert actions_taken(world, victim, "error") == []
    assert action.ended_by == "CONTINUE"
    assert call.end is not None
    assert world.fleet.dropped_calls == []


def test_a_heartbeat_throttled_past_its_retries_fails_one_tick_and_the_next_one_sends_it(
    world: World, handler_faults: HandlerFaults
) -> None:
    # GIVEN an instance with a long call, being drained
    (victim,) = world.create_fleet(1)
    (call,) = start_calls(world, victim, [[world.hook_heartbeat_timeout + 200.0]])
    started = scale_in(world, victim)
    # WHEN Auto Scaling throttles every heartbeat attempt until one tick has failed
    throttled = handler_faults.throttling("autoscaling", "RecordLifecycleActionHeartbeat")
    failed = world.run(lambda: bool(actions_taken(world, victim, "error")), limit_seconds=600)
    handler_faults.clear()
    action = run_until_released(world, victim)

    # THEN that tick gave up after botocore's retries, tried once more after its other work (the
    # bucket refills meanwhile), and gave up again: two errors, both this drain's, in one tick
    assert failed
    assert throttled.attempts == HEARTBEAT_ROUNDS * total_attempts(RETRY_CONFIG)
    errors = actions_taken(world, victim, "error")
    assert len(errors) == HEARTBEAT_ROUNDS
    assert len({t for t, _ in errors}) == 1
    failed_at = errors[0][0]
    assert all("Throttling" in error["error"] for _, error in errors)
    # THEN the next tick heartbeat in time: the hook never ran out, the drain was not lost
    assert any(t > failed_at for t, _ in actions_taken(world, victim, "heartbeat"))
    assert action.ended_by == "CONTINUE"
    assert action.started_at == started.started_at
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    assert call.end is not None
    assert world.fleet.dropped_calls == []


def test_ecs_failing_when_the_drain_opens_still_opens_it_and_draining_is_set_later(
    world: World, handler_faults: HandlerFaults
) -> None:
    # GIVEN ECS answering 500 to every UpdateContainerInstancesState while the drain opens
    failing = handler_faults.errors(
        "ecs", "UpdateContainerInstancesState", code="ServerException", status=500
    )
    (victim,) = world.create_fleet(1)
    start_calls(world, victim, [[100.0]])
    scale_in(world, victim)
    # (the lifecycle invocation, with botocore's retries and backoff, outlives a step of the world)
    world.run(lambda: bool(steps_for(world, victim)), limit_seconds=world.period)
    opened = steps_for(world, victim)
    handler_faults.clear()

    # WHEN ECS recovers and the drain runs on
    action = run_until_released(world, victim)

    # THEN the drain was opened and held (nothing proven) while DRAINING could not be set
    # at the open, and again at the first look: every attempt the probe's policy allows, each time
    assert failing.attempts == 2 * total_attempts(PROBE_CONFIG)
    assert [s["action"] for _, s in opened] == ["drain_started", "hold"]
    # THEN a later look set DRAINING, the worker drained its call, and the instance went
    assert world.ecs.instance_status(world.workers_on(victim)[0].container_instance_arn) == "DRAINING"
    assert total(emitted_metrics(world), "DrainStarted") == 1
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    assert action.ended_by == "CONTINUE"
    assert world.fleet.dropped_calls == []
