"""reconcile-fits-period and lifecycle-timeout-fits-look: the coordinator's Lambda timeouts.

Each must fit one look at a drain (AWS and LiveKit calls at the cost model's latencies), and a
reconcile run must end before the next scheduled tick (AWS: Lambda function timeout).
"""

from __future__ import annotations

from drainctl.check.core import Budget, RuleResult, _n, _result, _skip


def rule_reconcile_fits_period(budget: Budget) -> RuleResult:
    rule_id = "reconcile-fits-period"
    title = "reconcile Lambda timeout fits one look and ends inside one period"
    why = (
        "a run that outlasts the period overlaps the next tick, and two runs act on the same "
        "drains; a timeout shorter than one look is cut before it heartbeats"
    )
    if budget.schedule_period is None:
        return _skip(rule_id, title, why, "no fixed schedule period (see heartbeat-cadence)")
    look = budget.look_seconds
    timeout, period = budget.reconcile_timeout, budget.schedule_period
    passed = look <= timeout < period
    detail = f"one look {_n(look)} s <= Timeout {timeout} s < period {period} s"
    if timeout >= period:
        detail = f"Timeout {timeout} s >= period {period} s"
    elif timeout < look:
        detail = f"Timeout {timeout} s < one look {_n(look)} s ({budget.look_formula})"
    return RuleResult(rule_id, title, passed, detail, why)


def rule_lifecycle_timeout_fits_look(budget: Budget) -> RuleResult:
    result = _result(
        "lifecycle-timeout-fits-look",
        "lifecycle Lambda timeout fits one look",
        "the lifecycle function opens the drain and looks at it at once; cut short, the event "
        "is retried and an idle instance waits for the next tick",
    )
    look = budget.look_seconds
    timeout = budget.lifecycle_timeout
    sign = ">=" if timeout >= look else "<"
    return result(
        timeout >= look, f"Timeout {timeout} s {sign} one look {_n(look)} s ({budget.look_formula})"
    )
