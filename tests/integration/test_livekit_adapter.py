"""LiveKitSessions with the real livekit-api client against the local LiveKit RoomService (Twirp)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from drain_coordinator.integrations.livekit import (
    SESSION_TAG_ATTRIBUTE,
    LiveKitCredentials,
    LiveKitProbeError,
    LiveKitSessions,
)
from drainctl.world.livekit_server import LocalLiveKit
from tests.factories import TASK_A, TASK_B
from tests.integration.conftest import closed_port_url

TASK_C = "arn:aws:ecs:us-east-1:123456789012:task/agents/c0ffee00c0ffee00c0ffee00c0ffee00"
# The coordinator's default: generous enough for a loaded test machine.
TIMEOUT_SECONDS = 5.0
SHORT_TIMEOUT_SECONDS = 0.5
WRONG_SECRET = "not-the-local-world-secret-0123456789abcdef"


def credentials_of(livekit: LocalLiveKit, secret: str | None = None) -> Callable[[], LiveKitCredentials]:
    return lambda: LiveKitCredentials(livekit.api_key, secret or livekit.api_secret)


def sessions(
    livekit: LocalLiveKit,
    url: str | None = None,
    secret: str | None = None,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> LiveKitSessions:
    return LiveKitSessions(
        url or livekit.url, credentials_of(livekit, secret), timeout_seconds=timeout_seconds
    )


def a_call(livekit: LocalLiveKit, room: str, task_arn: str, *, kind: str = "AGENT") -> None:
    """A phone call: a SIP caller and the worker's agent, tagged with its task ARN."""
    livekit.join(room, f"caller-{room}", kind="SIP")
    livekit.join(room, f"agent-{room}", kind=kind, attributes={SESSION_TAG_ATTRIBUTE: task_arn})


def a_look(probe: LiveKitSessions, look: str) -> dict[str, str]:
    """A first look (discover task A's rooms) or a later one (is call-a1 still held)."""
    if look == "discover":
        return probe.discover([TASK_A])
    return probe.still_held({"call-a1": TASK_A})


def busy_livekit(livekit: LocalLiveKit) -> None:
    """Rooms that test what counts as a session of a task, and what does not."""
    a_call(livekit, "call-a1", TASK_A)
    a_call(livekit, "call-a2", TASK_A)
    a_call(livekit, "call-c1", TASK_C)
    # An agent of a task the drain does not own.
    a_call(livekit, "call-b1", TASK_B)
    # The tag on a participant that is not an agent: a caller who copied it, a SIP leg.
    a_call(livekit, "call-standard", TASK_A, kind="STANDARD")
    a_call(livekit, "call-sip", TASK_A, kind="SIP")
    # An agent without the tag (an old worker image).
    livekit.join("call-untagged", "caller-untagged", kind="SIP")
    livekit.join("call-untagged", "agent-untagged", kind="AGENT")
    # An untagged agent joined first, the drain's tagged agent after it.
    livekit.join("call-two-agents", "agent-greeter", kind="AGENT")
    livekit.join("call-two-agents", "agent-two", kind="AGENT", attributes={SESSION_TAG_ATTRIBUTE: TASK_A})
    # A room nobody has joined yet.
    livekit.create_room("call-empty")


# -- discover --------------------------------------------------------------------------------------


def test_discover_returns_the_rooms_held_by_agents_of_the_given_tasks(local_livekit: LocalLiveKit) -> None:
    # GIVEN rooms held by the drain's tasks, by another task, and tagged participants that are not agents
    busy_livekit(local_livekit)

    # WHEN the drain discovers the rooms of tasks A and C
    found = sessions(local_livekit).discover([TASK_A, TASK_C])

    # THEN exactly the rooms whose AGENT carries one of those ARNs, mapped to it
    assert found == {
        "call-a1": TASK_A,
        "call-a2": TASK_A,
        "call-c1": TASK_C,
        "call-two-agents": TASK_A,
    }


def test_discover_asks_about_every_room(local_livekit: LocalLiveKit) -> None:
    # GIVEN twenty rooms, two of them the drain's
    for n in range(18):
        a_call(local_livekit, f"call-{n:02d}", TASK_B)
    a_call(local_livekit, "call-a1", TASK_A)
    a_call(local_livekit, "call-a2", TASK_A)
    local_livekit.reset_counts()

    # WHEN the drain discovers its rooms
    found = sessions(local_livekit).discover([TASK_A])

    # THEN it listed the rooms once and the participants of each room: O(all rooms)
    assert set(found) == {"call-a1", "call-a2"}
    assert local_livekit.request_counts["ListRooms"] == 1
    assert local_livekit.request_counts["ListParticipants"] == 20


