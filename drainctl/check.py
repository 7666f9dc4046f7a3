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
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from drain_coordinator.domain.schedule import LookLimits
from drain_coordinator.settings import (
    HOOK_GLOBAL_TIMEOUT_CAP_SECONDS,
    HOOK_GLOBAL_TIMEOUT_FACTOR,
    Settings,
)
from drainctl.template import Template, TemplateError, load_template, samconfig_parameter_overrides

__all__ = [
    "AUTOSCALING_ACTION_RATE",
    "DEFAULT_MARGIN_SECONDS",
    "HEARTBEAT_RATE_SHARE",
    "RULES",
    "Budget",
    "CheckInputError",
    "CheckInputs",
    "CoordinatorNumbers",
    "HostStopTimeout",
    "RuleResult",
    "add_parser",
    "ecs_duration_seconds",
    "evaluate",
    "host_stop_timeout_setting",
    "load_budget",
    "main",
    "rule_deadline_outlasts_stop",
    "rule_deadline_within_hook_cap",
    "rule_heartbeat_cadence",
    "rule_heartbeat_rate",
    "rule_heartbeat_timeout_in_range",
    "rule_host_stop_timeout_agrees",
    "rule_launch_type_ec2",
    "rule_lifecycle_timeout_fits_look",
    "rule_numbers_agree",
    "rule_p99_call_fits_drain",
    "rule_parameters_accepted",
    "rule_reconcile_fits_period",
    "rule_sigterm_reaches_worker",
    "rule_stop_timeout_covers_drain",
    "run",
    "schedule_period_seconds",
]

# ---------------------------------------------------------------------------------------------
# The numbers AWS and the worker impose

FARGATE_MAX_STOP_TIMEOUT_SECONDS: Final = 120
# What the ECS agent uses when ECS_CONTAINER_STOP_TIMEOUT is unset or unreadable, and its floor.
ECS_DEFAULT_STOP_TIMEOUT_SECONDS: Final = 30
ECS_MIN_STOP_TIMEOUT_SECONDS: Final = 1
HOOK_HEARTBEAT_MIN_SECONDS: Final = 30
HOOK_HEARTBEAT_MAX_SECONDS: Final = 7200
# HeartbeatTimeout of a lifecycle hook that does not set one.
HOOK_DEFAULT_HEARTBEAT_SECONDS: Final = 3600
# The coordinator refuses a heartbeat timeout under 3 reconcile periods (settings.py).
TICKS_PER_HEARTBEAT_TIMEOUT: Final = 3
LAMBDA_DEFAULT_TIMEOUT_SECONDS: Final = 3
# The cost of one look (services/drains.py `advance`), one request after the other: a heartbeat,
# two ListTasks and a DescribeTasks (ECS), the save (DynamoDB); LiveKit: ListRooms, then
# ListParticipants 16 rooms at a time (integrations/livekit.py).
AWS_CALLS_PER_LOOK: Final = 5
LIVEKIT_PARTICIPANT_CONCURRENCY: Final = 16
# What the cost model assumes unless told: latencies (p50, p99) of a busy, not a broken, AWS and
# LiveKit. A call's cost is the mean of the lognormal with that p50 and p99.
DEFAULT_AWS_LATENCY: Final = (0.1, 1.0)
DEFAULT_LIVEKIT_LATENCY: Final = (0.2, 2.0)
_Z99: Final = 2.326  # the standard normal's 99th percentile
DEFAULT_ROOMS_PER_DRAIN: Final = 8
DEFAULT_MARGIN_SECONDS: Final = 60

# The packaged worker's variables (worker/livekit_drain_worker/settings.py).
WORKER_DRAIN_TIMEOUT_ENV: Final = "LIVEKIT_DRAIN_TIMEOUT_SECONDS"
WORKER_DECLARED_STOP_TIMEOUT_ENV: Final = "ECS_CONTAINER_STOP_TIMEOUT_SECONDS"

LIFECYCLE_HANDLER: Final = "drain_coordinator.handlers.lifecycle.handler"
RECONCILE_HANDLER: Final = "drain_coordinator.handlers.reconcile.handler"

_FARGATE_PROVIDERS: Final = frozenset({"FARGATE", "FARGATE_SPOT"})
_SHELLS: Final = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh"})
_SETTINGS_FIELDS: Final = Settings.model_fields


class CheckInputError(Exception):
    """An input cannot be read: a missing file, bad YAML or JSON, an unknown parameter."""


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class CoordinatorNumbers:
    """What the coordinator's functions are told (their environment), in seconds."""

    drain_timeout: int
    stop_timeout: int
    heartbeat_timeout: int
    drain_deadline: int
    reconcile_period: int
    livekit_timeout: float
    # HOST_STOP_TIMEOUT_SECONDS (parameter HostStopTimeout): the hosts' ECS_CONTAINER_STOP_TIMEOUT
    # as the coordinator is told it, for a worker container that sets no stopTimeout.
    host_stop_timeout: int = ECS_DEFAULT_STOP_TIMEOUT_SECONDS


@dataclass(frozen=True)
class LookCost:
    """What one look costs at the given p99 latencies, and the fleet the coordinator must serve."""

    aws_latency: tuple[float, float] = DEFAULT_AWS_LATENCY
    livekit_latency: tuple[float, float] = DEFAULT_LIVEKIT_LATENCY
    rooms_per_drain: int = DEFAULT_ROOMS_PER_DRAIN
    open_drains: int | None = None  # None: not asked (the fleet rule is skipped)
    shard_size: int = 20
    advance_concurrency: int = 10
    reserve_seconds: float = LookLimits().reserve_seconds

    @property
    def aws_call(self) -> float:
        return _lognormal_mean(*self.aws_latency)

    def livekit_call(self, livekit_timeout: float) -> float:
        return min(_lognormal_mean(*self.livekit_latency), livekit_timeout)

    @property
    def livekit_rounds(self) -> int:
        return 1 + math.ceil(self.rooms_per_drain / LIVEKIT_PARTICIPANT_CONCURRENCY)

    def look_seconds(self, livekit_timeout: float) -> float:
        return AWS_CALLS_PER_LOOK * self.aws_call + self.livekit_rounds * self.livekit_call(livekit_timeout)


def _lognormal_mean(p50: float, p99: float) -> float:
    sigma = math.log(max(p99, p50) / p50) / _Z99 if p50 > 0 else 0.0
    return p50 * math.exp(sigma * sigma / 2)


