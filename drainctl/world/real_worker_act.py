"""`drainctl demo --real-worker`: one worker task of the world run as the real packaged worker.

The world starts one more worker task of its service; instead of the fleet model, that task is
``python -m livekit_drain_worker start`` (`RealWorker`), registered with a local agent server
beside the world's LiveKit, its ECS metadata endpoint answering the task's ARN. Two calls are
dispatched to it (real livekit-agents jobs, their agents in the world's rooms tagged by the
worker itself); ECS then stops the task. The coordinator's own handlers see the stop: the
task-state function finds the calls through the real livekit-api client, by the tag the real
worker set, and judges the stop when the process exits.

The real worker lives in real time, so during this act the virtual clock moves one second per
real second. Its drain timeout is `DRAIN_TIMEOUT_SECONDS` (real seconds), its calls a few
seconds long.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any, TextIO

from drainctl.world.agent_server import LocalAgentServer
from drainctl.world.call_agent import CallPlan
from drainctl.world.fleet import DEFAULT_SERVICE
from drainctl.world.real_worker import RealWorker
from drainctl.world.world import Delivery, World
from livekit_drain_worker.testing import LocalEcsEndpoints

DRAIN_TIMEOUT_SECONDS = 20
CALL_SECONDS = (4.0, 8.0)
EXIT_LIMIT_SECONDS = DRAIN_TIMEOUT_SECONDS + 30


@dataclass
class _Line:
    t: float
    who: str
    text: str


def run(world: World, out: TextIO) -> bool:
    """Play the act on `world`; True when the real worker drained its calls and exited 0 and
    the coordinator judged its stop graceful."""
    instance = next(
        (
            i
            for i in {w.instance_id for w in world.fleet.workers.values()}
            if world.instance_state(i) == "InService"
        ),
        None,
    )
    if instance is None:
        out.write("\nReal worker: no instance left in service\n")
        return False
    task = world.start_workers(DEFAULT_SERVICE, [instance], 1)[0]
    task.scripted = True  # its process, not the fleet model, decides when it stops
    start = world.clock.now()
    lines: list[_Line] = []
    deliveries_before = len(world.deliveries)

    def note(what: str, detail: dict[str, Any]) -> None:
        text = _describe(what, detail)
        if text:
            lines.append(_Line(world.clock.now(), "real worker", text))

    with (
        LocalAgentServer(world.livekit) as agents,
        LocalEcsEndpoints(task_arn=task.task_arn) as ecs,
        RealWorker(agents, drain_timeout_seconds=DRAIN_TIMEOUT_SECONDS, ecs_environ=ecs.environ()) as worker,
    ):
        agents.on_event = note
        worker.start()
        rooms = []
        for n, seconds in enumerate(CALL_SECONDS, start=1):
            room = f"real-call-{n}"
            world.livekit.join(room, f"caller-{room}", kind="SIP")
            agents.dispatch(room, metadata=CallPlan(call_seconds=seconds).metadata())
            rooms.append(room)
        agents.wait_for(lambda s: all(_agent_in(world, room) for room in rooms), 30)

        world.fleet.sigterm(
            task, world.clock.now(), f"Scaling activity initiated by (deployment ecs-svc/{DEFAULT_SERVICE})"
        )
        lines.append(_Line(world.clock.now(), "ecs", "SIGTERM to the real worker (the init passes it on)"))
        worker.signal(signal.SIGTERM)
        world.step(0.0)  # EventBridge delivers the stopping transition at once
        deadline = time.monotonic() + EXIT_LIMIT_SECONDS
        while not worker.process_exited() and time.monotonic() < deadline:
            time.sleep(1.0)
            _hang_up_ended_calls(world, agents, rooms)
            world.step(1.0)
        code = worker.wait(timeout_seconds=5)
        _hang_up_ended_calls(world, agents, rooms)
        lines.append(_Line(world.clock.now(), "ecs", f"real worker exited {code}"))
        world.fleet.stop(task, world.clock.now(), exit_code=code, end=None)
        for _ in range(2):
            world.step(1.0)

    verdicts = _coordinator(world.deliveries[deliveries_before:], task.task_arn, lines)
    out.write(
        f"\nReal worker: the packaged livekit-agents worker as one task of '{DEFAULT_SERVICE}' "
        f"(drain_timeout {DRAIN_TIMEOUT_SECONDS} s, real time)\n"
        "  timeline (minutes:seconds from the start of the act)\n"
    )
    for line in sorted(lines, key=lambda x: x.t):
        whole = max(0, round(line.t - start))
        out.write(f"    +{whole // 60:02d}:{whole % 60:02d}  {line.who:<12} {line.text}\n")
    return code == 0 and verdicts == ["graceful"]


def _agent_in(world: World, room: str) -> bool:
    return any(p.kind == "AGENT" for p in world.livekit.rooms().get(room, []))


def _hang_up_ended_calls(world: World, agents: LocalAgentServer, rooms: list[str]) -> None:
    # The call agent's job ends when its caller hangs up: the caller then leaves too.
    for job in agents.jobs():
        caller = f"caller-{job.room}"
        if job.ended_at is not None and job.room in rooms:
            present = [p.identity for p in world.livekit.rooms().get(job.room, [])]
            if caller in present:
                world.livekit.leave(job.room, caller)


def _describe(what: str, detail: dict[str, Any]) -> str:
    if what == "worker_registered":
        return f"registered with LiveKit (livekit-agents {detail.get('version')})"
    if what == "job_assigned":
        tag = detail.get("attributes", {}).get("ecs.task_arn", "")
        return f"took a call in {detail.get('room')}, its agent tagged ecs.task_arn={tag.rsplit('/', 1)[-1]}"
    if what == "worker_status":
        return f"reports itself {detail.get('status')} ({detail.get('job_count')} calls)"
    if what == "job_ended":
        return f"call in {detail.get('room')} ended ({detail.get('status')})"
    return ""


def _coordinator(deliveries: list[Delivery], task_arn: str, lines: list[_Line]) -> list[str]:
    verdicts: list[str] = []
    for delivery in deliveries:
        result = delivery.result if isinstance(delivery.result, dict) else {}
        for step in result.get("steps", []):
            if not isinstance(step, dict) or step.get("task_arn") != task_arn:
                continue
            if step.get("action") == "task_stopping":
                lines.append(
                    _Line(
                        delivery.t,
                        "coordinator",
                        f"task stopping: {step.get('sessions')} calls found by the tag",
                    )
                )
            elif step.get("action") == "task_stopped":
                verdicts.append(str(step.get("verdict")))
                lines.append(
                    _Line(
                        delivery.t,
                        "coordinator",
                        f"task stopped: {step.get('verdict')}, {step.get('dropped_sessions')} calls dropped",
                    )
                )
    return verdicts
