"""launch-type-ec2: the worker runs on the EC2 launch type, never Fargate.

Fargate caps a container's stopTimeout at 120 s (AWS: Amazon ECS task definition parameters,
"stopTimeout"), so a call longer than that is cut on every deploy and scale-in.
"""

from __future__ import annotations

from drainctl.check.core import Budget, RuleResult, _result, _skip


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
