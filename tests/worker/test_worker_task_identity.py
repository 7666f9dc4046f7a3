from __future__ import annotations

import logging

import pytest

from livekit_drain_worker.task_identity import (
    METADATA_URI_ENV,
    TaskMetadataError,
    parse_task_metadata,
    read_task_metadata,
    task_arn,
)
from livekit_drain_worker.testing import LocalEcsEndpoints


def test_task_arn_is_read_from_metadata_v4(ecs: LocalEcsEndpoints) -> None:
    # GIVEN the ECS agent's metadata endpoint for this container
    environ = ecs.environ()

    # WHEN the worker reads its identity
    arn = task_arn(environ)

    # THEN it is the task's ARN, asked for once
    assert arn == ecs.task_arn
    assert ecs.metadata_requests == 1


def test_task_metadata_carries_cluster_and_launch_type() -> None:
    # GIVEN an ECS task on the Fargate launch type
    with LocalEcsEndpoints(launch_type="FARGATE") as ecs:
        # WHEN the worker reads the task metadata
        metadata = read_task_metadata(ecs.environ())

    # THEN the launch type and the cluster of the task come with the ARN
    assert metadata is not None
    assert metadata.launch_type == "FARGATE"
    assert metadata.cluster == "arn:aws:ecs:eu-west-1:123456789012:cluster/voice"


def test_missing_metadata_endpoint_warns_and_returns_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN no ECS metadata variable, as when run on a laptop
    environ: dict[str, str] = {}

    # WHEN the worker reads its identity
    with caplog.at_level(logging.WARNING, logger="livekit_drain_worker"):
        arn = task_arn(environ)

    # THEN there is none, and the log says sessions go untagged
    assert arn is None
    assert any(
        "not be tagged" in record.getMessage() and record.levelno == logging.WARNING
        for record in caplog.records
    )


def test_metadata_errors_are_retried_until_the_endpoint_answers(ecs: LocalEcsEndpoints) -> None:
    # GIVEN an endpoint that fails twice while the agent registers the container
    ecs.fail_metadata(status=500, times=2)
    slept: list[float] = []

    # WHEN the worker reads its metadata
    metadata = read_task_metadata(ecs.environ(), retry_delays=(0.5, 1.0, 2.0), sleep=slept.append)

    # THEN the third attempt succeeds, after backing off
    assert metadata is not None
    assert metadata.task_arn == ecs.task_arn
    assert ecs.metadata_requests == 3
    assert slept == [0.5, 1.0]


def test_metadata_endpoint_that_keeps_failing_is_task_metadata_error(
    ecs: LocalEcsEndpoints,
) -> None:
    # GIVEN an endpoint that fails more often than the worker retries
    ecs.fail_metadata(status=503, times=5)

    # WHEN the worker reads its metadata
    # THEN it gives up with an error naming the endpoint, rather than running untagged on ECS
    with pytest.raises(TaskMetadataError, match="failed 3 times") as raised:
        read_task_metadata(ecs.environ(), retry_delays=(0.0, 0.0), sleep=lambda _: None)
    assert ecs.metadata_uri in str(raised.value)
    assert ecs.metadata_requests == 3


def test_unreachable_metadata_endpoint_is_task_metadata_error() -> None:
    # GIVEN a metadata URI where nothing listens (a server started and stopped)
    with LocalEcsEndpoints() as gone:
        environ = {METADATA_URI_ENV: gone.metadata_uri}

    # WHEN the worker reads its metadata
    # THEN the connection failure becomes a TaskMetadataError
    with pytest.raises(TaskMetadataError):
        read_task_metadata(environ, retry_delays=(), sleep=lambda _: None)


def test_task_metadata_without_task_arn_is_task_metadata_error() -> None:
    # GIVEN a metadata document with no TaskARN
    document = {"Cluster": "voice", "Family": "voice-worker"}

    # WHEN it is parsed
    # THEN it is refused: an untagged worker must not pass for a tagged one
    with pytest.raises(TaskMetadataError, match="TaskARN"):
        parse_task_metadata(document)
