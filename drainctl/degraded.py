"""`drainctl bench --degraded`: D drains open at once under a degraded AWS and LiveKit.

For each D, a fresh world with D drains seeded open (drainctl/world/seeding.py: one call each,
every hook started at once, as by a fleet-wide scale-in) runs `periods` reconcile periods with the knobs `drainctl
simulate` takes: AWS latency P50:P99, AWS's per-account rate limits, LiveKit latency. Figures:
- drains decided per tick: drains whose hook had a decision (heartbeat, wait, complete) in one
  period, by the tick itself or by the advance function's shards, averaged over the periods;
- heartbeat lateness p99: how long after it fell due each heartbeat was sent (a heartbeat is due
  once less than two periods are left on the hook's timer: domain/decide.py);
- hooks expired: lifecycle actions ended by their own timers while the coordinator ran.
All of it on the virtual clock: the wall time depends on the machine, the figures do not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from drainctl.check import heartbeat_timeout_for
from drainctl.template import load_template
from drainctl.world.decisions import decisions
from drainctl.world.hostile import AWS_DEPENDENCIES, LatencyTail
from drainctl.world.seeding import open_drains
from drainctl.world.world import World, WorldConfig, default_template_path

OPEN_DRAINS: Final = (10, 100, 1_000, 2_000)
QUICK_OPEN_DRAINS: Final = (10, 100)
# Long enough for a hook left unheartbeaten to run out: the stack's HeartbeatTimeout and two
# periods (7 at the template's 300 s); a longer HeartbeatTimeout runs more.
PERIODS: Final = 7
AWS_LATENCY: Final = LatencyTail(0.2, 2.0)
LIVEKIT_LATENCY: Final = LatencyTail(1.0, 4.0)


@dataclass(frozen=True)
class DegradedFigures:
    open_drains: int
    periods: int
    decided_per_tick: float
    heartbeats: int
    heartbeat_lateness_p99: float
    hooks_expired: int
    advance_invocations: int
    timed_out: int
    wall_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "open_drains": self.open_drains,
            "periods": self.periods,
            "decided_per_tick": self.decided_per_tick,
            "heartbeats": self.heartbeats,
            "heartbeat_lateness_p99_seconds": self.heartbeat_lateness_p99,
            "hooks_expired": self.hooks_expired,
            "advance_invocations": self.advance_invocations,
            "invocations_timed_out": self.timed_out,
            "wall_seconds": self.wall_seconds,
        }


def degraded(
    drains: int,
    *,
    periods: int | None = None,
    seed: int = 7,
    params: dict[str, str] | None = None,
) -> DegradedFigures:
    began = time.perf_counter()
    config = WorldConfig(seed=seed, livekit_webhooks=False, params=params or {})
    with World(config) as world:
        # D instances scaled in this moment: every hook just started, its whole timer left.
        instances = set(open_drains(world, drains, heartbeat_left=world.hook_heartbeat_timeout))
        world.take_pending_events()  # the seeding answered them: nobody else receives them
        world.hostility.set_latency(list(AWS_DEPENDENCIES), AWS_LATENCY)
        world.hostility.set_latency(["livekit"], LIVEKIT_LATENCY)
        world.throttle = True
        since = world.clock.now()
        if periods is None:
            periods = max(PERIODS, math.ceil(world.hook_heartbeat_timeout / world.period) + 2)
        world.run(lambda: False, limit_seconds=periods * world.period)
        world.throttle = False
        decided: set[tuple[int, str]] = set()
        for invocation in world.lambdas.invocations:
            if invocation.t < since:
                continue
            tick = int((invocation.t - since) // world.period)
            decided |= {(tick, i) for i, _at in decisions(world, invocation)[0] if i in instances}
        actions = [a for a in world.aws.lifecycle.actions() if a.instance_id in instances]
        lateness = [
            late
            for a in actions
            for late in _lateness(a.started_at, a.heartbeat_times, a.heartbeat_timeout, world.period)
        ]
        return DegradedFigures(
            open_drains=drains,
            periods=periods,
            decided_per_tick=round(len(decided) / periods, 1),
            heartbeats=len(lateness),
            heartbeat_lateness_p99=round(_p99(lateness), 1),
            hooks_expired=sum(1 for a in actions if a.ended_by in ("heartbeat_timeout", "global_timeout")),
            advance_invocations=sum(1 for i in world.lambdas.invocations if i.function == "AdvanceFunction"),
            timed_out=len(world.lambdas.timed_out()),
            wall_seconds=round(time.perf_counter() - began, 1),
        )


def _lateness(started_at: float, beats: Sequence[float], timeout: int, period: int) -> list[float]:
    """Seconds after each heartbeat fell due (two periods before the timer runs out) it was sent."""
    out, last = [], started_at
    for beat in beats:
        out.append(max(0.0, beat - (last + timeout - 2 * period)))
        last = beat
    return out


def _p99(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def template_defaults() -> tuple[int, int]:
    """The template's AdvanceConcurrency and ShardSize."""
    params = load_template(default_template_path()).parameters()
    return int(params["AdvanceConcurrency"]), int(params["ShardSize"])


def sized_params(drains: int) -> dict[str, str]:
    """The stack `drainctl check --open-drains D` asks for: every shard at once, and a
    HookHeartbeatTimeout that keeps D heartbeats under Auto Scaling's rate (rule heartbeat-rate)."""
    params = load_template(default_template_path()).parameters()
    period = 60  # the template's rate(1 minute)
    heartbeat = max(int(params["HookHeartbeatTimeout"]), heartbeat_timeout_for(drains, period))
    return {"AdvanceConcurrency": str(sized_concurrency(drains)), "HookHeartbeatTimeout": str(heartbeat)}


def sized_concurrency(drains: int) -> int:
    """AdvanceConcurrency for every shard of a tick at once (what `drainctl check` says to raise it
    to when a look fits a shard's time), never under the template's default."""
    default, shard_size = template_defaults()
    return max(default, math.ceil(drains / shard_size) - 1)


def run_degraded(
    sizes: Sequence[int], report: Callable[[str], None], progress: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Each D with the template's AdvanceConcurrency, and again with one sized to D when that differs."""
    runs: list[tuple[int, dict[str, str]]] = [(d, {}) for d in sizes]
    runs += [(d, sized_params(d)) for d in sizes if sized_concurrency(d) != template_defaults()[0]]
    rows = []
    for index, (drains, params) in enumerate(runs, start=1):
        stack = ", ".join(f"{k} {v}" for k, v in params.items()) or "the template's defaults"
        if progress is not None:
            progress(f"drainctl bench: [{index}/{len(runs)}] degraded AWS, {drains} open drains, {stack}")
        figures = degraded(drains, params=params)
        report(
            f"degraded AWS ({AWS_LATENCY.p50:g}:{AWS_LATENCY.p99:g} s, throttled; LiveKit "
            f"{LIVEKIT_LATENCY.p50:g}:{LIVEKIT_LATENCY.p99:g} s), {drains} open drains, {stack}: "
            f"{figures.decided_per_tick:g} decided a tick, heartbeat lateness p99 "
            f"{figures.heartbeat_lateness_p99:g} s, {figures.hooks_expired} hooks expired, "
            f"{figures.timed_out} invocations timed out ({figures.wall_seconds:g} s wall)"
        )
        rows.append({**figures.as_dict(), "params": params})
    return rows


__all__ = ["OPEN_DRAINS", "QUICK_OPEN_DRAINS", "DegradedFigures", "degraded", "run_degraded"]
