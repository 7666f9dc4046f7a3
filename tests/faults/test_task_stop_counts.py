"""A STOPPED judgement counts the callers a dead worker left on the line: LiveKit failing one look
(a call past its own bound, a 429) is tried once more before the count is given up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from drain_coordinator.integrations.livekit import LiveKitProbeError
from tests.fakes import FakeSessions
from tests.functional.conftest import Harness, harness
from tests.unit.test_task_verdicts import change_of

__all__ = ["harness"]  # the handlers' tests' coordinator and tracker on fakes


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
def test_a_stopped_task_s_callers_are_counted_past_one_failed_look(
    harness: Harness, failures: int, dropped: int
) -> None:
    # GIVEN a worker killed with two callers still on the line in the rooms its agent held (the
    # webhooks' room index names them), and a LiveKit that fails the first `failures` looks at them
    change = change_of("ecs-task-stopped-forced-kill.json")
    harness.sessions.rooms.update({"call-1": change.task_arn, "call-2": change.task_arn})
    sessions = FlakySessions(rooms=harness.sessions.rooms, callers={"call-1", "call-2"}, failures=failures)
    harness.tracker.sessions = sessions

    # WHEN its STOPPED event is judged
    (step, *_) = harness.tracker.on_change(change)

    # THEN one failed look is tried again and the callers counted; two give the count up (the
    # last count seen stands: none here, and the kill pages as uncounted)
    assert step["verdict"] == "forced_kill"
    assert step["dropped_sessions"] == dropped
    assert sessions.asked == min(failures + 1, 2)
