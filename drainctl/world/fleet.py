"""The fleet the coordinator drains: instances, LiveKit workers, and calls, on the virtual clock.

This is the ground truth the coordinator is judged against. A worker drains the way livekit-agents
does on SIGTERM (reports full, takes no new job, exits once its jobs end, gives up after
drain_timeout and its jobs' shutdown grace: the timings below, observed on the real worker);
ECS SIGKILLs it at stopTimeout; Auto Scaling terminating the instance ends every
call still on it. Every call that ends any other way than by hanging up is a dropped call.

LiveKit dispatches a job to any worker that reports itself available, whatever ECS thinks of its
instance (https://docs.livekit.io/agents/server/#worker-lifecycle): a worker on a DRAINING
instance keeps taking calls until its SIGTERM, unless it quiesces (the packaged worker's
`quiesce.py`: it learns its container instance is DRAINING and reports itself unavailable
within one poll).

A service given a `DeploymentConfiguration` is stopped on a DRAINING instance the way ECS
documents: a replacement is placed on an ACTIVE instance with room (`maximumPercent` allowing),
becomes healthy `health_delay_seconds` later, and the old task gets SIGTERM only while the
service keeps `minimumHealthyPercent` of its desired count healthy; a full cluster delays it.
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_definition_parameters.html#deploymentConfiguration
A service without one is stopped SIGTERM_DELAY_SECONDS after DRAINING and not replaced (as ECS
does with `minimumHealthyPercent: 0` and no room for replacements).

A rescue (AgentDispatchService CreateDispatch into a call's room, `dispatch`) is a job LiveKit
gives only to a worker that reports itself available and has room for a call (livekit-agents
reports WS_FULL at its load threshold: https://docs.livekit.io/agents/server/options/); none
with room, the dispatch gets no job. The new agent joins `RESCUE_JOIN_SECONDS` after the
dispatch, then the old one leaves (the packaged worker's handover: never two agents at once);
the caller stays, and hears silence only while the new agent loads its checkpoint and speaks
(the gap, `rescue_gap`: a draw for each rescue). The rest of the call runs on the new worker. A rescue whose
old worker died before the join finds no call to carry on: the call was dropped.

When a worker dies its agent leaves its rooms at once, but the caller stays on the line a little
while, hearing silence, before hanging up (`CALLER_PATIENCE_SECONDS`): that is what LiveKit shows
for a dropped call, and what the coordinator counts.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from drainctl.world.ecs import LocalEcs
from drainctl.world.livekit_server import DispatchRequest, LocalLiveKit

SESSION_TAG_ATTRIBUTE = "ecs.task_arn"
SIGTERM_DELAY_SECONDS = 5  # the ECS scheduler stops tasks on a DRAINING instance within seconds
CALLER_PATIENCE_SECONDS = 20  # a caller left in silence hangs up after this long
QUIESCE_POLL_SECONDS = 10  # the packaged worker's look at its container instance's status
DEFAULT_SERVICE = "livekit-agents"
# A rescue job, as the model assumes it (not measured): LiveKit's job request and the worker's
# availability answer, the job process and the room join take RESCUE_JOIN_SECONDS.
RESCUE_JOIN_SECONDS = 1.5


@dataclass(frozen=True)
class Lognormal:
    """A duration: lognormal with this median and 99th percentile (seconds)."""

    p50: float
    p99: float

    def sample(self, rng: random.Random) -> float:
        sigma = (math.log(self.p99) - math.log(self.p50)) / _Z99
        return rng.lognormvariate(math.log(self.p50), sigma)


_Z99 = 2.3263478740408408  # the standard normal's 99th percentile
# Then the caller waits, in silence, for three things one after the other (the gap):
# - the checkpoint read (CallRescue.from_job: a consistent GetItem and the decode of a 20-turn
#   call). Measured: in process against moto over HTTP, p50 0.009 s, worst of 30 0.147 s.
#   DynamoDB's own GetItem is single-digit milliseconds in its Region, in line with it.
RESCUE_CHECKPOINT_READ = Lognormal(0.01, 0.15)
# - the new agent's start: a livekit-agents AgentSession started with the loaded chat context,
#   in a job process that has not run a session yet. Measured: 0.38 s for a first start in a
#   process; the real-worker handover (tests/worker/test_real_worker_rescue.py) saw dispatch to
#   first line in 0.7-1.5 s of wall time on a loaded 2-core machine: the 99th percentile.
RESCUE_AGENT_START = Lognormal(0.4, 1.5)
# - its first line's audio: the TTS's time to first audio. Assumed (the local world has no TTS):
#   streaming TTS services quote a few hundred milliseconds.
RESCUE_FIRST_AUDIO = Lognormal(0.3, 1.0)


def rescue_gap(rng: random.Random) -> float:
    """One rescued caller's silence, from the new agent's join to its first line's audio."""
    parts = (RESCUE_CHECKPOINT_READ, RESCUE_AGENT_START, RESCUE_FIRST_AUDIO)
    return round(sum(part.sample(rng) for part in parts), 3)


