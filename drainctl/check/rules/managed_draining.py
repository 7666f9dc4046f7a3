"""managed-draining-beside-hook: ECS managed draining and the coordinator's hook agree.

AWS: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/managed-instance-draining.html
"""

from __future__ import annotations

from drainctl.check.core import Budget, RuleResult, _skip


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
