from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drain_coordinator import wiring
from drain_coordinator.domain.probe import WorkerTask
from drain_coordinator.observability import logger
from drain_coordinator.services.drains import Coordinator
from drain_coordinator.services.task_stops import TaskStopTracker
from drain_coordinator.settings import Settings
from tests.factories import T0, TASK_A, TASK_B
from tests.fakes import (
    FakeClock,
    FakeEcs,
    FakeLifecycle,
    FakeRoomIndex,
    FakeSessions,
    FakeStore,
    FakeTaskStopStore,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
INSTANCE = "i-0598c7d356eba48d7"
CI_ARN = "arn:aws:ecs:us-east-1:123456789012:container-instance/agents/0f1e2d3c"

SETTINGS_ENV = {
    "DRAIN_TABLE_NAME": "livekit-drain",
    "ECS_CLUSTER_NAME": "livekit-agents",
    "ASG_NAME": "livekit-agents-asg",
    "LIFECYCLE_HOOK_NAME": "livekit-drain-terminate",
    "LIVEKIT_URL": "http://127.0.0.1:7880",
    "LIVEKIT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf",
}


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@dataclass
class Harness:
    coordinator: Coordinator
    store: FakeStore
    lifecycle: FakeLifecycle
    ecs: FakeEcs
    sessions: FakeSessions
    clock: FakeClock
    stops: FakeTaskStopStore
    tracker: TaskStopTracker
    index: FakeRoomIndex

    def busy(self, calls: int) -> None:
        """The instance runs two worker tasks; `calls` rooms held by the first."""
        self.ecs.instances[INSTANCE] = CI_ARN
        self.ecs.tasks[CI_ARN] = [
            WorkerTask(arn=TASK_A, last_status="RUNNING", desired_status="RUNNING"),
            WorkerTask(arn=TASK_B, last_status="RUNNING", desired_status="RUNNING"),
        ]
        self.sessions.rooms = {f"call-{i}": TASK_A for i in range(calls)}
        self.sessions.rooms["someone-elses-call"] = "arn:aws:ecs:us-east-1:123456789012:task/agents/other"

    def calls_end(self) -> None:
        self.sessions.rooms = {r: a for r, a in self.sessions.rooms.items() if a not in (TASK_A, TASK_B)}

    def tasks_exit(self) -> None:
        self.ecs.tasks[CI_ARN] = []


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time of writing (pytest swaps it per phase)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True)
def logs_to_current_stdout() -> Iterator[None]:
    """Powertools binds its handler to the stdout of import time; follow pytest's capture instead."""
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.stream
    handler.stream = _CurrentStdout()  # not setStream(): it would flush a stream pytest closed
    yield
    handler.stream = previous


@pytest.fixture
def harness() -> Iterator[Harness]:
    settings = Settings.from_env(SETTINGS_ENV)
    store, lifecycle, ecs, sessions = FakeStore(), FakeLifecycle(), FakeEcs(), FakeSessions()
    clock = FakeClock(T0 + 2)
    index = FakeRoomIndex(sessions)
    coordinator = Coordinator(
        policy=settings.policy,
        cluster=settings.cluster,
        drain_deadline_seconds=settings.drain_deadline,
        heartbeat_timeout_seconds=settings.heartbeat_timeout,
        store=store,
        lifecycle=lifecycle,
        ecs=ecs,
        sessions=sessions,
        clock=clock,
        room_index=index,
    )
    stops = FakeTaskStopStore()
    tracker = TaskStopTracker(
        store=stops,
        ecs=ecs,
        sessions=sessions,
        drains=coordinator,
        clock=clock,
        cluster=settings.cluster,
        at_risk_seconds=settings.at_risk_seconds,
        room_index=index,
    )
    wiring.install(settings, coordinator, tracker)
    yield Harness(coordinator, store, lifecycle, ecs, sessions, clock, stops, tracker, index)
    wiring.reset()