# The attributes a rescue job's agent carries (the packaged worker's livekit_drain_worker.rescue):
# the task it took the call from, and whether it found the call's checkpoint.
RESCUE_OF_ATTRIBUTE = "lk.drain.rescue_of"
CHECKPOINT_ATTRIBUTE = "lk.drain.checkpoint"

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
    STARTING = "starting"  # placed, not yet healthy: takes no call, does not count as healthy
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


class CallEnd(StrEnum):
    HUNG_UP = "hung_up"  # the call ended by itself: not dropped
    DRAIN_TIMED_OUT = "drain_timed_out"  # the worker gave up its drain
    SIGKILL = "sigkill"  # ECS killed the worker at stopTimeout
    OOM = "oom"  # the kernel killed the worker for memory
    INSTANCE_TERMINATED = "instance_terminated"  # the instance went away under the worker
    HANDED_OVER = "handed_over"  # a rescue carried the call on to another worker: not dropped


@dataclass
class Call:
    room: str
    task_arn: str
    started_at: float
    ends_at: float
    ended_at: float | None = None
    end: CallEnd | None = None
    agent: str = ""  # the agent participant's identity (set when the call starts)
    rescued_from: str | None = None  # the task this call was carried on from
    gap_seconds: float | None = None  # what the caller waited for, at the handover

    @property
    def dropped(self) -> bool:
        return self.end is not None and self.end not in (CallEnd.HUNG_UP, CallEnd.HANDED_OVER)


@dataclass
class Handover:
    """A rescue job a worker took: its agent joins at `join_at`."""

    request: DispatchRequest
    job_id: str
    to_task: str
    join_at: float


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
    healthy_at: float = 0.0  # when a STARTING task becomes healthy
    # The quiesce's poll period (None: a worker that never learns its instance is DRAINING).
    quiesce_seconds: float | None = QUIESCE_POLL_SECONDS
    next_quiesce_poll: float = 0.0
    quiesced_at: float | None = None
    # Set when ECS means to stop this task (its instance DRAINING, a deploy): its replacement.
    replaced_by: str | None = None
    replacing: str | None = None
    doomed_at: float | None = None

    @property
    def accepting(self) -> bool:
        return self.state is WorkerState.RUNNING and self.quiesced_at is None

    @property
    def live(self) -> bool:
        """Placed and not told to stop: what a service counts towards its desired count."""
        return self.state in (WorkerState.STARTING, WorkerState.RUNNING)