def test_discover_of_no_task_asks_nothing(local_livekit: LocalLiveKit) -> None:
    # GIVEN a busy LiveKit
    busy_livekit(local_livekit)
    local_livekit.reset_counts()

    # WHEN a drain with no worker task discovers / THEN it holds no room and sent no request
    assert sessions(local_livekit).discover([]) == {}
    assert local_livekit.request_counts["total"] == 0


# -- still_held ------------------------------------------------------------------------------------


def test_still_held_shrinks_as_agents_leave_and_rooms_end(local_livekit: LocalLiveKit) -> None:
    # GIVEN three rooms discovered for the drain
    busy_livekit(local_livekit)
    probe = sessions(local_livekit)
    watched = probe.discover([TASK_A, TASK_C])
    assert set(watched) == {"call-a1", "call-a2", "call-c1", "call-two-agents"}

    # WHEN one agent leaves its call (the caller stays on) and another call ends
    local_livekit.leave("call-a1", "agent-call-a1")
    local_livekit.delete_room("call-c1")
    held = probe.still_held(watched)

    # THEN only the rooms whose agent is still in them remain
    assert held == {"call-a2": TASK_A, "call-two-agents": TASK_A}

    # WHEN the last calls end
    local_livekit.delete_room("call-a2")
    local_livekit.leave("call-two-agents", "agent-two")

    # THEN nothing is held
    assert probe.still_held(held) == {}


def test_still_held_drops_a_room_taken_over_by_another_task(local_livekit: LocalLiveKit) -> None:
    # GIVEN a room discovered as task A's, and the drain also watching a room of task C
    a_call(local_livekit, "call-a1", TASK_A)
    a_call(local_livekit, "call-c1", TASK_C)
    probe = sessions(local_livekit)
    watched = probe.discover([TASK_A, TASK_C])

    # WHEN A's agent leaves and an agent of task C joins that room
    local_livekit.leave("call-a1", "agent-call-a1")
    local_livekit.join("call-a1", "agent-late", kind="AGENT", attributes={SESSION_TAG_ATTRIBUTE: TASK_C})

    # THEN the room no longer counts for A, and C's own room still does
    assert probe.still_held(watched) == {"call-c1": TASK_C}


def test_still_held_keeps_a_room_whose_agent_stays_behind_another_drain_agent(
    local_livekit: LocalLiveKit,
) -> None:
    # GIVEN a watched room of task A in which an agent of task C (also watched) is listed first
    local_livekit.join("call-handoff", "agent-c", kind="AGENT", attributes={SESSION_TAG_ATTRIBUTE: TASK_C})
    local_livekit.join("call-handoff", "agent-a", kind="AGENT", attributes={SESSION_TAG_ATTRIBUTE: TASK_A})
    a_call(local_livekit, "call-c1", TASK_C)
    watched = {"call-handoff": TASK_A, "call-c1": TASK_C}

    # WHEN the drain looks again
    held = sessions(local_livekit).still_held(watched)

    # THEN A's agent is still in its room, so the room is still held (the docstring's contract)
    assert held == watched


def test_still_held_asks_only_about_the_watched_rooms(local_livekit: LocalLiveKit) -> None:
    # GIVEN thirty rooms, three watched by the drain, one of which has ended
    for n in range(27):
        a_call(local_livekit, f"call-{n:02d}", TASK_B)
    for room in ("call-a1", "call-a2", "call-a3"):
        a_call(local_livekit, room, TASK_A)
    watched = {"call-a1": TASK_A, "call-a2": TASK_A, "call-a3": TASK_A}
    local_livekit.delete_room("call-a3")
    local_livekit.reset_counts()

    # WHEN the drain looks at its rooms
    held = sessions(local_livekit).still_held(watched)

    # THEN one ListRooms by name, and participants of the two watched rooms still open: O(watched)
    assert held == {"call-a1": TASK_A, "call-a2": TASK_A}
    assert local_livekit.request_counts["ListRooms"] == 1
    assert local_livekit.request_counts["ListParticipants"] == 2


