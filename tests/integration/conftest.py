"""Shared fixtures of the adapter tests: the local world's servers over real HTTP, boto3 clients
built the way the coordinator builds them, and AWS errors injected below the client."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.retries import bucket, standard

from drain_coordinator.integrations.aws_clients import RETRY_CONFIG
from drainctl.world.aws import REGION, LocalAws
from drainctl.world.clock import VirtualClock
from drainctl.world.livekit_server import LocalLiveKit
from drainctl.world.world import World

DUMMY_KEY = "testing"
# One attempt and no retry (botocore's `max_attempts` counts retries; `total_max_attempts`
# counts the first attempt too): a test that wants an error sees it at once.
SINGLE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def virtual_clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def local_aws(virtual_clock: VirtualClock) -> Iterator[LocalAws]:
    with LocalAws(virtual_clock) as aws:
        yield aws


@pytest.fixture
def local_livekit() -> Iterator[LocalLiveKit]:
    with LocalLiveKit() as server:
        yield server


@pytest.fixture
def world() -> Iterator[World]:
    """The whole local world with the template's defaults: moto, LiveKit, the drain table."""
    with World() as started:
        yield started


@functools.cache
def _session() -> Any:
    # One session for the run: loading botocore's service models is what makes a client slow.
    return boto3.session.Session(
        aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name=REGION
    )


def aws_client(service: str, endpoint_url: str, config: Config = RETRY_CONFIG) -> Any:
    """A boto3 client of `endpoint_url`, with the coordinator's retry policy unless told otherwise."""
    return _session().client(service, endpoint_url=endpoint_url, config=config)


def aws_resource(service: str, endpoint_url: str, config: Config = RETRY_CONFIG) -> Any:
    return _session().resource(service, endpoint_url=endpoint_url, config=config)


def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- AWS errors injected below the client ---------------------------------------------------------


class _Body:
    """The raw body AWSResponse reads with `stream()`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@dataclass
class InjectedErrors:
    """Answers the first `times` attempts of one operation with an AWS error, in the service's
    own wire format, before anything is sent; later attempts reach the local AWS.

    `attempts` counts every attempt botocore made, answered here or sent.
    """

    protocol: str
    json_version: str
    status: int
    code: str
    message: str
    times: int | None  # None: every attempt
    attempts: int = 0

    def __call__(self, request: AWSRequest, **_: Any) -> AWSResponse | None:
        self.attempts += 1
        if self.times is not None and self.attempts > self.times:
            return None  # botocore sends the request
        content_type, body = self._payload()
        headers = HTTPHeaders()
        headers["Content-Type"] = content_type
        return AWSResponse(str(request.url), self.status, headers, _Body(body))

    def _payload(self) -> tuple[str, bytes]:
        if self.protocol == "query":
            body = (
                "<ErrorResponse><Error><Type>Sender</Type>"
                f"<Code>{self.code}</Code><Message>{self.message}</Message>"
                "</Error><RequestId>injected-0000</RequestId></ErrorResponse>"
            )
            return "text/xml", body.encode()
        body = json.dumps({"__type": self.code, "message": self.message})
        return f"application/x-amz-json-{self.json_version}", body.encode()


def inject_errors(
    client: Any,
    operation: str,
    *,
    code: str,
    message: str,
    status: int = 400,
    times: int | None = None,
) -> InjectedErrors:
    """Make `client` see `code` for its first `times` attempts at `operation` (e.g. "ListTasks").

    A `before-send` handler returning a response stands in for the server's answer: the retry
    policy, the error parser and the adapter all run as they would against AWS.
    """
    model = client.meta.service_model
    injected = InjectedErrors(
        protocol=model.protocol,
        json_version=str(model.metadata.get("jsonVersion", "1.1")),
        status=status,
        code=code,
        message=message,
        times=times,
    )
    client.meta.events.register(f"before-send.{model.service_id.hyphenize()}.{operation}", injected)
    return injected


def throttle(client: Any, operation: str, *, times: int | None = None) -> InjectedErrors:
    """The throttling answer of the client's service (query: `Throttling`, JSON: `ThrottlingException`)."""
    code = "Throttling" if client.meta.service_model.protocol == "query" else "ThrottlingException"
    return inject_errors(client, operation, code=code, message="Rate exceeded", times=times)


@dataclass
class RetryPauses:
    """What botocore's retry policy chose to wait, recorded instead of slept."""

    backoffs: list[float] = field(default_factory=list)
    token_requests: int = 0


@pytest.fixture
def retry_pauses(monkeypatch: pytest.MonkeyPatch) -> RetryPauses:
    """botocore's retries without their waits.

    Its backoff waits up to 20 s a retry and the adaptive rate limiter up to 2 s a request at its
    floor rate: eight throttled attempts would take about a minute. Which errors are retried, how
    many times, and when the limiter engages stay botocore's decisions.
    """
    pauses = RetryPauses()
    delay_amount = standard.ExponentialBackoff.delay_amount

    def recorded_backoff(backoff: standard.ExponentialBackoff, context: Any) -> float:
        pauses.backoffs.append(delay_amount(backoff, context))
        return 0.0

    def granted_at_once(token_bucket: bucket.TokenBucket, amount: int = 1, block: bool = True) -> bool:
        pauses.token_requests += amount
        return True

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", recorded_backoff)
    monkeypatch.setattr(bucket.TokenBucket, "acquire", granted_at_once)
    return pauses
