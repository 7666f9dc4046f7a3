"""`drainctl demo --real-worker`: one world task is the real packaged worker, and the
coordinator's handlers judge its stop from what that worker really did."""

from __future__ import annotations

import io

from drainctl.world import real_worker_act
from drainctl.world.world import World, WorldConfig


def test_the_real_worker_act_drains_real_calls_and_the_coordinator_judges_the_stop_graceful() -> None:
    # GIVEN a one-instance world
    with World(WorldConfig(seed=3)) as world:
        world.create_fleet(1, 1)
        out = io.StringIO()

        # WHEN one of its tasks runs as the real worker, takes two calls and is stopped
        ok = real_worker_act.run(world, out)

    # THEN the timeline shows the real worker's own steps and the coordinator's verdict
    text = out.getvalue()
    assert ok, text
    assert "registered with LiveKit (livekit-agents 1.8.9)" in text
    assert text.count("its agent tagged ecs.task_arn=") == 2
    assert "reports itself WS_FULL" in text
    assert "task stopping: 2 calls found by the tag" in text, text
    assert "real worker exited 0" in text
    assert "task stopped: graceful, 0 calls dropped" in text
