"""A STOPPED judgement counts the callers a dead worker left on the line: LiveKit failing one look
(a call past its own bound, a 429) is tried once more before the count is given up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from drain_coordinator.domain.decide import DrainPolicy
from drain_coordinator.integrations.livekit import LiveKitProbeError
from drain_coordinator.services.drains import Coordinator
from drain_coordinator.services.task_stops import TaskStopTracker
from tests.factories import T0
from tests.fakes import (
    FakeClock,
    FakeEcs,
    FakeLifecycle,
    FakeRoomIndex,
    FakeSessions,
    FakeStore,
    FakeTaskStopStore,
)
from tests.unit.test_task_verdicts import CLUSTER, change_of


@dataclass
class FlakySessions(FakeSessions):
    """LiveKit failing the first `failures` looks at a stopped task's callers."""

    failures: int = 0
    asked: int = 0

    def callers_still_in(self, rooms: Mapping[str, str]) -> dict[str, str]:
        self.asked += 1
        if self.asked <= self.failures:
            raise LiveKitProbeError("LiveKit did not answer within 5.0 s")
        return super().callers_still_in(rooms)


@pytest.mark.parametrize(("failures", "dropped"), [(0, 2), (1, 2), (2, 0)])
def test_a_stopped_task_s_callers_are_counted_past_one_failed_look(failures: int, dropped: int) -> None:
    # GIVEN a worker killed with two callers still on the line in the rooms its agent held, and a
    # LiveKit that fails the first `failures` looks at them
    change = change_of("ecs-task-stopped-forced-kill.json")
    sessions = FlakySessions(failures=failures)
    sessions.rooms = {"call-1": change.task_arn, "call-2": change.task_arn}
    sessions.callers = {"call-1", "call-2"}
    clock = FakeClock(T0)
    ecs = FakeEcs()
    coordinator = Coordinator(
        policy=DrainPolicy(),
        cluster=CLUSTER,
        drain_deadline_seconds=1200,
        heartbeat_timeout_seconds=300,
        store=FakeStore(),
        lifecycle=FakeLifecycle(),
        ecs=ecs,
        sessions=sessions,
        clock=clock,
    )
    tracker = TaskStopTracker(
        store=FakeTaskStopStore(),
        ecs=ecs,
        sessions=sessions,
        drains=coordinator,
        clock=clock,
        cluster=CLUSTER,
        room_index=FakeRoomIndex(sessions),
    )

    # WHEN its STOPPED event is judged
    (step, *_) = tracker.on_change(change)

    # THEN one failed look is tried again and the callers counted; two give the count up (the
    # last count seen stands: none here, and the kill pages as uncounted)
    assert step["verdict"] == "forced_kill"
    assert step["dropped_sessions"] == dropped
    assert sessions.asked == min(failures + 1, 2)
