"""ECS as it stops a service's tasks on a DRAINING instance: with `minimumHealthyPercent: 100`
the old task gets SIGTERM only once its replacement is placed and healthy, which can be many
minutes after the hook started; until then LiveKit keeps dispatching calls to the old worker
unless it quiesces. The coordinator's deadline waits for that SIGTERM."""

from __future__ import annotations

from drainctl.world.fleet import CallEnd, WorkerState
from drainctl.world.world import World
from tests.integration.test_world_end_to_end import (
    actions_taken,
    run_until_released,
    scale_in,
    start_calls,
)

SLOW_REPLACEMENT = 650.0  # seconds for the replacement to become healthy


def test_a_call_taken_while_the_replacement_was_not_yet_healthy_is_not_cut_by_the_deadline(
    world: World,
) -> None:
    # GIVEN the template's service settings (minimum healthy 100 %, maximum 200 %), a replacement
    # that takes 650 s to become healthy, and a worker of a user's own that does not quiesce
    world.configure_deployment(
        "livekit-agents", minimum_healthy_percent=100, health_delay_seconds=SLOW_REPLACEMENT
    )
    victim, _other = world.create_fleet(2)
    (worker,) = world.workers_on(victim)
    worker.quiesce_seconds = None
    (first,) = start_calls(world, victim, [[120.0]])

    # WHEN the victim is scaled in, and at +640 s (no SIGTERM yet: the old worker still reports
    # itself available, and LiveKit dispatches to it) a 540 s call lands on it
    started = scale_in(world, victim)
    world.run(lambda: world.clock.now() >= started.started_at + 640, limit_seconds=700)
    assert worker.state is WorkerState.RUNNING and worker.accepting
    late = world.fleet.start_call(worker, world.clock.now(), 540.0)
    action = run_until_released(world, victim)

    # THEN ECS told the worker to stop only after its replacement was healthy
    assert worker.sigterm_at is not None
    assert worker.sigterm_at >= started.started_at + SLOW_REPLACEMENT
    # THEN the coordinator held the instance past the last look before its configured deadline
    # (+1140 s) until the worker had exited: no call was cut
    assert (first.end, late.end) == (CallEnd.HUNG_UP, CallEnd.HUNG_UP)
    assert late.ended_at is not None and late.ended_at > started.started_at + 1140
    assert action.ended_at is not None and action.ended_at >= late.ended_at
    assert [step["outcome"] for _, step in actions_taken(world, victim, "complete")] == ["drained"]


def test_a_quiesced_worker_takes_no_call_while_its_replacement_becomes_healthy(world: World) -> None:
    # GIVEN the same slow replacement, and the packaged worker (it quiesces: one look at its
    # container instance's status every 10 s)
    world.configure_deployment(
        "livekit-agents", minimum_healthy_percent=100, health_delay_seconds=SLOW_REPLACEMENT
    )
    victim, other = world.create_fleet(2)
    (worker,) = world.workers_on(victim)

    # WHEN the victim is scaled in and calls keep arriving for ten minutes
    started = scale_in(world, victim)
    world.run(lambda: world.clock.now() >= started.started_at + 11, limit_seconds=20)
    placed = []
    for _ in range(60):
        world.step(10.0)
        call = world.fleet.place_call(world.clock.now(), 60.0)
        if call is not None:
            placed.append(call)

    # THEN within one poll of DRAINING the old worker stopped taking calls, long before its
    # SIGTERM; every call went to the workers of the other instance, and the quiesce is counted
    assert worker.quiesced_at is not None and worker.quiesced_at <= started.started_at + 11
    assert worker.sigterm_at is None or worker.sigterm_at >= started.started_at + SLOW_REPLACEMENT
    assert placed and all(world.fleet.workers[c.task_arn].instance_id == other for c in placed)
    assert world.fleet.quiesce_kept_off > 0
