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


def decisions(world: World, invocation: Invocation) -> tuple[list[str], int]:
    """Which drains had a heartbeat decision in a reconcile tick or an advance shard, and how
    many looks it deferred: the tick's result, the shard's `shard advanced` log line."""
    # A reconcile tick's result, or the lifecycle function's (its first look decides the hook too).
    if invocation.function in (world.schedule.logical_id, "LifecycleFunction") and isinstance(
        invocation.result, dict
    ):
        steps = invocation.result.get("steps", [])
        decided = [
            str(s["instance_id"])
            for s in steps
            if "instance_id" in s and s.get("action") not in ("error", "skip", "reject")
        ]
        return decided, int(invocation.result.get("deferred", 0))
    if invocation.function not in {source.route.logical_id for source in world.event_sources}:
        return [], 0
    decided, deferred = [], 0
    for line in invocation.output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("message") == "shard advanced":
            decided += [str(d) for d in document.get("decided", [])]
            deferred += int(document.get("deferred", 0))
    return decided, deferred


def longest_wait(
    actions: Sequence[LifecycleAction], decisions: Mapping[str, list[float]], now: float
) -> float:
    """The longest any hook went without a decision of the coordinator: from its start to the
    first, between two, from the last to its end (or to now, while it is open)."""
    longest = 0.0
    for action in actions:
        end = action.ended_at if action.ended_at is not None else now
        times = sorted(t for t in decisions.get(action.instance_id, []) if action.started_at <= t <= end)
        marks = [action.started_at, *times, end]
        longest = max(longest, *(b - a for a, b in itertools.pairwise(marks)))
    return round(longest, 1)


__all__ = ["decisions", "longest_wait"]
