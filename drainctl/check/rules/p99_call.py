"""p99-call-fits-drain: the p99 call length (--p99-call-seconds) fits inside drain_timeout.

A LiveKit call that starts just before SIGTERM needs its whole length to end inside the drain.
"""

from __future__ import annotations

from drainctl.check.core import Budget, RuleResult, _n, _skip


def rule_p99_call_fits_drain(budget: Budget) -> RuleResult:
    rule_id, title = "p99-call-fits-drain", "the p99 call length fits inside drain_timeout"
    why = (
        "a call that starts just before SIGTERM needs its whole length: with a p99 longer than "
        "drain_timeout, more than 1 % of those calls are cut when the drain ends"
    )
    p99 = budget.p99_call_seconds
    if p99 is None:
        return _skip(rule_id, title, why, "give --p99-call-seconds to check it")
    drain = budget.drain_timeout
    if p99 > drain:
        return RuleResult(
            rule_id,
            title,
            False,
            f"p99 call {_n(p99)} s > drain_timeout {drain} s by {_n(p99 - drain)} s",
            why,
        )
    return RuleResult(
        rule_id,
        title,
        True,
        f"p99 call {_n(p99)} s <= drain_timeout {drain} s ({_n(drain - p99)} s spare)",
        why,
    )
