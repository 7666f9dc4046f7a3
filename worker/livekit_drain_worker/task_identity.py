"""Who this worker is on ECS: the task ARN from the task metadata endpoint v4.

The ECS agent sets ``ECS_CONTAINER_METADATA_URI_V4`` in every container it starts;
``$ECS_CONTAINER_METADATA_URI_V4/task`` answers with the task's metadata, for example (EC2
launch type, trimmed):

    {
      "Cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/voice",
      "TaskARN": "arn:aws:ecs:eu-west-1:123456789012:task/voice/0f9c2b7d4e1a4c3b8a6d5e4f3a2b1c0d",
      "Family": "voice-worker",
      "Revision": "7",
      "DesiredStatus": "RUNNING",
      "KnownStatus": "RUNNING",
      "LaunchType": "EC2",
      "Containers": [{"Name": "worker", "DockerId": "6d1f...", "KnownStatus": "RUNNING"}]
    }

The container entries carry no stop timeout: that is why the task definition passes it to the
worker as ``ECS_CONTAINER_STOP_TIMEOUT_SECONDS`` (see `settings`).
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

METADATA_URI_ENV = "ECS_CONTAINER_METADATA_URI_V4"
# The endpoint can answer 5xx for a moment while the agent registers a fresh container.
DEFAULT_RETRY_DELAYS_SECONDS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)

logger = logging.getLogger(__name__)


class TaskMetadataError(Exception):
    """The metadata endpoint is configured but did not give a usable answer."""


@dataclass(frozen=True)
class TaskMetadata:
    task_arn: str
    cluster: str | None
    launch_type: str | None


def parse_task_metadata(document: Mapping[str, Any]) -> TaskMetadata:
    """Read the fields the worker needs from a ``/task`` response body."""
    task_arn = document.get("TaskARN")
    if not isinstance(task_arn, str) or not task_arn.startswith("arn:"):
        raise TaskMetadataError(f"task metadata has no usable TaskARN: {task_arn!r}")
    cluster = document.get("Cluster")
    launch_type = document.get("LaunchType")
    return TaskMetadata(
        task_arn=task_arn,
        cluster=cluster if isinstance(cluster, str) else None,
        launch_type=launch_type if isinstance(launch_type, str) else None,
    )


def read_task_metadata(
    environ: Mapping[str, str] | None = None,
    *,
    timeout_seconds: float = 2.0,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> TaskMetadata | None:
    """The task's metadata, or None when not running on ECS.

    Raises `TaskMetadataError` when the endpoint is configured but keeps failing: on ECS an
    untagged worker is invisible to the drain coordinator, which would then end a drain while
    this worker still holds calls.
    """
    env = os.environ if environ is None else environ
    base_uri = env.get(METADATA_URI_ENV, "").strip()
    if not base_uri:
        logger.warning(
            "ECS task metadata endpoint not set: not running on ECS? "
            "Sessions will not be tagged with a task ARN",
            extra={"env_var": METADATA_URI_ENV},
        )
        return None

    url = base_uri.rstrip("/") + "/task"
    last_error: Exception | None = None
    for attempt, delay in enumerate([*retry_delays, None], start=1):
        try:
            return parse_task_metadata(_get_json(url, timeout_seconds))
        except (OSError, ValueError) as error:  # URLError and JSON errors are both here
            last_error = error
            logger.warning(
                "ECS task metadata request failed",
                extra={"url": url, "attempt": attempt, "error": str(error)},
            )
        if delay is not None:
            sleep(delay)
    raise TaskMetadataError(
        f"ECS task metadata endpoint {url} failed {len(retry_delays) + 1} times: {last_error}"
    ) from last_error


def task_arn(environ: Mapping[str, str] | None = None) -> str | None:
    """This task's ARN, or None when not running on ECS."""
    metadata = read_task_metadata(environ)
    return None if metadata is None else metadata.task_arn


def _get_json(url: str, timeout_seconds: float) -> Mapping[str, Any]:
    # The endpoint is plain HTTP on a link-local address; only http(s) URLs are accepted.
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout_seconds) as response:  # noqa: S310
        document = json.load(response)
    if not isinstance(document, dict):
        raise ValueError("task metadata is not a JSON object")
    return document
