"""stop-timeout-covers-drain and host-stop-timeout-agrees: how long ECS waits after SIGTERM.

ECS kills a container stopTimeout seconds after SIGTERM; a container that sets none gets the
host's ECS_CONTAINER_STOP_TIMEOUT, 30 s unless set (AWS: Amazon ECS container agent
configuration). The worker drains its LiveKit calls for drain_timeout seconds after SIGTERM.
"""

from __future__ import annotations

from drainctl.check.core import FARGATE_MAX_STOP_TIMEOUT_SECONDS, Budget, RuleResult, _n, _result, _skip


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
