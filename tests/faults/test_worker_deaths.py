"""Workers that die on their own, never told to stop: a crash, an OOM kill. Their agents leave
LiveKit at once; their callers stay on the line. The calls are counted from what the webhooks
told the room index, and the dropped-sessions alarm fires for them."""

from __future__ import annotations

from typing import Any

import pytest

from drainctl.world.fleet import CallEnd
from drainctl.world.world import World


def stopped_steps(world: World) -> list[dict[str, Any]]:
    return [
        step
        for d in world.deliveries
        if isinstance(d.result, dict)
        for step in d.result.get("steps", [])
        if isinstance(step, dict) and step.get("action") == "task_stopped"
    ]


@pytest.mark.parametrize(
    ("exit_code", "end", "container_reason", "verdict"),
    [
        (1, CallEnd.DRAIN_TIMED_OUT, "", "crashed"),
        (137, CallEnd.OOM, "OutOfMemoryError: Container killed due to memory usage", "oom"),
    ],
)
def test_a_worker_dying_on_its_own_counts_its_calls_and_raises_the_dropped_sessions_alarm(
    world: World, exit_code: int, end: CallEnd, container_reason: str, verdict: str
) -> None:
    # GIVEN a worker holding three calls, its agent's joins seen by the webhooks
    (instance_id,) = world.create_fleet(1, workers_per_instance=1)
    (worker,) = world.workers_on(instance_id)
    for _ in range(3):
        world.fleet.start_call(worker, world.clock.now(), 600)
    world.step(5)
    # WHEN it dies on its own, with no SIGTERM first
    world.fleet.stop(
        worker, world.clock.now(), exit_code=exit_code, end=end, container_reason=container_reason
    )
    world.run(lambda: bool(stopped_steps(world)), limit_seconds=10)
    world.run(lambda: False, limit_seconds=2 * world.period)
    # THEN the verdict names how it died and the three calls it dropped, and the alarm fires
    (stopped,) = stopped_steps(world)
    assert stopped["verdict"] == verdict
    assert stopped["dropped_sessions"] == 3
    fired = {f.alarm.name: f.value for f in world.alarms_firing()}
    assert fired["livekit-drain-dropped-sessions"] == 3.0
