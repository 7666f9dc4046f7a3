"""`drainctl demo`: a fleet with live calls scales in; the coordinator holds the instance until its
last call ends. A timeline, a summary; exit 0 when no call was dropped."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from drainctl.world.fleet import FleetEvent
from drainctl.world.world import Delivery, World, WorldConfig

WARM_UP_SECONDS = 600
CALL_SECONDS = (180.0, 480.0)  # calls uniform in 3-8 minutes
CALLS_PER_WORKER = 2.0  # steady load the arrival rate aims for


@dataclass
class _Line:
    t: float
    who: str
    text: str


def run(
    *,
    seed: int = 7,
    instances: int = 3,
    workers_per_instance: int = 2,
    template: Path | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    config = WorldConfig(seed=seed, template=template)
    with World(config) as world:
        ids = world.create_fleet(instances, workers_per_instance=workers_per_instance)
        workers = instances * workers_per_instance
        mean_call = sum(CALL_SECONDS) / 2
        rate = CALLS_PER_WORKER * workers / mean_call  # calls per second

        def arrivals() -> None:
            if world.rng.random() < rate:
                world.fleet.place_call(world.clock.now(), world.rng.uniform(*CALL_SECONDS))

        out.write(
            f"livekit-drain demo: {instances} instances x {workers_per_instance} LiveKit workers, calls "
            f"{CALL_SECONDS[0] / 60:.0f}-{CALL_SECONDS[1] / 60:.0f} min, hook heartbeat "
            f"{world.hook_heartbeat_timeout} s, worker drain {world.drain_timeout} s, stopTimeout "
            f"{world.stop_timeout} s, deadline {world.params['DrainDeadline']} s\n"
        )
        for _ in range(WARM_UP_SECONDS):
            arrivals()
            world.step(1.0)

        # Scale-in: Auto Scaling picks the busiest instance (the worst case for calls).
        victim = max(ids, key=lambda i: sum(len(w.calls) for w in world.workers_on(i)))
        in_flight = sum(len(w.calls) for w in world.workers_on(victim))
        scale_in_at = world.clock.now()
        events_before = len(world.fleet.events)
        deliveries_before = len(world.deliveries)
        world.aws.terminate_instance(victim, should_decrement_desired_capacity=True)
        lines = [
            _Line(
                scale_in_at,
                "autoscaling",
                f"scale-in: {victim} enters Terminating:Wait with {in_flight} calls in flight",
            )
        ]

        def gone() -> bool:
            return world.instance_state(victim) == "Terminated"

        limit = float(world.params["DrainDeadline"]) + 3 * world.period
        while not gone() and world.clock.now() < scale_in_at + limit:
            arrivals()
            world.step(1.0)
        world.step(1.0)

        lines += _coordinator_lines(world.deliveries[deliveries_before:], victim)
        lines += _fleet_lines(world.fleet.events[events_before:], victim)
        action = world.aws.lifecycle.action_for(victim)
        if action is not None and action.ended_at is not None:
            lines.append(_Line(action.ended_at, "autoscaling", f"{victim} terminated ({action.ended_by})"))
        out.write("\ntimeline (minutes:seconds after the scale-in)\n")
        for line in sorted(lines, key=lambda x: x.t):
            out.write(f"  +{_mmss(line.t - scale_in_at)}  {line.who:<12} {line.text}\n")

        dropped = world.fleet.dropped_calls
        drain_seconds = (action.ended_at - action.started_at) if action and action.ended_at else None
        out.write("\nsummary\n")
        out.write(f"  calls in flight at scale-in   {in_flight}\n")
        out.write(f"  calls dropped (whole fleet)   {len(dropped)}\n")
        out.write(
            f"  forced kills                  {sum(1 for e in world.fleet.events if e.detail.get('exit_code') == 137)}\n"
        )
        out.write(
            f"  drain duration                {_mmss(drain_seconds) if drain_seconds is not None else 'unfinished'}\n"
        )
        out.write(f"  heartbeats sent               {action.heartbeats if action else 0}\n")
        out.write(f"  Lambda invocations            {world.lambdas.count()}\n")
        ok = not dropped and gone()
        out.write(
            f"\n{'OK: the instance left only after its last call ended; no call dropped.' if ok else 'FAILED: calls were dropped or the instance was not released.'}\n"
        )
        return 0 if ok else 1


def _coordinator_lines(deliveries: list[Delivery], instance_id: str) -> list[_Line]:
    lines: list[_Line] = []
    for delivery in deliveries:
        result = delivery.result if isinstance(delivery.result, dict) else {}
        for step in result.get("steps", []):
            if step.get("instance_id") != instance_id or step.get("action") == "wait":
                continue
            action = step["action"]
            if action == "drain_started":
                text = "drain started: container instance set to DRAINING"
            elif action == "complete":
                text = f"complete ({step.get('outcome')}): CompleteLifecycleAction CONTINUE"
            elif action == "heartbeat":
                text = f"heartbeat: {step.get('sessions')} calls on {step.get('tasks')} workers still running"
            else:
                text = f"{action}: {step.get('error') or step.get('reason') or ''}"
            lines.append(_Line(delivery.t, "coordinator", text))
    return lines


def _fleet_lines(events: list[FleetEvent], instance_id: str) -> list[_Line]:
    lines: list[_Line] = []
    for event in events:
        if event.detail.get("instance") != instance_id:
            continue
        match event.what:
            case "sigterm":
                lines.append(
                    _Line(
                        event.t,
                        "ecs",
                        f"SIGTERM to a worker holding {event.detail['calls']} calls: it takes no new call",
                    )
                )
            case "call_ended":
                lines.append(_Line(event.t, "call", f"{event.detail['room']} hung up"))
            case "call_dropped":
                lines.append(
                    _Line(event.t, "call", f"{event.detail['room']} DROPPED ({event.detail['cause']})")
                )
            case "task_stopped":
                code = event.detail["exit_code"]
                how = "exited cleanly" if code == 0 else f"killed (exit {code})"
                lines.append(_Line(event.t, "ecs", f"worker task {how}"))
    return lines


def _mmss(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"
