"""Scale-ins in the local world: the real handlers, wired by template.yaml, drain instances with
calls in flight over real HTTP (moto, LiveKit), on the virtual clock."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from drainctl.world.fleet import Call, CallEnd
from drainctl.world.lambda_runtime import Invocation
from drainctl.world.lifecycle_actions import LifecycleAction
from drainctl.world.world import World, WorldConfig

RECONCILE_FUNCTION = "ReconcileFunction"
AwsCalls = Counter[tuple[str, str]]


@pytest.fixture
def aws_calls() -> Iterator[AwsCalls]:
    """Every AWS API call the handlers make: their clients come from boto3's default session
    (the world's own clients do not), and each copies the session's event hooks when built."""
    calls: AwsCalls = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[(model.service_model.service_name, model.name)] += 1

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register("before-call", count, unique_id="end-to-end-aws-calls")
    yield calls
    events.unregister("before-call", unique_id="end-to-end-aws-calls")


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    dimensions: Mapping[str, str]


def metrics_in(invocations: list[Invocation]) -> list[Metric]:
    """The EMF metrics in these invocations' captured output, one entry per value."""
    found: list[Metric] = []
    for invocation in invocations:
        for line in invocation.output.splitlines():
            document = json.loads(line)
            if "_aws" not in document:
                continue  # a log line
            for directive in document["_aws"]["CloudWatchMetrics"]:
                names = {name for dimension_set in directive["Dimensions"] for name in dimension_set}
                dimensions = {name: str(document[name]) for name in names}
                for metric in directive["Metrics"]:
                    values = document[metric["Name"]]
                    for value in values if isinstance(values, list) else [values]:
                        found.append(Metric(metric["Name"], float(value), dimensions))
    return found


def emitted_metrics(world: World) -> list[Metric]:
    """Every metric every handler emitted."""
    return metrics_in(world.lambdas.invocations)


def completion_metrics(world: World, instance_id: str) -> list[Metric]:
    """The metrics of the one invocation that completed this instance's drain."""
    (completing,) = [
        invocation
        for invocation in world.lambdas.invocations
        if isinstance(invocation.result, dict)
        and any(
            step.get("action") == "complete" and step.get("instance_id") == instance_id
            for step in invocation.result.get("steps", [])
        )
    ]
    return metrics_in([completing])


def total(metrics: list[Metric], name: str, **dimensions: str) -> float:
    return sum(
        m.value
        for m in metrics
        if m.name == name and all(m.dimensions.get(k) == v for k, v in dimensions.items())
    )


def steps_for(world: World, instance_id: str) -> list[tuple[float, dict[str, Any]]]:
    """What the handlers reported doing to this instance's drain, with the time of each."""
    return [
        (delivery.t, step)
        for delivery in world.deliveries
        if isinstance(delivery.result, dict)
        for step in delivery.result.get("steps", [])
        if step.get("instance_id") == instance_id
    ]


def actions_taken(world: World, instance_id: str, action: str) -> list[tuple[float, dict[str, Any]]]:
    return [(t, step) for t, step in steps_for(world, instance_id) if step["action"] == action]


def heartbeats_sent(world: World, instance_id: str) -> list[tuple[float, dict[str, Any]]]:
    """Steps that sent a heartbeat: a heartbeat step, or a look that sent its due one first."""
    return [
        (t, s) for t, s in steps_for(world, instance_id) if s["action"] == "heartbeat" or s.get("heartbeat")
    ]


def looks_for(world: World, instance_id: str) -> list[tuple[float, dict[str, Any]]]:
    """The drain's looks: its steps less task stops, the heartbeats sent ahead of a look (or early,
    to spread them) and the decisions on drains whose look was deferred."""
    return [
        (t, s)
        for t, s in steps_for(world, instance_id)
        if "task_arn" not in s and s.get("reason") not in ("before_look", "spread", "look_deferred")
    ]


def scale_in(world: World, instance_id: str) -> LifecycleAction:
    action = world.aws.terminate_instance(instance_id)
    assert action is not None, "the terminate hook holds the instance"
    return action


def run_until_released(world: World, instance_id: str) -> LifecycleAction:
    """Step the world until Auto Scaling lets the instance go, then one more second so the fleet
    sees it gone (any call still on it is dropped then)."""
    limit = float(world.params["DrainDeadline"]) + 3 * world.period
    released = world.run(lambda: world.instance_state(instance_id) == "Terminated", limit_seconds=limit)
    assert released, f"{instance_id} was still held after {limit} s"
    world.step(1.0)
    action = world.aws.lifecycle.action_for(instance_id)
    assert action is not None
    assert action.ended_at is not None
    return action


def start_calls(world: World, instance_id: str, lengths: list[list[float]]) -> list[Call]:
    """Calls of these lengths (seconds) on each worker of the instance, in order."""
    calls: list[Call] = []
    for worker, worker_lengths in zip(world.workers_on(instance_id), lengths, strict=True):
        calls += [world.fleet.start_call(worker, world.clock.now(), length) for length in worker_lengths]
    return calls


# -- drained ---------------------------------------------------------------------------------------


def test_scale_in_holds_the_instance_until_its_last_call_ends(world: World, aws_calls: AwsCalls) -> None:
    # GIVEN two instances of two workers; the one scaled in holds three calls, the longest outlasting
    # the hook's heartbeat timeout (300 s) but not the workers' drain timeout (600 s)
    victim, other = world.create_fleet(2, workers_per_instance=2)
    calls = start_calls(world, victim, [[250.0, 420.0], [540.0]])
    bystander = start_calls(world, other, [[900.0], []])
    last_call_ends_at = max(c.ends_at for c in calls)
    assert last_call_ends_at - world.clock.now() > world.hook_heartbeat_timeout

    # WHEN Auto Scaling scales the victim in and the coordinator drains it
    scale_in(world, victim)
    action = run_until_released(world, victim)

    # THEN the instance went only after its last call ended, and every call ended by itself
    assert world.instance_state(victim) == "Terminated"
    assert action.ended_by == "CONTINUE"
    assert action.ended_at is not None
    assert action.ended_at >= last_call_ends_at
    assert [(c.end, c.ended_at) for c in calls] == [(CallEnd.HUNG_UP, c.ends_at) for c in calls]
    assert world.fleet.dropped_calls == []
    assert bystander[0].end is None

    # THEN heartbeats kept the hook alive while the calls ran
    heartbeats = heartbeats_sent(world, victim)
    assert action.heartbeats == len(heartbeats) > 0
    # (the look that completes may send one that was due first: a heartbeat never waits for a probe)
    assert all(t < last_call_ends_at for t, s in heartbeats if s["action"] != "complete")

    # THEN the action was completed once, as drained
    assert aws_calls[("autoscaling", "CompleteLifecycleAction")] == 1
    completions = actions_taken(world, victim, "complete")
    assert [step["outcome"] for _, step in completions] == ["drained"]
    metrics = emitted_metrics(world)
    assert total(metrics, "DrainStarted") == 1
    assert total(metrics, "DrainCompleted", Outcome="drained") == 1
    assert total(metrics, "Heartbeats") == action.heartbeats
    assert total(metrics, "DroppedSessions") == 0


def test_idle_instance_completes_without_heartbeats(world: World, aws_calls: AwsCalls) -> None:
    # GIVEN an instance whose worker holds no call
    (idle,) = world.create_fleet(1)

    # WHEN it is scaled in
    scale_in(world, idle)
    action = run_until_released(world, idle)

    # THEN it goes as soon as its worker has exited, with no heartbeat
    assert action.ended_by == "CONTINUE"
    assert action.ended_at is not None
    assert action.ended_at - action.started_at < world.hook_heartbeat_timeout
    assert action.heartbeats == 0
    assert aws_calls[("autoscaling", "RecordLifecycleActionHeartbeat")] == 0
    assert aws_calls[("autoscaling", "CompleteLifecycleAction")] == 1
    assert [step["outcome"] for _, step in actions_taken(world, idle, "complete")] == ["drained"]
    assert total(emitted_metrics(world), "DrainCompleted", Outcome="drained") == 1


# -- the deadline ----------------------------------------------------------------------------------


def test_calls_outlasting_the_deadline_are_dropped_and_counted_once(aws_calls: AwsCalls) -> None:
    # GIVEN a tight budget (drain 60 s, stopTimeout 120 s, deadline 180 s) and a standalone worker
    # task: ECS stops only service tasks on a DRAINING instance, so this one keeps its calls
    params = {"WorkerDrainTimeout": "60", "WorkerStopTimeout": "120", "DrainDeadline": "180"}
    with World(WorldConfig(params=params)) as world:
        (victim,) = world.create_fleet(1)
        (worker,) = world.workers_on(victim)
        world.fleet.make_standalone(worker)
        calls = start_calls(world, victim, [[300.0, 400.0]])

        # WHEN it is scaled in with calls that outlast the deadline
        started = scale_in(world, victim)
        action = run_until_released(world, victim)
        world.run(lambda: worker.stopped_at is not None, limit_seconds=60)
        world.step(1.0)

        # THEN Auto Scaling let it go by the deadline, on the coordinator's completion
        assert action.ended_by == "CONTINUE"
        assert action.ended_at is not None
        assert action.ended_at <= started.started_at + 180
        assert aws_calls[("autoscaling", "CompleteLifecycleAction")] == 1

        # THEN both calls died with the instance, the drain's completion says so, and the task's
        # stop (its host terminated) is judged a forced kill that counts them, once
        assert sorted(c.room for c in world.fleet.dropped_calls) == sorted(c.room for c in calls)
        assert {c.end for c in calls} == {CallEnd.INSTANCE_TERMINATED}
        completions = actions_taken(world, victim, "complete")
        assert [(s["outcome"], s["dropped_sessions"]) for _, s in completions] == [("deadline", 2)]
        # (the alarms' metrics: by service and stack only; the drill-down copies by ECS service aside)
        metrics = [m for m in emitted_metrics(world) if set(m.dimensions) <= {"service", "Stack", "Outcome"}]
        assert total(metrics, "DrainCompleted", Outcome="deadline") == 1
        assert total(metrics, "DrainCompleted", Outcome="forced_kill") == 1
        assert total(metrics, "DroppedSessions") == 2
        assert total(metrics, "ForcedKills") == 1
        assert total(metrics, "DrainCompleted", Outcome="drained") == 0


def test_an_idle_worker_that_goes_with_its_host_is_no_forced_kill_alarm(world: World) -> None:
    # GIVEN an instance whose standalone worker task (ECS does not stop it on DRAINING) holds no call
    (idle,) = world.create_fleet(1)
    (worker,) = world.workers_on(idle)
    world.fleet.make_standalone(worker)
    since = world.clock.now()

    # WHEN it is scaled in, drained (nothing to wait for) and terminated with the task still on it,
    # and the task's STOPPED event is handled
    scale_in(world, idle)
    action = run_until_released(world, idle)
    world.run(world.settled, limit_seconds=world.period)

    # THEN the task's end is judged a kill by its host's going (ECS reports no exit code), counted
    # by outcome, but no call was on it: no ForcedKills, no DroppedSessions, no page
    assert action.ended_by == "CONTINUE"
    metrics = [m for m in emitted_metrics(world) if set(m.dimensions) <= {"service", "Stack", "Outcome"}]
    assert total(metrics, "DrainCompleted", Outcome="forced_kill") == 1
    assert total(metrics, "ForcedKills") == 0
    assert total(metrics, "DroppedSessions") == 0
    assert "ForcedKillsAlarm" not in {f.alarm.logical_id for f in world.alarms_firing(since)}


# -- a failed probe --------------------------------------------------------------------------------


def test_livekit_outage_holds_the_instance_with_heartbeats_while_its_calls_run(
    world: World, aws_calls: AwsCalls
) -> None:
    # GIVEN an instance with two calls, and LiveKit answering 503 from the scale-in on
    (victim,) = world.create_fleet(1)
    calls = start_calls(world, victim, [[240.0, 420.0]])
    world.livekit.faults.status_5xx = True

    # WHEN it is scaled in and the outage outlasts the hook's heartbeat timeout
    started = scale_in(world, victim)
    outage_ends_at = started.started_at + world.hook_heartbeat_timeout + 90
    world.run(lambda: world.clock.now() >= outage_ends_at, limit_seconds=world.hook_heartbeat_timeout + 120)

    # THEN the drain held the instance, heartbeating on every failed look that needed it: a failed
    # look proves nothing (rule 4), and the hook did not run out
    assert world.instance_state(victim) == "Terminating:Wait"
    assert actions_taken(world, victim, "complete") == []
    held = actions_taken(world, victim, "hold")
    assert held
    assert all("503" in step["error"] for _, step in held)
    assert total(emitted_metrics(world), "ProbeErrors") >= len(held)
    assert aws_calls[("autoscaling", "RecordLifecycleActionHeartbeat")] > 0

    # WHEN LiveKit answers again
    world.livekit.faults.clear()
    action = run_until_released(world, victim)

    # THEN the drain waits for the last call and completes as drained, nothing dropped
    assert action.ended_by == "CONTINUE"
    assert action.ended_at is not None
    assert action.ended_at >= max(c.ends_at for c in calls)
    assert [step["outcome"] for _, step in actions_taken(world, victim, "complete")] == ["drained"]
    assert world.fleet.dropped_calls == []


def test_instance_whose_workers_all_exited_is_released_during_a_livekit_outage(world: World) -> None:
    # GIVEN an instance with a call, and LiveKit down for the whole drain
    (victim,) = world.create_fleet(1)
    (call,) = start_calls(world, victim, [[200.0]])
    world.livekit.faults.status_5xx = True

    # WHEN it is scaled in
    scale_in(world, victim)
    action = run_until_released(world, victim)

    # THEN once ECS shows no worker task left (no agent can hold a room) the instance goes,
    # without waiting for LiveKit or the deadline
    assert call.end is CallEnd.HUNG_UP
    assert action.ended_by == "CONTINUE"
    assert action.ended_at is not None
    assert action.ended_at < action.started_at + float(world.params["DrainDeadline"])
    assert [step["outcome"] for _, step in actions_taken(world, victim, "complete")] == ["drained"]
    assert world.fleet.dropped_calls == []
