"""Two stacks in one account, their workers on one cluster (staging beside prod): each stack's
alarms fire only on its own metrics, and each stack's task-state rule takes only its own workers.

Each stack runs in a local world of its own name (its resources, its alarms, the `Stack`
dimension of its metrics); the account's CloudWatch is the union of what both printed as EMF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drainctl.template import FunctionRoute
from drainctl.world.alarms import AlarmSpec, Datapoint, alarm_specs, datapoints, firing
from drainctl.world.world import World, WorldConfig

CLUSTER = "livekit-agents"  # the one cluster both stacks' workers run on


@dataclass
class StackRun:
    alarms: list[AlarmSpec]
    points: list[Datapoint]
    task_events: list[dict[str, Any]]
    task_state_route: FunctionRoute
    verdicts: list[str]


def a_deploy(stack: str, *, stop_timeout: int, call_seconds: float) -> StackRun:
    """A stack whose service `<stack>` (family `<stack>-worker`) is redeployed with two calls on
    each of its two workers."""
    config = WorldConfig(
        stack_name=stack,
        cluster=CLUSTER,
        group_name=f"{stack}-asg",
        params={"WorkerTaskFamily": f"{stack}-worker"},
        livekit_webhooks=False,
    )
    with World(config) as world:
        world.add_service(stack, drain_timeout=600, stop_timeout=stop_timeout)
        world.create_fleet(1, workers_per_instance=2, services=[stack])
        workers = list(world.fleet.workers.values())
        for worker in workers:
            for _ in range(2):
                world.fleet.start_call(worker, world.clock.now(), call_seconds)
        world.deploy(stack)
        world.run(lambda: all(w.stopped_at is not None for w in workers), limit_seconds=1200)
        world.run(lambda: False, limit_seconds=2 * world.period)  # the verdicts' minute closes
        task_events = [
            dict(d.event) for d in world.deliveries if d.event.get("detail-type") == "ECS Task State Change"
        ]
        verdicts = [
            str(step["verdict"])
            for d in world.deliveries
            if isinstance(d.result, dict)
            for step in d.result.get("steps", [])
            if isinstance(step, dict) and step.get("action") == "task_stopped"
        ]
        return StackRun(
            alarms=alarm_specs(world.template),
            points=datapoints(world.lambdas.invocations),
            task_events=task_events,
            task_state_route=next(r for r in world.routes if r.logical_id == "TaskStateFunction"),
            verdicts=verdicts,
        )


def test_each_stacks_alarms_fire_only_for_its_own_stack_and_its_rule_takes_only_its_workers() -> None:
    # GIVEN staging, misconfigured (stopTimeout 120 s under 5-minute calls), and prod, right,
    # both redeployed on one cluster of one account
    staging = a_deploy("staging", stop_timeout=120, call_seconds=300)
    prod = a_deploy("prod", stop_timeout=900, call_seconds=60)
    assert set(staging.verdicts) == {"forced_kill"}
    assert set(prod.verdicts) == {"graceful"}
    account = staging.points + prod.points

    # WHEN each stack's alarms are evaluated on everything the account's CloudWatch holds
    staging_fired = {f.alarm.name for f in firing(staging.alarms, account)}
    prod_fired = {f.alarm.name for f in firing(prod.alarms, account)}

    # THEN staging pages for its own kills and dropped calls, and prod pages for nothing
    assert {"staging-forced-kills", "staging-dropped-sessions"} <= staging_fired
    assert prod_fired == set()
    # AND each stack's task-state rule takes its own workers' events, never the other's
    assert staging.task_events and prod.task_events
    assert all(staging.task_state_route.matches(e) for e in staging.task_events)
    assert not any(prod.task_state_route.matches(e) for e in staging.task_events)
    assert not any(staging.task_state_route.matches(e) for e in prod.task_events)
