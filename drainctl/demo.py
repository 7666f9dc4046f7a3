"""`drainctl demo`: the whole story on the local world.

Act 1, scale-in: a fleet with live calls scales in; the coordinator holds the instance until its
last call ends. Act 2, rolling deploy: two services are redeployed side by side, one configured
right (stopTimeout 900 s over a 600 s drain) and one misconfigured (stopTimeout 120 s, as on
Fargate): the first drains every call, the second is SIGKILLed with calls on it, and the
coordinator judges each stop and sets off the alarms.

Exit 0 when the correctly configured fleet dropped no call and every call the misconfigured
service dropped was caught (forced kill judged, alarm fired).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from drainctl.world.fleet import DEFAULT_SERVICE, FleetEvent
from drainctl.world.world import Delivery, World, WorldConfig

WARM_UP_SECONDS = 600
CALL_SECONDS = (180.0, 480.0)  # calls uniform in 3-8 minutes
CALLS_PER_WORKER = 2.0  # steady load the arrival rate aims for
MISCONFIGURED = "misconfigured-agents"
MISCONFIGURED_STOP_TIMEOUT = 120
WIDTH = 100  # advice is wrapped to this many columns
NEXT_STEPS = """
Next steps
  1. Check your own timers before you deploy:
       drainctl check --template template.yaml --config samconfig.toml
       drainctl check --task-definition my-task-definition.json   # your worker's, from ECS
  2. Deploy the coordinator into your account: docs/deploy.md
  3. Then watch it drain: drainctl status --stack <your stack>
