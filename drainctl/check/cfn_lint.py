"""The template-only rules of `drainctl check` as cfn-lint rules:

    cfn-lint --append-rules drainctl.check.cfn_lint -- template.yaml

Each class calls the rule function `drainctl check` calls (drainctl.check.rules), on the
template's parameter defaults and the default margin; a FAIL is a match, PASS and SKIP are none.
A template without the coordinator's functions is no livekit-drain template: no match.
The rules that need the worker's task definition file or the cost model's flags run only as
`drainctl check`.
"""

from __future__ import annotations

from drainctl.check import _cfn_lint_base as base
from drainctl.check.rules import (
    deadline,
    heartbeat,
    launch_type,
    managed_draining,
    numbers_agree,
    parameters,
    sigterm,
    stop_timeout,
    warm_pool,
)

_ECS_TASK_DEFINITION = (
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html"
)
_LIFECYCLE_HOOKS = "https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks.html"
_WARM_POOL = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-warm-pool.html"


class BudgetReadable(base.UnreadableRule):
    id = "E9100"
    shortdesc = "drainctl check reads the budget"
    description = "The coordinator's numbers in a livekit-drain template can be read and resolved"


class LaunchTypeEc2(base.DrainctlRule):
    id = "E9101"
    shortdesc = "launch-type-ec2"
    description = "The worker runs on the EC2 launch type: Fargate caps stopTimeout at 120 s"
    source_url = _ECS_TASK_DEFINITION
    judge = launch_type.rule_launch_type_ec2


class StopTimeoutCoversDrain(base.DrainctlRule):
    id = "E9102"
    shortdesc = "stop-timeout-covers-drain"
    description = "The container's stopTimeout >= the worker's drain_timeout + margin"
    source_url = _ECS_TASK_DEFINITION
    judge = stop_timeout.rule_stop_timeout_covers_drain


class HostStopTimeoutAgrees(base.DrainctlRule):
    id = "E9103"
    shortdesc = "host-stop-timeout-agrees"
    description = "The hosts' ECS_CONTAINER_STOP_TIMEOUT >= the container's stopTimeout"
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-config.html"
    judge = stop_timeout.rule_host_stop_timeout_agrees


class SigtermReachesWorker(base.DrainctlRule):
    id = "E9104"
    shortdesc = "sigterm-reaches-worker"
    description = "SIGTERM reaches the worker process: an init process or an exec-form command"
    source_url = _ECS_TASK_DEFINITION
    judge = sigterm.rule_sigterm_reaches_worker


class HeartbeatTimeoutInRange(base.DrainctlRule):
    id = "E9105"
    shortdesc = "heartbeat-timeout-in-range"
    description = "The terminate hook's HeartbeatTimeout is within 30-7200 s"
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-autoscaling-lifecyclehook.html"
    judge = heartbeat.rule_heartbeat_timeout_in_range


class HeartbeatCadence(base.DrainctlRule):
    id = "E9106"
    shortdesc = "heartbeat-cadence"
    description = "The reconcile schedule's period <= HeartbeatTimeout / 3"
    source_url = _LIFECYCLE_HOOKS
    judge = heartbeat.rule_heartbeat_cadence


class DeadlineOutlastsStop(base.DrainctlRule):
    id = "E9107"
    shortdesc = "deadline-outlasts-stop"
    description = "The drain deadline >= stopTimeout + one schedule period"
    source_url = _LIFECYCLE_HOOKS
    judge = deadline.rule_deadline_outlasts_stop


class DeadlineWithinHookCap(base.DrainctlRule):
    id = "E9108"
    shortdesc = "deadline-within-hook-cap"
    description = "The drain deadline <= min(48 h, 100 x HeartbeatTimeout)"
    source_url = _LIFECYCLE_HOOKS
    judge = deadline.rule_deadline_within_hook_cap


class NumbersAgree(base.DrainctlRule):
    id = "E9109"
    shortdesc = "numbers-agree"
    description = "The coordinator, the worker and the hook use the same numbers"
    judge = numbers_agree.rule_numbers_agree


class ParametersAccepted(base.DrainctlRule):
    id = "E9110"
    shortdesc = "parameters-accepted"
    description = "CloudFormation accepts the parameter defaults: their constraints and the template's Rules"
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html"
    judge = parameters.rule_parameters_accepted


class WarmPoolReuse(base.DrainctlRule):
    id = "E9111"
    shortdesc = "warm-pool-reuse"
    description = "An instance back from the warm pool is set ACTIVE again (the coordinator's launch hook)"
    source_url = _WARM_POOL
    judge = warm_pool.rule_warm_pool_reuse


class WarmPoolAgentCheck(base.DrainctlRule):
    id = "E9112"
    shortdesc = "warm-pool-agent-check"
    description = "The hosts set ECS_WARM_POOLS_CHECK=true beside a warm pool"
    source_url = _WARM_POOL
    judge = warm_pool.rule_warm_pool_agent_check


class ManagedDrainingBesideHook(base.DrainctlRule):
    id = "E9113"
    shortdesc = "managed-draining-beside-hook"
    description = "ECS managed draining and the coordinator's hook agree"
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/managed-instance-draining.html"
    judge = managed_draining.rule_managed_draining_beside_hook
