"""`drainctl bench` runs several figures on one local world: each must come out as it would in a
world of its own (the counts are deterministic; only the wall times may differ)."""

from __future__ import annotations

from typing import Any

from drainctl.bench import (
    BenchOptions,
    _calls_world,
    _Fleet,
    livekit_calls_per_tick,
    reconcile_ticks,
    release_latency,
)

OPTIONS = BenchOptions.quick(rooms=(100,), draining_rooms=10, release_trials=3, open_drains=(10,))


def _without_wall_times(figure: Any) -> Any:
    if isinstance(figure, dict):
        return {
            k: _without_wall_times(v) for k, v in figure.items() if k not in ("wall_seconds", "build_seconds")
        }
    return figure


def test_a_drain_after_the_release_trials_costs_the_livekit_calls_of_one_in_a_world_of_its_own() -> None:
    # GIVEN a drain among 100 rooms, measured in a world of its own
    with _calls_world(OPTIONS) as world:
        alone = livekit_calls_per_tick(OPTIONS, print, _Fleet(world))

    # WHEN the same drain comes after the release trials, in their world
    with _calls_world(OPTIONS) as world:
        fleet = _Fleet(world)
        release_latency(OPTIONS, print, fleet)
        shared = livekit_calls_per_tick(OPTIONS, print, fleet)

    # THEN its LiveKit requests are the same, request for request (the scale-in falls as far
    # before the next tick as in a new world, so the drain sees as many ticks)
    assert alone["100"]["whole_drain_calls"] > 0
    assert _without_wall_times(shared) == _without_wall_times(alone)


def test_a_tick_over_drains_after_others_were_ticked_and_retired_asks_what_it_would_alone() -> None:
    # GIVEN the requests of the ticks over 10 drains in a world of their own
    _, alone = reconcile_ticks(OPTIONS, print)

    # WHEN the same ticks come after those over 1 drain, in one world
    _, shared = reconcile_ticks(BenchOptions.quick(open_drains=(1, 10)), print)

    # THEN they ask ECS, Auto Scaling, DynamoDB and LiveKit the same
    assert alone["10"]["steady_tick"]["livekit"] == 20
    assert _without_wall_times(shared["10"]) == _without_wall_times(alone["10"])