@dataclass(frozen=True)
class HostStopTimeout:
    """`ECS_CONTAINER_STOP_TIMEOUT` as one launch template writes it into /etc/ecs/ecs.config.

    `raw` is None when the user data does not set it; `seconds` is None when the ECS agent
    cannot read what is written (a number with no unit, say).
    """

    source: str
    raw: str | None
    seconds: float | None

    @property
    def effective_seconds(self) -> float:
        """What the agent uses: the default when unset or unreadable, never under its floor."""
        if self.seconds is None or self.seconds == 0:
            return ECS_DEFAULT_STOP_TIMEOUT_SECONDS
        return max(self.seconds, ECS_MIN_STOP_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class Budget:
    """Every number the rules judge, in seconds, with where the worker's numbers came from.

    When no task definition is found the worker's numbers are the coordinator's parameters
    (`has_task_definition` False): the rules that need the container itself are skipped.
    """

    worker_source: str
    drain_timeout: int
    stop_timeout: int | None  # the worker container's stopTimeout; None when it sets none
    coordinator: CoordinatorNumbers
    heartbeat_timeout: int  # the terminate hook's
    heartbeat_source: str
    schedule_expression: str | None  # the reconcile function's; None when it has no schedule
    schedule_period: int | None  # None when the expression gives no fixed period
    reconcile_timeout: int
    lifecycle_timeout: int
    has_task_definition: bool = False
    init_process_enabled: bool = False
    argv: tuple[str, ...] | None = None  # entryPoint + command as set; None: the image's own
    declared_stop_timeout: int | None = None  # the worker's ECS_CONTAINER_STOP_TIMEOUT_SECONDS
    fargate_settings: tuple[str, ...] = ()  # every setting that puts the worker on Fargate
    hosts: tuple[HostStopTimeout, ...] = ()
    schedule_window: int = 0  # the schedule's flexible time window
    margin: int = DEFAULT_MARGIN_SECONDS
    p99_call_seconds: float | None = None
    parameter_problem: str | None = None  # why CloudFormation would refuse the parameters
    cost: LookCost = field(default_factory=LookCost)
    # (where, ReuseOnScaleIn as set; None: unset, AWS's default false)
    warm_pools: tuple[tuple[str, bool | None], ...] = ()
    # The coordinator's launch hook (LAUNCH_LIFECYCLE_HOOK_NAME, parameter WarmPoolReuse): it
    # sets an instance back from the warm pool ACTIVE again. "": none.
    launch_hook: str = ""
    # (host, ECS_WARM_POOLS_CHECK as its user data writes it; None: unset, the agent's false)
    warm_pool_checks: tuple[tuple[str, str | None], ...] = ()
    # (where, ManagedDraining as set; None: unset, AWS's default ENABLED)
    managed_draining: tuple[tuple[str, str | None], ...] = ()

    def assumptions(self) -> list[str]:
        """What the report takes for granted because the inputs do not say it."""
        assumed: list[str] = []
        if not self.has_task_definition:
            assumed.append(f"no worker task definition: the worker's numbers are {self.worker_source}")
        if self.stop_timeout is None and not self.on_fargate:
            hosts = (
                "the hosts' ECS_CONTAINER_STOP_TIMEOUT"
                if self.hosts
                else "ECS's default 30 s (no launch template)"
            )
            assumed.append(
                f"the worker container sets no stopTimeout: {hosts} applies, {_n(self.effective_stop_timeout)} s"
            )
        for host in self.hosts:
            if host.raw is None:
                assumed.append(f"{host.source} does not set ECS_CONTAINER_STOP_TIMEOUT: the agent's 30 s")
        for where, reuse in self.warm_pools:
            if reuse is None:
                assumed.append(f"{where} sets no InstanceReusePolicy: ReuseOnScaleIn false (AWS's default)")
        if self.warm_pools:
            for source, check in self.warm_pool_checks:
                if check is None:
                    assumed.append(f"{source} does not set ECS_WARM_POOLS_CHECK: the agent's false")
            if not self.warm_pool_checks:
                assumed.append(
                    "no launch template: whether the hosts set ECS_WARM_POOLS_CHECK=true is not known"
                )
        for where, draining in self.managed_draining:
            if draining is None:
                assumed.append(
                    f"{where} sets no ManagedDraining: ENABLED (AWS's default for a new capacity provider)"
                )
        return assumed

    @property
    def on_fargate(self) -> bool:
        return bool(self.fargate_settings)

    @property
    def effective_stop_timeout(self) -> float:
        """Seconds ECS waits after SIGTERM: the container's value, else the hosts' default."""
        if self.stop_timeout is not None:
            seconds: float = self.stop_timeout
        elif self.hosts:
            seconds = min(host.effective_seconds for host in self.hosts)
        else:
            # No hosts in the template: what the coordinator is told they use (HostStopTimeout).
            seconds = self.coordinator.host_stop_timeout
        if self.on_fargate:
            seconds = min(seconds, FARGATE_MAX_STOP_TIMEOUT_SECONDS)
        return seconds

    @property
    def required_stop_timeout(self) -> int:
        return self.drain_timeout + self.margin

    @property
    def look_seconds(self) -> float:
        """What one look at one drain takes at the p99 latencies of the cost model."""
        return self.cost.look_seconds(self.coordinator.livekit_timeout)

    @property
    def look_formula(self) -> str:
        c = self.cost
        return (
            f"{AWS_CALLS_PER_LOOK} AWS calls x {c.aws_call:.2f} s + {c.livekit_rounds} LiveKit rounds x "
            f"{c.livekit_call(self.coordinator.livekit_timeout):.2f} s"
        )


RuleStatus = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict. A skipped rule could not be judged from the inputs; it does not fail."""

    rule_id: str
    title: str
    passed: bool
    detail: str  # with the numbers
    why: str
    skipped: bool = False

    @property
    def status(self) -> RuleStatus:
        if self.skipped:
            return "SKIP"
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "title": self.title,
            "status": self.status,
            "passed": self.passed,
            "detail": self.detail,
            "why": self.why,
        }


# ---------------------------------------------------------------------------------------------
# The rules: pure functions of a Budget


def _n(value: float) -> str:
    """A number of seconds as a person writes it: 900, 93.3."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}"


def _result(rule_id: str, title: str, why: str) -> Callable[[bool, str], RuleResult]:
    def make(passed: bool, detail: str) -> RuleResult:
        return RuleResult(rule_id, title, passed, detail, why)

    return make


def _skip(rule_id: str, title: str, why: str, detail: str) -> RuleResult:
    return RuleResult(rule_id, title, True, detail, why, skipped=True)


def rule_launch_type_ec2(budget: Budget) -> RuleResult:
    rule_id, title = "launch-type-ec2", "the worker runs on the EC2 launch type"
    why = "Fargate caps stopTimeout at 120 s: calls longer than that are cut on every deploy"
    if not budget.has_task_definition:
        return _skip(
            rule_id,
            title,
            why,
            "no worker task definition in the template: give --task-definition to check it",
        )
    result = _result(rule_id, title, why)
    if budget.on_fargate:
        return result(False, "Fargate: " + "; ".join(budget.fargate_settings))
    return result(True, f"EC2, no Fargate setting in {budget.worker_source}")


def rule_stop_timeout_covers_drain(budget: Budget) -> RuleResult:
    result = _result(
        "stop-timeout-covers-drain",
        "container stopTimeout >= drain_timeout + margin",
        "ECS kills the worker stopTimeout seconds after SIGTERM; a call still draining then is cut",
    )
    stop = budget.effective_stop_timeout
    required = budget.required_stop_timeout
    if budget.stop_timeout is None and not budget.hosts and not budget.on_fargate:
        origin = (
            f" (the container sets none: the hosts' ECS_CONTAINER_STOP_TIMEOUT applies, assumed"
            f" {_n(stop)} s from HOST_STOP_TIMEOUT_SECONDS / HostStopTimeout)"
        )
    elif budget.stop_timeout is None:
        origin = f" (the container sets none: the hosts' {_n(stop)} s applies)"
    elif budget.on_fargate and budget.stop_timeout > FARGATE_MAX_STOP_TIMEOUT_SECONDS:
        origin = f" (stopTimeout {budget.stop_timeout} s, capped at 120 s on Fargate)"
    else:
        origin = ""
    sign = ">=" if stop >= required else "<"
    return result(
        stop >= required,
        f"stopTimeout {_n(stop)} s{origin} {sign} drain_timeout {budget.drain_timeout} s"
        f" + margin {budget.margin} s = {required} s",
    )


def rule_host_stop_timeout_agrees(budget: Budget) -> RuleResult:
    rule_id = "host-stop-timeout-agrees"
    title = "hosts' ECS_CONTAINER_STOP_TIMEOUT >= the container's stopTimeout"
    why = (
        "ECS uses the host's ECS_CONTAINER_STOP_TIMEOUT (30 s unless set) for a container that "
        "sets no stopTimeout: set both, so a task definition revision without it still drains"
    )
    wanted = budget.stop_timeout if budget.stop_timeout is not None else budget.required_stop_timeout
    if budget.on_fargate:
        return _skip(rule_id, title, why, "Fargate has no hosts to configure")
    if not budget.hosts:
        return _skip(
            rule_id,
            title,
            why,
            "no ECS launch template in the template: set "
            f"ECS_CONTAINER_STOP_TIMEOUT={wanted}s in the hosts' /etc/ecs/ecs.config",
        )
    problems: list[str] = []
    fine: list[str] = []
    for host in budget.hosts:
        if host.raw is None:
            problems.append(f"{host.source} does not set it (ECS uses 30 s) < {wanted} s")
        elif host.seconds is None:
            problems.append(
                f"{host.source} sets {host.raw!r}, which the ECS agent cannot read (a duration "
                f"needs a unit, e.g. {wanted}s), so it uses 30 s"
            )
        elif host.effective_seconds < wanted:
            problems.append(f"{host.source} sets {host.raw} = {_n(host.effective_seconds)} s < {wanted} s")
        else:
            fine.append(f"{host.source} sets {host.raw} = {_n(host.effective_seconds)} s >= {wanted} s")
    if problems:
        return RuleResult(rule_id, title, False, "; ".join(problems), why)
    return RuleResult(rule_id, title, True, "; ".join(fine), why)


def _is_shell_form(argv: Sequence[str]) -> bool:
    """A shell runs the worker (`sh -c "..."`, `bash start.sh`), unless its script `exec`s it."""
    if not argv or Path(argv[0]).name not in _SHELLS:
        return False
    options = [arg for arg in argv[1:] if arg.startswith("-") and not arg.startswith("--")]
    if any("c" in option for option in options):
        script = next((arg for arg in argv[1:] if not arg.startswith("-")), "")
        return not script.lstrip().startswith("exec ")
    return True


def rule_sigterm_reaches_worker(budget: Budget) -> RuleResult:
    rule_id, title = "sigterm-reaches-worker", "SIGTERM reaches the worker process"
    why = (
        "a shell as PID 1 does not pass SIGTERM on: the worker never drains and is killed at "
        "stopTimeout with its calls; set linuxParameters.initProcessEnabled true or an exec-form "
        "entryPoint/command"
    )
    if not budget.has_task_definition:
        return _skip(
            rule_id,
            title,
            why,
            "no worker task definition in the template: give --task-definition to check it",
        )
    if budget.init_process_enabled:
        return RuleResult(rule_id, title, True, "linuxParameters.initProcessEnabled true", why)
    if budget.argv is None:
        return RuleResult(
            rule_id,
            title,
            False,
            "initProcessEnabled not set and no entryPoint/command in the task definition "
            "(the image's own is not visible here)",
            why,
        )
    shown = json.dumps(list(budget.argv))
    if _is_shell_form(budget.argv):
        return RuleResult(
            rule_id, title, False, f"initProcessEnabled not set and a shell runs the worker: {shown}", why
        )
    return RuleResult(rule_id, title, True, f"exec-form entryPoint/command {shown}", why)


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


def rule_numbers_agree(budget: Budget) -> RuleResult:
    rule_id = "numbers-agree"
    title = "the coordinator, the worker and the hook use the same numbers"
    why = (
        "the coordinator plans its heartbeats and its deadline from its own copy of these "
        "numbers, and the worker refuses to start on a declared stop timeout too short: a copy "
        "that disagrees plans for a fleet that does not exist"
    )
    coordinator = budget.coordinator
    # The container's own value (Fargate's cap is another rule's business), else what ECS uses.
    stop = budget.stop_timeout if budget.stop_timeout is not None else budget.effective_stop_timeout
    pairs: list[tuple[str, float, str, float]] = [
        (
            "HOOK_HEARTBEAT_TIMEOUT_SECONDS",
            coordinator.heartbeat_timeout,
            "hook HeartbeatTimeout",
            budget.heartbeat_timeout,
        )
    ]
    if budget.schedule_period is not None:
        pairs.append(
            (
                "RECONCILE_PERIOD_SECONDS",
                coordinator.reconcile_period,
                "schedule period",
                budget.schedule_period,
            )
        )
    if budget.has_task_definition:
        pairs.append(
            (
                "WORKER_DRAIN_TIMEOUT_SECONDS",
                coordinator.drain_timeout,
                "worker drain_timeout",
                budget.drain_timeout,
            )
        )
        pairs.append(
            (
                "WORKER_STOP_TIMEOUT_SECONDS",
                coordinator.stop_timeout,
                "stopTimeout",
                stop,
            )
        )
    if budget.stop_timeout is None and budget.hosts and not budget.on_fargate:
        # The container sets none: the coordinator must know the hosts' value.
        pairs.append(
            (
                "HOST_STOP_TIMEOUT_SECONDS",
                coordinator.host_stop_timeout,
                "hosts' ECS_CONTAINER_STOP_TIMEOUT",
                min(host.effective_seconds for host in budget.hosts),
            )
        )
    if budget.declared_stop_timeout is not None:
        pairs.append(
            (
                f"worker {WORKER_DECLARED_STOP_TIMEOUT_ENV}",
                budget.declared_stop_timeout,
                "stopTimeout",
                stop,
            )
        )
    mismatches = [f"{a} {_n(x)} != {b} {_n(y)}" for a, x, b, y in pairs if x != y]
    if mismatches:
        return RuleResult(rule_id, title, False, "; ".join(mismatches), why)
    return RuleResult(rule_id, title, True, "; ".join(f"{a} {_n(x)} = {b}" for a, x, b, _ in pairs), why)


def rule_parameters_accepted(budget: Budget) -> RuleResult:
    result = _result(
        "parameters-accepted",
        "CloudFormation accepts the parameters",
        "the template's constraints and Rules refuse these values: sam deploy would fail before "
        "it creates anything",
    )
    if budget.parameter_problem is not None:
        return result(False, budget.parameter_problem)
    return result(True, "every value within its constraints; the template's Rules hold")


def rule_warm_pool_reuse(budget: Budget) -> RuleResult:
    rule_id, title = "warm-pool-reuse", "an instance back from the warm pool is ACTIVE again"
    why = (
        "with ReuseOnScaleIn a scaled-in instance goes back to the warm pool (its hook waits in "
        "Warmed:Pending:Wait) and later returns as the same instance; ECS leaves its container "
        "instance DRAINING, so ECS places no task on it unless the coordinator's launch hook "
        "(WarmPoolReuse=true) sets it ACTIVE again before it goes in service "
        "(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-warm-pool.html)"
    )
    if not budget.warm_pools:
        return _skip(rule_id, title, why, "no AWS::AutoScaling::WarmPool in the template")
    reused = [where for where, reuse in budget.warm_pools if reuse]
    if reused and not budget.launch_hook:
        return RuleResult(
            rule_id,
            title,
            False,
            "ReuseOnScaleIn true in " + ", ".join(reused) + ", and the coordinator has no launch hook: "
            "set WarmPoolReuse=true",
            why,
        )
    if reused:
        return RuleResult(
            rule_id,
            title,
            True,
            "ReuseOnScaleIn true in " + ", ".join(reused) + f"; the launch hook {budget.launch_hook} "
            "sets each returning instance ACTIVE before it goes in service",
            why,
        )
    return RuleResult(
        rule_id,
        title,
        True,
        "; ".join(
            f"{where}: ReuseOnScaleIn {'false' if r is False else 'unset (false)'}"
            for where, r in budget.warm_pools
        ),
        why,
    )


def rule_warm_pool_agent_check(budget: Budget) -> RuleResult:
    rule_id, title = "warm-pool-agent-check", "the ECS agent waits for the warm pool"
    why = (
        "without ECS_WARM_POOLS_CHECK=true in ecs.config the agent of an instance warming in the "
        "pool registers it in the cluster, and ECS may place tasks that die when the pool stops it "
        "(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-warm-pool.html)"
    )
    if not budget.warm_pools:
        return _skip(rule_id, title, why, "no AWS::AutoScaling::WarmPool in the template")
    if not budget.warm_pool_checks:
        return _skip(
            rule_id, title, why, "no ECS launch template in the template: the hosts' ecs.config is unknown"
        )
    missing = [
        f"{host}: {'unset' if raw is None else raw}"
        for host, raw in budget.warm_pool_checks
        if (raw or "").strip().lower() != "true"
    ]
    if missing:
        return RuleResult(
            rule_id, title, False, "ECS_WARM_POOLS_CHECK not true in " + "; ".join(missing), why
        )
    return RuleResult(
        rule_id,
        title,
        True,
        "; ".join(f"{host}: ECS_WARM_POOLS_CHECK=true" for host, _ in budget.warm_pool_checks),
        why,
    )


def rule_managed_draining_beside_hook(budget: Budget) -> RuleResult:
    rule_id, title = "managed-draining-beside-hook", "ECS managed draining and the coordinator's hook agree"
    why = (
        "with ECS managed draining on, ECS adds its own ecs-managed-draining-termination-hook to the "
        "group and sets the instance DRAINING itself; the instance terminates only once every hook "
        "completed, in no set order (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/managed-instance-draining.html)"
    )
    if not budget.managed_draining:
        return _skip(rule_id, title, why, "no AWS::ECS::CapacityProvider in the template")
    details = []
    for where, value in budget.managed_draining:
        effective = (value or "ENABLED").upper()
        if effective == "ENABLED":
            details.append(
                f"{where}: ManagedDraining {value or 'unset (ENABLED)'}: two terminate hooks; the instance "
                "waits for both, and the coordinator does not set DRAINING again"
            )
        else:
            details.append(f"{where}: ManagedDraining {value}: the coordinator's hook alone")
    return RuleResult(rule_id, title, True, "; ".join(details), why)


RULES: Final[tuple[Callable[[Budget], RuleResult], ...]] = (
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


def evaluate(budget: Budget) -> list[RuleResult]:
    """Every rule's verdict on `budget`, in the order of `RULES`."""
    return [rule(budget) for rule in RULES]


# ---------------------------------------------------------------------------------------------
# Reading durations the way AWS does

_GO_DURATION: Final = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS: Final[Mapping[str, float]] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def ecs_duration_seconds(text: str) -> float | None:
    """A duration as the ECS agent reads it (Go's time.ParseDuration): `900s`, `15m`, `1h30m`.

    None when the agent cannot read it: a bare number other than 0 has no unit and is refused.
    """
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.fullmatch(text):
        return None
    seconds = sum(float(number) * _GO_UNIT_SECONDS[unit] for number, unit in _GO_DURATION_PART.findall(text))
    return -seconds if text.startswith("-") else seconds


_STOP_TIMEOUT_SETTING: Final = re.compile(r"\bECS_CONTAINER_STOP_TIMEOUT=['\"]?([^\s'\"]*)")


_WARM_POOLS_CHECK_SETTING: Final = re.compile(r"\bECS_WARM_POOLS_CHECK=['\"]?([^\s'\"]*)")


def _last_setting(pattern: re.Pattern[str], user_data: str) -> str | None:
    """The value user data writes for a setting (the last one wins), or None."""
    found = pattern.findall(user_data)
    return str(found[-1]) if found else None


def host_stop_timeout_setting(user_data: str) -> str | None:
    """The value user data writes for ECS_CONTAINER_STOP_TIMEOUT (the last one wins), or None."""
    found = _STOP_TIMEOUT_SETTING.findall(user_data)
    return found[-1] if found else None


_RATE: Final = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_RATE_UNIT_SECONDS: Final[Mapping[str, int]] = {
    "minute": 60,
    "minutes": 60,
    "hour": 3600,
    "hours": 3600,
    "day": 86400,
    "days": 86400,
}
_CRON: Final = re.compile(r"cron\(\s*(\S+)\s+(\S+)\s+\S+\s+\S+\s+\S+(?:\s+\S+)?\s*\)")
_CRON_EVERY_N_MINUTES: Final = re.compile(r"(?:\*|0)/(\d+)")


def schedule_period_seconds(expression: str) -> int | None:
    """The fixed period of `rate(...)` or of an every-N-minutes `cron(...)`; None otherwise."""
    expression = expression.strip()
    rate = _RATE.fullmatch(expression)
    if rate is not None:
        return int(rate.group(1)) * _RATE_UNIT_SECONDS[rate.group(2)]
    cron = _CRON.fullmatch(expression)
    if cron is None or cron.group(2) != "*":
        return None
    minutes = cron.group(1)
    if minutes == "*":
        return 60
    every = _CRON_EVERY_N_MINUTES.fullmatch(minutes)
    # Only an N that divides the hour gives the same gap at every tick.
    if every is not None and 0 < int(every.group(1)) <= 60 and 60 % int(every.group(1)) == 0:
        return int(every.group(1)) * 60
    return None


# ---------------------------------------------------------------------------------------------
# Reading the budget out of the template and the task definition


@dataclass(frozen=True)
class CheckInputs:
    """What `drainctl check` was asked to read, and the margin and p99 it was told."""

    template: Path
    config: Path | None = None  # None: samconfig.toml next to the template, if there is one
    config_env: str = "default"
    params: Mapping[str, str] = field(default_factory=dict)
    task_definition: Path | None = None
    p99_call_seconds: float | None = None
    margin: int = DEFAULT_MARGIN_SECONDS
    open_drains: int | None = None
    aws_latency: tuple[float, float] = DEFAULT_AWS_LATENCY
    livekit_latency: tuple[float, float] = DEFAULT_LIVEKIT_LATENCY
    rooms_per_drain: int = DEFAULT_ROOMS_PER_DRAIN

    @property
    def samconfig(self) -> Path | None:
        """The samconfig file whose parameter_overrides apply, if any."""
        if self.config is not None:
            return self.config
        beside = self.template.parent / "samconfig.toml"
        return beside if beside.is_file() else None


class _DeployTimeAttributes(Mapping[str, Any]):
    """Every `Fn::GetAtt` answered with a placeholder: the budget never reads an attribute."""

    def __getitem__(self, key: str) -> Any:
        return f"<{key}>"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class _Reader:
    """Resolves only the values the budget needs, so an unrelated `Ref` cannot stop the check."""

    template: Template
    params: Mapping[str, str]

    def resolve(self, value: Any, where: str) -> Any:
        names = {logical_id: logical_id for logical_id in self.template.logical_ids()}
        try:
            return self.template.resolve(
                value, self.params, resource_names=names, attributes=_DeployTimeAttributes()
            )
        except TemplateError as exc:
            raise CheckInputError(f"{self.template.path}: {where}: {exc}") from exc

    def active(self, logical_id: str) -> bool:
        """False when the resource's Condition is false: CloudFormation would not create it."""
        condition = self.raw_resource(logical_id).get("Condition")
        if condition is None:
            return True
        return bool(self.resolve({"Fn::If": [condition, True, False]}, f"{logical_id}.Condition"))

    def raw_resource(self, logical_id: str) -> Mapping[str, Any]:
        resource = self.template.body["Resources"][logical_id]
        if not isinstance(resource, Mapping):
            raise CheckInputError(f"{self.template.path}: resource {logical_id} is not a mapping")
        return resource

    def raw_properties(self, logical_id: str) -> Mapping[str, Any]:
        properties = self.raw_resource(logical_id).get("Properties", {})
        if not isinstance(properties, Mapping):
            raise CheckInputError(f"{self.template.path}: {logical_id}.Properties is not a mapping")
        return properties

    def resources(self, resource_type: str) -> list[str]:
        return [lid for lid in self.template.logical_ids(resource_type) if self.active(lid)]

    def function_value(self, logical_id: str, name: str) -> Any:
        """A function property, unresolved, the SAM Globals' value when the function sets none."""
        properties = self.raw_properties(logical_id)
        if name in properties:
            return properties[name]
        return self._function_globals(logical_id).get(name)

    def function_variable(self, logical_id: str, name: str) -> Any:
        """One environment variable of a function, unresolved (the function's own over Globals)."""
        for source in (self.raw_properties(logical_id), self._function_globals(logical_id)):
            variables = _mapping(_mapping(source.get("Environment", {})).get("Variables", {}))
            if name in variables:
                return variables[name]
        return None

    def _function_globals(self, logical_id: str) -> Mapping[str, Any]:
        # Globals apply to SAM functions only, not to plain AWS::Lambda::Function resources.
        if self.raw_resource(logical_id).get("Type") != "AWS::Serverless::Function":
            return {}
        return _mapping(_mapping(self.template.body.get("Globals", {})).get("Function", {}))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seconds(value: Any, where: str) -> float:
    """A number of seconds as the template or the task definition writes it: 900 or "900"."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise CheckInputError(f"{where}: {value!r} is not a number of seconds")
    return number


def _whole_seconds(value: Any, where: str) -> int:
    number = _seconds(value, where)
    if not number.is_integer():
        raise CheckInputError(f"{where}: {value!r} is not a whole number of seconds")
    return int(number)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


# -- parameters ---------------------------------------------------------------------------------


def _parameters(template: Template, inputs: CheckInputs) -> tuple[dict[str, str], str | None]:
    """(values, why CloudFormation would refuse them or None). Unknown names are input errors."""
    declared = _mapping(template.body.get("Parameters", {}))
    given: dict[str, str] = {}
    config = inputs.samconfig
    if config is not None:
        try:
            from_config = samconfig_parameter_overrides(config, inputs.config_env)
        except TemplateError as exc:
            raise CheckInputError(str(exc)) from exc
        given.update(_known(declared, from_config, f"{config} parameter_overrides"))
    given.update(_known(declared, inputs.params, "--params"))
    values = {
        str(name): _default_text(spec["Default"])
        for name, spec in declared.items()
        if isinstance(spec, Mapping) and "Default" in spec
    }
    values.update(given)
    # Judged apart from the values: a value CloudFormation refuses is one failed rule, and the
    # other rules still get to say what else is wrong.
    try:
        template.parameters(given)
    except TemplateError as exc:
        return values, str(exc)
    return values, None


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _known(declared: Mapping[str, Any], given: Mapping[str, str], source: str) -> dict[str, str]:
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise CheckInputError(
            f"{source}: unknown parameter(s) {', '.join(unknown)}; "
            f"the template declares {', '.join(sorted(declared))}"
        )
    return {name: str(value) for name, value in given.items()}


# -- the coordinator ----------------------------------------------------------------------------


def _function_with_handler(reader: _Reader, handler: str) -> str:
    for kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        for logical_id in reader.resources(kind):
            value = reader.resolve(reader.function_value(logical_id, "Handler"), f"{logical_id}.Handler")
            if value == handler:
                return logical_id
    raise CheckInputError(
        f"{reader.template.path}: no function with Handler {handler}: is this a livekit-drain template?"
    )


def _coordinator_setting(reader: _Reader, logical_id: str, variable: str, settings_field: str) -> Any:
    raw = reader.function_variable(logical_id, variable)
    if raw is None:
        return _SETTINGS_FIELDS[settings_field].default
    return reader.resolve(raw, f"{logical_id}.Environment.Variables.{variable}")


def _coordinator_numbers(reader: _Reader, lifecycle: str, reconcile: str) -> CoordinatorNumbers:
    def whole(logical_id: str, variable: str, settings_field: str) -> int:
        value = _coordinator_setting(reader, logical_id, variable, settings_field)
        return _whole_seconds(value, f"{logical_id} {variable}")

    # The lifecycle function opens each drain with these; the reconcile function paces itself.
    livekit = _coordinator_setting(reader, lifecycle, "LIVEKIT_TIMEOUT_SECONDS", "livekit_timeout")
    return CoordinatorNumbers(
        drain_timeout=whole(lifecycle, "WORKER_DRAIN_TIMEOUT_SECONDS", "worker_drain_timeout"),
        stop_timeout=whole(lifecycle, "WORKER_STOP_TIMEOUT_SECONDS", "worker_stop_timeout"),
        heartbeat_timeout=whole(lifecycle, "HOOK_HEARTBEAT_TIMEOUT_SECONDS", "heartbeat_timeout"),
        drain_deadline=whole(lifecycle, "DRAIN_DEADLINE_SECONDS", "drain_deadline"),
        reconcile_period=whole(reconcile, "RECONCILE_PERIOD_SECONDS", "reconcile_period"),
        livekit_timeout=_seconds(livekit, f"{lifecycle} LIVEKIT_TIMEOUT_SECONDS"),
        host_stop_timeout=whole(lifecycle, "HOST_STOP_TIMEOUT_SECONDS", "host_stop_timeout"),
    )


def _whole_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    try:
        return int(str(raw)) if raw not in (None, "") else default
    except ValueError as exc:
        raise CheckInputError(f"parameter {name} is not a whole number: {raw!r}") from exc


def _function_timeout(reader: _Reader, logical_id: str) -> int:
    raw = reader.function_value(logical_id, "Timeout")
    if raw is None:
        return LAMBDA_DEFAULT_TIMEOUT_SECONDS
    return _whole_seconds(reader.resolve(raw, f"{logical_id}.Timeout"), f"{logical_id}.Timeout")


@dataclass(frozen=True)
class _Schedule:
    expression: str | None
    period: int | None
    window: int


def _schedule(reader: _Reader, logical_id: str) -> _Schedule:
    events = _mapping(reader.raw_properties(logical_id).get("Events", {}))
    for name, event in events.items():
        event = _mapping(event)
        if event.get("Type") not in ("ScheduleV2", "Schedule"):
            continue
        where = f"{logical_id}.Events.{name}"
        properties = _mapping(event.get("Properties", {}))
        expression = str(reader.resolve(properties.get("ScheduleExpression"), f"{where}.ScheduleExpression"))
        window_spec = _mapping(
            reader.resolve(properties.get("FlexibleTimeWindow", {}), f"{where}.FlexibleTimeWindow")
        )
        window = 0
        if str(window_spec.get("Mode", "OFF")).upper() == "FLEXIBLE":
            minutes = window_spec.get("MaximumWindowInMinutes", 0)
            window = 60 * _whole_seconds(minutes, f"{where}.FlexibleTimeWindow.MaximumWindowInMinutes")
        return _Schedule(expression, schedule_period_seconds(expression), window)
    return _Schedule(None, None, 0)


def _hook_heartbeat(reader: _Reader, fallback: int) -> tuple[int, str]:
    """The terminate hook's HeartbeatTimeout and where it is set."""
    terminating = "autoscaling:EC2_INSTANCE_TERMINATING"
    for logical_id in reader.resources("AWS::AutoScaling::LifecycleHook"):
        properties = reader.raw_properties(logical_id)
        transition = reader.resolve(
            properties.get("LifecycleTransition"), f"{logical_id}.LifecycleTransition"
        )
        if transition == terminating:
            return _hook_timeout(reader, properties.get("HeartbeatTimeout"), logical_id), logical_id
    for logical_id in reader.resources("AWS::AutoScaling::AutoScalingGroup"):
        where = f"{logical_id}.LifecycleHookSpecificationList"
        hooks = reader.raw_properties(logical_id).get("LifecycleHookSpecificationList", [])
        for index, hook in enumerate(hooks if isinstance(hooks, list) else []):
            hook = _mapping(hook)
            transition = reader.resolve(hook.get("LifecycleTransition"), f"{where}[{index}]")
            if transition == terminating:
                return _hook_timeout(reader, hook.get("HeartbeatTimeout"), f"{where}[{index}]"), logical_id
    return fallback, "HOOK_HEARTBEAT_TIMEOUT_SECONDS: no terminate hook in the template"


def _hook_timeout(reader: _Reader, raw: Any, where: str) -> int:
    if raw is None:
        return HOOK_DEFAULT_HEARTBEAT_SECONDS
    return _whole_seconds(reader.resolve(raw, f"{where}.HeartbeatTimeout"), f"{where}.HeartbeatTimeout")


# -- the worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Worker:
    source: str
    stop_timeout: int | None
    drain_timeout: int | None
    declared_stop_timeout: int | None
    init_process_enabled: bool
    argv: tuple[str, ...] | None
    fargate_settings: tuple[str, ...]


def _field(mapping: Mapping[str, Any], name: str) -> Any:
    """A task definition field by its API name (`stopTimeout`) or its CloudFormation name."""
    for key in (name, name[0].upper() + name[1:]):
        if key in mapping:
            return mapping[key]
    return None


_Resolve = Callable[[Any, str], Any]


def _environment(container: Mapping[str, Any], resolve: _Resolve, where: str) -> dict[str, Any]:
    """The container's environment, resolving a value only for the variables the budget reads."""
    wanted = {WORKER_DRAIN_TIMEOUT_ENV, WORKER_DECLARED_STOP_TIMEOUT_ENV}
    entries = _field(container, "environment")
    if isinstance(entries, Mapping):  # an intrinsic function that yields the list
        entries = resolve(entries, f"{where}.Environment")
    found: dict[str, Any] = {}
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        entry = _mapping(entry)
        name = resolve(_field(entry, "name"), f"{where}.Environment[{index}].Name")
        if name in wanted:
            found[str(name)] = resolve(_field(entry, "value"), f"{where}.Environment[{index}].Value")
    return found


def _argv(container: Mapping[str, Any], resolve: _Resolve, where: str) -> tuple[str, ...] | None:
    entry_point = resolve(_field(container, "entryPoint"), f"{where}.EntryPoint")
    command = resolve(_field(container, "command"), f"{where}.Command")
    parts: list[Any] = []
    # A command without an entryPoint runs under the image's ENTRYPOINT, if it has one.
    for value in (entry_point, command) if entry_point else (command,):
        if isinstance(value, str):
            parts.extend(shlex.split(value))
        elif isinstance(value, list):
            parts.extend(value)
    return tuple(str(part) for part in parts) if parts else None


def _worker_container(
    containers: list[Mapping[str, Any]], resolve: _Resolve, where: str
) -> tuple[int, dict[str, Any]]:
    """(index, environment) of the worker: the container that sets its drain timeout, else the
    only one, else the first essential one."""
    environments = [_environment(c, resolve, f"{where}[{i}]") for i, c in enumerate(containers)]
    for index, environment in enumerate(environments):
        if WORKER_DRAIN_TIMEOUT_ENV in environment:
            return index, environment
    for index, container in enumerate(containers):
        essential = resolve(_field(container, "essential"), f"{where}[{index}].Essential")
        if essential is None or _truthy(essential):
            return index, environments[index]
    return 0, environments[0]


def _resolved_entry(entry: Any, resolve: _Resolve, where: str) -> Any:
    """A container written as an intrinsic function (`!If [Cond, {...}, !Ref AWS::NoValue]`)."""
    if isinstance(entry, Mapping) and len(entry) == 1:
        key = str(next(iter(entry)))
        if key == "Ref" or key.startswith("Fn::"):
            return resolve(entry, where)
    return entry


def _worker_from(task_definition: Mapping[str, Any], resolve: _Resolve, source: str, where: str) -> _Worker:
    containers_value = _field(task_definition, "containerDefinitions")
    if isinstance(containers_value, Mapping):
        containers_value = resolve(containers_value, f"{where}.ContainerDefinitions")
    containers = [
        _mapping(_resolved_entry(entry, resolve, f"{where}.ContainerDefinitions[{index}]"))
        for index, entry in enumerate(containers_value if isinstance(containers_value, list) else [])
    ]
    containers = [container for container in containers if container]
    if not containers:
        raise CheckInputError(f"{source}: the task definition has no container definitions")
    index, environment = _worker_container(containers, resolve, f"{where}.ContainerDefinitions")
    container = containers[index]
    at = f"{where}.ContainerDefinitions[{index}]"
    name = resolve(_field(container, "name"), f"{at}.Name")
    stop = resolve(_field(container, "stopTimeout"), f"{at}.StopTimeout")
    linux = _mapping(resolve(_field(container, "linuxParameters") or {}, f"{at}.LinuxParameters"))
    drain = environment.get(WORKER_DRAIN_TIMEOUT_ENV)
    declared = environment.get(WORKER_DECLARED_STOP_TIMEOUT_ENV)
    compatibilities = resolve(
        _field(task_definition, "requiresCompatibilities"), f"{where}.RequiresCompatibilities"
    )
    fargate: list[str] = []
    if isinstance(compatibilities, list) and "FARGATE" in {str(c).upper() for c in compatibilities}:
        fargate.append(f"requiresCompatibilities {json.dumps(compatibilities)}")
    return _Worker(
        source=f"{source}, container {name!r}" if name else source,
        stop_timeout=None if stop is None else _whole_seconds(stop, f"{at}.stopTimeout"),
        drain_timeout=None if drain is None else _whole_seconds(drain, f"{at} {WORKER_DRAIN_TIMEOUT_ENV}"),
        declared_stop_timeout=(
            None if declared is None else _whole_seconds(declared, f"{at} {WORKER_DECLARED_STOP_TIMEOUT_ENV}")
        ),
        init_process_enabled=_truthy(_field(linux, "initProcessEnabled")),
        argv=_argv(container, resolve, at),
        fargate_settings=tuple(fargate),
    )


def _identity(value: Any, where: str) -> Any:
    return value


def _worker_from_file(path: Path) -> _Worker:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckInputError(f"cannot read task definition {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CheckInputError(f"task definition {path}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise CheckInputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise CheckInputError(f"{path}: JSON nested too deep") from exc
    if isinstance(document, Mapping) and isinstance(document.get("taskDefinition"), Mapping):
        document = document["taskDefinition"]
    if not isinstance(document, Mapping) or "containerDefinitions" not in document:
        raise CheckInputError(
            f"{path}: not a task definition (expected the JSON of `aws ecs describe-task-definition`)"
        )
    return _worker_from(document, _identity, f"task definition {path.name}", "taskDefinition")


def _worker_from_template(reader: _Reader) -> _Worker | None:
    """The worker's task definition in the template, the Fargate settings of its service added.

    The worker's is the one that sets LIVEKIT_DRAIN_TIMEOUT_SECONDS, else the first one.
    """
    candidates = [
        (lid, _worker_from(reader.raw_properties(lid), reader.resolve, f"task definition {lid}", lid))
        for lid in reader.resources("AWS::ECS::TaskDefinition")
    ]
    if not candidates:
        return None
    logical_id, worker = next(
        ((lid, w) for lid, w in candidates if w.drain_timeout is not None), candidates[0]
    )
    services = _service_fargate_settings(reader, logical_id)
    return replace(worker, fargate_settings=worker.fargate_settings + services)


def _refers_to(value: Any, logical_id: str) -> bool:
    if isinstance(value, Mapping):
        if value.get("Ref") == logical_id:
            return True
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute and attribute[0] == logical_id:
            return True
        return any(_refers_to(item, logical_id) for item in value.values())
    if isinstance(value, list):
        return any(_refers_to(item, logical_id) for item in value)
    return isinstance(value, str) and "${" + logical_id + "}" in value


def _fargate_in_strategy(strategy: Any) -> list[str]:
    providers = [str(_mapping(item).get("CapacityProvider", "")) for item in strategy or []]
    return [provider for provider in providers if provider.upper() in _FARGATE_PROVIDERS]


def _service_fargate_settings(reader: _Reader, task_definition: str) -> tuple[str, ...]:
    settings: list[str] = []
    for logical_id in reader.resources("AWS::ECS::Service"):
        properties = reader.raw_properties(logical_id)
        if not _refers_to(properties.get("TaskDefinition"), task_definition):
            continue
        launch_type = reader.resolve(properties.get("LaunchType"), f"{logical_id}.LaunchType")
        strategy = reader.resolve(
            properties.get("CapacityProviderStrategy"), f"{logical_id}.CapacityProviderStrategy"
        )
        if launch_type is not None and str(launch_type).upper() == "FARGATE":
            settings.append(f"service {logical_id} LaunchType FARGATE")
        elif strategy:
            settings.extend(
                f"service {logical_id} capacity provider {p}" for p in _fargate_in_strategy(strategy)
            )
        elif launch_type is None:
            settings.extend(_cluster_default_fargate(reader, logical_id))
    return tuple(settings)


def _cluster_default_fargate(reader: _Reader, service: str) -> list[str]:
    """A service with neither a launch type nor a strategy uses its cluster's default strategy."""
    found: list[str] = []
    for kind in ("AWS::ECS::Cluster", "AWS::ECS::ClusterCapacityProviderAssociations"):
        for logical_id in reader.resources(kind):
            where = f"{logical_id}.DefaultCapacityProviderStrategy"
            strategy = reader.resolve(
                reader.raw_properties(logical_id).get("DefaultCapacityProviderStrategy"), where
            )
            found.extend(
                f"service {service} uses the default capacity provider {p} of {logical_id}"
                for p in _fargate_in_strategy(strategy)
            )
    return found


# -- the hosts ----------------------------------------------------------------------------------


def _decoded_user_data(text: str) -> str:
    """User data as the instance reads it: base64 decoded when it is base64 (Fn::Base64)."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return text


def _hosts(reader: _Reader) -> tuple[HostStopTimeout, ...]:
    hosts: list[HostStopTimeout] = []
    for source, user_data in _ecs_host_user_data(reader):
        setting = host_stop_timeout_setting(user_data)
        hosts.append(
            HostStopTimeout(
                source=source,
                raw=setting,
                seconds=None if setting is None else ecs_duration_seconds(setting),
            )
        )
    return tuple(hosts)


def _warm_pool_checks(reader: _Reader) -> tuple[tuple[str, str | None], ...]:
    return tuple(
        (source, _last_setting(_WARM_POOLS_CHECK_SETTING, user_data))
        for source, user_data in _ecs_host_user_data(reader)
    )


def _ecs_host_user_data(reader: _Reader) -> list[tuple[str, str]]:
    """(where, decoded user data) of every launch template or configuration of ECS hosts."""
    found: list[tuple[str, str]] = []
    sources = [
        (lid, "launch template", _mapping(reader.raw_properties(lid).get("LaunchTemplateData", {})))
        for lid in reader.resources("AWS::EC2::LaunchTemplate")
    ] + [
        (lid, "launch configuration", reader.raw_properties(lid))
        for lid in reader.resources("AWS::AutoScaling::LaunchConfiguration")
    ]
    for logical_id, kind, properties in sources:
        raw = properties.get("UserData")
        if raw is None:
            continue
        resolved = reader.resolve(raw, f"{logical_id}.UserData")
        user_data = _decoded_user_data(str(resolved))
        # Only ECS hosts write ecs.config; another launch template is not the workers'.
        if "ecs.config" not in user_data and "ECS_CLUSTER" not in user_data:
            continue
        found.append((f"{kind} {logical_id}", user_data))
    return found


def _warm_pools(reader: _Reader) -> tuple[tuple[str, bool | None], ...]:
    found: list[tuple[str, bool | None]] = []
    for logical_id in reader.resources("AWS::AutoScaling::WarmPool"):
        policy = reader.resolve(
            reader.raw_properties(logical_id).get("InstanceReusePolicy"), f"{logical_id}.InstanceReusePolicy"
        )
        raw = _mapping(policy).get("ReuseOnScaleIn")
        found.append((f"warm pool {logical_id}", None if raw is None else _truthy(raw)))
    return tuple(found)


def _launch_hook(reader: _Reader, lifecycle: str) -> str:
    """The coordinator's launch hook, as its lifecycle function is told it ("" when none)."""
    raw = reader.function_variable(lifecycle, "LAUNCH_LIFECYCLE_HOOK_NAME")
    if raw is None:
        return ""
    return str(reader.resolve(raw, f"{lifecycle}.Environment.Variables.LAUNCH_LIFECYCLE_HOOK_NAME") or "")


def _managed_draining(reader: _Reader) -> tuple[tuple[str, str | None], ...]:
    found: list[tuple[str, str | None]] = []
    for logical_id in reader.resources("AWS::ECS::CapacityProvider"):
        provider = _mapping(reader.raw_properties(logical_id).get("AutoScalingGroupProvider", {}))
        raw = reader.resolve(provider.get("ManagedDraining"), f"{logical_id}.ManagedDraining")
        found.append((f"capacity provider {logical_id}", None if raw is None else str(raw)))
    return tuple(found)


# -- all together -------------------------------------------------------------------------------


def load_budget(inputs: CheckInputs) -> Budget:
    """Read the template (and the task definition file, if any) into a Budget.

    Raises `CheckInputError` when an input cannot be read or a needed value cannot be resolved.
    """
    try:
        template = load_template(inputs.template)
    except TemplateError as exc:
        raise CheckInputError(str(exc)) from exc
    params, parameter_problem = _parameters(template, inputs)
    reader = _Reader(template, params)
    lifecycle = _function_with_handler(reader, LIFECYCLE_HANDLER)
    reconcile = _function_with_handler(reader, RECONCILE_HANDLER)
    coordinator = _coordinator_numbers(reader, lifecycle, reconcile)
    heartbeat_timeout, heartbeat_source = _hook_heartbeat(reader, coordinator.heartbeat_timeout)
    schedule = _schedule(reader, reconcile)

    worker: _Worker | None
    if inputs.task_definition is not None:
        worker = _worker_from_file(inputs.task_definition)
    else:
        worker = _worker_from_template(reader)

    common: dict[str, Any] = {
        "coordinator": coordinator,
        "heartbeat_timeout": heartbeat_timeout,
        "heartbeat_source": heartbeat_source,
        "schedule_expression": schedule.expression,
        "schedule_period": schedule.period,
        "schedule_window": schedule.window,
        "reconcile_timeout": _function_timeout(reader, reconcile),
        "lifecycle_timeout": _function_timeout(reader, lifecycle),
        "hosts": _hosts(reader),
        "warm_pools": _warm_pools(reader),
        "warm_pool_checks": _warm_pool_checks(reader),
        "launch_hook": _launch_hook(reader, lifecycle),
        "managed_draining": _managed_draining(reader),
        "margin": inputs.margin,
        "p99_call_seconds": inputs.p99_call_seconds,
        "parameter_problem": parameter_problem,
        "cost": LookCost(
            aws_latency=inputs.aws_latency,
            livekit_latency=inputs.livekit_latency,
            rooms_per_drain=inputs.rooms_per_drain,
            open_drains=inputs.open_drains,
            shard_size=_whole_param(params, "ShardSize", 20),
            advance_concurrency=_whole_param(params, "AdvanceConcurrency", 10),
        ),
    }
    if worker is None:
        return Budget(
            worker_source="the coordinator's WORKER_DRAIN_TIMEOUT_SECONDS and WORKER_STOP_TIMEOUT_SECONDS",
            drain_timeout=coordinator.drain_timeout,
            stop_timeout=coordinator.stop_timeout,
            **common,
        )
    return Budget(
        worker_source=worker.source,
        # A worker that does not say its drain timeout is taken to use the coordinator's.
        drain_timeout=worker.drain_timeout if worker.drain_timeout is not None else coordinator.drain_timeout,
        stop_timeout=worker.stop_timeout,
        has_task_definition=True,
        init_process_enabled=worker.init_process_enabled,
        argv=worker.argv,
        declared_stop_timeout=worker.declared_stop_timeout,
        fargate_settings=worker.fargate_settings,
        **common,
    )


# ---------------------------------------------------------------------------------------------
# The command


def _table(results: Sequence[RuleResult]) -> list[str]:
    width = max(len(result.rule_id) for result in results)
    lines = [f"{'RESULT':<6}  {'RULE':<{width}}  NUMBERS"]
    for result in results:
        detail = result.detail if result.status != "FAIL" else f"{result.detail}. Why: {result.why}"
        lines.append(f"{result.status:<6}  {result.rule_id:<{width}}  {detail}")
    return lines


def _verdict(results: Sequence[RuleResult]) -> str:
    failed = [result.rule_id for result in results if not result.passed]
    skipped = sum(1 for result in results if result.skipped)
    if failed:
        return f"FAIL: {len(failed)} of {len(results)} rules fail: {', '.join(failed)}"
    checked = len(results) - skipped
    return f"PASS: {checked} rules pass, {skipped} not checked (SKIP: the inputs do not show them)"


def _format_report(budget: Budget, results: Sequence[RuleResult], inputs: CheckInputs) -> str:
    config = inputs.samconfig
    with_config = "" if config is None else f" with {config} [{inputs.config_env}]"
    lines = [
        f"drainctl check: {inputs.template}{with_config}; worker numbers from {budget.worker_source}",
        *_table(results),
        *(f"ASSUMED {line}" for line in budget.assumptions()),
        _verdict(results),
    ]
    return "\n".join(lines)


def _params_dict(items: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CheckInputError(f"--params takes NAME=VALUE, not {item!r}")
        values[name] = value
    return values


def _inputs(args: argparse.Namespace) -> CheckInputs:
    margin = int(args.margin)
    if margin < 0:
        raise CheckInputError(f"--margin cannot be negative, got {margin}")
    p99 = None if args.p99_call_seconds is None else float(args.p99_call_seconds)
    if p99 is not None and not (math.isfinite(p99) and p99 > 0):
        raise CheckInputError(f"--p99-call-seconds must be a positive number, got {args.p99_call_seconds}")
    return CheckInputs(
        template=Path(args.template),
        config=None if args.config is None else Path(args.config),
        config_env=str(args.config_env),
        params=_params_dict(list(args.params or [])),
        task_definition=None if args.task_definition is None else Path(args.task_definition),
        p99_call_seconds=p99,
        margin=margin,
        # (getattr: a caller's own Namespace may predate these options)
        open_drains=_positive_int(getattr(args, "open_drains", None), "--open-drains"),
        aws_latency=_latency(getattr(args, "aws_latency", None), "--aws-latency", DEFAULT_AWS_LATENCY),
        livekit_latency=_latency(
            getattr(args, "livekit_latency", None), "--livekit-latency", DEFAULT_LIVEKIT_LATENCY
        ),
        rooms_per_drain=_positive_int(getattr(args, "rooms_per_drain", None), "--rooms-per-drain")
        or DEFAULT_ROOMS_PER_DRAIN,
    )


def _positive_int(raw: object, flag: str) -> int | None:
    if raw is None:
        return None
    try:
        value = int(str(raw))
    except ValueError as exc:
        raise CheckInputError(f"{flag} takes a whole number, got {raw!r}") from exc
    if value < 1:
        raise CheckInputError(f"{flag} must be at least 1, got {value}")
    return value


def _latency(raw: object, flag: str, default: tuple[float, float]) -> tuple[float, float]:
    """P50[:P99] in seconds; P99 defaults to 5 x P50."""
    if raw is None:
        return default
    text = str(raw)
    p50_text, _, p99_text = text.partition(":")
    try:
        p50 = float(p50_text)
        p99 = float(p99_text) if p99_text else 5 * p50
    except ValueError as exc:
        raise CheckInputError(f"{flag} takes P50[:P99] in seconds, got {text!r}") from exc
    if not (math.isfinite(p50) and math.isfinite(p99) and 0 < p50 <= p99):
        raise CheckInputError(f"{flag} needs 0 < P50 <= P99, got {text!r}")
    return p50, p99


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, default=Path("template.yaml"), help="default: template.yaml")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="samconfig file whose parameter_overrides apply (default: samconfig.toml next to the template)",
    )
    parser.add_argument("--config-env", default="default", help="samconfig environment (default: default)")
    parser.add_argument(
        "--params",
        "--param",
        dest="params",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter values, over samconfig's",
    )
    parser.add_argument(
        "--task-definition",
        type=Path,
        default=None,
        metavar="FILE",
        help="the worker's task definition, as `aws ecs describe-task-definition` prints it",
    )
    parser.add_argument(
        "--p99-call-seconds", type=float, default=None, metavar="N", help="your p99 call length, in seconds"
    )
    fleet = parser.add_argument_group("the cost of a look (rule fleet-fits-period)")
    fleet.add_argument(
        "--open-drains", default=None, metavar="N", help="drains open at once at your biggest scale-in"
    )
    fleet.add_argument(
        "--aws-latency", default=None, metavar="P50[:P99]", help="one AWS call (default 0.1:1)"
    )
    fleet.add_argument(
        "--livekit-latency", default=None, metavar="P50[:P99]", help="one LiveKit call (default 0.2:2)"
    )
    fleet.add_argument(
        "--rooms-per-drain",
        default=None,
        metavar="N",
        help=f"calls an instance holds when it drains (default {DEFAULT_ROOMS_PER_DRAIN})",
    )
    parser.add_argument(
        "--margin",
        type=int,
        default=DEFAULT_MARGIN_SECONDS,
        metavar="S",
        help=f"seconds stopTimeout must exceed drain_timeout by (default {DEFAULT_MARGIN_SECONDS})",
    )
    parser.add_argument(
        "--json", action="store_true", help='print one JSON object {"passed": ..., "rules": [...]}'
    )


_DESCRIPTION: Final = (
    "Check the timeout budget before deploying: stopTimeout vs drain_timeout, the hosts' "
    "ECS_CONTAINER_STOP_TIMEOUT, the hook's heartbeat and deadline, the Lambda timeouts, Fargate "
    "refused. Exit 0 when every rule passes, 1 when any fails, 2 when an input cannot be read."
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `check` to a `drainctl` command line."""
    parser = subparsers.add_parser(
        "check", help="the timeout budget, checked before deploy", description=_DESCRIPTION
    )
    _add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run `drainctl check` with parsed arguments; prints the report, returns the exit status."""
    try:
        inputs = _inputs(args)
        budget = load_budget(inputs)
    except CheckInputError as exc:
        print(f"drainctl check: {exc}", file=sys.stderr)
        return 2
    results = evaluate(budget)
    passed = all(result.passed for result in results)
    if args.json:
        print(
            json.dumps(
                {
                    "passed": passed,
                    "rules": [result.as_dict() for result in results],
                    "assumed": budget.assumptions(),
                }
            )
        )
    else:
        print(_format_report(budget, results, inputs))
    return 0 if passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drainctl check", description=_DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
