"""The rescue service (drain_coordinator/services/rescue.py) against in-memory fakes of its ledger and of
LiveKit: dispatch, refusal of a second rescue, each failure path counted with its reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import pytest

from drain_coordinator.domain.rescue import RescuePolicy, RescueRecord, RescueStatus, worries_of
from drain_coordinator.integrations.livekit import RescueDispatchError, RoomAgent
from drain_coordinator.integrations.store import StaleDrainError
from drain_coordinator.observability import flush_metrics
from drain_coordinator.services.rescue import RESCUE_METADATA_KEY, Rescuer
from tests.functional.test_handlers import emitted_metrics

T0 = 1_767_225_600.0
OLD, NEW = (
    "arn:aws:ecs:us-east-1:123456789012:task/agents/old",
    "arn:aws:ecs:us-east-1:123456789012:task/agents/new",
)


class FakeRescueStore:
    def __init__(self) -> None:
        self.items: dict[str, RescueRecord] = {}

    def get(self, room: str) -> RescueRecord | None:
        return self.items.get(room)

    def begin(self, record: RescueRecord) -> RescueRecord | None:
        earlier = self.items.get(record.room)
        if earlier is not None and earlier.running:
            return None
        fresh = replace(record, attempts=(earlier.attempts + 1) if earlier else 1, version=0)
        self.items[record.room] = fresh
        return fresh

    def save(self, record: RescueRecord) -> RescueRecord:
        if self.items[record.room].version != record.version:
            raise StaleDrainError(record.room)
        saved = replace(record, version=record.version + 1)
        self.items[record.room] = saved
        return saved


@dataclass
class FakeLiveKit:
    refuse: bool = False
    agents: dict[str, list[RoomAgent]] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    created: list[tuple[str, str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> str:
        if self.refuse:
            raise RescueDispatchError("LiveKit answered 401 unauthenticated: permissions denied")
        self.created.append((room, agent_name, metadata))
        return f"AD_{len(self.created)}"

    def dispatch_jobs(self, room: str, dispatch_id: str) -> int | None:
        return self.jobs.get(dispatch_id, 0)

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        self.deleted.append(dispatch_id)

    def agents_in(self, room: str) -> list[RoomAgent]:
        return self.agents.get(room, [])


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


def a_rescuer(livekit: FakeLiveKit, clock: Clock) -> tuple[Rescuer, FakeRescueStore]:
    store = FakeRescueStore()
    return Rescuer(store, livekit, RescuePolicy(), clock, agent_name="voice"), store


def spot_call(room: str = "call-1") -> list:  # type: ignore[type-arg]
    return worries_of({room: OLD}, reclaim_at=T0 + 120)


def metrics(capsys: pytest.CaptureFixture[str]) -> dict[str, list[float]]:
    flush_metrics()
    return emitted_metrics(capsys.readouterr().out)


def test_a_doomed_call_is_dispatched_with_metadata_naming_its_checkpoint() -> None:
    # GIVEN a call on an instance EC2 reclaims in two minutes
    livekit, clock = FakeLiveKit(), Clock()
    rescuer, store = a_rescuer(livekit, clock)
    # WHEN a look hands it over
    steps = rescuer.look(spot_call())
    # THEN one dispatch into its room, to the workers' agent name, naming its checkpoint and task
    assert [s.action for s in steps] == ["rescue_dispatched"]
    ((room, agent_name, metadata),) = livekit.created
    assert (room, agent_name) == ("call-1", "voice")
    assert json.loads(metadata)[RESCUE_METADATA_KEY] == {
        "checkpoint": "call-1",
        "from_task": OLD,
        "danger": "spot",
    }
    assert store.items["call-1"].running and store.items["call-1"].dispatch_id == "AD_1"


def test_a_second_rescue_of_a_call_is_refused_while_the_first_runs() -> None:
    # GIVEN a rescue dispatched, its agent not joined yet
    livekit, clock = FakeLiveKit(), Clock()
    rescuer, _ = a_rescuer(livekit, clock)
    rescuer.look(spot_call())
    # WHEN another look sees the same call still doomed, 10 s later
    clock.now += 10
    steps = rescuer.look(spot_call())
    # THEN nothing new is dispatched
    assert steps == [] and len(livekit.created) == 1


def test_the_new_agent_joining_counts_the_rescue_and_its_gap(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a rescue dispatched, and the new worker's agent in the room 1.5 s later
    livekit, clock = FakeLiveKit(), Clock()
    rescuer, store = a_rescuer(livekit, clock)
    rescuer.look(spot_call())
    metrics(capsys)
    livekit.agents["call-1"] = [RoomAgent("agent-1-aj", NEW, T0 + 1.5, "loaded")]
    # WHEN the next look sees it (the old agent gone: the room is only a room watched before)
    clock.now += 60
    steps = rescuer.look([], also_settle={"call-1"})
    # THEN the call is rescued, its gap counted, nothing failed
    assert [(s.action, s.gap_seconds) for s in steps] == [("rescued", 1.5)]
    assert store.items["call-1"].status is RescueStatus.RESCUED and store.items["call-1"].to_task == NEW
    emitted = metrics(capsys)
    assert emitted["CallsRescued"] == [1.0] and emitted["RescueGapSeconds"] == [1.5]
    assert "RescueFailed" not in emitted


def test_a_new_agent_without_the_checkpoint_is_a_rescue_counted_no_state(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a rescue whose new agent found no checkpoint
    livekit, clock = FakeLiveKit(), Clock()
    rescuer, _ = a_rescuer(livekit, clock)
    rescuer.look(spot_call())
    metrics(capsys)
    livekit.agents["call-1"] = [RoomAgent("agent-1-aj", NEW, T0 + 2, "none")]
    # WHEN a look sees it
    clock.now += 5
    steps = rescuer.look(spot_call())
    # THEN rescued, and a failure no_state counted beside it
    assert [(s.action, s.reason) for s in steps] == [("rescued", "no_state")]
    emitted = metrics(capsys)
    assert emitted["CallsRescued"] == [1.0] and emitted["RescueFailed"] == [1.0, 1.0]


@pytest.mark.parametrize(("jobs", "reason"), [(0, "no_capacity"), (1, "timeout")])
def test_a_rescue_that_never_joins_fails_with_its_reason_and_is_withdrawn(
    jobs: int, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a rescue whose dispatch LiveKit gave `jobs` jobs, no new agent after the join timeout
    livekit, clock = FakeLiveKit(), Clock()
    rescuer, store = a_rescuer(livekit, clock)
    rescuer.look(spot_call())
    livekit.jobs["AD_1"] = jobs
    metrics(capsys)
    # WHEN a look comes after the timeout, the call still doomed
    clock.now += rescuer.join_timeout_seconds + 1
    steps = rescuer.look(spot_call())
    # THEN the rescue failed with that reason, its dispatch deleted, and a new one dispatched
    assert [(s.action, s.reason) for s in steps] == [("rescue_failed", reason), ("rescue_dispatched", None)]
    assert livekit.deleted == ["AD_1"]
    assert store.items["call-1"].attempts == 2
    assert metrics(capsys)["RescueFailed"] == [1.0, 1.0]


def test_a_refused_dispatch_is_counted_and_leaves_the_call_free_for_the_next_look(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN LiveKit refusing dispatches
    livekit, clock = FakeLiveKit(refuse=True), Clock()
    rescuer, store = a_rescuer(livekit, clock)
    metrics(capsys)
    # WHEN a look tries
    steps = rescuer.look(spot_call())
    # THEN dispatch_refused is counted, and the ledger does not hold the call as running
    assert [(s.action, s.reason) for s in steps] == [("rescue_failed", "dispatch_refused")]
    assert not store.items["call-1"].running
    assert metrics(capsys)["RescueFailed"] == [1.0, 1.0]


def test_a_call_in_no_danger_is_never_dispatched() -> None:
    # GIVEN a call whose drain's deadline is an hour away
    livekit, clock = FakeLiveKit(), Clock()
    rescuer, store = a_rescuer(livekit, clock)
    # WHEN a look runs
    steps = rescuer.look(worries_of({"call-1": OLD}, deadline_at=T0 + 3600))
    # THEN nothing is dispatched or recorded
    assert steps == [] and livekit.created == [] and store.items == {}
