"""heartbeat-timeout-in-range and heartbeat-cadence: the terminate hook's HeartbeatTimeout.

Auto Scaling accepts a HeartbeatTimeout of 30-7200 s (AWS: AWS::AutoScaling::LifecycleHook); the
scheduled reconcile sends the heartbeats, and the coordinator wants 3 ticks per timeout.
"""

from __future__ import annotations

from drainctl.check.core import (
    HOOK_HEARTBEAT_MAX_SECONDS,
    HOOK_HEARTBEAT_MIN_SECONDS,
    TICKS_PER_HEARTBEAT_TIMEOUT,
    Budget,
    RuleResult,
    _n,
    _result,
)


def rule_heartbeat_timeout_in_range(budget: Budget) -> RuleResult:
    result = _result(
        "heartbeat-timeout-in-range",
        f"hook HeartbeatTimeout within {HOOK_HEARTBEAT_MIN_SECONDS}-{HOOK_HEARTBEAT_MAX_SECONDS} s",
        "Auto Scaling refuses a HeartbeatTimeout outside 30-7200 s",
    )
    timeout = budget.heartbeat_timeout
    inside = HOOK_HEARTBEAT_MIN_SECONDS <= timeout <= HOOK_HEARTBEAT_MAX_SECONDS
    verb = "within" if inside else "outside"
    return result(
        inside,
        f"HeartbeatTimeout {timeout} s ({budget.heartbeat_source}) {verb} "
        f"{HOOK_HEARTBEAT_MIN_SECONDS}-{HOOK_HEARTBEAT_MAX_SECONDS} s",
    )


def rule_heartbeat_cadence(budget: Budget) -> RuleResult:
    result = _result(
        "heartbeat-cadence",
        f"reconcile schedule period <= HeartbeatTimeout / {TICKS_PER_HEARTBEAT_TIMEOUT}",
        "the scheduled reconcile sends the heartbeats; with fewer than 3 ticks per "
        "HeartbeatTimeout one late or failed tick lets the hook expire and the instance is "
        "terminated under its calls (the coordinator refuses such settings at cold start)",
    )
    if budget.schedule_expression is None:
        return result(False, "the reconcile function has no schedule: nothing sends heartbeats")
    if budget.schedule_period is None:
        return result(
            False,
            f"{budget.schedule_expression} has no fixed period: use rate(N minutes) so the "
            "heartbeat cadence is known",
        )
    limit = budget.heartbeat_timeout / TICKS_PER_HEARTBEAT_TIMEOUT
    cadence = budget.schedule_period + budget.schedule_window
    window = f" + flexible window {budget.schedule_window} s" if budget.schedule_window else ""
    sign = "<=" if cadence <= limit else ">"
    return result(
        cadence <= limit,
        f"{budget.schedule_expression}: every {budget.schedule_period} s{window} {sign} "
        f"HeartbeatTimeout {budget.heartbeat_timeout} s / {TICKS_PER_HEARTBEAT_TIMEOUT} = {_n(limit)} s",
    )
