"""boto3 clients, each with a retry policy whose worst case fits inside one look.

A tick lives 55 s. botocore's adaptive mode with 8 retries and a 10 s read timeout gives a hung
endpoint about 99 s and a throttled one about 46 s of sleeping before it fails: longer than the
tick, so the hook's heartbeat would die with it. Every client here uses botocore's standard
mode (exponential backoff with full jitter, retrying throttling, transient and connection
errors: https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html) with few
attempts and short timeouts: a failure comes back fast, the drain holds, and the next tick
(or the next look) asks again.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Heartbeats and completions (Auto Scaling) and the drain table: what keeps a hook alive gets a
# few more tries. Worst case per call: 3 x (2 s connect or 4 s read) + backoff (< 1 s + 2 s).
RETRY_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=2,
    read_timeout=4,
)
# What a look asks (ECS): a failed probe only holds the drain, so it fails fast.
# Worst case per call: 2 x (2 s connect or 3 s read) + backoff (< 1 s).
PROBE_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=2,
    read_timeout=3,
)
_CONFIGS = {"ecs": PROBE_CONFIG}


def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIGS.get(service, RETRY_CONFIG))  # type: ignore[call-overload]


def resource(service: str) -> Any:
    return boto3.resource(service, config=RETRY_CONFIG)  # type: ignore[call-overload]


def total_attempts(config: Config) -> int:
    retries = config.retries or {}  # type: ignore[attr-defined]
    if "total_max_attempts" in retries:
        return int(retries["total_max_attempts"])
    return int(retries.get("max_attempts", 2)) + 1


def worst_case_seconds(config: Config) -> float:
    """How long one call with this config can take before it fails (drainctl check's budget)."""
    attempts = total_attempts(config)
    per_attempt = max(float(config.connect_timeout), float(config.read_timeout))  # type: ignore[attr-defined]
    # standard mode: attempt n waits up to min(20, 2 ** (n - 1)) s before it is sent again
    backoff = sum(min(20.0, 2.0 ** (n - 1)) for n in range(1, attempts))
    return attempts * per_attempt + backoff


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def describe_error(exc: ClientError | BotoCoreError, what: str) -> str:
    """'could not <what>: <code>: <message>', for the domain error an adapter raises."""
    if isinstance(exc, BotoCoreError):  # no answer at all: unreachable, timed out
        return f"could not {what}: {type(exc).__name__}: {exc}"
    error = exc.response.get("Error", {})
    return f"could not {what}: {error.get('Code')}: {error.get('Message')}"
