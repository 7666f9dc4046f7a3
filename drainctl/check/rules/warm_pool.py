"""warm-pool-reuse and warm-pool-agent-check: an Auto Scaling warm pool beside ECS.

AWS: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-warm-pool.html
"""

from __future__ import annotations

from drainctl.check.core import Budget, RuleResult, _skip


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