@dataclass(frozen=True)
class DeploymentConfiguration:
    """A service's ECS `deploymentConfiguration` and how long its new tasks take to be healthy
    (container health check, load balancer health check grace)."""

    minimum_healthy_percent: int = 100
    maximum_percent: int = 200
    health_delay_seconds: float = 0.0


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
        self.deployments: dict[str, DeploymentConfiguration] = {}
        # container instance ARN -> EC2 instance id, for placing replacements
        self.instances: dict[str, str] = {}
        self.slots_per_instance: int | None = None  # worker tasks an instance has room for
        self.quiesce_kept_off = 0  # calls LiveKit would have sent to a quiesced worker
        self._counterfactual = random.Random(rng.random())
        # The rescue gaps' own draws, seeded from the world's without taking from it: a rescue
        # changes nothing else the world draws.
        self._gaps = random.Random(hash(rng.getstate()[1]))
        # Calls a worker has room for (its load threshold); None: no limit.
        self.calls_per_worker: int | None = None
        self._dispatch_lock = threading.Lock()
        self._dispatched: list[DispatchRequest] = []  # job requests not yet run
        self.handovers: list[Handover] = []  # taken, not yet joined
        self.dispatches_without_worker: list[DispatchRequest] = []
        self._job_seq = 0

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
        now: float | None = None,
        healthy_after: float = 0.0,
    ) -> Worker:
        arn = self._ecs.start_task(
            container_instance_arn,
            task_definition,
            started_by=f"ecs-svc/{service}",
            group=f"service:{service}" if service else None,
        )
        worker = Worker(
            arn, instance_id, container_instance_arn, drain_timeout, stop_timeout, service, task_definition
        )
        self.instances.setdefault(container_instance_arn, instance_id)
        if now is not None:
            worker.next_quiesce_poll = now
        if healthy_after > 0 and now is not None:
            worker.state = WorkerState.STARTING
            worker.healthy_at = now + healthy_after
        self.workers[arn] = worker
        return worker

    def make_standalone(self, worker: Worker) -> None:
        """A task started by RunTask/StartTask, no service: DRAINING does not stop it."""
        worker.service = ""
        family = worker.task_definition.rsplit("/", 1)[-1].split(":", 1)[0]
        self._ecs.set_group(worker.task_arn, f"family:{family}")

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
        call = Call(
            room=room, task_arn=worker.task_arn, started_at=now, ends_at=now + length, agent=_agent(room)
        )
        worker.calls[room] = call
        self.calls.append(call)
        return call

    def accepting_workers(self, service: str | None = None) -> list[Worker]:
        """Every worker that reports itself available, on a DRAINING instance too: LiveKit knows
        nothing of ECS."""
        return [
            w
            for w in self.workers.values()
            if w.accepting and self._has_room(w) and (service is None or w.service == service)
        ]

    def _has_room(self, worker: Worker) -> bool:
        if self.calls_per_worker is None:
            return True
        incoming = sum(1 for h in self.handovers if h.to_task == worker.task_arn)
        return len(worker.calls) + incoming < self.calls_per_worker

    # -- rescues -------------------------------------------------------------------------------

    def dispatch(self, request: DispatchRequest) -> None:
        """LiveKit's job request for a dispatch (the local LiveKit's `dispatcher`): run at the
        fleet's next step, as livekit-server runs it in the background."""
        with self._dispatch_lock:
            self._dispatched.append(request)

    def _run_dispatches(self, now: float) -> None:
        # Run at the step after the request (the world's LiveKit stamps it with wall time).
        with self._dispatch_lock:
            requests, self._dispatched = self._dispatched, []
        for request in requests:
            call = self._call_in(request.room)
            # Among the workers that report themselves available with room, the least loaded
            # (ties in launch order); never the call's own worker. (The world's workers all
            # register one agent name: the dispatch's.)
            candidates = [w for w in self.accepting_workers() if call is None or w.task_arn != call.task_arn]
            if not candidates:
                self.dispatches_without_worker.append(request)
                self._event(now, "dispatch_without_worker", room=request.room)
                continue
            worker = min(candidates, key=lambda w: len(w.calls))
            self._job_seq += 1
            job_id = f"AJ_{self._job_seq:05d}"
            self.handovers.append(Handover(request, job_id, worker.task_arn, now + RESCUE_JOIN_SECONDS))
            self._livekit.dispatch_job(
                request.room,
                request.dispatch_id,
                job_id=job_id,
                worker_id=worker.task_arn,
                status="JS_PENDING",
            )

    def _run_handovers(self, now: float) -> None:
        for handover in [h for h in self.handovers if h.join_at <= now]:
            self.handovers.remove(handover)
            room, dispatch_id = handover.request.room, handover.request.dispatch_id
            worker = self.workers[handover.to_task]
            call = self._call_in(room)
            if call is None or worker.state is not WorkerState.RUNNING:
                # The call ended (or was dropped) first, or the new worker is gone: no join.
                self._livekit.dispatch_job(
                    room, dispatch_id, job_id=handover.job_id, worker_id=worker.task_arn, status="JS_FAILED"
                )
                continue
            old = self.workers[call.task_arn]
            identity = f"{_agent(room)}-{handover.job_id.lower()}"
            self._livekit.join(
                room,
                identity,
                kind="AGENT",
                attributes={
                    SESSION_TAG_ATTRIBUTE: worker.task_arn,
                    RESCUE_OF_ATTRIBUTE: old.task_arn,
                    CHECKPOINT_ATTRIBUTE: "loaded",
                },
            )
            self._livekit.dispatch_job(
                room,
                dispatch_id,
                job_id=handover.job_id,
                worker_id=worker.task_arn,
                status="JS_RUNNING",
                identity=identity,
            )
            self._end_call(old, call, handover.join_at, CallEnd.HANDED_OVER)
            gap = rescue_gap(self._gaps)
            carried = Call(
                room=room,
                task_arn=worker.task_arn,
                started_at=handover.join_at,
                ends_at=max(call.ends_at, handover.join_at + gap),
                agent=identity,
                rescued_from=old.task_arn,
                gap_seconds=gap,
            )
            worker.calls[room] = carried
            self.calls.append(carried)
            self._event(
                handover.join_at,
                "call_handed_over",
                room=room,
                task=worker.task_arn,
                from_task=old.task_arn,
                instance=worker.instance_id,
            )

    def _call_in(self, room: str) -> Call | None:
        """The call still up in `room`, on whichever worker holds it."""
        for worker in self.workers.values():
            if worker.state is not WorkerState.STOPPED and room in worker.calls:
                return worker.calls[room]
        return None

    def place_call(self, now: float, length: float, service: str | None = None) -> Call | None:
        """A new call goes to the least-loaded worker that takes calls (LiveKit's dispatch)."""
        candidates = self.accepting_workers(service)
        if not candidates:
            return None
        least = min(len(w.calls) for w in candidates)
        worker = self._rng.choice([w for w in candidates if len(w.calls) == least])
        self.count_kept_off(service)
        return self.start_call(worker, now, length)

    def count_kept_off(self, service: str | None) -> None:
        """Would LiveKit have sent this call to a quiesced worker, had it not quiesced? The same
        dispatch drawn among the workers with the quiesced ones back (a generator of its own, so
        the real dispatch is not disturbed)."""
        quiesced = [
            w
            for w in self.workers.values()
            if w.state is WorkerState.RUNNING
            and w.quiesced_at is not None
            and (service is None or w.service == service)
        ]
        if not quiesced:
            return
        unquiesced = quiesced + self.accepting_workers(service)
        least = min(len(w.calls) for w in unquiesced)
        pick = self._counterfactual.choice([w for w in unquiesced if len(w.calls) == least])
        if pick.quiesced_at is not None:
            self.quiesce_kept_off += 1

    # -- time ----------------------------------------------------------------------------------

    def step(self, now: float, terminated_instances: set[str]) -> None:
        """Move every call and worker to `now`."""
        for when, room, identity in [h for h in self._hangups if h[0] <= now]:
            self._hangups.remove((when, room, identity))
            self._leave(room, identity)
        self._run_dispatches(now)
        self._run_handovers(now)
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
            if worker.state is WorkerState.STARTING and now >= worker.healthy_at:
                worker.state = WorkerState.RUNNING
                worker.next_quiesce_poll = now
                self._event(now, "task_healthy", task=worker.task_arn, instance=worker.instance_id)
            if worker.state is WorkerState.RUNNING:
                self._quiesce(worker, now)
                if worker.service not in self.deployments:
                    self._maybe_sigterm(worker, now)
        for service, config in self.deployments.items():
            self._schedule(service, config, now, terminated_instances)
        for worker in list(self.workers.values()):
            if worker.state is not WorkerState.DRAINING or worker.scripted:
                continue
            assert worker.sigterm_at is not None
            if not worker.calls:
                self.stop(worker, now, exit_code=0, end=None)
            elif now >= worker.sigterm_at + worker.stop_timeout:
                self.stop(worker, now, exit_code=137, end=CallEnd.SIGKILL)
            elif now >= worker.sigterm_at + worker.drain_timeout + JOB_SHUTDOWN_GRACE_SECONDS:
                self.stop(worker, now, exit_code=0, end=CallEnd.DRAIN_TIMED_OUT)

    def sigterm(self, worker: Worker, now: float, reason: str) -> None:
        """ECS stops the task: desired STOPPED, SIGTERM; the worker drains."""
        if not worker.live:
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

    def _quiesce(self, worker: Worker, now: float) -> None:
        """The packaged worker's quiesce: each poll it learns its container instance's status and
        reports itself unavailable while it is DRAINING (available again once ACTIVE)."""
        if worker.quiesce_seconds is None or now < worker.next_quiesce_poll:
            return
        worker.next_quiesce_poll = now + worker.quiesce_seconds
        draining = self._ecs.instance_status(worker.container_instance_arn) == "DRAINING"
        if draining and worker.quiesced_at is None:
            worker.quiesced_at = now
            self._event(now, "quiesced", task=worker.task_arn, instance=worker.instance_id)
        elif not draining and worker.quiesced_at is not None:
            worker.quiesced_at = None

    def doom(self, worker: Worker, now: float) -> None:
        """ECS means to replace this task (a deploy): it stops once its replacement allows."""
        if worker.live and worker.doomed_at is None:
            worker.doomed_at = now

    def _schedule(
        self, service: str, config: DeploymentConfiguration, now: float, terminated: set[str]
    ) -> None:
        """The ECS service scheduler for one service: replace the tasks it means to stop (on a
        DRAINING instance, or in a deploy) within maximumPercent, and stop them only while
        minimumHealthyPercent of the desired count stays healthy."""
        live = [w for w in self.workers.values() if w.service == service and w.live]
        for worker in live:
            if worker.doomed_at is None and self._on_draining_instance(worker):
                worker.doomed_at = now
                self._note_draining(worker, now)
        doomed = [w for w in live if w.doomed_at is not None]
        if not doomed:
            return
        replacing = sum(
            1 for w in doomed if w.replaced_by in self.workers and self.workers[w.replaced_by].live
        )
        desired = len(live) - replacing
        room = math.floor(desired * config.maximum_percent / 100) - len(live)
        for worker in doomed:
            if room <= 0:
                break
            if worker.replaced_by is not None:
                continue
            placed = self._place_replacement(worker, now, config, terminated)
            if placed is None:
                break  # no ACTIVE instance has room: the cluster is full
            room -= 1
        healthy = sum(1 for w in live if w.state is WorkerState.RUNNING)
        minimum = math.ceil(desired * config.minimum_healthy_percent / 100)
        # Tasks whose replacement is healthy go first; a task still STARTING stops at once.
        order = sorted(doomed, key=lambda w: (w.state is not WorkerState.STARTING, not self._replaced(w)))
        for worker in order:
            if now < worker.doomed_at + SIGTERM_DELAY_SECONDS:  # type: ignore[operator]
                continue
            if worker.state is WorkerState.STARTING:
                self.stop(worker, now, exit_code=0, end=None, reason="Task stopped before it became healthy")
                continue
            if healthy - 1 < minimum:
                break
            healthy -= 1
            self.sigterm(worker, now, self._stop_reason(worker))

    def _replaced(self, worker: Worker) -> bool:
        replacement = self.workers.get(worker.replaced_by or "")
        return replacement is not None and replacement.state is WorkerState.RUNNING

    def _stop_reason(self, worker: Worker) -> str:
        if self._on_draining_instance(worker):
            return f"Service {worker.service}: container instance is in DRAINING state"
        return f"Scaling activity initiated by (deployment ecs-svc/{worker.service})"

    def _on_draining_instance(self, worker: Worker) -> bool:
        return self._ecs.instance_status(worker.container_instance_arn) == "DRAINING"

    def _note_draining(self, worker: Worker, now: float) -> None:
        if worker.container_instance_arn not in self._draining_seen:
            self._draining_seen[worker.container_instance_arn] = now
            self._event(now, "instance_draining", instance=worker.instance_id)

    def _place_replacement(
        self, worker: Worker, now: float, config: DeploymentConfiguration, terminated: set[str]
    ) -> Worker | None:
        """A replacement task on the least-loaded ACTIVE instance with room, if there is one."""
        load: dict[str, int] = dict.fromkeys(
            (
                arn
                for arn, instance_id in self.instances.items()
                if instance_id not in terminated
                and self._ecs.instance_status(arn) == "ACTIVE"
                and self._ecs.agent_connected(arn)
            ),
            0,
        )
        for other in self.workers.values():
            if other.state is not WorkerState.STOPPED and other.container_instance_arn in load:
                load[other.container_instance_arn] += 1
        free = [
            (count, arn)
            for arn, count in load.items()
            if self.slots_per_instance is None or count < self.slots_per_instance
        ]
        if not free:
            return None
        _, arn = min(free)
        replacement = self.add_worker(
            self.instances[arn],
            arn,
            worker.task_definition,
            drain_timeout=worker.drain_timeout,
            stop_timeout=worker.stop_timeout,
            service=worker.service,
            now=now,
            healthy_after=config.health_delay_seconds,
        )
        replacement.quiesce_seconds = worker.quiesce_seconds
        worker.replaced_by = replacement.task_arn
        replacement.replacing = worker.task_arn
        self._event(
            now,
            "task_placed",
            task=replacement.task_arn,
            instance=replacement.instance_id,
            replaces=worker.task_arn,
        )
        return replacement

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
        self._leave(call.room, call.agent or _agent(call.room))
        if end is CallEnd.HANDED_OVER:
            return  # the caller stays: the call goes on with the new agent
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
        if self._livekit.has_participant(room, identity):
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
