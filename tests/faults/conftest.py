"""The fault suite's world and its faults: AWS errors and crashes the coordinator's own clients
see, LiveKit faults, lost events. One module per fault family; each test injects one fault into
the local world and asserts what the coordinator did and what the user would see."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSRequest

from drain_coordinator import wiring
from drainctl.world.world import World, WorldConfig
from tests.integration.conftest import InjectedErrors
from tests.integration.test_world_end_to_end import aws_calls

__all__ = ["aws_calls"]  # fixtures shared with the integration tests

# A drain short enough to replay in a test, long enough for several heartbeats: the hook's
# heartbeat timeout (180 s) runs out three times before the deadline (600 s).
SHORT_DRAIN = {
    "WorkerDrainTimeout": "60",
    "WorkerStopTimeout": "120",
    "HookHeartbeatTimeout": "180",
    "DrainDeadline": "600",
}


@pytest.fixture
def world() -> Iterator[World]:
    with World() as started:
        yield started


@pytest.fixture
def short_world() -> Iterator[World]:
    with World(WorldConfig(params=SHORT_DRAIN)) as started:
        yield started


class SimulatedCrashError(Exception):
    """The Lambda runtime dies here: nothing after this point of the invocation happens."""


@dataclass
class Crash:
    """Raises SimulatedCrashError before sending the first request `when` picks, `times` times."""

    when: Callable[[AWSRequest], bool]
    times: int = 1
    crashed: int = 0

    def __call__(self, request: AWSRequest, **_: Any) -> None:
        if self.crashed < self.times and self.when(request):
            self.crashed += 1
            raise SimulatedCrashError(f"crashed before {request.url}")


@dataclass
class HandlerFaults:
    """Faults in what the coordinator's functions see of AWS. Their clients come from boto3's
    default session at cold start, so hooks go on that session and the functions start cold;
    the world's own clients are left alone."""

    world: World
    _registered: list[tuple[str, Callable[..., Any]]] = field(default_factory=list)

    def errors(
        self,
        service: str,
        operation: str,
        *,
        code: str,
        status: int = 400,
        message: str = "injected fault",
        times: int | None = None,
    ) -> InjectedErrors:
        """`code` for the first `times` attempts at `operation` (every attempt if None)."""
        model = _session().client(service, region_name="us-east-1").meta.service_model
        injected = InjectedErrors(
            protocol=model.protocol,
            json_version=str(model.metadata.get("jsonVersion", "1.1")),
            status=status,
            code=code,
            message=message,
            times=times,
        )
        self._register(f"before-send.{model.service_id.hyphenize()}.{operation}", injected)
        return injected

    def throttling(self, service: str, operation: str, *, times: int | None = None) -> InjectedErrors:
        model = _session().client(service, region_name="us-east-1").meta.service_model
        code = "Throttling" if model.protocol == "query" else "ThrottlingException"
        return self.errors(service, operation, code=code, message="Rate exceeded", times=times)

    def crash(self, service: str, operation: str, when: Callable[[AWSRequest], bool]) -> Crash:
        model = _session().client(service, region_name="us-east-1").meta.service_model
        crash = Crash(when)
        self._register(f"before-send.{model.service_id.hyphenize()}.{operation}", crash)
        return crash

    def _register(self, event_name: str, handler: Callable[..., Any]) -> None:
        _session().events.register(event_name, handler)
        self._registered.append((event_name, handler))
        wiring.reset(clock=self.world.clock.now)  # a cold start: clients built with the hook

    def clear(self) -> None:
        for event_name, handler in self._registered:
            _session().events.unregister(event_name, handler)
        self._registered.clear()
        wiring.reset(clock=self.world.clock.now)


def _session() -> Any:
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


@pytest.fixture
def handler_faults(world: World) -> Iterator[HandlerFaults]:
    faults = HandlerFaults(world)
    yield faults
    faults.clear()


@pytest.fixture
def short_handler_faults(short_world: World) -> Iterator[HandlerFaults]:
    faults = HandlerFaults(short_world)
    yield faults
    faults.clear()
