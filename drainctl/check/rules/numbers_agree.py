"""numbers-agree: the coordinator, the worker and the hook use the same numbers.

The coordinator plans heartbeats and deadlines from its own environment, and the worker refuses to
start on a declared stop timeout too short (worker/livekit_drain_worker/settings.py).
"""

from __future__ import annotations

from drainctl.check.core import WORKER_DECLARED_STOP_TIMEOUT_ENV, Budget, RuleResult, _n


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