def test_still_held_of_no_room_asks_nothing(local_livekit: LocalLiveKit) -> None:
    # GIVEN a busy LiveKit
    busy_livekit(local_livekit)
    local_livekit.reset_counts()

    # WHEN a drain that watches no room looks / THEN it holds none and sent no request
    assert sessions(local_livekit).still_held({}) == {}
    assert local_livekit.request_counts["total"] == 0


def test_credentials_are_asked_for_on_every_look(local_livekit: LocalLiveKit) -> None:
    # GIVEN credentials that count how often they are read (a rotated secret must be picked up)
    reads: list[int] = []

    def credentials() -> LiveKitCredentials:
        reads.append(1)
        return LiveKitCredentials(local_livekit.api_key, local_livekit.api_secret)

    probe = LiveKitSessions(local_livekit.url, credentials, timeout_seconds=TIMEOUT_SECONDS)
    a_call(local_livekit, "call-a1", TASK_A)

    # WHEN the drain discovers, then looks twice
    watched = probe.discover([TASK_A])
    probe.still_held(watched)
    probe.still_held(watched)

    # THEN each look read the credentials once
    assert len(reads) == 3


# -- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["unreachable", "status_5xx", "unauthorized"])
@pytest.mark.parametrize("look", ["discover", "still_held"])
def test_livekit_fault_is_probe_error(local_livekit: LocalLiveKit, fault: str, look: str) -> None:
    # GIVEN a call of the drain's, and LiveKit hanging up, answering 503, or refusing the key
    a_call(local_livekit, "call-a1", TASK_A)
    setattr(local_livekit.faults, fault, True)
    probe = sessions(local_livekit)

    # WHEN / THEN the look proves nothing: a probe error, never "no sessions"
    with pytest.raises(LiveKitProbeError):
        a_look(probe, look)
    assert local_livekit.request_counts["total"] >= 1


def test_wrong_api_secret_is_probe_error(local_livekit: LocalLiveKit) -> None:
    # GIVEN credentials whose secret LiveKit does not know (its token signature fails)
    a_call(local_livekit, "call-a1", TASK_A)

    # WHEN / THEN LiveKit's 401 is a probe error naming the status
    with pytest.raises(LiveKitProbeError, match="401"):
        sessions(local_livekit, secret=WRONG_SECRET).discover([TASK_A])


def test_livekit_not_listening_is_probe_error(local_livekit: LocalLiveKit) -> None:
    # GIVEN a LiveKit URL where nothing listens / WHEN / THEN
    with pytest.raises(LiveKitProbeError, match="unreachable"):
        sessions(local_livekit, url=closed_port_url()).discover([TASK_A])


@pytest.mark.parametrize("look", ["discover", "still_held"])
def test_slow_livekit_is_probe_error_once_the_timeout_runs_out(
    local_livekit: LocalLiveKit, look: str
) -> None:
    # GIVEN LiveKit holding every request for 30 s, far past the probe's timeout
    a_call(local_livekit, "call-a1", TASK_A)
    local_livekit.faults.delay_seconds = 30.0
    probe = sessions(local_livekit, timeout_seconds=SHORT_TIMEOUT_SECONDS)

    # WHEN the drain looks
    started = time.monotonic()
    with pytest.raises(LiveKitProbeError):
        a_look(probe, look)
    elapsed = time.monotonic() - started

    # THEN it gave up on its own timeout, long before LiveKit would have answered
    assert elapsed < 10.0


def test_egress_and_ingress_participants_are_not_callers(local_livekit: LocalLiveKit) -> None:
    # GIVEN three rooms whose agent died: one recorded by an egress, one fed by an ingress, one
    # with its caller still on the line
    for room in ("rec", "feed", "call"):
        local_livekit.join(room, f"agent-{room}", kind="AGENT", attributes={SESSION_TAG_ATTRIBUTE: TASK_A})
    local_livekit.join("rec", "EG_recorder", kind="EGRESS")
    local_livekit.join("feed", "IN_stream", kind="INGRESS")
    local_livekit.join("call", "caller-call", kind="SIP")
    for room in ("rec", "feed", "call"):
        local_livekit.leave(room, f"agent-{room}")
    probe = sessions(local_livekit)
    # WHEN the rooms still holding a caller are asked for
    callers = probe.callers_still_in({"rec": TASK_A, "feed": TASK_A, "call": TASK_A})
    # THEN only the caller's room counts: a recorder or a stream is nobody's dropped call
    assert callers == {"call": TASK_A}
