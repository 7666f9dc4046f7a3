"""EcsCluster against moto's ECS over real HTTP, with tasks placed the way the ECS agent moves them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from drain_coordinator.integrations.aws_clients import PROBE_CONFIG, total_attempts
from drain_coordinator.integrations.ecs import EcsCluster, EcsError
from drainctl.world.aws import LocalAws
from drainctl.world.ecs import LocalEcs
from tests.integration.conftest import (
    SINGLE_ATTEMPT,
    RetryPauses,
    aws_client,
    closed_port_url,
    inject_errors,
    throttle,
)

CLUSTER = "livekit-agents"
WORKER_FAMILY = "livekit-agent"
SIDECAR_FAMILY = "log-router"
CONTAINER_INSTANCE = f"arn:aws:ecs:us-east-1:123456789012:container-instance/{CLUSTER}/0f1e2d3c4b5a"


@dataclass
class Cluster:
    """A cluster of registered EC2 instances, with a worker and a sidecar task definition."""

    aws: LocalAws
    ecs: LocalEcs
    instance_ids: list[str]
    container_instances: list[str]
    worker_definition: str
    sidecar_definition: str

    def start_worker(self, index: int = 0) -> str:
        return self.ecs.start_task(self.container_instances[index], self.worker_definition, "ecs-svc/agents")

    def start_sidecar(self, index: int = 0) -> str:
        return self.ecs.start_task(self.container_instances[index], self.sidecar_definition, "ecs-svc/logs")

    def status_of(self, container_instance_arn: str) -> str:
        answer = self.aws.client("ecs").describe_container_instances(
            cluster=CLUSTER, containerInstances=[container_instance_arn]
        )
        return str(answer["containerInstances"][0]["status"])


def a_cluster(aws: LocalAws, ecs: LocalEcs, instances: int = 3) -> Cluster:
    instance_ids = aws.create_group_with_instances("livekit-agents-asg", instances)
    ecs.create_cluster()
    return Cluster(
        aws=aws,
        ecs=ecs,
        instance_ids=instance_ids,
        container_instances=[ecs.register_instance(i) for i in instance_ids],
        worker_definition=ecs.register_worker_definition(WORKER_FAMILY, stop_timeout=900, drain_timeout=600),
        sidecar_definition=ecs.register_worker_definition(SIDECAR_FAMILY, stop_timeout=30, drain_timeout=10),
    )


@pytest.fixture
def local_ecs(local_aws: LocalAws) -> Iterator[LocalEcs]:
    ecs = LocalEcs(local_aws, CLUSTER)
    yield ecs
    ecs.close()


@pytest.fixture
def cluster(local_aws: LocalAws, local_ecs: LocalEcs) -> Cluster:
    return a_cluster(local_aws, local_ecs)


def adapter(aws: LocalAws, family: str = "", client: Any = None) -> EcsCluster:
    return EcsCluster(client or aws_client("ecs", aws.endpoint_url), CLUSTER, family)


# -- container_instance_of -------------------------------------------------------------------------


def test_container_instance_of_picks_the_instance_among_several(cluster: Cluster) -> None:
    # GIVEN three registered instances (moto ignores ListContainerInstances' filter and lists all)
    ecs = adapter(cluster.aws)

    # WHEN each EC2 instance is looked up
    found = [ecs.container_instance_of(i) for i in cluster.instance_ids]

    # THEN each maps to its own container instance
    assert found == cluster.container_instances


def test_container_instance_of_an_unregistered_instance_is_none(cluster: Cluster) -> None:
    # GIVEN an EC2 instance of the group that never joined the cluster
    (stray,) = cluster.aws.create_group_with_instances("other-asg", 1)

    # WHEN it is looked up / THEN it has no container instance
    assert adapter(cluster.aws).container_instance_of(stray) is None


def test_container_instance_of_finds_an_instance_past_the_first_describe_batch(
    local_aws: LocalAws, local_ecs: LocalEcs
) -> None:
    # GIVEN more container instances than one DescribeContainerInstances call takes (100)
    big = a_cluster(local_aws, local_ecs, instances=105)

    # WHEN the last one registered is looked up
    found = adapter(local_aws).container_instance_of(big.instance_ids[-1])

    # THEN it is found in the second batch
    assert found == big.container_instances[-1]


# -- drain -----------------------------------------------------------------------------------------


def test_drain_sets_only_that_container_instance_draining(cluster: Cluster) -> None:
    # GIVEN three ACTIVE container instances
    target = cluster.container_instances[1]

    # WHEN one is drained
    adapter(cluster.aws).drain(target)

    # THEN ECS reports it DRAINING, and the others ACTIVE
    assert [cluster.status_of(ci) for ci in cluster.container_instances] == ["ACTIVE", "DRAINING", "ACTIVE"]


def test_drain_twice_keeps_the_instance_draining(cluster: Cluster) -> None:
    # GIVEN a container instance already DRAINING (a retried lifecycle event)
    ecs = adapter(cluster.aws)
    ecs.drain(cluster.container_instances[0])

    # WHEN it is drained again / THEN nothing fails and it stays DRAINING
    ecs.drain(cluster.container_instances[0])
    assert cluster.status_of(cluster.container_instances[0]) == "DRAINING"


def test_drain_of_an_unknown_container_instance_is_ecs_error(cluster: Cluster) -> None:
    # GIVEN a container instance ARN the cluster does not hold
    unknown = cluster.container_instances[0].rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"

    # WHEN / THEN ECS's per-instance failure is an error, not a silent success
    with pytest.raises(EcsError, match="MISSING"):
        adapter(cluster.aws).drain(unknown)


# -- worker_tasks_on -------------------------------------------------------------------------------


def test_worker_tasks_on_lists_running_and_stopping_tasks_not_stopped_ones(cluster: Cluster) -> None:
    # GIVEN on one instance a running task, a stopping one (told to stop, still running) and a
    # stopped one; and a running task on another instance
    running = cluster.start_worker(0)
    stopping = cluster.start_worker(0)
    stopped = cluster.start_worker(0)
    elsewhere = cluster.start_worker(1)
    cluster.ecs.signal_stop(stopping, "Service livekit-agents: container instance is in DRAINING state")
    cluster.ecs.stopped(stopped, exit_code=0, reason="Essential container in task exited")

    # WHEN the instance's worker tasks are listed
    tasks = adapter(cluster.aws).worker_tasks_on(cluster.container_instances[0])

    # THEN the running and the stopping task are there, with their statuses; nothing else is
    by_arn = {t.arn: t for t in tasks}
    assert set(by_arn) == {running, stopping}
    assert (by_arn[running].last_status, by_arn[running].desired_status) == ("RUNNING", "RUNNING")
    assert (by_arn[stopping].last_status, by_arn[stopping].desired_status) == ("RUNNING", "STOPPED")
    assert by_arn[stopping].told_to_stop
    assert not by_arn[running].told_to_stop
    assert stopped not in by_arn
    assert elsewhere not in by_arn


def test_worker_tasks_on_keeps_only_the_worker_family(cluster: Cluster) -> None:
    # GIVEN a worker and a sidecar task on one instance
    worker = cluster.start_worker(0)
    sidecar = cluster.start_sidecar(0)
    instance = cluster.container_instances[0]

    # WHEN the tasks are listed with and without the worker family
    of_family = adapter(cluster.aws, WORKER_FAMILY).worker_tasks_on(instance)
    of_any = adapter(cluster.aws).worker_tasks_on(instance)

    # THEN the family keeps the worker only; no family means every task on the instance
    assert [t.arn for t in of_family] == [worker]
    assert {t.arn for t in of_any} == {worker, sidecar}


def test_worker_tasks_on_an_instance_whose_tasks_all_stopped_is_empty(cluster: Cluster) -> None:
    # GIVEN an instance whose only task has exited
    task = cluster.start_worker(0)
    cluster.ecs.stopped(task, exit_code=0)

    # WHEN / THEN nothing is left to wait for
    assert adapter(cluster.aws).worker_tasks_on(cluster.container_instances[0]) == ()


# -- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["drain", "worker_tasks_on"])
def test_unknown_cluster_is_ecs_error(cluster: Cluster, call: str) -> None:
    # GIVEN an adapter pointed at a cluster that does not exist
    ecs = EcsCluster(aws_client("ecs", cluster.aws.endpoint_url), "no-such-cluster")

    # WHEN / THEN ECS's refusal becomes the adapter's error
    with pytest.raises(EcsError, match="ClusterNotFoundException"):
        getattr(ecs, call)(cluster.container_instances[0])


def test_refused_container_instance_lookup_is_ecs_error(cluster: Cluster) -> None:
    # GIVEN ECS refusing ListContainerInstances (moto answers an empty list for an unknown
    # cluster where AWS refuses, so the refusal is injected)
    client = aws_client("ecs", cluster.aws.endpoint_url)
    inject_errors(client, "ListContainerInstances", code="AccessDeniedException", message="not allowed")

    # WHEN / THEN the lookup fails as the adapter's error, not as "not registered"
    with pytest.raises(EcsError, match="AccessDeniedException"):
        adapter(cluster.aws, client=client).container_instance_of(cluster.instance_ids[0])


def test_throttled_list_tasks_is_retried_until_it_succeeds(
    cluster: Cluster, retry_pauses: RetryPauses
) -> None:
    # GIVEN a running worker and ECS throttling every ListTasks attempt but the last the
    # probe's retry policy allows
    task = cluster.start_worker(0)
    client = aws_client("ecs", cluster.aws.endpoint_url, config=PROBE_CONFIG)
    retries = total_attempts(PROBE_CONFIG) - 1
    throttled = throttle(client, "ListTasks", times=retries)

    # WHEN the tasks are listed through a client with the coordinator's probe retry policy
    tasks = adapter(cluster.aws, client=client).worker_tasks_on(cluster.container_instances[0])

    # THEN the throttled call was retried (the second ListTasks, for stopping tasks, went through
    # at once) and the answer is complete
    assert [t.arn for t in tasks] == [task]
    assert throttled.attempts == retries + 1 + 1
    assert len(retry_pauses.backoffs) == retries


def test_unreachable_ecs_is_ecs_error() -> None:
    # GIVEN an adapter whose ECS endpoint refuses connections
    client = aws_client("ecs", closed_port_url(), config=SINGLE_ATTEMPT)
    ecs = EcsCluster(client, CLUSTER)

    # WHEN / THEN the probe failure is the adapter's error, so the drain holds (rule 4) instead of
    # the look ending in an unexpected botocore exception
    with pytest.raises(EcsError):
        ecs.worker_tasks_on(CONTAINER_INSTANCE)


# -- stop_timeout_of -------------------------------------------------------------------------------


def _definition(aws: LocalAws, family: str, containers: list[dict[str, Any]]) -> str:
    answer = aws_client("ecs", aws.endpoint_url).register_task_definition(
        family=family,
        requiresCompatibilities=["EC2"],
        containerDefinitions=[{"image": "x", "memory": 256, "essential": True, **c} for c in containers],
    )
    return str(answer["taskDefinition"]["taskDefinitionArn"])


def test_a_container_without_stop_timeout_stops_after_the_hosts_stop_timeout(cluster: Cluster) -> None:
    # GIVEN a worker task definition with no stopTimeout, on hosts with ECS_CONTAINER_STOP_TIMEOUT=900s
    definition = _definition(cluster.aws, "no-stop-timeout", [{"name": "worker"}])
    ecs = EcsCluster(
        aws_client("ecs", cluster.aws.endpoint_url), CLUSTER, host_stop_timeout=900, worker_container="worker"
    )
    # WHEN its stop timeout is read
    # THEN it is the hosts' value, not the agent's 30 s default
    assert ecs.stop_timeout_of(definition) == 900


def test_the_stop_timeout_is_the_worker_containers_not_a_sidecars(cluster: Cluster) -> None:
    # GIVEN a worker at 900 s beside a sidecar at 1200 s
    definition = _definition(
        cluster.aws,
        "worker-and-sidecar",
        [{"name": "log_router", "stopTimeout": 1200}, {"name": "worker", "stopTimeout": 900}],
    )
    ecs = EcsCluster(aws_client("ecs", cluster.aws.endpoint_url), CLUSTER, worker_container="worker")
    # WHEN its stop timeout is read
    # THEN ECS kills the worker at its own 900 s
    assert ecs.stop_timeout_of(definition) == 900


def test_worker_tasks_on_marks_the_tasks_of_a_daemon_service(cluster: Cluster) -> None:
    # GIVEN a worker of a replica service and a log router of a daemon service on one instance
    client = aws_client("ecs", cluster.aws.endpoint_url)
    client.create_service(
        cluster=CLUSTER, serviceName="agents", taskDefinition=cluster.worker_definition, desiredCount=0
    )
    client.create_service(
        cluster=CLUSTER,
        serviceName="log-router",
        taskDefinition=cluster.sidecar_definition,
        schedulingStrategy="DAEMON",
    )
    started = {}
    for service, definition in (
        ("agents", cluster.worker_definition),
        ("log-router", cluster.sidecar_definition),
    ):
        answer = client.start_task(
            cluster=CLUSTER,
            taskDefinition=definition,
            containerInstances=[cluster.container_instances[0]],
            group=f"service:{service}",
        )
        started[service] = answer["tasks"][0]["taskArn"]
    # WHEN the instance's tasks are listed
    by_arn = {t.arn: t for t in adapter(cluster.aws).worker_tasks_on(cluster.container_instances[0])}
    # THEN only the daemon's task is marked as one
    assert by_arn[started["log-router"]].daemon
    assert not by_arn[started["agents"]].daemon
