"""The shared core of `drainctl check`: the numbers AWS and the worker impose, the `Budget` every
rule judges, the `RuleResult` a rule returns, and the `Rule` type (a pure function of a Budget).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from drain_coordinator.domain.schedule import LookLimits

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


class CheckInputError(Exception):
    """An input cannot be read: a missing file, bad YAML or JSON, an unknown parameter."""


class NotADrainTemplateError(CheckInputError):
    """The template has no coordinator function: it is not a livekit-drain template."""


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


Rule = Callable[["Budget"], RuleResult]
"""A rule: a pure function of a Budget, one verdict with the numbers."""


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