"""


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
    real_worker: bool = False,
) -> int:
    out = out or sys.stdout
    with World(WorldConfig(seed=seed, template=template)) as world:
        ids = world.create_fleet(instances, workers_per_instance)
        mean_call = sum(CALL_SECONDS) / 2

        def arrivals() -> None:
            rate = CALLS_PER_WORKER * len(world.fleet.accepting_workers()) / mean_call  # calls per second
            if world.rng.random() < rate:
                world.fleet.place_call(world.clock.now(), world.rng.uniform(*CALL_SECONDS))

        out.write(
            f"livekit-drain demo: {instances} instances x {workers_per_instance} workers of "
            f"'{DEFAULT_SERVICE}' (drain_timeout {world.drain_timeout} s, stopTimeout {world.stop_timeout} s), "
            f"calls {CALL_SECONDS[0] / 60:.0f}-{CALL_SECONDS[1] / 60:.0f} min; hook heartbeat timeout "
            f"{world.hook_heartbeat_timeout} s, drain deadline {world.params['DrainDeadline']} s\n"
        )
        _say(out, f"{WARM_UP_SECONDS // 60} virtual minutes of calls arriving before the first act ...")
        _idle(world, WARM_UP_SECONDS, arrivals)
        scale_in_ok = _act_scale_in(world, ids, arrivals, out)
        # Act 2's second service, beside the first on the remaining instances.
        world.add_service(
            MISCONFIGURED, drain_timeout=world.drain_timeout, stop_timeout=MISCONFIGURED_STOP_TIMEOUT
        )
        remaining = [i for i in ids if world.instance_state(i) != "Terminated"]
        world.start_workers(MISCONFIGURED, remaining, workers_per_instance)
        out.write(
            f"\n'{MISCONFIGURED}' starts {workers_per_instance} workers on each remaining instance: "
            f"drain_timeout {world.drain_timeout} s but stopTimeout {MISCONFIGURED_STOP_TIMEOUT} s "
            "(WRONG: shorter than its calls, as on Fargate)\n"
        )
        _say(out, f"{WARM_UP_SECONDS // 60} virtual minutes of calls arriving before the second act ...")
        _idle(world, WARM_UP_SECONDS, arrivals)
        deploy_ok = _act_deploy(world, arrivals, out)
        ok = scale_in_ok and deploy_ok
        if real_worker:
            from drainctl.world import real_worker_act

            ok = real_worker_act.run(world, out) and ok
        out.write(
            "\nOK: no call dropped where the timers agree; every call the misconfigured service "
            "dropped was judged and alarmed.\n"
            if ok
            else "\nFAILED: see above.\n"
        )
        out.write(NEXT_STEPS)
        return 0 if ok else 1


def _idle(world: World, seconds: int, arrivals: Callable[[], None]) -> None:
    for _ in range(seconds):
        arrivals()
        world.step(1.0)


def _act_scale_in(world: World, ids: list[str], arrivals: Callable[[], None], out: TextIO) -> bool:
    # Auto Scaling picks the busiest instance: the worst case for calls.
    victim = max(ids, key=lambda i: sum(len(w.calls) for w in world.workers_on(i)))
    in_flight = sum(len(w.calls) for w in world.workers_on(victim))
    start = world.clock.now()
    world.aws.terminate_instance(victim, should_decrement_desired_capacity=True)
    stream = _Stream(out, "Act 1: scale-in of the busiest instance", start, world)
    stream.show(
        [
            _Line(
                start,
                "autoscaling",
                f"scale-in: {victim} enters Terminating:Wait with {in_flight} calls in flight",
            )
        ]
    )
    limit = float(world.params["DrainDeadline"]) + 3 * world.period
    while world.instance_state(victim) != "Terminated" and world.clock.now() < start + limit:
        arrivals()
        world.step(1.0)
        stream.pump(
            instance_id=victim,
            fleet_filter=lambda e: e.detail.get("instance") == victim,
        )
    world.step(1.0)
    stream.pump(instance_id=victim, fleet_filter=lambda e: e.detail.get("instance") == victim)
    action = world.aws.lifecycle.action_for(victim)
    if action is not None and action.ended_at is not None:
        stream.show([_Line(action.ended_at, "autoscaling", f"{victim} terminated ({action.ended_by})")])
    dropped = [c for c in world.fleet.calls_on(victim) if c.dropped]
    drain_seconds = (action.ended_at - action.started_at) if action and action.ended_at else None
    out.write("  summary\n")
    out.write(f"    calls in flight at scale-in   {in_flight}\n")
    out.write(f"    calls dropped                 {len(dropped)}\n")
    out.write(
        f"    drain duration                {_mmss(drain_seconds) if drain_seconds is not None else 'unfinished'}\n"
    )
    out.write(f"    heartbeats sent               {action.heartbeats if action else 0}\n")
    return not dropped and world.instance_state(victim) == "Terminated"


def _act_deploy(world: World, arrivals: Callable[[], None], out: TextIO) -> bool:
    start = world.clock.now()
    in_flight = {
        name: sum(len(w.calls) for w in world.fleet.workers.values() if w.service == name and w.accepting)
        for name in (DEFAULT_SERVICE, MISCONFIGURED)
    }
    old = world.deploy(DEFAULT_SERVICE) + world.deploy(MISCONFIGURED)
    stream = _Stream(out, "Act 2: rolling deploy, one service right and one misconfigured", start, world)
    stream.show(
        [
            _Line(
                start,
                "ecs",
                f"rolling deploy of both services: {len(old)} old workers told to stop, holding "
                f"{in_flight[DEFAULT_SERVICE]} calls ({DEFAULT_SERVICE}) + {in_flight[MISCONFIGURED]} "
                f"calls ({MISCONFIGURED})",
            )
        ]
    )

    def keep(e: FleetEvent) -> bool:
        return e.what in ("call_dropped", "task_stopped")

    limit = world.stop_timeout + 3 * world.period
    while any(w.stopped_at is None for w in old) and world.clock.now() < start + limit:
        arrivals()
        world.step(1.0)
        stream.pump(instance_id=None, fleet_filter=keep, alarms_since=start)
    for _ in range(2 * world.period):  # let the alarms' periods close
        arrivals()
        world.step(1.0)
        stream.pump(instance_id=None, fleet_filter=keep, alarms_since=start)
    stream.pump(instance_id=None, fleet_filter=keep, alarms_since=start, alarms_now=True)
    alarms = world.alarms_firing(since=start)
    deliveries_before = stream.deliveries_at_start
    old_arns = {w.task_arn for w in old}
    out.write("  summary\n")
    ok = True
    for name in (DEFAULT_SERVICE, MISCONFIGURED):
        # the calls in flight on the old workers when they were told to stop (the header's numbers)
        calls = [
            c
            for c in world.fleet.calls_of(name)
            if c.task_arn in old_arns and (c.ended_at is None or c.ended_at >= start)
        ]
        dropped = [c for c in calls if c.dropped]
        verdicts = _verdicts(world.deliveries[deliveries_before:], name)
        out.write(
            f"    {name:<22} calls on the old workers at the deploy {len(calls):>3}, dropped {len(dropped):>3}; "
            f"verdicts {dict(sorted(verdicts.items()))}\n"
        )
        if name == DEFAULT_SERVICE:
            ok = ok and not dropped and set(verdicts) <= {"graceful"}
        else:
            judged = sum(n for v, n in verdicts.items() if v == "forced_kill")
            ok = ok and (not dropped or (judged > 0 and any(f.alarm.metric == "ForcedKills" for f in alarms)))
    for fired in alarms:
        out.write(
            textwrap.fill(
                f"alarm {fired.alarm.name}: {fired.alarm.description}",
                width=WIDTH,
                initial_indent="    ",
                subsequent_indent="      ",
            )
            + "\n"
        )
    return ok


def _verdicts(deliveries: list[Delivery], service: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for delivery in deliveries:
        for step in _steps(delivery):
            if step.get("action") == "task_stopped" and step.get("service") == service:
                verdict = str(step.get("verdict"))
                counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def _steps(delivery: Delivery) -> list[dict[str, object]]:
    result = delivery.result if isinstance(delivery.result, dict) else {}
    return [s for s in result.get("steps", []) if isinstance(s, dict)]


def _coordinator_lines(deliveries: list[Delivery], instance_id: str | None) -> list[_Line]:
    lines: list[_Line] = []
    for delivery in deliveries:
        for step in _steps(delivery):
            action = step.get("action")
            if action in ("wait", "task_sampled", "task_stopping", "skip"):
                continue
            if instance_id is not None and step.get("instance_id") != instance_id:
                continue
            if instance_id is None and action not in ("task_stopped", "at_risk"):
                continue
            if action == "drain_started":
                text = "drain started: container instance set to DRAINING"
            elif action == "complete":
                text = f"complete ({step.get('outcome')}): CompleteLifecycleAction CONTINUE"
            elif action == "heartbeat":
                text = f"heartbeat: {step.get('sessions')} calls on {step.get('tasks')} workers still running"
            elif action == "task_stopped":
                text = (
                    f"worker of {step.get('service')} stopped: {step.get('verdict')}, "
                    f"{step.get('dropped_sessions')} calls dropped"
                )
            elif action == "at_risk":
                text = f"AT RISK: a worker of {step.get('service')} will be killed with {step.get('sessions')} calls up"
            else:
                text = f"{action}: {step.get('error') or step.get('reason') or ''}"
            lines.append(_Line(delivery.t, "coordinator", text))
    return lines


def _fleet_lines(events: list[FleetEvent], keep: Callable[[FleetEvent], bool]) -> list[_Line]:
    lines: list[_Line] = []
    for event in events:
        if not keep(event):
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
                    _Line(
                        event.t,
                        "call",
                        f"{event.detail['room']} DROPPED ({event.detail['cause']}, {event.detail.get('service')})",
                    )
                )
            case "task_stopped":
                code = event.detail["exit_code"]
                how = "exited cleanly" if code == 0 else f"killed (exit {code})"
                lines.append(_Line(event.t, "ecs", f"worker of {event.detail.get('service')} {how}"))
    return lines


class _Stream:
    """An act's timeline, printed as it happens: what the coordinator and the fleet did since
    the last look, in time order."""

    def __init__(self, out: TextIO, title: str, start: float, world: World) -> None:
        self._out = out
        self._start = start
        self._world = world
        self._events = len(world.fleet.events)
        self._deliveries = self.deliveries_at_start = len(world.deliveries)
        self._alarms_shown: set[str] = set()
        self._next_alarm_look = start + world.period
        out.write(f"\n{title}\n  timeline (minutes:seconds from the start of the act)\n")
        out.flush()

    def pump(
        self,
        *,
        instance_id: str | None,
        fleet_filter: Callable[[FleetEvent], bool],
        alarms_since: float | None = None,
        alarms_now: bool = False,
    ) -> None:
        world = self._world
        lines = _coordinator_lines(world.deliveries[self._deliveries :], instance_id=instance_id)
        lines += _fleet_lines(world.fleet.events[self._events :], fleet_filter)
        self._deliveries, self._events = len(world.deliveries), len(world.fleet.events)
        if alarms_since is not None and (alarms_now or world.clock.now() >= self._next_alarm_look):
            self._next_alarm_look = world.clock.now() + world.period
            for fired in world.alarms_firing(since=alarms_since):
                if fired.alarm.name not in self._alarms_shown:
                    self._alarms_shown.add(fired.alarm.name)
                    lines.append(
                        _Line(
                            fired.t,
                            "cloudwatch",
                            f"ALARM {fired.alarm.name} ({fired.alarm.metric} = {fired.value:g})",
                        )
                    )
        self.show(lines)

    def show(self, lines: list[_Line]) -> None:
        for line in sorted(lines, key=lambda x: x.t):
            self._out.write(f"    +{_mmss(line.t - self._start)}  {line.who:<12} {line.text}\n")
        if lines:
            self._out.flush()


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _mmss(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"
