"""Two stacks in one account, their workers on one cluster (staging beside prod), deployed
together in one local world: each stack's alarms fire only on its own metrics, and each stack's
task-state rule takes only its own workers.

Both stacks run at once on the same moto server, cluster and LiveKit, each with its own functions,
drain table, terminate hook on its own group, alarms and `Stack` dimension; the account's
CloudWatch is everything both printed as EMF.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drainctl.world.alarms import alarm_specs, datapoints, firing
from drainctl.world.stacks import OtherStack
from drainctl.world.world import Delivery, World, WorldConfig

CLUSTER = "livekit-agents"  # the one cluster both stacks' workers run on


@pytest.fixture
def prod() -> Iterator[World]:
    config = WorldConfig(
        stack_name="prod",
        cluster=CLUSTER,
        group_name="prod-asg",
        params={"WorkerTaskFamily": "prod-worker"},
        livekit_webhooks=False,
    )
    with World(config) as world:
        yield world


def judged(deliveries: list[Delivery]) -> list[dict[str, Any]]:
    """The task stops these invocations judged."""
    return [
        step
        for d in deliveries
        if isinstance(d.result, dict)
        for step in d.result.get("steps", [])
        if isinstance(step, dict) and step.get("action") == "task_stopped"
    ]


def a_redeploy_with_calls(world: World, service: str, call_seconds: float) -> list[str]:
    """Two calls on each worker of the service, then a rolling deploy; the old tasks' ARNs."""
    old = [w for w in world.fleet.workers.values() if w.service == service]
    for worker in old:
        for _ in range(2):
            world.fleet.start_call(worker, world.clock.now(), call_seconds)
    world.deploy(service)
    return [w.task_arn for w in old]


def test_each_stacks_alarms_fire_only_for_its_own_stack_and_its_rule_takes_only_its_workers(
    prod: World,
) -> None:
    world = prod
    # GIVEN prod, right (stopTimeout 900 s), and beside it in the same account staging,
    # misconfigured (stopTimeout 120 s under 5-minute calls), each on its own group of the one
    # cluster, each with two workers of its own service
    staging: OtherStack = world.add_stack(
        "staging", group_name="staging-asg", params={"WorkerTaskFamily": "staging-worker"}
    )
    world.add_service("prod", drain_timeout=600, stop_timeout=900)
    world.add_service("staging", drain_timeout=600, stop_timeout=120)
    world.create_fleet(1, workers_per_instance=2, services=["prod"])
    staging.create_fleet(world, 1, workers_per_instance=2, services=["staging"])
    assert staging.table_name != world.table_name and staging.hook_name != world.hook_name

    # WHEN both services are redeployed at once, with calls up
    staging_tasks = a_redeploy_with_calls(world, "staging", call_seconds=300)
    prod_tasks = a_redeploy_with_calls(world, "prod", call_seconds=60)
    old = [world.fleet.workers[arn] for arn in staging_tasks + prod_tasks]
    assert world.run(lambda: all(w.stopped_at is not None for w in old), limit_seconds=1200)
    world.run(lambda: False, limit_seconds=2 * world.period)  # the verdicts' minute closes

    # THEN each stack judged exactly its own old tasks: staging's killed, prod's graceful
    staging_judged = judged(staging.deliveries)
    prod_judged = judged([d for d in world.deliveries if d not in staging.deliveries])
    assert sorted(s["task_arn"] for s in staging_judged) == sorted(staging_tasks)
    assert sorted(s["task_arn"] for s in prod_judged) == sorted(prod_tasks)
    assert {s["verdict"] for s in staging_judged} == {"forced_kill"}
    assert {s["verdict"] for s in prod_judged} == {"graceful"}
    # AND on everything the account's CloudWatch holds, staging pages for its own kills and
    # dropped calls, and prod pages for nothing
    account = datapoints(world.lambdas.invocations)
    staging_fired = {f.alarm.name for f in firing(alarm_specs(staging.template), account)}
    prod_fired = {f.alarm.name for f in firing(alarm_specs(world.template), account)}
    assert {"staging-forced-kills", "staging-dropped-sessions"} <= staging_fired
    assert prod_fired == set()
    assert {p.dimensions.get("Stack") for p in account} >= {"prod", "staging"}
