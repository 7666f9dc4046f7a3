"""boto3 clients with the retry policy every adapter shares."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

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
