"""In-memory stand-ins for the coordinator's ports, for functional tests (no network)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from drain_coordinator.domain.probe import WorkerTask
from drain_coordinator.domain.records import DrainRecord, LifecycleRef
from drain_coordinator.domain.task_stops import TaskStopRecord
from drain_coordinator.integrations.autoscaling import AutoScalingError, LifecycleActionGoneError
from drain_coordinator.integrations.ecs import EcsError
from drain_coordinator.integrations.livekit import LiveKitProbeError
from drain_coordinator.integrations.store import StaleDrainError, StoreError


class FakeStore:
    def __init__(self) -> None:
        self.items: dict[str, DrainRecord] = {}
        self.pointers: dict[str, str] = {}  # task ARN -> instance id
        self.saves = 0
        self.looks: dict[str, tuple[dict[str, float], float]] = {}  # run -> its looks, read until

    def open_drain(self, record: DrainRecord) -> bool:
        if record.instance_id in self.items:
            return False
        self.items[record.instance_id] = record
        return True

    def get(self, instance_id: str) -> DrainRecord | None:
        return self.items.get(instance_id)

    def open_drains(self) -> Iterator[DrainRecord]:
        yield from sorted((r for r in self.items.values() if r.is_open), key=lambda r: r.deadline_at)

    def get_many(self, instance_ids: Collection[str]) -> dict[str, DrainRecord]:
        return {i: self.items[i] for i in instance_ids if i in self.items}

    def point_tasks(self, instance_id: str, task_arns: Collection[str], at: float) -> None:
        self.pointers.update({arn: instance_id for arn in task_arns})

    def drain_of_task(self, task_arn: str) -> DrainRecord | None:
        instance_id = self.pointers.get(task_arn)
        return None if instance_id is None else self.items.get(instance_id)

    def save(self, record: DrainRecord) -> DrainRecord:
        current = self.items.get(record.instance_id)
        if current is None or current.version != record.version:
            raise StaleDrainError(record.instance_id)
        saved = replace(record, version=record.version + 1)
        self.items[record.instance_id] = saved
        self.saves += 1
        return saved

    def record_looks(self, run: str, looks: Mapping[str, float], until: float) -> None:
        self.looks[run] = (dict(looks), until)

    def recent_looks(self, now: float) -> dict[str, float]:
        latest: dict[str, float] = {}
        for looks, until in self.looks.values():
            if until > now:
                for instance_id, at in looks.items():
                    latest[instance_id] = max(at, latest.get(instance_id, at))
        return latest


class FakeTaskStopStore:
    def __init__(self) -> None:
        self.items: dict[str, TaskStopRecord] = {}

    def get(self, task_arn: str) -> TaskStopRecord | None:
        return self.items.get(task_arn)

    def create(self, record: TaskStopRecord) -> bool:
        if record.task_arn in self.items:
            return False
        self.items[record.task_arn] = record
        return True

    def save(self, record: TaskStopRecord) -> TaskStopRecord:
        current = self.items.get(record.task_arn)
        if current is None or current.version != record.version:
            raise StaleDrainError(record.task_arn)
        saved = replace(record, version=record.version + 1)
        self.items[record.task_arn] = saved
        return saved

    def open_stops(self) -> Iterator[TaskStopRecord]:
        yield from (r for r in list(self.items.values()) if r.is_open)

    def get_many(self, task_arns: Collection[str]) -> dict[str, TaskStopRecord]:
        return {a: self.items[a] for a in task_arns if a in self.items}


@dataclass
class FakeLifecycle:
    calls: list[tuple[str, str]] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    throttled: bool = False  # every call refused as Auto Scaling refuses past its rate

    def record_heartbeat(self, ref: LifecycleRef) -> None:
        self._call("heartbeat", ref)

    def complete(self, ref: LifecycleRef, result: str = "CONTINUE") -> None:
        self._call(f"complete:{result}", ref)
        self.gone.add(ref.instance_id)

    def _call(self, what: str, ref: LifecycleRef) -> None:
        if self.throttled:
            raise AutoScalingError(f"{what} failed: Throttling: Rate exceeded")
        if ref.instance_id in self.gone:
            raise LifecycleActionGoneError("No active Lifecycle Action found")
        self.calls.append((what, ref.instance_id))


@dataclass
class FakeEcs:
    instances: dict[str, str] = field(default_factory=dict)  # ec2 id -> container instance arn
    tasks: dict[str, list[WorkerTask]] = field(default_factory=dict)  # ci arn -> tasks
    draining: list[str] = field(default_factory=list)
    failing: bool = False
    stop_timeouts: dict[str, int] = field(default_factory=dict)
    described: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: int = 0
    describes: int = 0

    def container_instance_of(self, ec2_instance_id: str) -> str | None:
        self._maybe_fail()
        return self.instances.get(ec2_instance_id)

    def drain(self, container_instance_arn: str) -> None:
        self._maybe_fail()
        self.draining.append(container_instance_arn)
        # ECS tells every service task on a DRAINING instance to stop; daemon tasks only once
        # all the others have stopped (not modelled: they stay running here)
        self.tasks[container_instance_arn] = [
            t if t.daemon else replace(t, desired_status="STOPPED")
            for t in self.tasks.get(container_instance_arn, [])
        ]

    def activate(self, container_instance_arn: str) -> bool:
        self._maybe_fail()
        if container_instance_arn not in self.draining:
            return False
        self.draining.remove(container_instance_arn)
        return True

    def worker_tasks_on(self, container_instance_arn: str) -> tuple[WorkerTask, ...]:
        self._maybe_fail()
        self.listings += 1
        return tuple(self.tasks.get(container_instance_arn, []))

    def describe_workers(self, task_arns: Collection[str]) -> dict[str, WorkerTask]:
        self._maybe_fail()
        self.describes += 1
        every = {t.arn: t for tasks in self.tasks.values() for t in tasks}
        return {arn: every[arn] for arn in task_arns if arn in every}

    def describe_tasks(self, task_arns: Collection[str]) -> dict[str, dict[str, Any]]:
        self._maybe_fail()
        self.describes += 1
        return {arn: self.described[arn] for arn in task_arns if arn in self.described}

    def stop_timeout_of(self, task_definition_arn: str) -> int:
        self._maybe_fail()
        return self.stop_timeouts.get(task_definition_arn, 900)

    def describe_task(self, task_arn: str) -> dict[str, Any] | None:
        self._maybe_fail()
        return self.described.get(task_arn)

    def ec2_instance_of(self, container_instance_arn: str) -> str | None:
        return next((i for i, ci in self.instances.items() if ci == container_instance_arn), None)

    def _maybe_fail(self) -> None:
        if self.failing:
            raise EcsError("ThrottlingException: Rate exceeded")


@dataclass
class FakeSessions:
    rooms: dict[str, str] = field(default_factory=dict)  # room -> task arn of its agent
    discover_calls: int = 0
    still_held_calls: int = 0
    room_names_calls: int = 0
    failing: bool = False
    callers: set[str] = field(default_factory=set)  # rooms whose caller is still on the line

    def discover(
        self, task_arns: Collection[str], within: float | None = None, among: Collection[str] | None = None
    ) -> dict[str, str]:
        self._maybe_fail()
        self.discover_calls += 1
        asked = self.rooms if among is None else {r: a for r, a in self.rooms.items() if r in set(among)}
        return {room: arn for room, arn in asked.items() if arn in set(task_arns)}

    def room_names(self, within: float | None = None) -> list[str]:
        self._maybe_fail()
        self.room_names_calls += 1
        return sorted(self.rooms)

    def still_held(self, rooms: Mapping[str, str], within: float | None = None) -> dict[str, str]:
        self._maybe_fail()
        self.still_held_calls += 1
        return {room: arn for room, arn in rooms.items() if self.rooms.get(room) == arn}

    def callers_still_in(self, rooms: Mapping[str, str]) -> dict[str, str]:
        self._maybe_fail()
        return {room: arn for room, arn in rooms.items() if room in self.callers}

    def _maybe_fail(self) -> None:
        if self.failing:
            raise LiveKitProbeError("LiveKit unreachable: ClientConnectorError")


@dataclass
class FakeRoomIndex:
    """The webhooks' room index, as if every join webhook of `sessions` had arrived, but for
    the rooms in `lost` (their webhooks never came)."""

    sessions: FakeSessions
    lost: set[str] = field(default_factory=set)
    # entries whose leave webhook was lost: the index still names them, LiveKit has no such room
    stale: dict[str, str] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)  # what the audit wrote back
    # entries whose agent's leave webhook came lately: kept, marked left (room -> task)
    left: dict[str, str] = field(default_factory=dict)
    failing: bool = False
    queries: int = 0

    def rooms_held_by(self, task_arns: Collection[str], *, with_left: bool = False) -> dict[str, str]:
        self._maybe_fail()
        self.queries += 1
        entries = {**self.left, **self._entries()} if with_left else self._entries()
        return {r: a for r, a in entries.items() if a in set(task_arns)}

    def indexed(self, rooms: Collection[str]) -> set[str]:
        self._maybe_fail()
        return {r for r in rooms if r in self._entries()}

    def record_agent(self, room: str, task_arn: str, identity: str, at: float) -> None:
        self.lost.discard(room)
        self.recorded[room] = task_arn

    def _entries(self) -> dict[str, str]:
        return {**{r: a for r, a in self.sessions.rooms.items() if r not in self.lost}, **self.stale}

    def _maybe_fail(self) -> None:
        if self.failing:
            raise StoreError("read the room index: ProvisionedThroughputExceededException")


@dataclass
class FakeClock:
    t: float

    def __call__(self) -> float:
        return self.t


@dataclass
class FakeLambdaContext:
    function_name: str = "livekit-drain-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:livekit-drain-test"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    remaining_millis: int = 60_000

    log_group_name: str = "/aws/lambda/livekit-drain-test"
    log_stream_name: str = "2026/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis
