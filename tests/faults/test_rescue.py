"""Call rescue under the stops no drain can wait out: a Spot reclaim, a call outliving the drain's
deadline, a deploy with RescueOnDeploy; and a rescue with no worker free. The real handlers,
moto and the local LiveKit (its AgentDispatchService), on the virtual clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drainctl.world.fleet import CallEnd, WorkerState
from drainctl.world.world import World, WorldConfig
from tests.integration.test_world_end_to_end import emitted_metrics, run_until_released, scale_in


@pytest.fixture
def rescuing() -> Iterator[World]:
    """The local world with the stack's CallRescue on."""
    with World(WorldConfig(params={"CallRescue": "true"})) as started:
        yield started


def metric_values(world: World, name: str) -> list[tuple[float, dict[str, str]]]:
    return [(m.value, dict(m.dimensions)) for m in emitted_metrics(world) if m.name == name]


def test_a_spot_reclaim_hands_every_call_to_a_healthy_worker_before_the_instance_goes(
    rescuing: World,
) -> None:
    world = rescuing
    # GIVEN three calls on a Spot instance, a healthy instance beside it
    doomed, healthy = world.create_fleet(2)
    (old,) = world.workers_on(doomed)
    (new,) = world.workers_on(healthy)
    calls = [world.fleet.start_call(old, world.clock.now(), 600) for _ in range(3)]
    # WHEN EC2 warns and reclaims the instance two minutes later
    reclaim_at = world.spot.interrupt(doomed)
    world.run(lambda: world.clock.now() >= reclaim_at + 5, limit_seconds=200)
    # THEN every call went on on the healthy worker before the reclaim; none was dropped
    assert all(
        c.end is CallEnd.HANDED_OVER and c.ended_at is not None and c.ended_at < reclaim_at for c in calls
    )
    assert sorted(new.calls) == sorted(c.room for c in calls)
    assert not world.fleet.dropped_calls
    # AND the coordinator counted three rescues with their gaps, no failure and no dropped call
    assert sum(v for v, _ in metric_values(world, "CallsRescued")) == 3
    gaps = [v for v, _ in metric_values(world, "RescueGapSeconds")]
    assert len(gaps) == 3 and all(0 < g <= 3 for g in gaps)  # dispatch to join, virtual seconds
    assert metric_values(world, "RescueFailed") == []
    assert metric_values(world, "DroppedSessions") == []


def test_a_spot_reclaim_with_no_worker_free_counts_no_capacity(rescuing: World) -> None:
    world = rescuing
    # GIVEN workers that take one call each: the Spot instance's worker and the other both busy
    world.fleet.calls_per_worker = 1
    doomed, full = world.create_fleet(2)
    (old,) = world.workers_on(doomed)
    (busy,) = world.workers_on(full)
    call = world.fleet.start_call(old, world.clock.now(), 600)
    world.fleet.start_call(busy, world.clock.now(), 600)
    # WHEN EC2 reclaims the instance
    reclaim_at = world.spot.interrupt(doomed)
    world.run(lambda: world.clock.now() >= reclaim_at + 5, limit_seconds=200)
    # THEN the call stayed on its worker to the end and was dropped, and the failed rescue was
    # counted with its reason
    assert call.dropped and call.end is CallEnd.INSTANCE_TERMINATED
    reasons = {d.get("Reason") for _, d in metric_values(world, "RescueFailed")}
    assert "no_capacity" in reasons
    assert "RescueFailedAlarm" in {f.alarm.logical_id for f in world.alarms_firing()}


def test_a_call_that_outlives_the_drain_deadline_is_rescued_once_and_not_dropped(rescuing: World) -> None:
    world = rescuing
    # GIVEN a standalone worker (DRAINING does not stop it) with a call longer than the deadline
    victim, _healthy = world.create_fleet(2)
    (old,) = world.workers_on(victim)
    world.fleet.make_standalone(old)
    deadline = float(world.params["DrainDeadline"])
    call = world.fleet.start_call(old, world.clock.now(), deadline + 600)
    # WHEN the instance is scaled in and its drain runs to the deadline
    action = scale_in(world, victim)
    run_until_released(world, victim)
    # THEN the call was carried on once, before the release, and not dropped
    carried = [c for c in world.fleet.calls if c.room == call.room and c.rescued_from == old.task_arn]
    assert len(carried) == 1
    assert call.end is CallEnd.HANDED_OVER and call.ended_at is not None
    assert call.ended_at < action.started_at + deadline
    assert not world.fleet.dropped_calls
    assert sum(v for v, _ in metric_values(world, "CallsRescued")) == 1
    assert metric_values(world, "DroppedSessions") == []


def test_without_call_rescue_the_same_call_is_dropped_at_the_deadline(world: World) -> None:
    # GIVEN the same drain, CallRescue off (the template's default)
    victim, _healthy = world.create_fleet(2)
    (old,) = world.workers_on(victim)
    world.fleet.make_standalone(old)
    call = world.fleet.start_call(old, world.clock.now(), float(world.params["DrainDeadline"]) + 600)
    # WHEN the drain runs to the deadline
    scale_in(world, victim)
    run_until_released(world, victim)
    # THEN the call is dropped and nothing was dispatched
    assert call.dropped
    assert world.livekit.request_counts["CreateDispatch"] == 0


def test_rescue_on_deploy_hands_the_calls_of_stopped_workers_to_their_replacements() -> None:
    # GIVEN CallRescue and RescueOnDeploy, two calls on a worker
    with World(WorldConfig(params={"CallRescue": "true", "RescueOnDeploy": "true"})) as world:
        (instance,) = world.create_fleet(1)
        (old,) = world.workers_on(instance)
        calls = [world.fleet.start_call(old, world.clock.now(), 900) for _ in range(2)]
        # WHEN the service is deployed (the old worker told to stop, a replacement placed)
        started = world.clock.now()
        world.deploy("livekit-agents")
        world.run(lambda: old.state is WorkerState.STOPPED, limit_seconds=120)
        # THEN within seconds both calls run on the replacement and the old worker exited 0
        assert old.stopped_at is not None and old.stopped_at - started < 30 and old.exit_code == 0
        assert all(c.end is CallEnd.HANDED_OVER for c in calls)
        (replacement,) = [w for w in world.workers_on(instance) if w is not old]
        assert sorted(replacement.calls) == sorted(c.room for c in calls)
        assert not world.fleet.dropped_calls
