"""How long a drain may hold its instance: the configured deadline, extended while ECS has not yet
told every worker to stop, never past the lifecycle hook's own global timeout. Pure.

Why it moves: with `minimumHealthyPercent: 100`, ECS stops a service's task on a DRAINING
instance only once its replacement is placed and healthy, which can take many minutes (a full
cluster, a slow health check). Until its SIGTERM the worker reports itself available and LiveKit
dispatches calls to it; after it, the worker has `drain_timeout` and ECS `stopTimeout` to let them
end. A deadline counted from the hook's start alone would cut the calls taken in that window.
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_definition_parameters.html#deploymentConfiguration

The rule: at every successful look that still sees a service's worker task not yet told to stop,
its SIGTERM comes at the latest by the next look (one period later); the worker is gone at most
`stop_timeout` after that; and the drain completes at the last look before its deadline (one more
period). So the deadline becomes at least now + stop_timeout + 2 periods, capped by the hook's
global timeout, min(48 h, 100 x HeartbeatTimeout) from its start, past which Auto Scaling ends the
action itself.
https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html
"""

from __future__ import annotations

from dataclasses import dataclass

from drain_coordinator.domain.probe import Probe
from drain_coordinator.domain.records import DrainRecord

MAX_GLOBAL_TIMEOUT_SECONDS = 172_800  # 48 h
GLOBAL_TIMEOUT_HEARTBEATS = 100


def global_timeout_seconds(heartbeat_timeout: int) -> int:
    """The longest a lifecycle action may stay open, counted from its start."""
    return min(MAX_GLOBAL_TIMEOUT_SECONDS, GLOBAL_TIMEOUT_HEARTBEATS * heartbeat_timeout)


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    stop_timeout_seconds: int
    reconcile_period_seconds: int


def hook_cap(record: DrainRecord) -> float:
    return record.hook_started_at + global_timeout_seconds(record.heartbeat_timeout)


def awaiting_sigterm(probe: Probe) -> bool:
    """A successful look saw a worker task that ECS will stop but has not told to stop yet."""
    return probe.ok and any(t.stopped_by_draining and not t.told_to_stop for t in probe.tasks)


def extended_deadline(record: DrainRecord, probe: Probe, now: float, policy: DeadlinePolicy) -> float:
    """The drain's deadline after this look; it only ever moves later.

    Left alone: a failed look (it proves nothing, and must not hold an instance for hours), a look
    with every stoppable task already told, and a Spot drain (the reclaim ends the instance
    whatever a hook says)."""
    if "reclaim_at" in record.extra or not awaiting_sigterm(probe):
        return record.deadline_at
    wanted = now + policy.stop_timeout_seconds + 2 * policy.reconcile_period_seconds
    return max(record.deadline_at, min(hook_cap(record), wanted))
