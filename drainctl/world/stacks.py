"""Another livekit-drain stack in the same local world: the same account, the same moto server,
the same ECS cluster and LiveKit, with resources of its own (functions, drain table, terminate hook
on its own group, alarms, the `Stack` dimension of its metrics, a task-state rule for its own
workers), made from the same `template.yaml` under its own stack name and parameters.

Lambda gives every function an execution environment of its own; the local world runs every
handler in one process, so each stack keeps what its functions built at their cold start
(`wiring.Built`) and their environment variables, and an invocation of its functions runs with
those in place (`entered`). Its invocations must not overlap another stack's: the world's
concurrent invocations (hostile.py's processes) are of one stack.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drain_coordinator import wiring
from drain_coordinator.observability import metrics
from drainctl.template import FunctionRoute, Template, load_template
from drainctl.world.aws import TerminateHook
from drainctl.world.schedules import scheduled_event

if TYPE_CHECKING:
    from drainctl.world.world import Delivery, World


class StackBuildError(Exception):
    """Another stack cannot be built into this world as asked."""


@dataclass
class OtherStack:
    """One more stack of the world's account; the world delivers events to its routes too."""

    name: str
    group_name: str
    template: Template
    params: dict[str, str]
    table_name: str
    hook_name: str
    hook_heartbeat_timeout: int
    routes: list[FunctionRoute]
    schedule: FunctionRoute
    period: int
    next_tick: float
    env: dict[str, str]
    built: wiring.Built
    # Powertools Metrics' default dimensions in this stack's environment (its `Stack`).
    metric_dimensions: dict[str, str] = field(default_factory=dict)
    # Every invocation of this stack's functions (they are in the world's deliveries too).
    deliveries: list[Delivery] = field(default_factory=list)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """This stack's execution environment in place: its variables and what it built."""
        saved_env = {name: os.environ.get(name) for name in self.env}
        saved_built = wiring.current()
        saved_dimensions = dict(metrics.default_dimensions)
        os.environ.update(self.env)
        wiring.restore(self.built)
        _set_default_dimensions(self.metric_dimensions)
        try:
            yield
        finally:
            self.built = wiring.current()
            self.metric_dimensions = dict(metrics.default_dimensions)
            wiring.restore(saved_built)
            _set_default_dimensions(saved_dimensions)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def invoke(self, world: World, route: FunctionRoute, event: Mapping[str, Any]) -> Delivery:
        """One of this stack's functions, invoked as EventBridge or its schedule would."""
        with self.entered():
            delivery = world._invoke(route, event)
        self.deliveries.append(delivery)
        return delivery

    def ticks_due(self, world: World, now: float) -> list[Delivery]:
        """This stack's reconcile schedule, when its period has come."""
        if now < self.next_tick:
            return []
        self.next_tick += self.period
        event = scheduled_event(
            self.schedule,
            scheduled_time=datetime.fromtimestamp(now, tz=UTC),
            execution_id=f"{self.name}-{int(now)}",
        )
        return [self.invoke(world, self.schedule, event)]

    def create_fleet(
        self, world: World, instances: int, workers_per_instance: int, services: Sequence[str]
    ) -> list[str]:
        """This stack's group (with its terminate hook), its instances registered in the world's
        one cluster, each running `workers_per_instance` tasks of each of `services`."""
        instance_ids = world.aws.create_group_with_instances(
            self.group_name,
            instances,
            terminate_hook=TerminateHook(
                name=self.hook_name, heartbeat_timeout=self.hook_heartbeat_timeout, default_result="CONTINUE"
            ),
        )
        for instance_id in instance_ids:
            container_instance = world.ecs.register_instance(instance_id)
            world.fleet.instances[container_instance] = instance_id
            for name in services:
                spec = world.services[name]
                for _ in range(workers_per_instance):
                    world.fleet.add_worker(
                        instance_id,
                        container_instance,
                        spec.task_definition,
                        drain_timeout=spec.drain_timeout,
                        stop_timeout=spec.stop_timeout,
                        service=spec.name,
                    )
        return instance_ids


def _set_default_dimensions(dimensions: Mapping[str, str]) -> None:
    """Powertools Metrics as another environment left it. Between invocations nothing is pending
    (each handler flushes its metrics), so the dimensions of the last one are cleared too."""
    metrics.clear_default_dimensions()
    if not metrics.metric_set:
        metrics.clear_metrics()
    if dimensions:
        metrics.set_default_dimensions(**dimensions)


def add_stack(
    world: World, name: str, *, group_name: str, params: Mapping[str, str] | None = None
) -> OtherStack:
    """Deploy another stack of `template.yaml` into `world`: named `name`, on `group_name`, with
    the world's cluster and LiveKit (its own secret holding the same keys)."""
    if name == world.config.stack_name or any(s.name == name for s in world.stacks):
        raise StackBuildError(f"a stack named {name!r} is already in this world")
    if group_name == world.config.group_name or any(s.group_name == group_name for s in world.stacks):
        raise StackBuildError(f"the group {group_name!r} already has a stack's hook in this world")
    cfg = world.config
    secret_arn = str(
        world.aws.client("secretsmanager").create_secret(
            Name=f"{name}/livekit",
            SecretString=json.dumps(
                {"api_key": world.livekit.api_key, "api_secret": world.livekit.api_secret}
            ),
        )["ARN"]
    )
    base = load_template(world.template.path)
    values = base.parameters(
        {
            **(params or {}),
            "ClusterName": cfg.cluster,
            "AutoScalingGroupName": group_name,
            "LiveKitUrl": world.livekit.url,
            "LiveKitSecretArn": secret_arn,
        }
    )
    pseudo = {"AWS::StackName": name}
    hook = base.with_context(params=values, pseudo=pseudo).resource("TerminateLifecycleHook")
    hook_name = str(hook["LifecycleHookName"])
    table_name = f"{name}-DrainTable"
    names = {logical_id: f"{name}-{logical_id}" for logical_id in base.logical_ids()}
    template = base.with_context(
        params=values,
        resource_names={**names, "DrainTable": table_name, "TerminateLifecycleHook": hook_name},
        attributes={
            "DeadLetterQueue.Arn": f"arn:aws:sqs:{cfg.region}:{cfg.account}:{name}-DeadLetterQueue",
            "DeadLetterQueue.QueueName": f"{name}-DeadLetterQueue",
            "WorkQueue.Arn": f"arn:aws:sqs:{cfg.region}:{cfg.account}:{name}-work",
            "WorkQueue.QueueName": f"{name}-work",
            "ReconcileScheduleRole.Arn": f"arn:aws:iam::{cfg.account}:role/{name}-reconcile-schedule",
        },
        pseudo=pseudo,
    )
    world._create_table(template, table_name)
    routes = template.function_routes()
    schedule = next(r for r in routes if r.kind == "ScheduleV2")
    stack = OtherStack(
        name=name,
        group_name=group_name,
        template=template,
        params=values,
        table_name=table_name,
        hook_name=hook_name,
        hook_heartbeat_timeout=int(hook["HeartbeatTimeout"]),
        # Its reconcile runs on its own schedule; the rest are EventBridge rules.
        routes=[r for r in routes if r.kind == "EventBridgeRule"],
        schedule=schedule,
        period=world.period,
        next_tick=world.clock.now() + world.period,
        env=world.lambda_env(template),
        built=wiring.Built(clock=world.clock.now),
    )
    world.stacks.append(stack)
    return stack
