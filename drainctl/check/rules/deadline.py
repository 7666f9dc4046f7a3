"""deadline-outlasts-stop and deadline-within-hook-cap: the drain deadline.

The hook must hold the instance until ECS has stopped its tasks, and Auto Scaling ends a lifecycle
action at min(48 h, 100 x HeartbeatTimeout) whatever the heartbeats (AWS: Amazon EC2 Auto Scaling
lifecycle hooks, "global timeout").
"""

from __future__ import annotations

from drain_coordinator.settings import HOOK_GLOBAL_TIMEOUT_CAP_SECONDS, HOOK_GLOBAL_TIMEOUT_FACTOR
from drainctl.check.core import Budget, RuleResult, _n, _result


def rule_deadline_outlasts_stop(budget: Budget) -> RuleResult:
    result = _result(
        "deadline-outlasts-stop",
        "drain deadline >= stopTimeout + one schedule period",
        "the hook must hold the instance until ECS has stopped its tasks, and the deadline "
        "completes at the last look before it (up to one period early); a shorter deadline "
        "terminates the instance under workers still draining",
    )
    deadline = budget.coordinator.drain_deadline
    stop = budget.effective_stop_timeout
    period = budget.schedule_period or 0
    needed = stop + period
    sign = ">=" if deadline >= needed else "<"
    return result(
        deadline >= needed,
        f"DrainDeadline {deadline} s {sign} stopTimeout {_n(stop)} s + period {_n(period)} s = {_n(needed)} s",
    )


def rule_deadline_within_hook_cap(budget: Budget) -> RuleResult:
    result = _result(
        "deadline-within-hook-cap",
        "drain deadline <= min(48 h, 100 x HeartbeatTimeout)",
        "Auto Scaling ends a lifecycle action at that cap whatever the heartbeats: the drain "
        "would be cut before its deadline",
    )
    deadline = budget.coordinator.drain_deadline
    cap = min(HOOK_GLOBAL_TIMEOUT_CAP_SECONDS, HOOK_GLOBAL_TIMEOUT_FACTOR * budget.heartbeat_timeout)
    sign = "<=" if deadline <= cap else ">"
    return result(
        deadline <= cap,
        f"DrainDeadline {deadline} s {sign} min({HOOK_GLOBAL_TIMEOUT_CAP_SECONDS}, "
        f"{HOOK_GLOBAL_TIMEOUT_FACTOR} x {budget.heartbeat_timeout}) = {cap} s",
    )
