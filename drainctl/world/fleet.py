"""The fleet the coordinator drains: instances, LiveKit workers, and calls, on the virtual clock.

This is the ground truth the coordinator is judged against. A worker drains the way livekit-agents
does on SIGTERM (reports full, takes no new job, exits once its jobs end, gives up after
drain_timeout and its jobs' shutdown grace: the timings below, observed on the real worker); ECS SIGKILLs it at stopTimeout; Auto Scaling terminating the instance ends every
call still on it. Every call that ends any other way than by hanging up is a dropped call.

When a worker dies its agent leaves its rooms at once, but the caller stays on the line a little
while, hearing silence, before hanging up (`CALLER_PATIENCE_SECONDS`): that is what LiveKit shows
for a dropped call, and what the coordinator counts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from drainctl.world.ecs import LocalEcs
from drainctl.world.livekit_server import LocalLiveKit

SESSION_TAG_ATTRIBUTE = "ecs.task_arn"
SIGTERM_DELAY_SECONDS = 5  # the ECS scheduler stops tasks on a DRAINING instance within seconds
CALLER_PATIENCE_SECONDS = 20  # a caller left in silence hangs up after this long
DEFAULT_SERVICE = "livekit-agents"

# How the real worker drains, as tests/worker/test_real_worker.py observes it with the pinned
# livekit-agents (1.8.9) running the packaged worker (a test fails when the SDK changes these):
# - SIGTERM: it reports itself full at once (``UpdateWorkerStatus{WS_FULL}``) and takes no job;
# - its last call ending, it exits 0 within about a second (`EXIT_AFTER_LAST_CALL_SECONDS`,
#   below the model's one-second step);
# - with calls still up at ``drain_timeout``, it asks each job to shut down and gives it
#   ``shutdown_process_timeout`` (`JOB_SHUTDOWN_GRACE_SECONDS`, livekit-agents' default, which
#   the packaged worker keeps) before killing it, then exits 0; the model takes the worst case
#   (a job that does not close on request): the calls are cut and the worker exits at
#   ``drain_timeout + JOB_SHUTDOWN_GRACE_SECONDS``. (livekit/agents worker.py ``drain`` and
#   ``aclose``; ipc/supervised_proc.py ``aclose``.)
EXIT_AFTER_LAST_CALL_SECONDS = 1.0
JOB_SHUTDOWN_GRACE_SECONDS = 10


class WorkerState(StrEnum):
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


class CallEnd(StrEnum):
    HUNG_UP = "hung_up"  # the call ended by itself: not dropped
    DRAIN_TIMED_OUT = "drain_timed_out"  # the worker gave up its drain
    SIGKILL = "sigkill"  # ECS killed the worker at stopTimeout
    OOM = "oom"  # the kernel killed the worker for memory
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
    service: str = DEFAULT_SERVICE  # "" for a standalone task, which DRAINING does not stop
    task_definition: str = ""
    state: WorkerState = WorkerState.RUNNING
    sigterm_at: float | None = None
    stop_reason: str = ""
    stopped_at: float | None = None
    exit_code: int | None = None
    stop_code: str = ""
    container_reason: str = ""
    # True while the world plays a recorded stop: the worker then does only what it is told.
    scripted: bool = False
    calls: dict[str, Call] = field(default_factory=dict)

    @property
    def accepting(self) -> bool:
        return self.state is WorkerState.RUNNING


@dataclass(frozen=True)
class FleetEvent:
    t: float
    what: str
    detail: dict[str, object]


TaskEventSink = Callable[[Worker, float], None]


class Fleet:
    def __init__(self, ecs: LocalEcs, livekit: LocalLiveKit, rng: random.Random) -> None:
        self._ecs = ecs
        self._livekit = livekit
        self._rng = rng
        self.workers: dict[str, Worker] = {}
        self.calls: list[Call] = []
        self.events: list[FleetEvent] = []
        self.on_task_change: TaskEventSink | None = None
        self._draining_seen: dict[str, float] = {}
        self._hangups: list[tuple[float, str, str]] = []  # (when, room, caller identity)
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
        service: str = DEFAULT_SERVICE,
    ) -> Worker:
        arn = self._ecs.start_task(container_instance_arn, task_definition, started_by=f"ecs-svc/{service}")
        worker = Worker(
            arn, instance_id, container_instance_arn, drain_timeout, stop_timeout, service, task_definition
        )
        self.workers[arn] = worker
        return worker

    def start_call(self, worker: Worker, now: float, length: float) -> Call:
        if not worker.accepting:
            raise ValueError(f"worker {worker.task_arn} takes no new call")
        self._room_seq += 1
        room = f"call-{self._room_seq:05d}"
        self._livekit.create_room(room)
        self._livekit.join(room, _caller(room), kind="SIP")
        self._livekit.join(
            room, _agent(room), kind="AGENT", attributes={SESSION_TAG_ATTRIBUTE: worker.task_arn}
        )
        call = Call(room=room, task_arn=worker.task_arn, started_at=now, ends_at=now + length)
        worker.calls[room] = call
        self.calls.append(call)
        return call

    def accepting_workers(self, service: str | None = None) -> list[Worker]:
        return [
            w
            for w in self.workers.values()
            if w.accepting
            and (service is None or w.service == service)
            and self._ecs.instance_status(w.container_instance_arn) == "ACTIVE"
        ]

    def place_call(self, now: float, length: float, service: str | None = None) -> Call | None:
        """A new call goes to the least-loaded worker that takes calls (LiveKit's dispatch)."""
        candidates = self.accepting_workers(service)
        if not candidates:
            return None
        least = min(len(w.calls) for w in candidates)
        worker = self._rng.choice([w for w in candidates if len(w.calls) == least])
        return self.start_call(worker, now, length)

    # -- time ----------------------------------------------------------------------------------

    def step(self, now: float, terminated_instances: set[str]) -> None:
        """Move every call and worker to `now`."""
        for when, room, identity in [h for h in self._hangups if h[0] <= now]:
            self._hangups.remove((when, room, identity))
            self._leave(room, identity)
        for worker in list(self.workers.values()):
            if worker.state is WorkerState.STOPPED:
                continue
            for call in list(worker.calls.values()):
                if call.ends_at <= now:
                    self._end_call(worker, call, min(call.ends_at, now), CallEnd.HUNG_UP)
            if worker.instance_id in terminated_instances:
                self.stop(
                    worker,
                    now,
                    exit_code=None,
                    end=CallEnd.INSTANCE_TERMINATED,
                    stop_code="TerminationNotice",
                    reason=f"Host EC2 (instance {worker.instance_id}) terminated.",
                )
                continue
            if worker.scripted:
                continue
            if worker.state is WorkerState.RUNNING:
                self._maybe_sigterm(worker, now)
            if worker.state is WorkerState.DRAINING:
                assert worker.sigterm_at is not None
                if not worker.calls:
                    self.stop(worker, now, exit_code=0, end=None)
                elif now >= worker.sigterm_at + worker.stop_timeout:
                    self.stop(worker, now, exit_code=137, end=CallEnd.SIGKILL)
                elif now >= worker.sigterm_at + worker.drain_timeout + JOB_SHUTDOWN_GRACE_SECONDS:
                    self.stop(worker, now, exit_code=0, end=CallEnd.DRAIN_TIMED_OUT)

    def sigterm(self, worker: Worker, now: float, reason: str) -> None:
        """ECS stops the task: desired STOPPED, SIGTERM; the worker drains."""
        if worker.state is not WorkerState.RUNNING:
            return
        self._ecs.signal_stop(worker.task_arn, reason)
        worker.state = WorkerState.DRAINING
        worker.sigterm_at = now
        worker.stop_reason = reason
        self._event(
            now,
            "sigterm",
            task=worker.task_arn,
            calls=len(worker.calls),
            reason=reason,
            instance=worker.instance_id,
            service=worker.service,
        )
        if self.on_task_change:
            self.on_task_change(worker, now)

    def stop(
        self,
        worker: Worker,
        now: float,
        *,
        exit_code: int | None,
        end: CallEnd | None,
        stop_code: str = "",
        reason: str = "",
        container_reason: str = "",
    ) -> None:
        """The worker's container is gone; calls still on it are dropped (`end`)."""
        dropped = len(worker.calls)
        for call in list(worker.calls.values()):
            self._end_call(worker, call, now, end or CallEnd.DRAIN_TIMED_OUT)
        worker.state = WorkerState.STOPPED
        worker.stopped_at = now
        worker.exit_code = exit_code
        worker.stop_code = stop_code or (
            "ServiceSchedulerInitiated" if worker.sigterm_at else "EssentialContainerExited"
        )
        worker.container_reason = container_reason
        if reason:
            worker.stop_reason = reason
        elif not worker.stop_reason:
            worker.stop_reason = "Essential container in task exited"
        self._ecs.stopped(
            worker.task_arn, exit_code=137 if exit_code is None else exit_code, reason=worker.stop_reason
        )
        self._event(
            now,
            "task_stopped",
            task=worker.task_arn,
            exit_code=exit_code,
            dropped_calls=dropped,
            instance=worker.instance_id,
            service=worker.service,
        )
        if self.on_task_change:
            self.on_task_change(worker, now)

    def _maybe_sigterm(self, worker: Worker, now: float) -> None:
        # A standalone task (RunTask, no service) keeps running on a DRAINING instance: ECS only
        # stops service tasks there.
        if not worker.service or self._ecs.instance_status(worker.container_instance_arn) != "DRAINING":
            return
        if worker.container_instance_arn not in self._draining_seen:
            self._draining_seen[worker.container_instance_arn] = now
            self._event(now, "instance_draining", instance=worker.instance_id)
        if now >= self._draining_seen[worker.container_instance_arn] + SIGTERM_DELAY_SECONDS:
            self.sigterm(worker, now, f"Service {worker.service}: container instance is in DRAINING state")

    def _end_call(self, worker: Worker, call: Call, at: float, end: CallEnd) -> None:
        call.ended_at = at
        call.end = end
        del worker.calls[call.room]
        self._leave(call.room, _agent(call.room))
        if end is CallEnd.HUNG_UP:
            self._leave(call.room, _caller(call.room))
            self._event(at, "call_ended", room=call.room, task=worker.task_arn, instance=worker.instance_id)
        else:
            self._hangups.append((at + CALLER_PATIENCE_SECONDS, call.room, _caller(call.room)))
            self._event(
                at,
                "call_dropped",
                room=call.room,
                task=worker.task_arn,
                cause=end.value,
                instance=worker.instance_id,
                service=worker.service,
            )

    def _leave(self, room: str, identity: str) -> None:
        if any(p.identity == identity for p in self._livekit.rooms().get(room, [])):
            self._livekit.leave(room, identity)

    def _event(self, t: float, what: str, **detail: object) -> None:
        self.events.append(FleetEvent(t, what, dict(detail)))

    # -- judging -------------------------------------------------------------------------------

    @property
    def dropped_calls(self) -> list[Call]:
        return [c for c in self.calls if c.dropped]

    def calls_on(self, instance_id: str) -> list[Call]:
        return [c for c in self.calls if self.workers[c.task_arn].instance_id == instance_id]

    def calls_of(self, service: str) -> list[Call]:
        return [c for c in self.calls if self.workers[c.task_arn].service == service]


def _agent(room: str) -> str:
    return room.replace("call-", "agent-")


def _caller(room: str) -> str:
    return room.replace("call-", "caller-")
