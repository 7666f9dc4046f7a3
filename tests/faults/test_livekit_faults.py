"""LiveKit cannot be asked (unreachable, too slow, 5xx, 401): a look that fails proves nothing. The
drain holds the instance with heartbeats until its deadline, counts ProbeErrors (whose alarm
fires after five minutes of them), and never completes early (rule 4)."""

from __future__ import annotations

import itertools

import pytest

from drainctl.world.hostile import LatencyTail
from drainctl.world.world import World
from tests.integration.test_world_end_to_end import (
    emitted_metrics,
    looks_for,
    run_until_released,
    scale_in,
    start_calls,
    total,
)


def break_livekit(world: World, fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    faults = world.livekit.faults
    if fault == "unreachable":
        faults.unreachable = True
    elif fault == "slow":
        # Each answer takes 30 s of the world's clock; the coordinator's asyncio.timeout gives up
        # after LIVEKIT_TIMEOUT_SECONDS (5 s) of it, on the handler's virtual event loop.
        world.hostility.set_latency(["livekit"], LatencyTail(30.0, 30.0))
    elif fault == "5xx":
        faults.status_5xx = True
    elif fault == "401":
        faults.unauthorized = True


@pytest.mark.parametrize("fault", ["unreachable", "slow", "5xx", "401"])
def test_livekit_fault_holds_the_instance_with_heartbeats_until_the_deadline(
    short_world: World, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = short_world
    deadline = float(world.params["DrainDeadline"])
    # GIVEN a worker that DRAINING does not stop (a standalone task) holding two long calls, and
    # LiveKit failing every request for the whole drain
    (victim,) = world.create_fleet(1)
    (worker,) = world.workers_on(victim)
    world.fleet.make_standalone(worker)
    start_calls(world, victim, [[3000.0, 3000.0]])
    world.step(1.0)  # their webhooks index the rooms, as they would long before a scale-in
    break_livekit(world, fault, monkeypatch)

    # WHEN the instance is scaled in
    started = scale_in(world, victim)
    action = run_until_released(world, victim)

    # THEN every look held the instance, and the one at the deadline released it, not before
    looks = [step for _, step in looks_for(world, victim)][1:]
    assert [s["action"] for s in looks[:-1]] == ["hold"] * (len(looks) - 1)
    assert looks[-1]["action"] == "complete"
    assert looks[-1]["outcome"] == "deadline"
    assert action.ended_at is not None
    assert started.started_at + deadline - world.period <= action.ended_at <= started.started_at + deadline
    # THEN heartbeats kept the hook alive through three of its heartbeat timeouts
    assert action.ended_by == "CONTINUE"
    assert action.heartbeats >= 3
    # THEN each failed look counted a probe error, and five minutes of them set off the alarm
    assert total(emitted_metrics(world), "ProbeErrors") >= len(looks)
    fired = {f.alarm.name for f in world.alarms_firing()}
    assert "livekit-drain-probe-errors" in fired
    assert "livekit-drain-drains-at-deadline" in fired
    # (no renewal waited on LiveKit past its margin: the hook was never left within one period of
    # its timer, however long the failed looks took)
    renewals = (started.started_at, *action.heartbeat_times)
    margin = float(world.params["HookHeartbeatTimeout"]) - world.period
    assert max(b - a for a, b in itertools.pairwise(renewals)) <= margin
    # THEN the worker killed with the instance is judged a forced kill once its stop's own LiveKit
    # look gives up (its calls, unseen while LiveKit cannot be asked, cannot be counted)
    world.step(world.period)
    assert total(emitted_metrics(world), "ForcedKills") >= 1
    assert "livekit-drain-forced-kills" in {f.alarm.name for f in world.alarms_firing()}
