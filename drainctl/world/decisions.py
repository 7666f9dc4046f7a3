"""What the coordinator decided, read from the world's invocations: which drains had their hook
decided on (heartbeat, wait, complete) by a reconcile tick or the lifecycle function (their
results) or an advance shard (its `shard advanced` log line), and the longest any hook went
without one."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence

from drainctl.world.lambda_runtime import Invocation
from drainctl.world.lifecycle_actions import LifecycleAction
from drainctl.world.world import World


def decisions(world: World, invocation: Invocation) -> tuple[list[tuple[str, float]], int]:
    """Which drains had a heartbeat decision in a reconcile tick, the lifecycle function or an
    advance shard, when (the run's `decided_at`, on the virtual clock; else the invocation's
    end), and how many looks it deferred: the tick's result, the shard's `shard advanced` line."""
    end = invocation.ended_at if invocation.ended_at is not None else invocation.t
    # A reconcile tick's result, or the lifecycle function's (its first look decides the hook too).
    if invocation.function in (world.schedule.logical_id, "LifecycleFunction") and isinstance(
        invocation.result, dict
    ):
        deferred = int(invocation.result.get("deferred", 0))
        if "decided_at" in invocation.result:
            return _timed(invocation.result["decided_at"]), deferred
        steps = invocation.result.get("steps", [])
        return [
            (str(s["instance_id"]), end)
            for s in steps
            if "instance_id" in s and s.get("action") not in ("error", "skip", "reject")
        ], deferred
    if invocation.function not in {source.route.logical_id for source in world.event_sources}:
        return [], 0
    decided: list[tuple[str, float]] = []
    deferred = 0
    for line in invocation.output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("message") == "shard advanced":
            decided += _timed(document.get("decidedAt", {}))
            deferred += int(document.get("deferred", 0))
    return decided, deferred


def _timed(decided_at: Mapping[str, list[float]]) -> list[tuple[str, float]]:
    return [(str(instance_id), float(t)) for instance_id, times in decided_at.items() for t in times]


def longest_wait(
    actions: Sequence[LifecycleAction], decisions: Mapping[str, list[float]], now: float
) -> float:
    """The longest any hook went without a decision of the coordinator: from its start to the
    first, between two, from the last to its end (or to now, while it is open). A heartbeat
    Auto Scaling recorded is a decision too, even when the invocation that sent it timed out."""
    longest = 0.0
    for action in actions:
        end = action.ended_at if action.ended_at is not None else now
        made = [*decisions.get(action.instance_id, []), *action.heartbeat_times]
        times = sorted(t for t in made if action.started_at <= t <= end)
        marks = [action.started_at, *times, end]
        longest = max(longest, *(b - a for a, b in itertools.pairwise(marks)))
    return round(longest, 1)


__all__ = ["decisions", "longest_wait"]
