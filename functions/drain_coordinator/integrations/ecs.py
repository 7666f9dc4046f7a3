"""ECS: which container instance an EC2 instance is, put it in DRAINING, list its worker tasks."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from drain_coordinator.domain.probe import WorkerTask
from drain_coordinator.integrations.aws_clients import describe_error

# ECS_CONTAINER_STOP_TIMEOUT's default on the EC2 launch type, used for a container without its
# own stopTimeout: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-config.html
DEFAULT_STOP_TIMEOUT = 30
_DESCRIBE_BATCH = 100  # DescribeTasks / DescribeContainerInstances take at most 100 ids
_DESCRIBE_SERVICES_BATCH = 10  # DescribeServices takes at most 10 services


class EcsError(Exception):
    """ECS refused or failed a call after retries."""


class EcsCluster:
    def __init__(
        self,
        client: Any,
        cluster: str,
        worker_task_family: str = "",
        *,
        host_stop_timeout: int = DEFAULT_STOP_TIMEOUT,
        worker_container: str = "",
    ) -> None:
        self._client = client
        self.cluster = cluster
        self._family = worker_task_family
        self._host_stop_timeout = host_stop_timeout
        self._worker_container = worker_container
        self._stop_timeouts: dict[str, int] = {}
        self._statuses: dict[str, str] = {}  # container instance ARN -> status, as last described
        self._strategies: dict[str, str] = {}  # service name -> REPLICA | DAEMON

    def container_instance_of(self, ec2_instance_id: str) -> str | None:
        """The container instance ARN registered for this EC2 instance, if any."""
        try:
            arns = list(self._list_container_instances(f"ec2InstanceId == {ec2_instance_id}"))
            for batch in _batches(arns):
                described = self._client.describe_container_instances(
                    cluster=self.cluster, containerInstances=batch
                )
                for ci in described.get("containerInstances", []):
                    # Checked here too: the filter narrows the list on AWS, the match decides.
                    if ci.get("ec2InstanceId") == ec2_instance_id:
                        arn = str(ci["containerInstanceArn"])
                        self._statuses[arn] = str(ci.get("status", ""))
                        return arn
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "find the container instance")) from exc
        return None

    def drain(self, container_instance_arn: str) -> None:
        """DRAINING: ECS stops placing tasks here and stops service tasks (SIGTERM, then stopTimeout).

        Nothing to do when it is DRAINING already (ECS managed draining, the agent's Spot
        draining or an operator set it first): AWS accepts DRAINING from ACTIVE only and refuses
        it otherwise. https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateContainerInstancesState.html
        A refusal because it became DRAINING meanwhile is retried by the caller, which then finds
        it DRAINING."""
        if self._statuses.get(container_instance_arn) == "DRAINING":
            return
        try:
            response = self._client.update_container_instances_state(
                cluster=self.cluster, containerInstances=[container_instance_arn], status="DRAINING"
            )
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "set DRAINING")) from exc
        failures = response.get("failures", [])
        if failures:
            raise EcsError(f"set DRAINING failed: {failures[0].get('reason', 'unknown')}")
        self._statuses[container_instance_arn] = "DRAINING"

    def activate(self, container_instance_arn: str) -> bool:
        """ACTIVE again, from DRAINING: ECS places tasks on it once more. True when it was set,
        False when it was not DRAINING (as last described by `container_instance_of`).

        An instance a scale-in sent back to a warm pool keeps its container instance, DRAINING as
        the drain left it: the stopped instance's agent disconnects and reconnects with its saved
        registration when the instance starts, and nothing sets the status back
        (https://github.com/aws/amazon-ecs-agent/issues/3000; ECS documents ReuseOnScaleIn as
        unsupported for this reason: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-warm-pool.html).
        https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateContainerInstancesState.html"""
        if self._statuses.get(container_instance_arn) != "DRAINING":
            return False
        try:
            response = self._client.update_container_instances_state(
                cluster=self.cluster, containerInstances=[container_instance_arn], status="ACTIVE"
            )
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "set ACTIVE")) from exc
        failures = response.get("failures", [])
        if failures:
            raise EcsError(f"set ACTIVE failed: {failures[0].get('reason', 'unknown')}")
        self._statuses[container_instance_arn] = "ACTIVE"
        return True

    def worker_tasks_on(self, container_instance_arn: str) -> tuple[WorkerTask, ...]:
        """Worker tasks on the instance that have not stopped yet (running or stopping)."""
        try:
            arns: list[str] = []
            # ListTasks lists desiredStatus RUNNING unless told otherwise; a stopping task has
            # desiredStatus STOPPED while it still runs, so ask for both.
            for desired in ("RUNNING", "STOPPED"):
                kwargs: dict[str, str] = {
                    "cluster": self.cluster,
                    "containerInstance": container_instance_arn,
                    "desiredStatus": desired,
                }
                if self._family:
                    kwargs["family"] = self._family
                for page in self._client.get_paginator("list_tasks").paginate(**kwargs):
                    arns.extend(page.get("taskArns", []))
            tasks = self._described_workers(arns)
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "list the instance's tasks")) from exc
        return tuple(sorted(tasks, key=lambda t: t.arn))

    def describe_workers(self, task_arns: Collection[str]) -> dict[str, WorkerTask]:
        """These tasks as ECS sees them now, those not stopped yet: DescribeTasks, 100 to a
        request, for all the drains of a tick at once. A task ECS no longer knows (STOPPED tasks
        stay visible about an hour) or that has stopped is left out.

        Enough for a DRAINING instance, which gets no new task: "Amazon ECS prevents new tasks
        from being scheduled for placement on the container instance".
        https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html
        https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html"""
        try:
            return {t.arn: t for t in self._described_workers(task_arns)}
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "describe the drains' tasks")) from exc

    def describe_tasks(self, task_arns: Collection[str]) -> dict[str, dict[str, Any]]:
        """Task ARN -> ECS's description, 100 to a DescribeTasks request; a task ECS no longer
        knows is left out (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html)."""
        try:
            return {str(t["taskArn"]): t for t in self._described(task_arns)}
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "describe tasks")) from exc

    def _described(self, task_arns: Collection[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for batch in _batches(sorted(set(task_arns))):
            out += [
                dict(t)
                for t in self._client.describe_tasks(cluster=self.cluster, tasks=batch).get("tasks", [])
            ]
        return out

    def _described_workers(self, task_arns: Collection[str]) -> list[WorkerTask]:
        running = [t for t in self._described(task_arns) if t.get("lastStatus") != "STOPPED"]
        daemons = self._daemon_services({_service_of(t) for t in running} - {""})
        return [
            WorkerTask(
                arn=str(task["taskArn"]),
                last_status=str(task.get("lastStatus", "UNKNOWN")),
                desired_status=str(task.get("desiredStatus", "UNKNOWN")),
                group=str(task.get("group", "")),
                daemon=_service_of(task) in daemons,
            )
            for task in running
        ]

    def _daemon_services(self, services: set[str]) -> set[str]:
        """Which of these services use the DAEMON scheduling strategy (a service keeps its
        strategy for life, so each is asked about once per cold start)."""
        unknown = sorted(services - set(self._strategies))
        for start in range(0, len(unknown), _DESCRIBE_SERVICES_BATCH):
            batch = unknown[start : start + _DESCRIBE_SERVICES_BATCH]
            answer = self._client.describe_services(cluster=self.cluster, services=batch)
            for service in answer.get("services", []):
                self._strategies[str(service["serviceName"])] = str(service.get("schedulingStrategy", ""))
        return {s for s in services if self._strategies.get(s) == "DAEMON"}

    def stop_timeout_of(self, task_definition_arn: str) -> int:
        """Seconds from SIGTERM to SIGKILL for the task's worker: its container's `stopTimeout`,
        else the hosts' ECS_CONTAINER_STOP_TIMEOUT. Without a container of the worker's name, the
        largest over the task's containers (each with the same fallback)."""
        if task_definition_arn in self._stop_timeouts:
            return self._stop_timeouts[task_definition_arn]
        try:
            answer = self._client.describe_task_definition(taskDefinition=task_definition_arn)
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "read the task definition")) from exc
        containers = answer["taskDefinition"].get("containerDefinitions", [])
        worker = [c for c in containers if c.get("name") == self._worker_container]
        timeout = max(
            (int(c.get("stopTimeout", self._host_stop_timeout)) for c in worker or containers),
            default=self._host_stop_timeout,
        )
        self._stop_timeouts[task_definition_arn] = timeout  # a task definition revision never changes
        return timeout

    def describe_task(self, task_arn: str) -> dict[str, Any] | None:
        try:
            answer = self._client.describe_tasks(cluster=self.cluster, tasks=[task_arn])
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "describe a task")) from exc
        tasks = answer.get("tasks", [])
        return dict(tasks[0]) if tasks else None

    def ec2_instance_of(self, container_instance_arn: str) -> str | None:
        try:
            answer = self._client.describe_container_instances(
                cluster=self.cluster, containerInstances=[container_instance_arn]
            )
        except (ClientError, BotoCoreError) as exc:
            raise EcsError(describe_error(exc, "describe a container instance")) from exc
        found = answer.get("containerInstances", [])
        return str(found[0]["ec2InstanceId"]) if found else None

    def _list_container_instances(self, query: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_container_instances")
        for page in paginator.paginate(cluster=self.cluster, filter=query):
            yield from page.get("containerInstanceArns", [])


def _service_of(task: dict[str, Any]) -> str:
    group = str(task.get("group", ""))
    return group.removeprefix("service:") if group.startswith("service:") else ""


def _batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _DESCRIBE_BATCH):
        yield items[start : start + _DESCRIBE_BATCH]
