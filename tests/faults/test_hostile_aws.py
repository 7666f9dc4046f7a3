"""A slow, throttled, hanging AWS and LiveKit at scale: the coordinator must never let a lifecycle
hook expire while it runs, nor lose the metrics of drains it completed. The world is as hostile
as AWS here (drainctl/world/hostile.py): Lambda's timeout enforced, botocore's real retries and
backoff, per-account rate limits, latency with a tail, dependencies that stop answering."""

from __future__ import annotations

from dataclasses import dataclass

from drainctl.world.decisions import decisions, longest_wait
from drainctl.world.hostile import AWS_DEPENDENCIES, LatencyTail
from drainctl.world.seeding import open_drains
from drainctl.world.world import World, WorldConfig
from tests.integration.test_world_end_to_end import (
    actions_taken,
    run_until_released,
    scale_in,
    start_calls,
)


def expired_by_timer(world: World) -> list[str]:
    return [
        a.instance_id
        for a in world.aws.lifecycle.actions()
        if a.ended_by in ("heartbeat_timeout", "global_timeout")
    ]


def run_periods(world: World, periods: int) -> None:
    for _ in range(periods):
        world.run(lambda: False, limit_seconds=world.period)


def test_a_hung_ecs_for_the_whole_drain_lets_no_hook_expire(world: World) -> None:
    # GIVEN an instance with a call longer than the hook's heartbeat timeout, and ECS hung
    # (every request waits the client's read timeout) for the whole drain
    (victim,) = world.create_fleet(1)
    (call,) = start_calls(world, victim, [[world.hook_heartbeat_timeout * 2.0]])
    world.hostility.hang("ecs")

    # WHEN the instance is scaled in and left to the coordinator
    scale_in(world, victim)
    action = run_until_released(world, victim)

    # THEN the hook never ran out: the coordinator heartbeat it while ECS hung
    assert expired_by_timer(world) == []
    assert actions_taken(world, victim, "heartbeat")
    assert action.ended_by in ("CONTINUE", "ABANDON")
    assert call.end is not None


