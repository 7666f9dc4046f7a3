"""A group with a warm pool that takes scaled-in instances back (InstanceReusePolicy
ReuseOnScaleIn): the terminate action goes to the pool (`Destination: WarmPool`, the hook waits in
`Warmed:Pending:Wait`), the same instance comes back on a scale-out (`Origin: WarmPool`) with its
container instance still DRAINING as ECS leaves it, and a later scale-in takes it again under a
new lifecycle action.
https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html
https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drainctl.world.fleet import DEFAULT_SERVICE, Call, CallEnd, Worker, WorkerState
from drainctl.world.lifecycle_actions import LAUNCHING, LifecycleAction
from drainctl.world.world import World, WorldConfig
from tests.integration.test_world_end_to_end import (
    actions_taken,
    emitted_metrics,
    heartbeats_sent,
    scale_in,
    total,
)

WARM_POOL_REUSE = {"WarmPoolReuse": "true"}


@pytest.fixture
def world() -> Iterator[World]:
    with World(WorldConfig(params=WARM_POOL_REUSE)) as started:
        yield started


def a_fleet_with_a_warm_pool(world: World) -> tuple[str, str]:
    """Two instances of one worker each under the ECS service scheduler, and a warm pool that
    takes scaled-in instances back (Stopped)."""
    world.configure_deployment(DEFAULT_SERVICE)
    victim, other = world.create_fleet(2)
    world.aws.put_warm_pool(world.config.group_name, reuse_on_scale_in=True, pool_state="Stopped")
    return victim, other


def into_the_pool(world: World, instance_id: str) -> LifecycleAction:
    """Step until the instance rests in the warm pool; the terminate action that sent it there."""
    limit = float(world.params["DrainDeadline"]) + 3 * world.period
    rested = world.run(lambda: world.instance_state(instance_id) == "Warmed:Stopped", limit_seconds=limit)
    assert rested, f"{instance_id} is {world.instance_state(instance_id)} after {limit} s"
    world.step(1.0)
    action = world.aws.lifecycle.action_for(instance_id)
    assert action is not None and action.ended_at is not None
    return action


def out_of_the_pool(world: World, instance_id: str) -> LifecycleAction:
    """Scale the group out by one (the pool is drawn on first) and step until the instance is in
    service; the launch action that brought it back."""
    autoscaling = world.aws.client("autoscaling")
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[world.config.group_name])[
        "AutoScalingGroups"
    ]
    autoscaling.set_desired_capacity(
        AutoScalingGroupName=world.config.group_name, DesiredCapacity=group["DesiredCapacity"] + 1
    )
    back = world.run(lambda: world.instance_state(instance_id) == "InService", limit_seconds=600)
    assert back, f"{instance_id} is {world.instance_state(instance_id)} after the scale-out"
    launch = world.aws.lifecycle.action_for(instance_id, transition=LAUNCHING)
    assert launch is not None and launch.ended_at is not None
    return launch


def calls_on_new_workers(world: World, instance_id: str, lengths: list[float]) -> list[Call]:
    """A rolling deploy: the ECS service scheduler places each replacement on the least-loaded
    ACTIVE instance whose agent is connected; then one call of each length per worker placed on
    `instance_id`."""
    world.deploy(DEFAULT_SERVICE)
    placed = world.run(lambda: bool(running_on(world, instance_id)), limit_seconds=120)
    assert placed, f"ECS placed no task on {instance_id}"
    return [
        world.fleet.start_call(worker, world.clock.now(), length)
        for worker in running_on(world, instance_id)
        for length in lengths
    ]


def running_on(world: World, instance_id: str) -> list[Worker]:
    return [w for w in world.workers_on(instance_id) if w.state is WorkerState.RUNNING]


def status_of(world: World, instance_id: str) -> str:
    (worker, *_) = world.workers_on(instance_id)
    return world.ecs.instance_status(worker.container_instance_arn)


def test_a_scale_in_into_the_warm_pool_is_drained_with_its_calls_and_completed(world: World) -> None:
    # GIVEN a group whose warm pool takes scaled-in instances back, the victim's worker on a call
    victim, _other = a_fleet_with_a_warm_pool(world)
    (worker,) = world.workers_on(victim)
    call = world.fleet.start_call(worker, world.clock.now(), 400.0)

    # WHEN the victim is scaled in
    action = scale_in(world, victim)

    # THEN its terminate action goes to the warm pool, its hook waiting in Warmed:Pending:Wait
    assert (action.event["detail"]["Origin"], action.event["detail"]["Destination"]) == (
        "AutoScalingGroup",
        "WarmPool",
    )
    world.step(1.0)
    assert world.instance_state(victim) == "Warmed:Pending:Wait"
    # AND the coordinator drains it: held with heartbeats while the call runs, then completed
    ended = into_the_pool(world, victim)
    assert call.end is CallEnd.HUNG_UP
    assert ended.ended_by == "CONTINUE" and ended.ended_at is not None
    assert ended.ended_at >= call.ends_at
    assert heartbeats_sent(world, victim)
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    # AND the instance rests in the pool, stopped, its container instance still DRAINING
    assert world.aws.warm_pool_instances(world.config.group_name) == [victim]
    assert status_of(world, victim) == "DRAINING"
    assert not world.ecs.agent_connected(worker.container_instance_arn)


def test_an_instance_back_from_the_warm_pool_is_active_again_and_takes_tasks(world: World) -> None:
    # GIVEN an instance a scale-in drained into the warm pool
    victim, other = a_fleet_with_a_warm_pool(world)
    scale_in(world, victim)
    into_the_pool(world, victim)

    # WHEN the group scales out again
    launch = out_of_the_pool(world, victim)

    # THEN the same instance comes back from the pool under the stack's launch hook, which the
    # coordinator completed at once, its container instance set ACTIVE first
    assert (launch.origin, launch.destination) == ("WarmPool", "AutoScalingGroup")
    assert launch.ended_by == "CONTINUE"
    assert launch.ended_at is not None and launch.ended_at - launch.started_at <= 2
    assert status_of(world, victim) == "ACTIVE"
    assert [s["action"] for _, s in actions_taken(world, victim, "reactivated")] == ["reactivated"]
    assert total(emitted_metrics(world), "InstancesReactivated") == 1
    # AND ECS places tasks on it again: a deploy's replacements go to it first (least loaded)
    calls_on_new_workers(world, victim, [])
    assert running_on(world, victim)
    assert world.workers_on(other)


def test_an_instance_taken_again_after_the_warm_pool_is_drained_again_and_completed(world: World) -> None:
    # GIVEN an instance drained into the warm pool, back in service, running new workers on calls
    victim, _other = a_fleet_with_a_warm_pool(world)
    first = scale_in(world, victim)
    into_the_pool(world, victim)
    out_of_the_pool(world, victim)
    calls = calls_on_new_workers(world, victim, [300.0])

    # WHEN a later scale-in takes the same instance again
    second = scale_in(world, victim)

    # THEN it is a new lifecycle action of the same instance, and the coordinator drains it too:
    # DRAINING again, held while the calls run, completed once they ended
    assert second.instance_id == first.instance_id and second.token != first.token
    world.step(1.0)
    assert status_of(world, victim) == "DRAINING"
    # (the one item of the instance is open again: back in the open-items index, its TTL gone)
    item = world.aws.client("dynamodb").get_item(
        TableName=world.table_name, Key={"pk": {"S": f"drain#{victim}"}}, ConsistentRead=True
    )["Item"]
    assert item["open_kind"] == {"S": "drain"} and "expires_at" not in item
    assert item["action_token"] == {"S": second.token}
    ended = into_the_pool(world, victim)
    assert ended.token == second.token and ended.ended_by == "CONTINUE"
    assert calls and all(c.end is CallEnd.HUNG_UP for c in calls)
    assert ended.ended_at is not None and ended.ended_at >= max(c.ends_at for c in calls)
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained", "drained"]
    record = world.drain_record(victim)
    assert record is not None and record.lifecycle.action_token == second.token
    assert total(emitted_metrics(world), "DroppedSessions") == 0
