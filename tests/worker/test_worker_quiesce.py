"""The quiesce: the worker learns its container instance is DRAINING and takes no new call."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from drainctl.world.aws import LocalAws
from drainctl.world.clock import VirtualClock
from drainctl.world.ecs import LocalEcs
from livekit_drain_worker.app import build_server, build_worker_options
from livekit_drain_worker.load import ActiveJobsLoad, load_threshold
from livekit_drain_worker.preflight import preflight
from livekit_drain_worker.quiesce import (
    FULL_LOAD,
    EcsContainerInstanceStatus,
    InstanceStatusError,
    InstanceStatusSource,
    Quiesce,
    QuiesceState,
    QuiescingLoad,
    attach_quiesce,
    keep_quiesced,
)
from livekit_drain_worker.testing import LocalEcsEndpoints

CLUSTER = "voice"


@dataclass
class FakeStatus:
    """A container instance whose status the test sets; `error` makes the next looks fail."""

    value: str = "ACTIVE"
    error: str | None = None
    looks: int = 0

    def status(self) -> str:
        self.looks += 1
        if self.error:
            raise InstanceStatusError(self.error)
        return self.value


@dataclass
class FakeServer:
    active_jobs: list[object] = field(default_factory=list)


@pytest.fixture
def moto_ecs() -> Iterator[LocalEcs]:
    with LocalAws(VirtualClock(1_767_225_600.0)) as aws:
        ecs = LocalEcs(aws, CLUSTER)
        ecs.create_cluster()
        try:
            yield ecs
        finally:
            ecs.close()


def test_the_ecs_source_reads_the_status_ecs_gives_the_tasks_container_instance(moto_ecs: LocalEcs) -> None:
    # GIVEN a task on a registered container instance, read through boto3 over HTTP (moto)
    (ec2_instance,) = moto_ecs._aws.create_group_with_instances("voice-asg", 1)
    instance = moto_ecs.register_instance(ec2_instance)
    definition = moto_ecs.register_worker_definition("voice-worker", stop_timeout=900, drain_timeout=600)
    task = moto_ecs.start_task(instance, definition, started_by="ecs-svc/voice")
    client = moto_ecs._aws.client("ecs")
    source = EcsContainerInstanceStatus(client, CLUSTER, task)
    before = source.status()

    # WHEN the container instance is set DRAINING (by anyone)
    client.update_container_instances_state(cluster=CLUSTER, containerInstances=[instance], status="DRAINING")

    # THEN the source sees it
    assert (before, source.status()) == ("ACTIVE", "DRAINING")


def test_the_ecs_source_fails_plainly_for_a_task_ecs_does_not_know(moto_ecs: LocalEcs) -> None:
    source = EcsContainerInstanceStatus(
        moto_ecs._aws.client("ecs"), CLUSTER, "arn:aws:ecs:us-east-1:123456789012:task/voice/0123"
    )
    with pytest.raises(InstanceStatusError):
        source.status()


def test_a_draining_instance_quiesces_the_worker_and_active_again_lifts_it() -> None:
    # GIVEN a worker with one call slot in four used, and its quiescing load function
    status = FakeStatus()
    quiesce = Quiesce(status)
    load = QuiescingLoad(ActiveJobsLoad(4), quiesce.state)
    server = FakeServer(active_jobs=[object()])
    assert not quiesce.poll() and load(server) == 0.25

    # WHEN its instance goes DRAINING
    status.value = "DRAINING"
    # THEN it reports full load: at or above the threshold, livekit-agents reports it full
    assert quiesce.poll()
    assert load(server) == FULL_LOAD >= load_threshold(4)

    # WHEN the instance comes back ACTIVE (a warm pool)
    status.value = "ACTIVE"
    # THEN it takes calls again
    assert not quiesce.poll() and load(server) == 0.25


def test_a_failed_look_leaves_the_quiesce_as_it_was() -> None:
    status = FakeStatus(value="DRAINING")
    quiesce = Quiesce(status)
    quiesce.poll()
    status.error = "AccessDeniedException: not authorized to perform ecs:DescribeContainerInstances"
    assert quiesce.poll() is True
    status.value, status.error = "ACTIVE", None
    assert quiesce.poll() is False


def test_the_keeper_quiesces_within_one_poll_of_draining() -> None:
    # GIVEN a keeper polling every 20 ms
    status = FakeStatus()
    quiesce = Quiesce(status)

    async def scenario() -> tuple[int, bool]:
        stop = asyncio.Event()
        task = asyncio.create_task(keep_quiesced(quiesce, interval_seconds=0.02, stop=stop))
        await asyncio.sleep(0.05)
        # WHEN the instance goes DRAINING
        status.value = "DRAINING"
        looks_then = status.looks
        while status.looks < looks_then + 2:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        return status.looks, quiesce.state.quiesced

    looks, quiesced = asyncio.run(scenario())
    # THEN it was quiesced by the next look
    assert quiesced and looks >= 3


def test_attach_wraps_the_load_function_and_keeps_the_options_picklable(ecs: LocalEcsEndpoints) -> None:
    # GIVEN the worker's options on ECS
    checked = preflight({**ecs.environ(), "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660"})
    options = build_worker_options(checked)
    status = FakeStatus(value="DRAINING")

    def source(cluster: str, task_arn: str) -> InstanceStatusSource:
        return status

    # WHEN the quiesce is attached and polled once
    keeper = attach_quiesce(options, {}, cluster=CLUSTER, task_arn=ecs.task_arn, source=source)
    assert keeper is not None
    keeper.quiesce.poll()

    # THEN the options' load function reports full load, and survives pickling
    assert isinstance(options.load_fnc, QuiescingLoad)
    assert options.load_fnc(FakeServer()) == FULL_LOAD
    copy = pickle.loads(pickle.dumps(options))  # noqa: S301 - our own object
    assert isinstance(copy.load_fnc.state, QuiesceState)


@pytest.mark.parametrize(
    ("environ", "cluster"),
    [
        ({"LIVEKIT_DRAIN_QUIESCE": "false"}, CLUSTER),
        ({}, None),
        ({"LIVEKIT_DRAIN_QUIESCE_SECONDS": "0"}, CLUSTER),
    ],
)
def test_no_quiesce_when_turned_off_off_ecs_or_misconfigured(
    ecs: LocalEcsEndpoints, environ: dict[str, str], cluster: str | None
) -> None:
    checked = preflight({**ecs.environ(), "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660"})
    options = build_worker_options(checked)
    before = options.load_fnc
    keeper = attach_quiesce(
        options, environ, cluster=cluster, task_arn=ecs.task_arn, source=lambda c, t: FakeStatus()
    )
    assert keeper is None and options.load_fnc is before


def test_the_server_polls_on_ecs_by_default(ecs: LocalEcsEndpoints) -> None:
    # GIVEN the packaged worker on ECS with the default settings
    checked = preflight({**ecs.environ(), "ECS_CONTAINER_STOP_TIMEOUT_SECONDS": "660"})
    # WHEN its server is built
    server, _ = build_server(checked, {})
    # THEN its load function quiesces
    assert isinstance(server._load_fnc, QuiescingLoad)
