"""ECS in the local world: moto's ECS, driven the way the ECS agent and scheduler would drive it.

moto serves the ECS API over HTTP (the coordinator reads it through boto3), but it does not run
containers: it advances a task's status each time the task is described. The world pins that
progression and moves tasks itself (RUNNING -> desired STOPPED on SIGTERM -> STOPPED), with the
exit codes and stop reasons ECS documents.
"""

from __future__ import annotations

import json
from typing import Any

from moto.backends import get_backend
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend
from moto.moto_api import state_manager

from drainctl.world.aws import LocalAws

WORKER_CONTAINER = "agent"
_PINNED = {"progression": "manual", "times": 10**12}


_ORIGINAL_UPDATE_STATE = EC2ContainerServiceBackend.update_container_instances_state


def _update_state_from_active_only(
    backend: Any, cluster_str: str, list_container_instance_ids: list[str], status: str
) -> Any:
    """AWS: "A container instance can't be changed to DRAINING until it has reached an ACTIVE
    status. If the instance is in any other status, an error will be received."
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateContainerInstancesState.html
    moto sets any status from any status; DRAINING again (ECS managed draining or the agent's
    Spot draining got there first) is refused here as AWS refuses it."""
    if status.upper() == "DRAINING":
        cluster = backend._get_cluster(cluster_str)
        for arn in list_container_instance_ids:
            instance = backend.container_instances.get(cluster.name, {}).get(arn.split("/")[-1])
            if instance is not None and instance.status != "ACTIVE":
                raise InvalidParameterException(
                    f"Container instance {arn} is in {instance.status} status: only an ACTIVE"
                    " container instance can be set to DRAINING"
                )
    return _ORIGINAL_UPDATE_STATE(backend, cluster_str, list_container_instance_ids, status)


class LocalEcs:
    def __init__(self, aws: LocalAws, cluster: str) -> None:
        self._aws = aws
        self.cluster = cluster
        # Tasks stay where the world puts them; moto would otherwise walk them to STOPPED.
        state_manager.set_transition(model_name="ecs::task", transition=_PINNED)
        EC2ContainerServiceBackend.update_container_instances_state = _update_state_from_active_only  # type: ignore[method-assign,assignment]

    def close(self) -> None:
        state_manager.unset_transition(model_name="ecs::task")
        EC2ContainerServiceBackend.update_container_instances_state = _ORIGINAL_UPDATE_STATE  # type: ignore[method-assign]

    @property
    def aws(self) -> LocalAws:
        return self._aws

    def set_status(self, container_instance_arn: str, status: str) -> None:
        """Someone else set the container instance's status (ECS managed draining, the agent's
        Spot draining, an operator, a warm pool's instance registering again)."""
        instance_id = container_instance_arn.rsplit("/", 1)[-1]
        self._backend.container_instances[self.cluster][instance_id].status = status

    def set_agent_connected(self, container_instance_arn: str, connected: bool) -> None:
        """The ECS agent went away with its host (stopped into a warm pool) or came back with it.
        The container instance stays registered, with the status it had: a stopped instance's
        agent disconnects, and on start it reconnects with its saved registration; ECS places
        no task on an instance whose agent is not connected.
        https://github.com/aws/amazon-ecs-agent/issues/3000
        https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_container_instance_events.html"""
        instance_id = container_instance_arn.rsplit("/", 1)[-1]
        self._backend.container_instances[self.cluster][instance_id].agent_connected = connected

    def agent_connected(self, container_instance_arn: str) -> bool:
        instance_id = container_instance_arn.rsplit("/", 1)[-1]
        return bool(self._backend.container_instances[self.cluster][instance_id].agent_connected)

    @property
    def _client(self) -> Any:
        return self._aws.client("ecs")

    @property
    def _backend(self) -> Any:
        return get_backend("ecs")[self._aws.account][self._aws.region]

    def create_cluster(self) -> None:
        self._client.create_cluster(clusterName=self.cluster)

    def register_worker_definition(
        self, family: str, *, stop_timeout: int, drain_timeout: int, image: str = "livekit-drain-worker:local"
    ) -> str:
        answer = self._client.register_task_definition(
            family=family,
            requiresCompatibilities=["EC2"],
            networkMode="bridge",
            containerDefinitions=[
                {
                    "name": WORKER_CONTAINER,
                    "image": image,
                    "memory": 1024,
                    "essential": True,
                    "stopTimeout": stop_timeout,
                    "linuxParameters": {"initProcessEnabled": True},
                    "environment": [
                        {"name": "LIVEKIT_DRAIN_TIMEOUT_SECONDS", "value": str(drain_timeout)},
                    ],
                }
            ],
        )
        return str(answer["taskDefinition"]["taskDefinitionArn"])

    def register_instance(self, ec2_instance_id: str) -> str:
        document = json.dumps(
            {"instanceId": ec2_instance_id, "region": self._aws.region, "accountId": self._aws.account}
        )
        answer = self._client.register_container_instance(
            cluster=self.cluster, instanceIdentityDocument=document
        )
        return str(answer["containerInstance"]["containerInstanceArn"])

    def start_task(
        self, container_instance_arn: str, task_definition: str, started_by: str, group: str | None = None
    ) -> str:
        """`group` is "service:<name>" for a service's task, as ECS sets it; a standalone task's
        is "family:<family>" (moto's default)."""
        answer = self._client.start_task(
            cluster=self.cluster,
            taskDefinition=task_definition,
            containerInstances=[container_instance_arn],
            startedBy=started_by,
            **({"group": group} if group else {}),
        )
        return str(answer["tasks"][0]["taskArn"])

    def instance_status(self, container_instance_arn: str) -> str:
        instance_id = container_instance_arn.rsplit("/", 1)[-1]
        instance = self._backend.container_instances[self.cluster][instance_id]
        return str(instance.status)

    def signal_stop(self, task_arn: str, reason: str) -> None:
        """ECS decided to stop the task: desired STOPPED, SIGTERM on its way; it still runs."""
        task = self._task(task_arn)
        task.desired_status = "STOPPED"
        task.stopped_reason = reason

    def stopped(self, task_arn: str, *, exit_code: int, reason: str | None = None) -> None:
        """The container is gone (exit 0 on its own, 137 after SIGKILL)."""
        task = self._task(task_arn)
        task.desired_status = "STOPPED"
        task.status = "STOPPED"
        if reason:
            task.stopped_reason = reason
        for container in task.containers:
            container.exit_code = exit_code
            container.last_status = "STOPPED"

    def set_group(self, task_arn: str, group: str) -> None:
        """The task's ECS group: "family:<family>" makes it a standalone task's."""
        self._task(task_arn).group = group

    def rename_task(self, task_arn: str, new_arn: str) -> None:
        """Give a task the ARN of a recorded event (replay), in moto's ECS as everywhere else."""
        prefix, _, new_id = new_arn.rpartition("/")
        if prefix != task_arn.rpartition("/")[0] or not new_id:
            raise ValueError(f"cannot replay task {new_arn!r} in cluster {self.cluster!r}")
        tasks = self._backend.tasks[self.cluster]
        task = tasks.pop(task_arn)
        task.id = new_id
        tasks[task.task_arn] = task

    def _task(self, task_arn: str) -> Any:
        return self._backend.tasks[self.cluster][task_arn]
