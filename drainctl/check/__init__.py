"""`drainctl check`: the timeout budget of a livekit-drain deployment, checked before it is deployed.

Most dropped calls come from timers that disagree: a container `stopTimeout` shorter than the
worker's drain, a host default of 30 s, a hook that expires between two heartbeats, a deadline
the lifecycle action can never reach. This command reads the template (parameters resolved from
defaults, samconfig and the command line) and, when given, the worker's own task definition,
extracts the numbers into a `Budget`, and judges it with pure rules:

    budget = load_budget(CheckInputs(template=Path("template.yaml")))
    results = evaluate(budget)          # one RuleResult per rule, with the numbers

Exit status of the command: 0 when every rule passes (rules that cannot be judged from the
inputs are shown as SKIP), 1 when any fails, 2 when an input cannot be read.

The package: `core` (the Budget, the RuleResult, the numbers AWS imposes), `durations` (durations
and schedules read as AWS reads them), `load` (the Budget out of the template and the task
definition), `rules` (one module per rule or small family, and the runner), `report` and
`command` (the command line). `cfn_lint` runs the template-only rules under
`cfn-lint --append-rules drainctl.check.cfn_lint`.
"""

from __future__ import annotations

from drainctl.check.command import add_parser, main, run
from drainctl.check.core import (
    DEFAULT_MARGIN_SECONDS,
    Budget,
    CheckInputError,
    CoordinatorNumbers,
    HostStopTimeout,
    LookCost,
    Rule,
    RuleResult,
)
from drainctl.check.durations import ecs_duration_seconds, host_stop_timeout_setting, schedule_period_seconds
from drainctl.check.load import CheckInputs, load_budget
from drainctl.check.rules import (
    RULES,
    TEMPLATE_ONLY,
    evaluate,
    rule_deadline_outlasts_stop,
    rule_deadline_within_hook_cap,
    rule_fleet_fits_period,
    rule_heartbeat_cadence,
    rule_heartbeat_rate,
    rule_heartbeat_timeout_in_range,
    rule_host_stop_timeout_agrees,
    rule_launch_type_ec2,
    rule_lifecycle_timeout_fits_look,
    rule_managed_draining_beside_hook,
    rule_numbers_agree,
    rule_p99_call_fits_drain,
    rule_parameters_accepted,
    rule_reconcile_fits_period,
    rule_sigterm_reaches_worker,
    rule_stop_timeout_covers_drain,
    rule_warm_pool_agent_check,
    rule_warm_pool_reuse,
)
from drainctl.check.rules.fleet import AUTOSCALING_ACTION_RATE, HEARTBEAT_RATE_SHARE, heartbeat_timeout_for

__all__ = [
    "AUTOSCALING_ACTION_RATE",
    "DEFAULT_MARGIN_SECONDS",
    "HEARTBEAT_RATE_SHARE",
    "RULES",
    "TEMPLATE_ONLY",
    "Budget",
    "CheckInputError",
    "CheckInputs",
    "CoordinatorNumbers",
    "HostStopTimeout",
    "LookCost",
    "Rule",
    "RuleResult",
    "add_parser",
    "ecs_duration_seconds",
    "evaluate",
    "heartbeat_timeout_for",
    "host_stop_timeout_setting",
    "load_budget",
    "main",
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
    "run",
    "schedule_period_seconds",
]
