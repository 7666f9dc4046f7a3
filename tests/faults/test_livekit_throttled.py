"""LiveKit that answers, but not every look: a 429 (its rate limit) or one call past its own bound.
Such a failure holds that drain and says nothing of the next look, so it must not stop the run's
other looks (the breaker is for a LiveKit that is down), and each run keeps its own breaker."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from drain_coordinator.integrations.livekit import LiveKitProbeError
from tests.unit.test_schedule import SlowSessions, a_tick


@dataclass
class RefusingSessions(SlowSessions):
    """A LiveKit that refuses the first `refusals` looks with this failure, then answers."""

    refusals: int = 0
    down: bool = True
    asked: int = 0

    def still_held(self, rooms: object, within: float | None = None) -> dict[str, str]:
        self.asked += 1
        if self.asked <= self.refusals:
            raise LiveKitProbeError("LiveKit answered 429 resource_exhausted", down=self.down)
        return super().still_held(rooms, within)


@pytest.mark.parametrize(("down", "asked"), [(False, 6), (True, 2)])
def test_a_rate_limited_livekit_is_asked_again_by_the_next_look_a_down_one_is_not(
    down: bool, asked: int
) -> None:
    # GIVEN six drains to look at in one tick, and a LiveKit that refuses the first three looks:
    # with a 429 (it is up, and asks for less) or as down (no answer, 5xx)
    tick, (started,) = a_tick(6, look_seconds=0.5, heartbeat_left=250.0)
    sessions = RefusingSessions(clock=tick.clock, seconds=0.5, refusals=3, down=down)
    sessions.rooms = tick.sessions.rooms
    tick.scheduler.drains.sessions = sessions

    # WHEN the tick runs
    result = tick.scheduler.tick(lambda: 55.0 - (tick.clock.t - started))

    # THEN a 429 did not stop the run's other looks: each asked LiveKit, and the last three saw
    # their calls; a LiveKit that is down is given up after two failures in a row
    assert sessions.asked == asked
    waited = [s for s in result.steps if s["action"] == "wait"]
    assert len(waited) == (3 if not down else 0)


def test_runs_side_by_side_on_one_coordinator_each_keep_their_own_breaker() -> None:
    # GIVEN one coordinator, and a run in another thread (a concurrent invocation of the local
    # world, which shares the coordinator) whose LiveKit failed twice
    coordinator = a_tick(1, look_seconds=0.0)[0].scheduler.drains
    opened: list[bool] = []

    def other_run() -> None:
        coordinator.start_run()
        coordinator.breaker.record("LiveKit", ok=False)
        coordinator.breaker.record("LiveKit", ok=False)
        opened.append(coordinator.breaker.is_open("LiveKit"))

    coordinator.start_run()
    thread = threading.Thread(target=other_run)
    thread.start()
    thread.join()

    # THEN that run gave LiveKit up, and this one still asks it
    assert opened == [True]
    assert not coordinator.breaker.is_open("LiveKit")