def test_a_throttled_ecs_with_two_hundred_open_drains_lets_no_hook_expire(world: World) -> None:
    # GIVEN 200 open drains, AWS's rate limits on and AWS answering in 0.2 s (P99 2 s)
    open_drains(world, 200)
    world.throttle = True
    world.hostility.set_latency(list(AWS_DEPENDENCIES), LatencyTail(0.2, 2.0))

    # WHEN the coordinator runs for a heartbeat timeout and a period (each hook needs two
    # heartbeats in that time, the first within the first period)
    run_periods(world, world.hook_heartbeat_timeout // world.period + 1)

    # THEN no hook expired under it, and no invocation ran out of time: the tick fanned its work
    # out over the work queue
    assert expired_by_timer(world) == []
    assert world.lambdas.timed_out() == []
    assert world.lambdas.count("AdvanceFunction") > 0


def test_a_slow_livekit_with_160_rooms_lets_no_hook_expire(world: World) -> None:
    # GIVEN 20 open drains and 160 rooms on the LiveKit server, LiveKit answering in 1.9 s
    instances = open_drains(world, 20)
    for n in range(160 - len(instances)):
        world.livekit.create_room(f"other-room-{n}")
    world.hostility.set_latency(["livekit"], LatencyTail(1.9, 1.9))

    # WHEN the coordinator runs for two heartbeat timeouts
    run_periods(world, 2 * world.hook_heartbeat_timeout // world.period)

    # THEN no hook expired under it
    assert expired_by_timer(world) == []


def test_metrics_of_drains_completed_in_a_tick_that_times_out_are_not_lost(world: World) -> None:
    # GIVEN 300 open drains whose calls have all ended (each look completes its drain), and AWS
    # so slow that one tick cannot look at them all
    instances = open_drains(world, 300)
    assert len(world.fleet.calls) == len(instances)
    for call in world.fleet.calls:
        call.ends_at = world.clock.now()
    world.clock.advance(1.0)
    world.fleet.step(world.clock.now(), set())
    world.hostility.set_latency([*AWS_DEPENDENCIES, "livekit"], LatencyTail(0.5, 2.0))

    # WHEN a tick runs
    world.tick()

    # THEN whatever the tick managed before its end, the metrics of the drains it completed
    # were printed: none lost to the timeout
    (tick,) = [i for i in world.lambdas.invocations if i.function == "ReconcileFunction"]
    assert tick.metrics_lost == 0


@dataclass(frozen=True)
class Outcome:
    expired: list[str]  # hooks ended by their own timers
    renewed_and_open: bool  # every hook renewed at least once and still held
    timed_out: int  # invocations that reached their function's timeout
    longest_without_decision: float  # seconds, the most any hook waited for a heartbeat decision


def hooks_started_together(params: dict[str, str], count: int = 400) -> Outcome:
    """`count` instances scaled in this moment (their hooks started together, 300 s each), AWS's
    rate limits on, AWS answering in 0.2 s (P99 2 s) and LiveKit in 1 s (P99 4 s); the coordinator
    run for a heartbeat timeout and three periods (every hook needs its first renewal within the
    first 300 s, and a second before 600 s)."""
    with World(WorldConfig(params=params)) as world:
        open_drains(world, count, heartbeat_left=world.hook_heartbeat_timeout)
        world.throttle = True
        world.hostility.set_latency(list(AWS_DEPENDENCIES), LatencyTail(0.2, 2.0))
        world.hostility.set_latency(["livekit"], LatencyTail(1.0, 4.0))
        run_periods(world, world.hook_heartbeat_timeout // world.period + 3)
        actions = world.aws.lifecycle.actions()
        decided_at: dict[str, list[float]] = {}
        for invocation in world.lambdas.invocations:
            for instance_id, at in decisions(world, invocation)[0]:
                decided_at.setdefault(instance_id, []).append(at)
        return Outcome(
            expired=expired_by_timer(world),
            renewed_and_open=len(actions) == count and all(a.heartbeats >= 1 and a.is_open for a in actions),
            timed_out=len(world.lambdas.timed_out()),
            longest_without_decision=longest_wait(actions, decided_at, world.clock.now()),
        )


def test_hooks_started_together_beyond_what_the_work_queue_runs_at_once_all_stay_alive() -> None:
    # GIVEN 400 hooks started together and a work queue that runs 3 shards at once: the looks
    # alone would fill every invocation a tick may start, and every hook falls due in the same
    # two periods
    # WHEN the coordinator runs under a slow, throttled AWS and LiveKit for five periods and more
    outcome = hooks_started_together({"AdvanceConcurrency": "3"})

    # THEN no hook expired: the renewals went out in heartbeat-only shards ahead of any look,
    # spread over the ticks before they fell due, no more a tick than one wave of the queue's
    # three invocations sends; the looks waited their turn
    assert outcome.expired == []
    assert outcome.renewed_and_open
    assert outcome.timed_out == 0
    # AND no hook went two periods without a heartbeat decision (renewed, or judged not due)
    assert outcome.longest_without_decision <= 2 * 60


def test_a_work_queue_sized_to_the_fleet_renews_from_few_invocations_and_lets_no_hook_expire() -> None:
    # GIVEN 400 hooks started together and a work queue that runs every shard of a tick at once
    # (49 shards of 8, as `drainctl check` sizes it for that ShardSize)
    # WHEN the coordinator runs under a slow, throttled AWS and LiveKit for five periods and more
    outcome = hooks_started_together({"AdvanceConcurrency": "49", "ShardSize": "8"})

    # THEN no hook expired: the renewals went out from no more invocations at once than one
    # wave of heartbeat-only shards, not from all 49 (which throttle each other's heartbeats
    # at Auto Scaling past botocore's retries)
    assert outcome.expired == []
    assert outcome.renewed_and_open
    # AND no hook went two periods without a heartbeat decision
    assert outcome.longest_without_decision <= 2 * 60
