"""A dependency that stops answering for the whole event, with botocore's real retries: each
attempt waits out its client's read timeout and each backoff its jittered delay, both spent on
the virtual clock. The coordinator must end every tick inside the function's timeout and keep
every hook alive with heartbeats until the drain's deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ReadTimeoutError

from drain_coordinator.integrations.aws_clients import PROBE_CONFIG, total_attempts
from drainctl.world.world import World
from tests.faults.conftest import HandlerFaults
from tests.integration.test_world_end_to_end import (
    emitted_metrics,
    looks_for,
    run_until_released,
    scale_in,
    start_calls,
    total,
)


class _VirtualTime:
    """What botocore's endpoint sees of `time`: its retry sleeps move the world's clock."""

    def __init__(self, world: World) -> None:
        self._world = world

    def sleep(self, seconds: float) -> None:
        self._world.clock.advance(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def virtual_retry_sleeps(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.endpoint, "time", _VirtualTime(world))


@dataclass
class Hang:
    """Every request of one service waits out the read timeout, then fails as botocore would
    see it: ReadTimeoutError (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
    lists it among the transient errors standard mode retries)."""

    world: World
    read_timeout: float
    attempts: int = 0

    def __call__(self, request: AWSRequest, **_: Any) -> None:
        self.attempts += 1
        self.world.clock.advance(self.read_timeout)
        raise ReadTimeoutError(endpoint_url=request.url)


def hang_ecs(world: World, handler_faults: HandlerFaults) -> Hang:
    hang = Hang(world, float(PROBE_CONFIG.read_timeout))  # type: ignore[attr-defined]
    for operation in ("ListTasks", "DescribeTasks", "DescribeContainerInstances", "ListContainerInstances"):
        handler_faults._register(f"before-send.ecs.{operation}", hang)
    return hang


def test_a_hung_ecs_holds_every_drain_with_heartbeats_and_no_tick_overruns(
    world: World, handler_faults: HandlerFaults, virtual_retry_sleeps: None
) -> None:
    # GIVEN six instances whose workers DRAINING does not stop (standalone tasks), each with a call
    # longer than the drain deadline, scaled in and looked at once
    instances = world.create_fleet(6)
    for instance_id in instances:
        for worker in world.workers_on(instance_id):
            worker.service = ""
        start_calls(world, instance_id, [[3000.0]])
    for instance_id in instances:
        scale_in(world, instance_id)
    world.step(1.0)
    hung_at = world.clock.now()
    # AND then ECS answering none of the coordinator's reads for the rest of the event
    hung_ecs = hang_ecs(world, handler_faults)

    # WHEN the drains run to their end
    actions = [run_until_released(world, instance_id) for instance_id in instances]

    # THEN no hook expired: every one was heartbeated until the deadline released it
    deadline = float(world.params["DrainDeadline"])
    for action in actions:
        assert action.ended_by == "CONTINUE"
        assert action.ended_at is not None
        assert action.ended_at >= action.started_at + deadline - world.period
        assert action.heartbeats >= int(deadline // world.hook_heartbeat_timeout)
    # THEN every reconcile tick ended inside the function's timeout, though ECS never answered:
    # after two looks failed, the rest of the tick held its drains without asking
    ticks = [i for i in world.lambdas.invocations if i.function == "ReconcileFunction"]
    assert ticks
    assert all(i.remaining_millis is not None and i.remaining_millis >= 0 for i in ticks)
    per_look = total_attempts(PROBE_CONFIG)
    assert hung_ecs.attempts <= len(ticks) * 2 * per_look + len(instances) * 2 * per_look
    # THEN each held look counted a probe error, the alarm fired, and the calls cut at the
    # deadline were counted
    for instance_id in instances:
        looks = [s["action"] for t, s in looks_for(world, instance_id) if t > hung_at]
        assert looks[-1] == "complete"
        assert set(looks[:-1]) == {"hold"}
    metrics = emitted_metrics(world)
    assert total(metrics, "ProbeErrors") >= len(instances)
    # (counted once each, by the stop of the task that held it; the by-service copies aside)
    by_stack = [m for m in metrics if m.name == "DroppedSessions" and "ServiceName" not in m.dimensions]
    assert sum(m.value for m in by_stack) == len(instances)
    fired = {f.alarm.name for f in world.alarms_firing()}
    assert {"livekit-drain-probe-errors", "livekit-drain-dropped-sessions"} <= fired
    assert "livekit-drain-hooks-expired" not in fired
