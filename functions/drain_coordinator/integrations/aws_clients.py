"""boto3 clients with the retry policy every adapter shares."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Adaptive retries: exponential backoff with jitter plus client-side rate limiting, so a burst of
# drains backs off under Auto Scaling / ECS throttling instead of failing the tick.
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=10,
)


def client(service: str) -> Any:
    return boto3.client(service, config=RETRY_CONFIG)  # type: ignore[call-overload]


def resource(service: str) -> Any:
    return boto3.resource(service, config=RETRY_CONFIG)  # type: ignore[call-overload]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def describe_error(exc: ClientError | BotoCoreError, what: str) -> str:
    """'could not <what>: <code>: <message>', for the domain error an adapter raises."""
    if isinstance(exc, BotoCoreError):  # no answer at all: unreachable, timed out
        return f"could not {what}: {type(exc).__name__}: {exc}"
    error = exc.response.get("Error", {})
    return f"could not {what}: {error.get('Code')}: {error.get('Message')}"
