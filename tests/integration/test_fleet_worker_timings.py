"""The fleet model's worker drains on the timings the real worker shows (tests/worker/test_real_worker.py)."""

from __future__ import annotations

from drainctl.world.fleet import JOB_SHUTDOWN_GRACE_SECONDS, CallEnd
from drainctl.world.world import World, WorldConfig


def test_a_modelled_worker_with_calls_past_its_drain_timeout_exits_after_the_jobs_shutdown_grace() -> None:
    # GIVEN a modelled worker holding a call far longer than its drain timeout
    with World(WorldConfig(seed=5, livekit_webhooks=False)) as world:
        world.create_fleet(1, 1)
        worker = next(iter(world.fleet.workers.values()))
        call = world.fleet.start_call(worker, world.clock.now(), 24 * 3600.0)

        # WHEN ECS stops it and time passes
        world.fleet.sigterm(worker, world.clock.now(), "deployment")
        assert worker.sigterm_at is not None
        world.run(lambda: worker.stopped_at is not None, limit_seconds=worker.drain_timeout + 120)

        # THEN, as the real worker does, it gives up at drain_timeout, waits its jobs' shutdown
        # grace, and exits 0, the call dropped by the drain's end
        assert worker.stopped_at is not None
        assert worker.stopped_at - worker.sigterm_at == worker.drain_timeout + JOB_SHUTDOWN_GRACE_SECONDS
        assert worker.exit_code == 0
        assert call.end is CallEnd.DRAIN_TIMED_OUT
