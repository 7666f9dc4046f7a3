"""Spot: EC2 reclaims an instance two minutes after its interruption warning, and nothing extends
that. The coordinator sets it DRAINING at once (no new call lands on it), keeps its calls watched,
and counts the ones the reclaim cuts when it happens. An opted-in rebalance recommendation starts
a normal drain early, with a replacement launched first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drain_coordinator import wiring
from drainctl.world.fleet import CallEnd
from drainctl.world.world import World, WorldConfig
from tests.integration.test_world_end_to_end import (
    AwsCalls,
    actions_taken,
    emitted_metrics,
    metrics_in,
    run_until_released,
    scale_in,
    start_calls,
    steps_for,
    total,
)


def test_a_spot_warning_drains_at_once_and_the_calls_lost_at_the_reclaim_are_counted(
    world: World, aws_calls: AwsCalls
) -> None:
    # GIVEN a Spot instance whose worker holds a short call and two that outlast two minutes,
    # and another instance taking calls
    victim, other = world.create_fleet(2)
    (worker,) = world.workers_on(victim)
    short, long_a, long_b = start_calls(world, victim, [[50.0, 300.0, 400.0]])

    # WHEN EC2 warns that it reclaims the victim (EventBridge delivers the warning twice)
    reclaim_at = world.spot.interrupt(victim)
    (warning,) = world.take_pending_events()
    first = world.deliver(warning)
    again = world.deliver(warning)
    draining = world.ecs.instance_status(worker.container_instance_arn)
    told_to_stop = world.run(lambda: not worker.accepting, limit_seconds=10)

    # THEN the container instance went DRAINING at once and, seconds later, its worker took no
    # new call
    assert [s["action"] for d in first for s in d.result["steps"]] == ["drain_started", "wait"]
    assert first[0].result["steps"][0]["reason"] == "spot_interruption"
    assert draining == "DRAINING"
    assert told_to_stop
    placed = world.fleet.place_call(world.clock.now(), 100.0)
    assert placed is not None
    assert world.fleet.workers[placed.task_arn].instance_id == other
    assert "drain_started" not in [s["action"] for d in again for s in d.result["steps"]]

    # WHEN the reclaim comes, and the callers left in silence hang up
    world.run(lambda: world.clock.now() >= reclaim_at + 30, limit_seconds=200)

    # THEN the short call ended by itself, the two long ones were cut at the reclaim
    assert short.end is CallEnd.HUNG_UP
    assert (long_a.end, long_b.end) == (CallEnd.INSTANCE_TERMINATED, CallEnd.INSTANCE_TERMINATED)
    assert long_a.ended_at == long_b.ended_at == reclaim_at
    # THEN they were counted once, by the invocation that saw the reclaim (the worker's stop)
    counting = [
        i
        for i in world.lambdas.invocations
        if any(
            m.name == "DroppedSessions" and set(m.dimensions) == {"service", "Stack"} for m in metrics_in([i])
        )
    ]
    assert [i.t for i in counting] == [reclaim_at]
    assert total(emitted_metrics(world), "DroppedSessions", ClusterName=world.config.cluster) == 2
    alarm_dimensions = [m for m in emitted_metrics(world) if set(m.dimensions) <= {"service", "Stack"}]
    assert total(alarm_dimensions, "DroppedSessions") == 2
    assert total(alarm_dimensions, "DrainStarted") == 1
    stop = wiring.task_tracker().store.get(worker.task_arn)
    assert stop is not None
    assert (stop.verdict, stop.dropped_sessions) == ("forced_kill", 2)
    assert "livekit-drain-dropped-sessions" in {f.alarm.name for f in world.alarms_firing()}
    # THEN there was no lifecycle action to hold: nothing was sent to Auto Scaling
    assert aws_calls[("autoscaling", "RecordLifecycleActionHeartbeat")] == 0
    assert aws_calls[("autoscaling", "CompleteLifecycleAction")] == 0
    assert [s["action"] for _, s in actions_taken(world, victim, "complete")] == ["complete"]


def test_a_spot_warning_for_an_instance_outside_the_cluster_is_skipped(world: World) -> None:
    # GIVEN an instance that is no container instance of the cluster
    world.create_fleet(1)
    stranger = "i-0123456789abcdef0"

    # WHEN EC2 warns about it (the rule takes every Spot warning of the account and region)
    world.spot.interrupt(stranger)
    (delivery,) = world.step(1.0)

    # THEN the coordinator skips it and records nothing
    assert delivery.result["steps"] == [
        {"action": "skip", "instance_id": stranger, "reason": "not_in_cluster"}
    ]
    assert wiring.coordinator().store.get(stranger) is None


@pytest.fixture
def rebalancing_world() -> Iterator[World]:
    with World(WorldConfig(params={"RebalanceDrain": "true"})) as started:
        yield started


def in_service(world: World) -> list[str]:
    groups = world.aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[world.config.group_name]
    )
    return [
        i["InstanceId"]
        for i in groups["AutoScalingGroups"][0]["Instances"]
        if i["LifecycleState"] == "InService"
    ]


def test_an_opted_in_rebalance_recommendation_starts_a_normal_drain_with_a_replacement(
    rebalancing_world: World,
) -> None:
    world = rebalancing_world
    # GIVEN a group of two instances, the victim holding a call, with RebalanceDrain=true
    victim, other = world.create_fleet(2)
    (call,) = start_calls(world, victim, [[240.0]])

    # WHEN EC2 recommends a rebalance for the victim
    world.spot.recommend_rebalance(victim)
    world.step(1.0)
    replacement = [i for i in in_service(world) if i not in (victim, other)]
    world.step(1.0)
    action = run_until_released(world, victim)

    # THEN the coordinator terminated it in its group without lowering the capacity: a
    # replacement launched, and the hook held the victim
    ((_, rebalanced),) = [(t, s) for t, s in steps_for(world, victim) if s["action"] == "rebalance"]
    assert rebalanced["reason"] == "terminated_with_replacement"
    assert len(replacement) == 1
    assert sorted(in_service(world)) == sorted([other, *replacement])
    # THEN the lifecycle action drained it like any scale-in: after its call, nothing dropped
    started = [s for _, s in steps_for(world, victim) if s["action"] == "drain_started"]
    assert started == [{"action": "drain_started", "instance_id": victim}]
    assert action.ended_by == "CONTINUE"
    assert action.ended_at is not None
    assert action.ended_at >= call.ends_at
    assert [s["outcome"] for _, s in actions_taken(world, victim, "complete")] == ["drained"]
    assert world.fleet.dropped_calls == []


def test_a_rebalance_recommendation_is_not_even_routed_unless_opted_in(world: World) -> None:
    # GIVEN the default RebalanceDrain=false
    (victim,) = world.create_fleet(1)

    # WHEN EC2 recommends a rebalance, and (as a check) the event is also handed to the function
    world.spot.recommend_rebalance(victim)
    (event,) = world.take_pending_events()
    routed = world.deliver(event)
    direct = world.invoke_function("LifecycleFunction", event)

    # THEN the rule does not match it, and the function would skip it: the instance stays
    assert routed == []
    assert world.unrouted == [event]
    assert direct.result["steps"] == [
        {"action": "skip", "instance_id": victim, "reason": "rebalance_drain_off"}
    ]
    assert victim in in_service(world)


def test_a_spot_warning_during_a_scale_in_drain_holds_it_until_the_reclaim_and_counts_once(
    world: World, aws_calls: AwsCalls
) -> None:
    # GIVEN an instance being drained on a scale-in, its worker holding a call for 15 minutes
    (victim,) = world.create_fleet(1)
    (worker,) = world.workers_on(victim)
    worker.drain_timeout = worker.stop_timeout = 3600  # a worker that would wait for its call
    (call,) = start_calls(world, victim, [[900.0]])
    started = scale_in(world, victim)
    world.run(lambda: world.clock.now() >= started.started_at + 200, limit_seconds=210)

    # WHEN EC2 warns that it reclaims the instance
    reclaim_at = world.spot.interrupt(victim)
    action = run_until_released(world, victim)

    # THEN the drain held the instance until the reclaim, not a moment less (completing earlier
    # would only have cut the call sooner), and finished after it
    completes = actions_taken(world, victim, "complete")
    assert len(completes) == 1
    assert completes[0][0] >= reclaim_at
    assert action.ended_at is not None
    assert action.ended_at >= reclaim_at
    # THEN the call, cut at the reclaim, is counted once
    assert (call.end, call.ended_at) == (CallEnd.INSTANCE_TERMINATED, reclaim_at)
    alarm_dimensions = [m for m in emitted_metrics(world) if set(m.dimensions) <= {"service", "Stack"}]
    assert total(alarm_dimensions, "DroppedSessions") == 1
    assert total(alarm_dimensions, "DrainStarted") == 1
    record = wiring.coordinator().store.get(victim)
    assert record is not None
    assert record.deadline_at == reclaim_at + world.period
