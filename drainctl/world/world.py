"""The local world: moto (Auto Scaling with lifecycle actions, ECS, DynamoDB, Secrets Manager),
a LiveKit RoomService, a virtual clock and a fleet, wired to the real handlers by the template's
own event routes.

Resources are created from `template.yaml`'s definitions (the table's keys and index, the hook's
timeouts, the functions' environment and event patterns), so the world cannot drift from what
`sam deploy` would create.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from moto.backends import get_backend
from moto.moto_api._internal import mock_random

from drain_coordinator import wiring
from drain_coordinator.domain.records import DrainRecord
from drainctl.template import FunctionRoute, Template, load_template
from drainctl.world.alarms import Firing, alarm_specs, datapoints, firing
from drainctl.world.aws import ACCOUNT_ID, REGION, LocalAws, TerminateHook
from drainctl.world.clock import VirtualClock
from drainctl.world.ecs import WORKER_CONTAINER, LocalEcs
from drainctl.world.fleet import DEFAULT_SERVICE, DeploymentConfiguration, Fleet, Worker, WorkerState
from drainctl.world.hostile import (
    AWS_RATE_LIMITS,
    LIVEKIT_RATE_LIMIT,
    ClientSide,
    Hostility,
    RateLimits,
    ServerSide,
    handlers_session,
    virtual_botocore,
)
from drainctl.world.lambda_runtime import LocalLambda, current_invocation
from drainctl.world.lifecycle_actions import TERMINATED
from drainctl.world.livekit_server import LocalLiveKit
from drainctl.world.scheduler import ProcessResult, VirtualTime
from drainctl.world.schedules import scheduled_event
from drainctl.world.spot import SpotInterruptions
from drainctl.world.sqs_source import SqsEventSource, run_with_sources
from drainctl.world.stacks import OtherStack, add_stack
from drainctl.world.webhooks import WEBHOOK_FUNCTION, LiveKitWebhookSender, decoded_response

STACK_NAME = "livekit-drain"
CAPACITY_REBALANCE_SECONDS = 60  # the new instance launched and in service before the old goes
ECS_MANAGED_DRAINING_HOOK = "ecs-managed-draining-termination-hook"
WORKER_FAMILY = "livekit-agent"
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours)\)$")


def default_template_path() -> Path:
    here = Path.cwd() / "template.yaml"
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / "template.yaml"


@dataclass
class WorldConfig:
    template: Path | None = None  # None: ./template.yaml, else the project's own
    params: Mapping[str, str] = field(default_factory=dict)
    group_name: str = "livekit-agents-asg"
    hook_name: str | None = None  # None: the template's own name for the hook
    cluster: str = "livekit-agents"
    start: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    seed: int = 7
    # LiveKit sends signed webhooks to the template's WebhookFunction (when it has one).
    livekit_webhooks: bool = True
    # Where the world's AWS resources live: moto serves any region and account (a replayed
    # event's own, so its ARNs are the world's).
    region: str = REGION
    account: str = ACCOUNT_ID
    # The stack's name (AWS::StackName): the prefix of its resources and alarms, and the `Stack`
    # dimension of its metrics. Two worlds of two names are two stacks of one account.
    stack_name: str = STACK_NAME
    worker_family: str = WORKER_FAMILY  # the default service's task definition family


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    task_definition: str
    drain_timeout: int
    stop_timeout: int


@dataclass(frozen=True)
class Delivery:
    """One handler invocation: when, which function, what it reported."""

    t: float
    function: str
    event: Mapping[str, Any]
    result: Any


class World:
    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        self.clock = VirtualClock(self.config.start)
        self.rng = random.Random(self.config.seed)
        self._pending: list[dict[str, Any]] = []
        self.aws = LocalAws(
            self.clock, on_event=self._pending.append, region=self.config.region, account=self.config.account
        )
        # Room and join times on the virtual clock, as the handlers see time (a rescue's gap).
        self.livekit = LocalLiveKit(clock=self.clock.now)
        # Concurrency, latency tails, hangs and rate limits on the virtual clock (drainctl/world/
        # hostile.py): off until a test or `drainctl simulate` turns them on.
        self.time = VirtualTime(self.clock)
        # The world's invocations still running past the step that started them (sqs_source.py).
        self._in_flight: list[ProcessResult[object]] = []
        self.hostility = Hostility(seed=self.config.seed)
        self.server_side = ServerSide(
            self.clock,
            RateLimits(self.clock, AWS_RATE_LIMITS),
            RateLimits(self.clock, {"livekit": LIVEKIT_RATE_LIMIT}),
        )
        self.client_side = ClientSide(self.hostility, current_invocation, lambda: self.livekit.url)
        self.aws.request_gate = self.server_side.aws_gate
        self.livekit.request_gate = self.server_side.livekit_gate
        self._installed = contextlib.ExitStack()
        self.spot = SpotInterruptions(
            self.clock.now,
            self._pending.append,
            lambda: str(uuid.UUID(int=self.rng.getrandbits(128))),
            region=self.config.region,
            account=self.config.account,
        )
        self.spot.on_rebalance = self._capacity_rebalance
        # Capacity Rebalancing's pending terminations: (when, instance id)
        self._rebalancing: list[tuple[float, str]] = []
        self.lambdas = LocalLambda(self.clock.now, self.time, on_timeout=self._cold_start)
        self.deliveries: list[Delivery] = []
        self.unrouted: list[dict[str, Any]] = []
        self._saved_env: dict[str, str | None] = {}
        self._started = False
        self._ecs: LocalEcs | None = None
        self.webhooks: LiveKitWebhookSender[Delivery] | None = None
        # More stacks on this account and cluster (drainctl/world/stacks.py), beside this one.
        self.stacks: list[OtherStack] = []

    # -- lifetime --------------------------------------------------------------------------------

    def __enter__(self) -> World:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.aws.start()
        self.livekit.start()
        self._started = True
        try:
            # Before any handler client exists: clients copy their session's hooks when built.
            self.botocore_waits = self._installed.enter_context(
                virtual_botocore(self.clock, self.time, current_invocation, self.config.seed)
            )
            self._installed.enter_context(self.client_side.installed_on(handlers_session()))
            self._installed.enter_context(self.client_side.installed_on_aiohttp())
            self._build()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if not self._started:
            return
        # Invocations still under way (an advance batch outliving its step) end first.
        self.time.finish()
        self._started = False
        self._installed.close()
        wiring.reset()
        self._restore_env()
        if self._ecs is not None:
            self._ecs.close()
        self.livekit.stop()
        self.aws.stop()

    # -- building --------------------------------------------------------------------------------

    def _build(self) -> None:
        cfg = self.config
        # moto's ids (task ARNs, container instances, tokens) come from its own generator:
        # seeded, a replay prints the same lines every time.
        mock_random.seed(cfg.seed)
        secret_arn = self._create_secret()
        base = load_template(cfg.template or default_template_path())
        self.params = base.parameters(
            {
                **cfg.params,
                "ClusterName": cfg.cluster,
                "AutoScalingGroupName": cfg.group_name,
                "LiveKitUrl": self.livekit.url,
                "LiveKitSecretArn": secret_arn,
            }
        )
        hook = base.with_context(params=self.params).resource("TerminateLifecycleHook")
        self.hook_name = cfg.hook_name or str(hook["LifecycleHookName"])
        # With WarmPoolReuse the stack also puts a launch hook on the group (a warm pool's
        # instances come back through it): its name as the function is told it.
        self.launch_hook_name = ""
        self.launch_hook_heartbeat_timeout = 0
        if (
            "LaunchLifecycleHook" in base.logical_ids()
            and base.resolve({"Fn::If": ["WarmPoolReuseOn", "true", "false"]}, self.params) == "true"
        ):
            launch_hook = base.with_context(
                params=self.params, pseudo={"AWS::StackName": cfg.stack_name}
            ).resource("LaunchLifecycleHook")
            self.launch_hook_name = str(launch_hook["LifecycleHookName"])
            self.launch_hook_heartbeat_timeout = int(launch_hook["HeartbeatTimeout"])
        self.hook_heartbeat_timeout = int(hook["HeartbeatTimeout"])
        self.hook_default_result = str(hook["DefaultResult"])
        self.table_name = f"{cfg.stack_name}-DrainTable"
        # Physical names the local world gives what it does not create itself.
        names = {logical_id: f"{cfg.stack_name}-{logical_id}" for logical_id in base.logical_ids()}
        names.update(
            {
                "DrainTable": self.table_name,
                "TerminateLifecycleHook": self.hook_name,
                "LaunchLifecycleHook": self.launch_hook_name,
            }
        )
        attributes = {
            "DeadLetterQueue.Arn": f"arn:aws:sqs:{cfg.region}:{cfg.account}:{cfg.stack_name}-DeadLetterQueue",
            "DeadLetterQueue.QueueName": f"{cfg.stack_name}-DeadLetterQueue",
            "WorkQueue.Arn": f"arn:aws:sqs:{cfg.region}:{cfg.account}:{cfg.stack_name}-work",
            "WorkQueue.QueueName": f"{cfg.stack_name}-work",
            "ReconcileScheduleRole.Arn": f"arn:aws:iam::{cfg.account}:role/reconcile-schedule",
        }

        def context(resource_names: Mapping[str, str]) -> Template:
            return base.with_context(
                params=self.params,
                resource_names=resource_names,
                attributes=attributes,
                pseudo={"AWS::StackName": cfg.stack_name},
            )

        # The queues first: `Ref` to a queue is its URL, which only the created queue has.
        self.queue_urls = self._create_queues(context(names), attributes)
        self.template: Template = context({**names, **self.queue_urls})
        self._create_table()
        self.ecs = self._ecs = LocalEcs(self.aws, cfg.cluster)
        self.ecs.create_cluster()
        self.drain_timeout = int(self.params["WorkerDrainTimeout"])
        self.stop_timeout = int(self.params["WorkerStopTimeout"])
        self.task_definition = self.ecs.register_worker_definition(
            cfg.worker_family, stop_timeout=self.stop_timeout, drain_timeout=self.drain_timeout
        )
        self.fleet = Fleet(self.ecs, self.livekit, self.rng)
        self.fleet.on_task_change = self._task_changed
        self.aws.on_host = self._host_changed
        self.livekit.dispatcher = self.fleet.dispatch  # rescue jobs land on available workers
        self.services: dict[str, ServiceSpec] = {
            DEFAULT_SERVICE: ServiceSpec(
                DEFAULT_SERVICE, self.task_definition, self.drain_timeout, self.stop_timeout
            )
        }
        self.routes: list[FunctionRoute] = self.template.function_routes()
        self.event_sources = [
            SqsEventSource(
                route,
                self.queue_urls[route.queue],
                str(attributes[f"{route.queue}.Arn"]),
                cfg.region,
                self.aws.client("sqs"),
                self._invoke_result,
                self.time,
            )
            for route in self.routes
            if route.kind == "SQS" and route.queue is not None
        ]
        self.schedule = next(r for r in self.routes if r.kind == "ScheduleV2")
        self.period = _period_seconds(self.schedule.schedule_expression or "rate(1 minute)")
        self._next_tick = self.clock.now() + self.period
        self._set_lambda_env()
        if cfg.livekit_webhooks and WEBHOOK_FUNCTION in base.logical_ids():
            self.webhooks = LiveKitWebhookSender(
                api_key=self.livekit.api_key,
                api_secret=self.livekit.api_secret,
                clock=self.clock.now,
                send=lambda request: self.invoke_url(WEBHOOK_FUNCTION, request),
                seed=cfg.seed,
            )
            self.livekit.on_room_event = self.webhooks.on_room_event

    def _create_secret(self) -> str:
        answer = self.aws.client("secretsmanager").create_secret(
            Name=f"{self.config.stack_name}/livekit",
            SecretString=json.dumps({"api_key": self.livekit.api_key, "api_secret": self.livekit.api_secret}),
        )
        return str(answer["ARN"])

    def _create_queues(self, template: Template, attributes: Mapping[str, Any]) -> dict[str, str]:
        """The template's SQS queues, with the attributes that shape delivery (visibility,
        retention, redrive); dead-letter targets before the queues that name them."""
        sqs = self.aws.client("sqs")
        urls: dict[str, str] = {}
        queues = template.logical_ids("AWS::SQS::Queue")
        for logical_id in sorted(queues, key=lambda q: "RedrivePolicy" in template.resource(q)):
            props = template.resource(logical_id)
            name = str(props.get("QueueName") or attributes[f"{logical_id}.QueueName"])
            queue_attributes: dict[str, str] = {
                key: str(props[key])
                for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
                if key in props
            }
            if "RedrivePolicy" in props:
                queue_attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            urls[logical_id] = str(sqs.create_queue(QueueName=name, Attributes=queue_attributes)["QueueUrl"])
        return urls

    def _create_table(self, template: Template | None = None, table_name: str | None = None) -> None:
        """The stack's drain table (another stack's, given its template and table name)."""
        props = (template or self.template).resource("DrainTable")
        table_name = table_name or self.table_name
        dynamodb = self.aws.client("dynamodb")
        kwargs: dict[str, Any] = {
            "TableName": table_name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if "GlobalSecondaryIndexes" in props:
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("SSESpecification", {}).get("SSEEnabled"):
            kwargs["SSESpecification"] = {"Enabled": True}
        dynamodb.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl["Enabled"]),
                },
            )

    def _set_lambda_env(self) -> None:
        env = self.lambda_env(self.template)
        for name, value in env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        # A new cold start: settings, clients and the cached secret are read afresh.
        _forget_cached_secrets()
        wiring.reset(clock=self.clock.now)

    def lambda_env(self, template: Template) -> dict[str, str]:
        """A stack's functions' environment in the local world: the template's, and the local AWS."""
        # One process runs every function: it gets the union of their environments, which the
        # template keeps free of clashes (one name, one value, in every function that has it).
        env: dict[str, str] = {}
        for logical_id in template.logical_ids("AWS::Serverless::Function"):
            for name, value in template.environment(logical_id).items():
                if env.setdefault(name, value) != value:
                    raise ValueError(
                        f"{logical_id} sets {name} to {value!r}, another function to {env[name]!r}"
                    )
        env.update(
            {
                "AWS_ENDPOINT_URL": self.aws.endpoint_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": self.config.region,
                "AWS_REGION": self.config.region,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_DEV": "false",
            }
        )
        return env

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        _forget_cached_secrets()

    def _cold_start(self) -> None:
        """After a timed-out invocation Lambda replaces the execution environment."""
        _forget_cached_secrets()
        wiring.reset(clock=self.clock.now)

    @property
    def throttle(self) -> bool:
        """AWS's and LiveKit's per-account rate limits answer the handlers' requests."""
        return self.server_side.aws_limits.enabled

    @throttle.setter
    def throttle(self, on: bool) -> None:
        self.server_side.aws_limits.enabled = on
        self.server_side.livekit_limits.enabled = on

    # -- the fleet -------------------------------------------------------------------------------

    def add_service(self, name: str, *, drain_timeout: int, stop_timeout: int) -> ServiceSpec:
        """Another ECS service of workers, with its own task definition and timers."""
        definition = self.ecs.register_worker_definition(
            f"{name}-worker", stop_timeout=stop_timeout, drain_timeout=drain_timeout
        )
        spec = ServiceSpec(name, definition, drain_timeout, stop_timeout)
        self.services[name] = spec
        return spec

    def add_stack(self, name: str, *, group_name: str, params: Mapping[str, str] | None = None) -> OtherStack:
        """Another stack of the same template beside this one: this world's account, cluster and
        LiveKit, its own functions, table, hook on `group_name`, alarms and metrics (stacks.py)."""
        return add_stack(self, name, group_name=group_name, params=params)

    def configure_deployment(
        self,
        service: str,
        *,
        minimum_healthy_percent: int = 100,
        maximum_percent: int = 200,
        health_delay_seconds: float = 0.0,
        slots_per_instance: int | None = None,
    ) -> DeploymentConfiguration:
        """Run `service` under the ECS service scheduler (fleet.py): replacements placed and
        healthy before old tasks stop, on a DRAINING instance and in a deploy alike.
        `slots_per_instance` is how many worker tasks an instance has room for (None: any)."""
        config = DeploymentConfiguration(minimum_healthy_percent, maximum_percent, health_delay_seconds)
        self.fleet.deployments[service] = config
        self.fleet.slots_per_instance = slots_per_instance
        return config

    def deploy(self, service: str, now: float | None = None) -> list[Worker]:
        """A rolling deploy. Under a deployment configuration the service scheduler replaces each
        old worker (placed, healthy, then the old one told to stop). Without one, each old worker
        gets a replacement on its instance first, at once healthy, then is told to stop. Returns
        the old workers."""
        spec = self.services[service]
        at = self.clock.now() if now is None else now
        old = [w for w in self.fleet.workers.values() if w.service == service and w.live]
        if service in self.fleet.deployments:
            for worker in old:
                self.fleet.doom(worker, at)
            return old
        for worker in old:
            self._add_worker(worker.instance_id, worker.container_instance_arn, spec)
        for worker in old:
            self.fleet.sigterm(worker, at, f"Scaling activity initiated by (deployment ecs-svc/{service})")
        return old

    def create_fleet(
        self, instances: Sequence[str] | int, workers_per_instance: int = 1, services: Sequence[str] = ()
    ) -> list[str]:
        """The group's instances, each registered in the cluster and running worker tasks
        (`workers_per_instance` of each service; the default service when none is named)."""
        instance_ids = self.aws.create_group_with_instances(
            self.config.group_name,
            instances,
            terminate_hook=TerminateHook(
                name=self.hook_name,
                heartbeat_timeout=self.hook_heartbeat_timeout,
                default_result="ABANDON" if self.hook_default_result == "ABANDON" else "CONTINUE",
            ),
        )
        if self.launch_hook_name:
            self.aws.client("autoscaling").put_lifecycle_hook(
                LifecycleHookName=self.launch_hook_name,
                AutoScalingGroupName=self.config.group_name,
                LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                HeartbeatTimeout=self.launch_hook_heartbeat_timeout,
                DefaultResult="CONTINUE",
            )
        self._register(instance_ids, workers_per_instance, services)
        return instance_ids

    def add_instances(
        self, count: int, workers_per_instance: int = 1, services: Sequence[str] = ()
    ) -> list[str]:
        """`count` more instances in the group `create_fleet` made (a scale-out: SetDesiredCapacity
        over HTTP, MaxSize raised to fit), registered in the cluster and running worker tasks as
        there. Returns the new ids."""
        autoscaling = self.aws.client("autoscaling")
        name = self.config.group_name

        def group() -> dict[str, Any]:
            found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
                "AutoScalingGroups"
            ]
            return dict(found[0])

        before = group()
        known = {i["InstanceId"] for i in before["Instances"]}
        desired = int(before["DesiredCapacity"]) + count
        if desired > int(before["MaxSize"]):
            autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, MaxSize=desired)
        autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=desired)
        added = [i["InstanceId"] for i in group()["Instances"] if i["InstanceId"] not in known]
        self._register(added, workers_per_instance, services)
        return added

    def _register(
        self, instance_ids: Sequence[str], workers_per_instance: int, services: Sequence[str]
    ) -> None:
        for instance_id in instance_ids:
            container_instance = self.ecs.register_instance(instance_id)
            self.fleet.instances[container_instance] = instance_id
            for name in services or [DEFAULT_SERVICE]:
                for _ in range(workers_per_instance):
                    self._add_worker(instance_id, container_instance, self.services[name])

    def start_workers(self, service: str, instance_ids: Sequence[str], per_instance: int) -> list[Worker]:
        """More worker tasks of a service on running instances (the service scaling out)."""
        started = []
        for instance_id in instance_ids:
            container_instance = next(w.container_instance_arn for w in self.workers_on(instance_id))
            for _ in range(per_instance):
                started.append(self._add_worker(instance_id, container_instance, self.services[service]))
        return started

    def _add_worker(self, instance_id: str, container_instance: str, spec: ServiceSpec) -> Worker:
        return self.fleet.add_worker(
            instance_id,
            container_instance,
            spec.task_definition,
            drain_timeout=spec.drain_timeout,
            stop_timeout=spec.stop_timeout,
            service=spec.name,
        )

    def _task_changed(self, worker: Worker, now: float) -> None:
        self._pending.append(self.task_state_event(worker, now))

    def task_state_event(self, worker: Worker, now: float) -> dict[str, Any]:
        """The "ECS Task State Change" EventBridge would carry for this worker's task now."""
        stopped = worker.state is WorkerState.STOPPED
        container: dict[str, Any] = {
            "containerArn": f"{worker.task_arn.replace(':task/', ':container/')}/{WORKER_CONTAINER}",
            "lastStatus": "STOPPED" if stopped else "RUNNING",
            "name": WORKER_CONTAINER,
            "taskArn": worker.task_arn,
        }
        if stopped and worker.exit_code is not None:
            container["exitCode"] = worker.exit_code
        if worker.container_reason:
            container["reason"] = worker.container_reason
        detail: dict[str, Any] = {
            "clusterArn": f"arn:aws:ecs:{self.config.region}:{self.config.account}:cluster/{self.config.cluster}",
            "containerInstanceArn": worker.container_instance_arn,
            "containers": [container],
            "desiredStatus": "STOPPED",
            "group": f"service:{worker.service}" if worker.service else f"family:{self.config.worker_family}",
            "launchType": "EC2",
            "lastStatus": "STOPPED" if stopped else "RUNNING",
            "stoppedReason": worker.stop_reason,
            "stopCode": worker.stop_code or "ServiceSchedulerInitiated",
            "taskArn": worker.task_arn,
            "taskDefinitionArn": worker.task_definition,
            "version": 3 if stopped else 2,
        }
        stopping_at = worker.sigterm_at if worker.sigterm_at is not None else worker.stopped_at
        if stopping_at is not None:
            detail["stoppingAt"] = _iso(stopping_at)
        if stopped and worker.stopped_at is not None:
            detail["stoppedAt"] = _iso(worker.stopped_at)
            detail["executionStoppedAt"] = _iso(worker.stopped_at)
        return {
            "version": "0",
            "id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "detail-type": "ECS Task State Change",
            "source": "aws.ecs",
            "account": self.config.account,
            "time": _iso(now, millis=False),
            "region": self.config.region,
            "resources": [worker.task_arn],
            "detail": detail,
        }

    def enable_managed_draining(self, heartbeat_timeout: int = 3600) -> None:
        """ECS managed instance draining on the group's capacity provider: ECS puts its own
        terminate hook on the group beside ours; on each of its lifecycle actions it sets the
        container instance DRAINING and completes the action once the instance runs no task
        (`_managed_draining`). The heartbeat timeout is the world's choice.
        https://docs.aws.amazon.com/AmazonECS/latest/developerguide/managed-instance-draining.html"""
        self.aws.client("autoscaling").put_lifecycle_hook(
            LifecycleHookName=ECS_MANAGED_DRAINING_HOOK,
            AutoScalingGroupName=self.config.group_name,
            LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
            HeartbeatTimeout=heartbeat_timeout,
            DefaultResult="CONTINUE",
        )
        self._managed_draining_on = True

    def _managed_draining(self) -> None:
        """What ECS does for its own hook's open actions."""
        if not getattr(self, "_managed_draining_on", False):
            return
        for action in self.aws.lifecycle.open_actions():
            if action.hook_name != ECS_MANAGED_DRAINING_HOOK:
                continue
            arns = {a for a, i in self.fleet.instances.items() if i == action.instance_id}
            for arn in arns:
                if self.ecs.instance_status(arn) == "ACTIVE":
                    self.ecs.set_status(arn, "DRAINING")
            if all(w.state is WorkerState.STOPPED for w in self.workers_on(action.instance_id)):
                self.aws.client("autoscaling").complete_lifecycle_action(
                    LifecycleHookName=ECS_MANAGED_DRAINING_HOOK,
                    AutoScalingGroupName=action.group_name,
                    LifecycleActionToken=action.token,
                    LifecycleActionResult="CONTINUE",
                )

    def set_capacity_rebalance(self, enabled: bool = True) -> None:
        """Turn on the group's own Capacity Rebalancing (as UpdateAutoScalingGroup would: moto's
        takes the flag at creation only)."""
        backend = get_backend("autoscaling")[ACCOUNT_ID][REGION]
        backend.autoscaling_groups[self.config.group_name].capacity_rebalance = enabled

    def _capacity_rebalance(self, instance_id: str) -> None:
        """Auto Scaling's own answer to a rebalance recommendation, when the group has Capacity
        Rebalancing on: it launches a replacement at once, then terminates the old instance
        (through its terminate hooks) once the new one is in service.
        https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html"""
        autoscaling = self.aws.client("autoscaling")
        found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
        if not found:
            return
        (group,) = autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[found[0]["AutoScalingGroupName"]]
        )["AutoScalingGroups"]
        if not group.get("CapacityRebalance"):
            return
        autoscaling.set_desired_capacity(
            AutoScalingGroupName=group["AutoScalingGroupName"], DesiredCapacity=group["DesiredCapacity"] + 1
        )
        self._rebalancing.append((self.clock.now() + CAPACITY_REBALANCE_SECONDS, instance_id))

    def _rebalance_due(self, now: float) -> None:
        for due, instance_id in [r for r in self._rebalancing if r[0] <= now]:
            self._rebalancing.remove((due, instance_id))
            with contextlib.suppress(Exception):  # already leaving (Terminating:Wait): nothing to do
                self.aws.terminate_instance(instance_id, should_decrement_desired_capacity=True)

    def _host_changed(self, instance_id: str, running: bool) -> None:
        """An instance stopped into its group's warm pool, or started out of it: its ECS agent
        disconnects or reconnects; its container instance keeps its ARN and status (ecs.py)."""
        for arn, owner in self.fleet.instances.items():
            if owner == instance_id:
                self.ecs.set_agent_connected(arn, running)

    def workers_on(self, instance_id: str) -> list[Worker]:
        return [w for w in self.fleet.workers.values() if w.instance_id == instance_id]

    def terminated_instances(self) -> set[str]:
        """Instances whose host is gone: terminated, reclaimed, or resting in a warm pool (a
        task still on an instance that is stopped stops with it)."""
        return (
            {
                a.instance_id
                for a in self.aws.lifecycle.actions()
                if self.aws.lifecycle.state_of(a.instance_id) == TERMINATED
            }
            | self.spot.reclaimed
            | set(self.aws.warm_pool_instances(self.config.group_name))
        )

    def drain_record(self, instance_id: str) -> DrainRecord | None:
        """The coordinator's own record of an instance's drain, read through its own store."""
        return wiring.coordinator().store.get(instance_id)

    def instance_state(self, instance_id: str) -> str:
        if instance_id in self.spot.reclaimed:
            return TERMINATED
        state = self.aws.lifecycle.state_of(instance_id)
        if state is not None:
            return state
        answer = self.aws.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
        found = answer.get("AutoScalingInstances", [])
        return str(found[0]["LifecycleState"]) if found else "Terminated"

    # -- events and handlers ---------------------------------------------------------------------

    def take_pending_events(self) -> list[dict[str, Any]]:
        events, self._pending[:] = list(self._pending), []
        return events

    def deliver(self, event: Mapping[str, Any]) -> list[Delivery]:
        """Hand an event to every function whose EventBridge rule matches it, as EventBridge would."""
        routes = [r for r in self.routes if r.matches(event)]
        others = [(stack, r) for stack in self.stacks for r in stack.routes if r.matches(event)]
        if not routes and not others:
            self.unrouted.append(dict(event))
            return []
        return [self._invoke(route, event) for route in routes] + [
            stack.invoke(self, route, event) for stack, route in others
        ]

    def invoke_function(self, logical_id: str, event: Mapping[str, Any]) -> Delivery:
        """Invoke a function directly (as `sam local invoke -e` would), whatever its rules say."""
        route = next(r for r in self.routes if r.logical_id == logical_id)
        return self._invoke(route, event)

    def invoke_url(self, logical_id: str, request: Mapping[str, Any]) -> Delivery:
        """Invoke a function through its Function URL; the result is the response, body decoded."""
        handler = str(self.template.body["Resources"][logical_id]["Properties"]["Handler"])
        response = self.lambdas.invoke(logical_id, handler, request, self._timeout_of(logical_id))
        delivery = Delivery(self.clock.now(), logical_id, request, decoded_response(response))
        self.deliveries.append(delivery)
        return delivery

    def tick(self) -> Delivery:
        """One run of the reconcile schedule, with the SQS event sources polled beside it (the
        shards it sends are taken while it runs, as Lambda's pollers would)."""
        ticks: list[Delivery] = []
        run_with_sources(self.time, self.event_sources, [lambda: ticks.append(self._tick())])
        return ticks[0]

    def _tick(self) -> Delivery:
        event = scheduled_event(
            self.schedule,
            scheduled_time=datetime.fromtimestamp(self.clock.now(), tz=UTC),
            execution_id=str(uuid.UUID(int=self.rng.getrandbits(128))),
        )
        return self._invoke(self.schedule, event)

    def _invoke(self, route: FunctionRoute, event: Mapping[str, Any]) -> Delivery:
        timeout = self._timeout_of(route.logical_id)
        result = self.lambdas.invoke(route.logical_id, route.handler, event, timeout)
        delivery = Delivery(self.clock.now(), route.logical_id, event, result)
        self.deliveries.append(delivery)
        return delivery

    def _invoke_result(self, route: FunctionRoute, event: Mapping[str, Any]) -> Any:
        """For an event source: a function error is a delivery too (what Lambda reports)."""
        try:
            return self._invoke(route, event).result
        except Exception as exc:
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            self.deliveries.append(Delivery(self.clock.now(), route.logical_id, event, error))
            raise

    @property
    def next_tick_at(self) -> float:
        """When `step` next runs the reconcile schedule (every period from the world's start)."""
        return self._next_tick

    def settled(self) -> bool:
        """No event waits for its delivery and no invocation is still running."""
        return not self._pending and not self.time.parked

    def alarms_firing(self, since: float | None = None) -> list[Firing]:
        """The template's alarms that the handlers' metrics (since `since`) would set off."""
        invocations = [i for i in self.lambdas.invocations if since is None or i.t >= since]
        return firing(alarm_specs(self.template), datapoints(invocations))

    def _timeout_of(self, logical_id: str) -> float:
        own = self.template.body["Resources"][logical_id].get("Properties", {}).get("Timeout")
        shared = self.template.body.get("Globals", {}).get("Function", {}).get("Timeout", 3)
        return float(self.template.resolve(own if own is not None else shared, self.params))

    # -- time ------------------------------------------------------------------------------------

    def step(self, seconds: float = 1.0) -> list[Delivery]:
        """Advance the clock; move the fleet; apply hook timeouts; deliver events; run the schedule."""
        # Invocations still running from earlier steps go on at their own times up to the step's
        # (a request's latency is not rounded up to the world's one-second step).
        target = self.clock.now() + seconds
        if self.time.parked:
            run_with_sources(self.time, [], [], step=True, in_flight=self._in_flight, until=target)
        now = self.clock.advance(max(0.0, target - self.clock.now()))
        self.aws.expire_due_actions()
        self.spot.reclaim_due(now)
        self._rebalance_due(now)
        self._managed_draining()
        self.fleet.step(now, self.terminated_instances())
        # What AWS runs at the same time runs here as concurrent processes on the virtual clock:
        # EventBridge invokes a function for each event asynchronously, side by side
        # (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html), the schedule
        # starts its tick, Lambda's pollers take the work queue's shards, LiveKit's webhook
        # notifier sends on its workers (drainctl/world/webhooks.py).
        work: list[Callable[[], object]] = [
            partial(self.deliver, event) for event in self.take_pending_events()
        ]
        if self.webhooks is not None and self.webhooks.queued:
            work += self.webhooks.lanes()
        if now >= self._next_tick:
            self._next_tick += self.period
            work.append(self._tick)
        before = len(self.deliveries)
        if work or self.time.parked or any(source.busy for source in self.event_sources):
            run_with_sources(self.time, self.event_sources, work, step=True, in_flight=self._in_flight)
        out = self.deliveries[before:]
        for stack in self.stacks:
            out += stack.ticks_due(self, now)
        self.fleet.step(self.clock.now(), self.terminated_instances())
        return out

    def run(
        self,
        until: Callable[[], bool],
        *,
        limit_seconds: float,
        step_seconds: float = 1.0,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> bool:
        """Step until `until()` holds or `limit_seconds` pass; True when it held."""
        end = self.clock.now() + limit_seconds
        while not until():
            if self.clock.now() >= end:
                return False
            for delivery in self.step(step_seconds):
                if on_delivery:
                    on_delivery(delivery)
        return True


def _iso(epoch: float, *, millis: bool = True) -> str:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _forget_cached_secrets() -> None:
    """Powertools caches secrets and its providers' clients per process: a new world, a new cold start."""
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    parameters_base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]


def _period_seconds(expression: str) -> int:
    found = _RATE.match(expression.strip())
    if not found:
        raise ValueError(f"unsupported schedule expression {expression!r} (rate(N minutes|hours))")
    amount, unit = int(found.group(1)), found.group(2)
    return amount * (3600 if unit.startswith("hour") else 60)
