"""fleet-fits-period and heartbeat-rate: the open drains of a big scale-in (--open-drains).

Every open drain is looked at within one period, and their heartbeats stay under Auto Scaling's
request rate (RecordLifecycleActionHeartbeat; AWS documents no rate, see below).
"""

from __future__ import annotations

import math
from typing import Final

from drainctl.check.core import Budget, RuleResult, _n, _skip


def rule_fleet_fits_period(budget: Budget) -> RuleResult:
    rule_id = "fleet-fits-period"
    title = "every open drain is looked at within one period"
    why = (
        "a tick does the most urgent drains first and defers the rest; a drain deferred tick after "
        "tick completes late, and one not reached before its heartbeat is due lets its hook expire"
    )
    cost = budget.cost
    if cost.open_drains is None:
        return _skip(rule_id, title, why, "give --open-drains to check it")
    period = budget.schedule_period or budget.coordinator.reconcile_period
    unit = budget.look_seconds + 2 * cost.aws_call  # a look, and the heartbeat (and save) before it
    usable = max(0.0, budget.reconcile_timeout - cost.reserve_seconds)
    per_invocation = min(cost.shard_size, int(usable // unit)) if unit > 0 else cost.shard_size
    served = per_invocation * (cost.advance_concurrency + 1)  # the shards and the tick itself
    shards = math.ceil(cost.open_drains / cost.shard_size)
    detail = (
        f"{cost.open_drains} drains = {shards} shards of {cost.shard_size}; one look {_n(budget.look_seconds)} s "
        f"({budget.look_formula}); one invocation does {per_invocation} in {_n(usable)} s; "
        f"{cost.advance_concurrency} + 1 at once do {served} a period"
    )
    if cost.open_drains <= served:
        return RuleResult(rule_id, title, True, detail, why)
    every = math.ceil(cost.open_drains / max(1, served))
    heartbeat_every = max(1, (budget.heartbeat_timeout - 2 * period) // period)
    # Measured (drainctl bench --degraded): heartbeats go first in every run, but shards whose
    # looks fill their invocations keep the queue's later shards waiting past their heartbeats, so
    # a fleet looked at less often than its heartbeats fall due puts its hooks at risk.
    risk = "hooks at risk" if every > heartbeat_every else "hooks safe"
    return RuleResult(
        rule_id,
        title,
        False,
        f"{detail}: each drain looked at every {every} periods ({risk}: a heartbeat is due every "
        f"{heartbeat_every}); raise AdvanceConcurrency to "
        f"{math.ceil(cost.open_drains / max(1, per_invocation)) - 1} or lower ShardSize",
        why,
    )


# EC2 Auto Scaling documents no API request rate (its quotas page lists resources, not requests):
# 10 calls a second per action, sustained, is the assumption the local world enforces too
# (drainctl/world/hostile.py), tighter than EC2's documented API rates.
AUTOSCALING_ACTION_RATE: Final = 10.0
HEARTBEAT_RATE_SHARE: Final = 0.8  # of that rate, what the recommended HeartbeatTimeout uses


def rule_heartbeat_rate(budget: Budget) -> RuleResult:
    rule_id = "heartbeat-rate"
    title = "the open drains' heartbeats stay under Auto Scaling's request rate"
    why = (
        "every open drain heartbeats its hook once per HeartbeatTimeout less two periods; past Auto "
        "Scaling's rate the heartbeats are throttled, fail their retries, and the hooks expire with "
        "their calls"
    )
    drains = budget.cost.open_drains
    if drains is None:
        return _skip(rule_id, title, why, "give --open-drains to check it")
    period = budget.schedule_period or budget.coordinator.reconcile_period
    interval = max(period, budget.heartbeat_timeout - 2 * period)
    rate = drains / interval
    detail = (
        f"{drains} drains / a heartbeat every {interval} s (HeartbeatTimeout {budget.heartbeat_timeout} s "
        f"less 2 periods) = {_n(rate)} a second; Auto Scaling takes {_n(AUTOSCALING_ACTION_RATE)} a second "
        "(assumed: AWS documents none)"
    )
    if rate <= AUTOSCALING_ACTION_RATE:
        return RuleResult(rule_id, title, True, detail, why)
    # A fifth of the rate left over, for the heartbeats' retries and the group's other callers.
    needed = math.ceil(drains / (HEARTBEAT_RATE_SHARE * AUTOSCALING_ACTION_RATE)) + 2 * period
    return RuleResult(
        rule_id, title, False, f"{detail}: raise HookHeartbeatTimeout to {needed} s or more", why
    )
