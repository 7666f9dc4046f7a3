"""The rules of `drainctl check`, one module per rule or per small family, and the runner.

Each rule is a pure function of a `Budget` (drainctl.check.core). `RULES` is their order in the
report; `TEMPLATE_ONLY` are those judged from the template and its parameters alone, which also
run as cfn-lint rules (drainctl.check.cfn_lint).
"""

from __future__ import annotations

from typing import Final

from drainctl.check.core import Budget, Rule, RuleResult
from drainctl.check.rules.deadline import rule_deadline_outlasts_stop, rule_deadline_within_hook_cap
from drainctl.check.rules.fleet import rule_fleet_fits_period, rule_heartbeat_rate
from drainctl.check.rules.heartbeat import rule_heartbeat_cadence, rule_heartbeat_timeout_in_range
from drainctl.check.rules.lambda_timeouts import rule_lifecycle_timeout_fits_look, rule_reconcile_fits_period
from drainctl.check.rules.launch_type import rule_launch_type_ec2
from drainctl.check.rules.managed_draining import rule_managed_draining_beside_hook
from drainctl.check.rules.numbers_agree import rule_numbers_agree
from drainctl.check.rules.p99_call import rule_p99_call_fits_drain
from drainctl.check.rules.parameters import rule_parameters_accepted
from drainctl.check.rules.sigterm import rule_sigterm_reaches_worker
from drainctl.check.rules.stop_timeout import rule_host_stop_timeout_agrees, rule_stop_timeout_covers_drain
from drainctl.check.rules.warm_pool import rule_warm_pool_agent_check, rule_warm_pool_reuse

__all__ = [
    "RULES",
    "TEMPLATE_ONLY",
    "evaluate",
    "rule_deadline_outlasts_stop",
    "rule_deadline_within_hook_cap",
    "rule_fleet_fits_period",
    "rule_heartbeat_cadence",
    "rule_heartbeat_rate",
    "rule_heartbeat_timeout_in_range",
    "rule_host_stop_timeout_agrees",
    "rule_launch_type_ec2",
    "rule_lifecycle_timeout_fits_look",
    "rule_managed_draining_beside_hook",
    "rule_numbers_agree",
    "rule_p99_call_fits_drain",
    "rule_parameters_accepted",
    "rule_reconcile_fits_period",
    "rule_sigterm_reaches_worker",
    "rule_stop_timeout_covers_drain",
    "rule_warm_pool_agent_check",
    "rule_warm_pool_reuse",
]

RULES: Final[tuple[Rule, ...]] = (
    rule_launch_type_ec2,
    rule_stop_timeout_covers_drain,
    rule_host_stop_timeout_agrees,
    rule_sigterm_reaches_worker,
    rule_heartbeat_timeout_in_range,
    rule_heartbeat_cadence,
    rule_deadline_outlasts_stop,
    rule_deadline_within_hook_cap,
    rule_reconcile_fits_period,
    rule_fleet_fits_period,
    rule_heartbeat_rate,
    rule_lifecycle_timeout_fits_look,
    rule_p99_call_fits_drain,
    rule_numbers_agree,
    rule_parameters_accepted,
    rule_warm_pool_reuse,
    rule_warm_pool_agent_check,
    rule_managed_draining_beside_hook,
)

# Judged from the template and its parameters alone: not the task definition file, not the cost
# model's flags (--open-drains, the latencies, --p99-call-seconds). The margin is its default.
TEMPLATE_ONLY: Final[tuple[Rule, ...]] = (
    rule_launch_type_ec2,
    rule_stop_timeout_covers_drain,
    rule_host_stop_timeout_agrees,
    rule_sigterm_reaches_worker,
    rule_heartbeat_timeout_in_range,
    rule_heartbeat_cadence,
    rule_deadline_outlasts_stop,
    rule_deadline_within_hook_cap,
    rule_numbers_agree,
    rule_parameters_accepted,
    rule_warm_pool_reuse,
    rule_warm_pool_agent_check,
    rule_managed_draining_beside_hook,
)


def evaluate(budget: Budget, rules: tuple[Rule, ...] = RULES) -> list[RuleResult]:
    """Every rule's verdict on `budget`, in the order of `rules` (all of `RULES` unless told)."""
    return [rule(budget) for rule in rules]
