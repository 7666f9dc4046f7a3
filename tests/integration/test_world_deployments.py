"""The world's ECS service scheduler, as ECS documents it: replacements placed within
maximumPercent and healthy before old tasks stop, minimumHealthyPercent kept, a full cluster
delaying the stop; and LiveKit dispatching to any worker that reports itself available."""

from __future__ import annotations

from drainctl.world.fleet import WorkerState
from drainctl.world.world import World
from tests.integration.test_world_end_to_end import run_until_released, scale_in


def test_a_full_cluster_delays_the_sigterm_and_the_drain_waits_for_it(world: World) -> None:
    # GIVEN room for one worker task per instance, two instances each full, min healthy 100 %
    world.configure_deployment(
        "livekit-agents", minimum_healthy_percent=100, health_delay_seconds=60, slots_per_instance=1
    )
    victim, other = world.create_fleet(2)
    (old,) = world.workers_on(victim)
    (neighbour,) = world.workers_on(other)

    # WHEN the victim is scaled in, and for ten minutes no instance has room for a replacement
    started = scale_in(world, victim)
    world.run(lambda: world.clock.now() >= started.started_at + 600, limit_seconds=700)

    # THEN ECS has not told the old worker to stop, and the drain holds past its deadline's
    # last look, waiting for that SIGTERM
    assert old.state is WorkerState.RUNNING and old.sigterm_at is None
    record = world.drain_record(victim)
    assert record is not None and record.is_open
    assert record.deadline_at > started.started_at + 1200

    # WHEN room appears (the neighbour's task stops)
    world.fleet.sigterm(neighbour, world.clock.now(), "Scaling activity initiated by (test)")
    run_until_released(world, victim)

    # THEN the replacement was placed there and became healthy before the old worker's SIGTERM
    (replacement,) = [w for w in world.workers_on(other) if w.replacing == old.task_arn]
    assert old.sigterm_at is not None and old.sigterm_at >= replacement.healthy_at
    assert [a.ended_by for a in world.aws.lifecycle.actions() if a.instance_id == victim] == ["CONTINUE"]


def test_below_100_percent_minimum_healthy_old_tasks_stop_at_once(world: World) -> None:
    # GIVEN minimum healthy 50 % and a slow replacement, two workers on the victim
    world.configure_deployment("livekit-agents", minimum_healthy_percent=50, health_delay_seconds=600)
    victim, _other = world.create_fleet(2, workers_per_instance=2)
    first, second = world.workers_on(victim)

    # WHEN the victim is scaled in
    started = scale_in(world, victim)
    world.run(lambda: world.clock.now() >= started.started_at + 30, limit_seconds=40)

    # THEN ECS stopped what 50 % of four lets it stop (two) without waiting for replacements
    assert first.sigterm_at is not None and second.sigterm_at is not None
    assert max(first.sigterm_at, second.sigterm_at) <= started.started_at + 30


def test_livekit_dispatches_to_a_worker_on_a_draining_instance_that_does_not_quiesce(world: World) -> None:
    # GIVEN a worker that does not quiesce, on an instance set DRAINING, its replacement slow
    world.configure_deployment("livekit-agents", minimum_healthy_percent=100, health_delay_seconds=600)
    (only,) = world.create_fleet(1)
    (worker,) = world.workers_on(only)
    worker.quiesce_seconds = None
    world.ecs.set_status(worker.container_instance_arn, "DRAINING")
    world.step(30.0)

    # WHEN a call arrives
    call = world.fleet.place_call(world.clock.now(), 60.0)

    # THEN LiveKit gave it to that worker: it still reports itself available
    assert call is not None and call.task_arn == worker.task_arn
