"""fleet-fits-period and heartbeat-rate: the open drains of a big scale-in (--open-drains).

Every open drain is looked at within one period beside the heartbeat-only shards that renew the
hooks, and their heartbeats stay under Auto Scaling's request rate (RecordLifecycleActionHeartbeat; AWS documents no rate, see below).
"""

from __future__ import annotations

import math
from typing import Final

from drain_coordinator.domain.schedule import HEARTBEATS_PER_SHARD
from drainctl.check.core import Budget, RuleResult, _n, _skip


def rule_fleet_fits_period(budget: Budget) -> RuleResult:
    rule_id = "fleet-fits-period"
    title = "every open drain is looked at within one period"
    why = (
        "a tick sends its hooks' renewals first, in heartbeat-only shards, then looks in the "
        "invocations left (domain/schedule.py); a drain not looked at completes late (its instance "
        "held and paid for), and renewals that need more shards than run at once wait for a free "
        "invocation, past their hooks' timers"
    )
    cost = budget.cost
    if cost.open_drains is None:
        return _skip(rule_id, title, why, "give --open-drains to check it")
    period = budget.schedule_period or budget.coordinator.reconcile_period
    unit = budget.look_seconds + 2 * cost.aws_call  # a look, and the heartbeat (and save) before it
    usable = max(0.0, budget.reconcile_timeout - cost.reserve_seconds)
    per_invocation = min(cost.shard_size, int(usable // unit)) if unit > 0 else cost.shard_size
    # The renewals a period, steady state: each hook once per HeartbeatTimeout less two periods.
    # A look renews its own drain's hook when due; heartbeat-only shards renew the others, and
    # take their slots first (domain/schedule.py `plan_tick`): the most look shards that leave
    # room for them.
    drains = cost.open_drains
    interval = max(period, budget.heartbeat_timeout - 2 * period)
    renewals = math.ceil(drains * period / interval)

    def beat_shards_beside(look_slots: int) -> int:
        looked = min(drains, per_invocation * (look_slots + 1))
        unlooked = renewals * (drains - looked) / drains if drains else 0.0
        return math.ceil(unlooked / HEARTBEATS_PER_SHARD)

    fitting = [
        s
        for s in range(cost.advance_concurrency + 1)
        if s + beat_shards_beside(s) <= cost.advance_concurrency
    ]
    look_slots = max(fitting, default=0)
    beat_shards = beat_shards_beside(look_slots)
    served = per_invocation * (look_slots + 1)  # the look shards and the tick itself
    detail = (
        f"{cost.open_drains} drains renew {renewals} hooks a period; one look {_n(budget.look_seconds)} s "
        f"({budget.look_formula}); one invocation does {per_invocation} in {_n(usable)} s; "
        f"{look_slots} look shards + 1 at once do {served} a period, beside {beat_shards} heartbeat "
        f"shards of {HEARTBEATS_PER_SHARD}"
    )
    if cost.open_drains <= served:
        return RuleResult(rule_id, title, True, detail, why)
    every = math.ceil(cost.open_drains / max(1, served))
    risk = (
        "hooks safe: the renewals go first"
        if fitting
        else "hooks at risk: the renewals need more shards than run at once"
    )
    # Every drain looked at each period renews its own hook in its look.
    needed = math.ceil(cost.open_drains / max(1, per_invocation)) - 1
    return RuleResult(
        rule_id,
        title,
        False,
        f"{detail}: each drain looked at every {every} periods ({risk}); raise AdvanceConcurrency to "
        f"{needed} or lower ShardSize",
        why,
    )


# EC2 Auto Scaling documents no API request rate (its quotas page lists resources, not requests):
# 10 calls a second per action, sustained, is the assumption the local world enforces too
# (drainctl/world/hostile.py), tighter than EC2's documented API rates.
AUTOSCALING_ACTION_RATE: Final = 10.0
HEARTBEAT_RATE_SHARE: Final = 0.8  # of that rate, the coordinator's renewal budget (HEARTBEAT_RATE)
# Of that budget, what the open drains may need: a renewal Auto Scaling throttled past botocore's
# retries is due again within the same window, and must find room. Measured (`drainctl bench
# --degraded`): 2,000 drains at exactly the budget (HeartbeatTimeout 370 s) lost 40 hooks.
RENEWAL_LOAD: Final = 0.8


# The renewals a second the open drains may need: 6.4.
RENEWALS_A_SECOND: Final = RENEWAL_LOAD * HEARTBEAT_RATE_SHARE * AUTOSCALING_ACTION_RATE


def heartbeat_timeout_for(drains: int, period: int) -> int:
    """The least HookHeartbeatTimeout that keeps `drains` drains' renewals within RENEWALS_A_SECOND."""
    return math.ceil(drains / RENEWALS_A_SECOND) + 2 * period


def rule_heartbeat_rate(budget: Budget) -> RuleResult:
    rule_id = "heartbeat-rate"
    title = "the open drains' heartbeats stay within the coordinator's share of Auto Scaling's rate"
    why = (
        "every open drain heartbeats its hook once per HeartbeatTimeout less two periods; the coordinator "
        "renews at most HEARTBEAT_RATE a second (a share of Auto Scaling's rate), and renewals that are "
        "throttled need room to be sent again before the hooks expire with their calls"
    )
    drains = budget.cost.open_drains
    if drains is None:
        return _skip(rule_id, title, why, "give --open-drains to check it")
    period = budget.schedule_period or budget.coordinator.reconcile_period
    interval = max(period, budget.heartbeat_timeout - 2 * period)
    rate = drains / interval
    room = RENEWALS_A_SECOND
    detail = (
        f"{drains} drains / a heartbeat every {interval} s (HeartbeatTimeout {budget.heartbeat_timeout} s "
        f"less 2 periods) = {_n(rate)} a second; within {_n(room)} a second ({_n(RENEWAL_LOAD * 100)} % of "
        f"the coordinator's {_n(HEARTBEAT_RATE_SHARE * AUTOSCALING_ACTION_RATE)}, itself a share of Auto "
        f"Scaling's {_n(AUTOSCALING_ACTION_RATE)} a second: assumed, AWS documents none)"
    )
    if rate <= room:
        return RuleResult(rule_id, title, True, detail, why)
    needed = heartbeat_timeout_for(drains, period)
    return RuleResult(
        rule_id, title, False, f"{detail}: raise HookHeartbeatTimeout to {needed} s or more", why
    )
