"""The fleet the coordinator drains: instances, LiveKit workers, and calls, on the virtual clock.

This is the ground truth the coordinator is judged against. A worker drains the way livekit-agents
does on SIGTERM (reports full, takes no new job, exits once its jobs end, gives up after
drain_timeout); ECS SIGKILLs it at stopTimeout; Auto Scaling terminating the instance ends every
call still on it. Every call that ends any other way than by itself is a dropped call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

from drainctl.world.ecs import LocalEcs
from drainctl.world.livekit_server import LocalLiveKit

SESSION_TAG_ATTRIBUTE = "ecs.task_arn"
SIGTERM_DELAY_SECONDS = 5  # the ECS scheduler stops tasks on a DRAINING instance within seconds


class WorkerState(StrEnum):
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


class CallEnd(StrEnum):
    HUNG_UP = "hung_up"  # the call ended by itself: not dropped
    DRAIN_TIMED_OUT = "drain_timed_out"  # the worker gave up its drain
    SIGKILL = "sigkill"  # ECS killed the worker at stopTimeout
    INSTANCE_TERMINATED = "instance_terminated"  # the instance went away under the worker


@dataclass
class Call:
    room: str
    task_arn: str
    started_at: float
    ends_at: float
    ended_at: float | None = None
    end: CallEnd | None = None

    @property
    def dropped(self) -> bool:
        return self.end is not None and self.end is not CallEnd.HUNG_UP


@dataclass
class Worker:
    task_arn: str
    instance_id: str
    container_instance_arn: str
    drain_timeout: int
    stop_timeout: int
    state: WorkerState = WorkerState.RUNNING
    sigterm_at: float | None = None
    stopped_at: float | None = None
    exit_code: int | None = None
    calls: dict[str, Call] = field(default_factory=dict)

    @property
    def accepting(self) -> bool:
        return self.state is WorkerState.RUNNING


@dataclass(frozen=True)
class FleetEvent:
    t: float
    what: str
    detail: dict[str, object]


class Fleet:
    def __init__(self, ecs: LocalEcs, livekit: LocalLiveKit, rng: random.Random) -> None:
        self._ecs = ecs
        self._livekit = livekit
        self._rng = rng
        self.workers: dict[str, Worker] = {}
        self.calls: list[Call] = []
        self.events: list[FleetEvent] = []
        self._terminated_instances: set[str] = set()
        self._draining_seen: dict[str, float] = {}
        self._room_seq = 0

    # -- building ------------------------------------------------------------------------------

    def add_worker(
        self,
        instance_id: str,
        container_instance_arn: str,
        task_definition: str,
        *,
        drain_timeout: int,
        stop_timeout: int,
    ) -> Worker:
        arn = self._ecs.start_task(
            container_instance_arn, task_definition, started_by="ecs-svc/livekit-agents"
        )
        worker = Worker(arn, instance_id, container_instance_arn, drain_timeout, stop_timeout)
        self.workers[arn] = worker
        return worker

    def start_call(self, worker: Worker, now: float, length: float) -> Call:
        if not worker.accepting:
            raise ValueError(f"worker {worker.task_arn} takes no new call")
        self._room_seq += 1
        room = f"call-{self._room_seq:05d}"
        self._livekit.create_room(room)
        self._livekit.join(room, f"caller-{self._room_seq:05d}", kind="SIP")
        self._livekit.join(
            room,
            f"agent-{self._room_seq:05d}",
            kind="AGENT",
            attributes={SESSION_TAG_ATTRIBUTE: worker.task_arn},
        )
        call = Call(room=room, task_arn=worker.task_arn, started_at=now, ends_at=now + length)
        worker.calls[room] = call
        self.calls.append(call)
        return call

    def accepting_workers(self) -> list[Worker]:
        return [
            w
            for w in self.workers.values()
            if w.accepting and self._ecs.instance_status(w.container_instance_arn) == "ACTIVE"
        ]

    def place_call(self, now: float, length: float) -> Call | None:
        """A new call goes to the least-loaded worker that takes calls (LiveKit's dispatch)."""
        candidates = self.accepting_workers()
        if not candidates:
            return None
        least = min(len(w.calls) for w in candidates)
        worker = self._rng.choice([w for w in candidates if len(w.calls) == least])
        return self.start_call(worker, now, length)

    # -- time ----------------------------------------------------------------------------------

    def step(self, now: float, terminated_instances: set[str]) -> None:
        """Move every call and worker to `now`."""
        for worker in list(self.workers.values()):
            if worker.state is WorkerState.STOPPED:
                continue
            for call in list(worker.calls.values()):
                if call.ends_at <= now:
                    self._end_call(worker, call, min(call.ends_at, now), CallEnd.HUNG_UP)
            if worker.instance_id in terminated_instances:
                self._stop(
                    worker,
                    now,
                    exit_code=137,
                    end=CallEnd.INSTANCE_TERMINATED,
                    reason="Instance terminated by Auto Scaling",
                )
                continue
            if worker.state is WorkerState.RUNNING:
                self._maybe_sigterm(worker, now)
            if worker.state is WorkerState.DRAINING:
                assert worker.sigterm_at is not None
                if not worker.calls:
                    self._stop(
                        worker, now, exit_code=0, end=None, reason="Essential container in task exited"
                    )
                elif now >= worker.sigterm_at + worker.stop_timeout:
                    self._stop(
                        worker,
                        now,
                        exit_code=137,
                        end=CallEnd.SIGKILL,
                        reason="Essential container in task exited",
                    )
                elif now >= worker.sigterm_at + worker.drain_timeout:
                    self._stop(
                        worker,
                        now,
                        exit_code=0,
                        end=CallEnd.DRAIN_TIMED_OUT,
                        reason="Essential container in task exited",
                    )

    def next_change_at(self, now: float) -> float | None:
        """The next time anything in the fleet changes by itself (for skipping idle time)."""
        times: list[float] = []
        for worker in self.workers.values():
            if worker.state is WorkerState.STOPPED:
                continue
            times.extend(call.ends_at for call in worker.calls.values())
            if worker.sigterm_at is not None:
                times.append(worker.sigterm_at + min(worker.drain_timeout, worker.stop_timeout))
        ahead = [t for t in times if t > now]
        return min(ahead) if ahead else None

    def sigterm(self, worker: Worker, now: float, reason: str) -> None:
        """ECS stops the task: desired STOPPED, SIGTERM; the worker drains."""
        if worker.state is not WorkerState.RUNNING:
            return
        self._ecs.signal_stop(worker.task_arn, reason)
        worker.state = WorkerState.DRAINING
        worker.sigterm_at = now
        self._event(
            now,
            "sigterm",
            task=worker.task_arn,
            calls=len(worker.calls),
            reason=reason,
            instance=worker.instance_id,
        )

    def _maybe_sigterm(self, worker: Worker, now: float) -> None:
        if self._ecs.instance_status(worker.container_instance_arn) != "DRAINING":
            return
        if worker.container_instance_arn not in self._draining_seen:
            self._draining_seen[worker.container_instance_arn] = now
            self._event(now, "instance_draining", instance=worker.instance_id)
        seen = self._draining_seen[worker.container_instance_arn]
        if now >= seen + SIGTERM_DELAY_SECONDS:
            self.sigterm(worker, now, "Service livekit-agents: container instance is in DRAINING state")

    def _end_call(self, worker: Worker, call: Call, at: float, end: CallEnd) -> None:
        call.ended_at = at
        call.end = end
        del worker.calls[call.room]
        self._livekit.leave(call.room, call.room.replace("call-", "agent-"))
        self._livekit.leave(call.room, call.room.replace("call-", "caller-"))
        if end is CallEnd.HUNG_UP:
            self._event(at, "call_ended", room=call.room, task=worker.task_arn, instance=worker.instance_id)
        else:
            self._event(
                at,
                "call_dropped",
                room=call.room,
                task=worker.task_arn,
                cause=end.value,
                instance=worker.instance_id,
            )

    def _stop(self, worker: Worker, now: float, *, exit_code: int, end: CallEnd | None, reason: str) -> None:
        dropped = len(worker.calls)
        for call in list(worker.calls.values()):
            self._end_call(worker, call, now, end or CallEnd.HUNG_UP)
        worker.state = WorkerState.STOPPED
        worker.stopped_at = now
        worker.exit_code = exit_code
        self._ecs.stopped(worker.task_arn, exit_code=exit_code, reason=reason)
        self._event(
            now,
            "task_stopped",
            task=worker.task_arn,
            exit_code=exit_code,
            dropped_calls=dropped,
            instance=worker.instance_id,
        )

    def _event(self, t: float, what: str, **detail: object) -> None:
        self.events.append(FleetEvent(t, what, dict(detail)))

    # -- judging -------------------------------------------------------------------------------

    @property
    def dropped_calls(self) -> list[Call]:
        return [c for c in self.calls if c.dropped]

    def calls_on(self, instance_id: str) -> list[Call]:
        return [c for c in self.calls if self.workers[c.task_arn].instance_id == instance_id]
