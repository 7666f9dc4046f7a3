"""AWS as it behaves where the coordinator once assumed kinder: DRAINING is accepted from ACTIVE
only, an instance may be no container instance of the cluster, and a group may answer a
rebalance recommendation itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drainctl.world.fleet import CallEnd
from drainctl.world.world import World, WorldConfig
from tests.faults.test_spot import in_service
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


def test_an_instance_already_draining_is_drained_without_asking_for_draining_again(
    world: World, aws_calls: AwsCalls
) -> None:
    # GIVEN an instance whose container instance ECS managed draining set DRAINING first (AWS
    # refuses DRAINING on a container instance that is not ACTIVE), its worker holding a call
    victim, _other = world.create_fleet(2)
    (worker,) = world.workers_on(victim)
    (call,) = start_calls(world, victim, [[200.0]])
    world.ecs.set_status(worker.container_instance_arn, "DRAINING")

    # WHEN it is scaled in
    scale_in(world, victim)
    run_until_released(world, victim)

    # THEN the drain watched it as any other: no refused call, no failed look, the call ended
    assert aws_calls[("ecs", "UpdateContainerInstancesState")] == 0
    assert actions_taken(world, victim, "hold") == []
    assert call.end is CallEnd.HUNG_UP
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    assert total(emitted_metrics(world), "ProbeErrors") == 0


def test_an_instance_outside_the_cluster_is_released_at_once_and_counted(world: World) -> None:
    # GIVEN an instance of the group that is no container instance of the cluster
    (victim,) = world.create_fleet(1, workers_per_instance=0)
    ecs = world.aws.client("ecs")
    (arn,) = ecs.list_container_instances(cluster=world.config.cluster)["containerInstanceArns"]
    ecs.deregister_container_instance(cluster=world.config.cluster, containerInstance=arn, force=True)

    # WHEN it is scaled in
    started = scale_in(world, victim)
    action = run_until_released(world, victim)

    # THEN it went at once, and the metrics say why it was not waited for
    assert action.ended_at is not None and action.ended_at - started.started_at <= 2
    assert total(emitted_metrics(world), "InstancesNotRegistered") == 1


@pytest.fixture
def rebalancing_world() -> Iterator[World]:
    with World(WorldConfig(params={"RebalanceDrain": "true"})) as started:
        yield started


def test_rebalance_drain_beside_the_groups_own_capacity_rebalancing_launches_one_replacement(
    rebalancing_world: World,
) -> None:
    world = rebalancing_world
    # GIVEN RebalanceDrain=true on a group that has its own Capacity Rebalancing on
    victim, other = world.create_fleet(2)
    world.set_capacity_rebalance(True)
    (call,) = start_calls(world, victim, [[200.0]])

    # WHEN EC2 recommends a rebalance for the victim
    world.spot.recommend_rebalance(victim)
    action = run_until_released(world, victim)

    # THEN the coordinator left the replacing to the group: one replacement, the victim
    # drained through the hook like any scale-in
    skipped = [s for _, s in steps_for(world, victim) if s["action"] == "skip"]
    assert {"action": "skip", "instance_id": victim, "reason": "group_capacity_rebalance"} in skipped
    assert len([i for i in in_service(world) if i not in (victim, other)]) == 1
    assert action.ended_at is not None and call.end is CallEnd.HUNG_UP


def test_ecs_managed_draining_beside_the_coordinators_hook_both_hold_the_instance(
    world: World, aws_calls: AwsCalls
) -> None:
    # GIVEN ECS managed draining on the group's capacity provider: its own terminate hook beside
    # ours, and ECS setting DRAINING itself; the victim's worker holds a call
    victim, _other = world.create_fleet(2)
    world.enable_managed_draining()
    (call,) = start_calls(world, victim, [[200.0]])

    # WHEN it is scaled in
    scale_in(world, victim)
    world.run(lambda: world.instance_state(victim) == "Terminated", limit_seconds=1400)
    world.step(1.0)

    # THEN two lifecycle actions held it, each completed, and it went only after the later one
    actions = [a for a in world.aws.lifecycle.actions() if a.instance_id == victim]
    assert sorted(a.hook_name for a in actions) == ["ecs-managed-draining-termination-hook", world.hook_name]
    assert all(a.ended_by == "CONTINUE" and a.ended_at is not None for a in actions)
    # THEN the coordinator did not ask for DRAINING again, and the call ended by itself
    assert aws_calls[("ecs", "UpdateContainerInstancesState")] == 0
    assert actions_taken(world, victim, "hold") == []
    assert call.end is CallEnd.HUNG_UP
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]


def test_the_instance_waits_for_every_terminate_hook_whichever_completes_first(world: World) -> None:
    # GIVEN a second terminate hook on the group that nobody answers before its timeout
    (victim,) = world.create_fleet(1, workers_per_instance=0)
    world.aws.client("autoscaling").put_lifecycle_hook(
        LifecycleHookName="another-teams-hook",
        AutoScalingGroupName=world.config.group_name,
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=600,
        DefaultResult="CONTINUE",
    )

    # WHEN the idle victim is scaled in: the coordinator completes its own action at once
    ours = scale_in(world, victim)
    world.step(1.0)

    # THEN the instance still waits for the other hook, and goes when its action times out
    assert world.aws.lifecycle.action_for(victim, ours.hook_name).ended_by == "CONTINUE"  # type: ignore[union-attr]
    assert world.instance_state(victim) == "Terminating:Wait"
    world.run(lambda: world.instance_state(victim) == "Terminated", limit_seconds=700)
    other = world.aws.lifecycle.action_for(victim, "another-teams-hook")
    assert other is not None and other.ended_by == "heartbeat_timeout"
    assert world.instance_state(victim) == "Terminated"
