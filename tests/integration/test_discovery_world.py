"""Discovery through the room index in the local world: what a whole drain asks LiveKit does not
grow with the rooms of the project, and a room whose join webhook was lost is found by the audit."""

from __future__ import annotations

import json
from collections import Counter

from drainctl.bench import background_rooms
from drainctl.world.world import World, WorldConfig

CALL_LENGTHS = [[200.0, 380.0], [290.0]]


def _scale_in_and_count(total_rooms: int) -> tuple[Counter[str], World]:
    """LiveKit requests from the scale-in of an instance with three calls to its release, among
    `total_rooms` rooms in the project (the rest held by another instance's worker, indexed)."""
    world = World(WorldConfig(seed=11))
    world.start()
    victim, other = world.create_fleet(2, workers_per_instance=2)
    for worker, lengths in zip(world.workers_on(victim), CALL_LENGTHS, strict=True):
        for length in lengths:
            world.fleet.start_call(worker, world.clock.now(), length)
    world.step(1.0)  # the calls' webhooks index their rooms
    background_rooms(world, total_rooms - 3, world.workers_on(other)[0].task_arn)
    world.livekit.reset_counts()
    assert world.aws.terminate_instance(victim) is not None
    limit = float(world.params["DrainDeadline"]) + 3 * world.period
    assert world.run(lambda: world.instance_state(victim) == "Terminated", limit_seconds=limit)
    return Counter(world.livekit.request_counts), world


def test_livekit_calls_over_a_whole_drain_do_not_grow_with_the_rooms_of_the_project() -> None:
    # GIVEN the same scale-in among 100 rooms, then among 10,000
    counts: dict[int, Counter[str]] = {}
    for total_rooms in (100, 10_000):
        # WHEN the instance is drained from its scale-in to its release
        counted, world = _scale_in_and_count(total_rooms)
        world.stop()
        counts[total_rooms] = counted
    # THEN LiveKit was asked about as often in both (within 10 %), not once per room
    small, large = counts[100]["total"], counts[10_000]["total"]
    assert small > 0
    assert abs(large - small) <= 0.1 * small, counts
    # AND every room of the project was listed once, by the one audit of the drain
    assert counts[10_000]["ListParticipants"] < 100


def test_a_call_whose_join_webhook_was_lost_is_found_by_the_audit_and_waited_for() -> None:
    # GIVEN a scaled-in instance's worker whose call's join webhooks never reached the coordinator
    with World(WorldConfig(seed=12)) as world:
        (victim,) = world.create_fleet(1, workers_per_instance=1)
        (worker,) = world.workers_on(victim)
        assert world.webhooks is not None
        call = world.fleet.start_call(worker, world.clock.now(), 400.0)
        lost = world.webhooks.drop_queued()
        assert lost > 0
        # WHEN the instance is scaled in and drained
        assert world.aws.terminate_instance(victim) is not None
        limit = float(world.params["DrainDeadline"]) + 3 * world.period
        assert world.run(lambda: world.instance_state(victim) == "Terminated", limit_seconds=limit)
        action = world.aws.lifecycle.action_for(victim)
        # THEN the instance was released only after the call ended, and the miss was counted
        assert action is not None and action.ended_at is not None
        assert call.ended_at is not None and action.ended_at >= call.ended_at
        assert _metric_total(world, "IndexMisses") == 1.0
        record = world.drain_record(victim)
        assert record is not None and record.dropped_sessions == 0


def _metric_total(world: World, name: str) -> float:
    total = 0.0
    for invocation in world.lambdas.invocations:
        for line in invocation.output.splitlines():
            document = json.loads(line)
            if "_aws" in document and name in document:
                value = document[name]
                total += sum(value) if isinstance(value, list) else float(value)
    return total
