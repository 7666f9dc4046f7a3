"""Someone else ends the lifecycle action (the console, `aws autoscaling complete-lifecycle-action`):
Auto Scaling then answers ValidationError to the drain's next call. The drain ends as `gone`,
not as a failure, and the calls the early termination cut are counted once."""

from __future__ import annotations

from drainctl.world.world import World
from tests.integration.test_world_end_to_end import (
    AwsCalls,
    actions_taken,
    emitted_metrics,
    scale_in,
    start_calls,
    steps_for,
    total,
)


def test_a_lifecycle_action_completed_from_the_cli_ends_the_drain_as_gone(
    world: World, aws_calls: AwsCalls
) -> None:
    # GIVEN an instance draining two long calls
    (victim,) = world.create_fleet(1)
    calls = start_calls(world, victim, [[400.0, 500.0]])
    started = scale_in(world, victim)
    world.run(lambda: world.clock.now() >= started.started_at + 90, limit_seconds=120)

    # WHEN an operator completes the lifecycle action from the CLI
    world.aws.client("autoscaling").complete_lifecycle_action(
        AutoScalingGroupName=started.group_name,
        LifecycleHookName=started.hook_name,
        InstanceId=victim,
        LifecycleActionResult="CONTINUE",
    )
    ended = world.run(lambda: bool(actions_taken(world, victim, "complete")), limit_seconds=2 * world.period)

    # THEN the instance went at once, and its calls with it
    assert ended
    assert world.instance_state(victim) == "Terminated"
    assert sorted(c.room for c in world.fleet.dropped_calls) == sorted(c.room for c in calls)
    # THEN the drain's next look found the action gone and closed it as gone, without an error
    ((_, complete),) = actions_taken(world, victim, "complete")
    assert complete["outcome"] == "gone"
    assert [s for _, s in steps_for(world, victim) if s["action"] == "error"] == []
    assert aws_calls[("autoscaling", "CompleteLifecycleAction")] == 1
    metrics = emitted_metrics(world)
    assert total(metrics, "DrainCompleted", Outcome="gone") == 1
    # THEN the two calls cut are counted once (with the workers that held them), not twice
    alarm_dimensions = [m for m in metrics if set(m.dimensions) <= {"service", "Stack"}]
    assert total(alarm_dimensions, "DroppedSessions") == 2
    # THEN nothing more is sent for that drain
    world.run(lambda: False, limit_seconds=3 * world.period)
    assert aws_calls[("autoscaling", "CompleteLifecycleAction")] == 1
    assert aws_calls[("autoscaling", "RecordLifecycleActionHeartbeat")] == len(
        actions_taken(world, victim, "heartbeat")
    )
