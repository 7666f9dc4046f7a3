"""The task_state handler on the event files: stops followed, judged once, drains released early."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from drain_coordinator.domain.probe import WorkerTask
from drain_coordinator.domain.records import DrainRecord
from drain_coordinator.handlers import lifecycle, reconcile, task_state
from tests.fakes import FakeLambdaContext
from tests.functional.conftest import CI_ARN, INSTANCE, Harness, load_event

TASK = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/5f1c2d3e4b5a69788796a5b4c3d2e1f0"
EVENT_CI = (
    "arn:aws:ecs:us-east-1:123456789012:container-instance/livekit-agents/0b8e3c5d2a1f4e6b9c7d8a0f1e2d3c4b"
)
# Every metric's dimensions: the service, and the stack (no STACK_NAME here: the default)
STACK = {"service": "livekit-drain", "Stack": "livekit-drain"}
T_STOPPING = 1_767_229_200.0  # 2026-01-01T01:00:00Z, the stoppingAt of the event files


def steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result["steps"])


def metrics_in(out: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Metric name -> [(dimensions, value)] from the EMF lines printed."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in out.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dims = {name: blob[name] for group in directive["Dimensions"] for name in group}
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    found.setdefault(metric["Name"], []).append((dims, value))
    return found


def calls_on_task(harness: Harness, n: int) -> None:
    harness.sessions.rooms.update({f"room-{i}": TASK for i in range(n)})


def test_stopping_event_opens_a_task_stop_with_the_calls_it_holds(harness: Harness) -> None:
    calls_on_task(harness, 3)
    harness.clock.t = T_STOPPING
    result = task_state.handler(load_event("ecs-task-stopping-deploy.json"), FakeLambdaContext())
    assert steps(result)[0]["action"] == "task_stopping"
    assert steps(result)[0]["sessions"] == 3
    record = harness.stops.get(TASK)
    assert record is not None
    assert record.stop_timeout == 900
    assert record.kill_at == T_STOPPING + 900


def test_forced_kill_with_calls_in_flight_is_counted_with_the_calls_it_dropped(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a worker told to stop with three calls, two still up when ECS SIGKILLs it
    calls_on_task(harness, 3)
    harness.clock.t = T_STOPPING
    task_state.handler(load_event("ecs-task-stopping-deploy.json"), FakeLambdaContext())
    harness.sessions.callers = {"room-0", "room-1"}
    harness.clock.t = T_STOPPING + 900
    # WHEN the STOPPED event arrives
    result = task_state.handler(load_event("ecs-task-stopped-forced-kill.json"), FakeLambdaContext())
    # THEN the verdict names the kill and the dropped calls, and the alarm metrics are emitted
    (stopped,) = [s for s in steps(result) if s["action"] == "task_stopped"]
    assert stopped["verdict"] == "forced_kill"
    assert stopped["dropped_sessions"] == 2
    assert stopped["exit_code"] == 137
    metrics = metrics_in(capsys.readouterr().out)
    assert (STACK, 1.0) in metrics["ForcedKills"]
    assert (STACK, 2.0) in metrics["DroppedSessions"]
    drill_down = {
        **STACK,
        "ClusterName": "livekit-agents",
        "ServiceName": "livekit-agents",
    }
    assert (drill_down, 1.0) in metrics["ForcedKills"]
    assert ({**STACK, "Outcome": "forced_kill"}, 1.0) in metrics["DrainCompleted"]


def test_graceful_stop_raises_no_alarm_metric(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    calls_on_task(harness, 2)
    harness.clock.t = T_STOPPING
    task_state.handler(load_event("ecs-task-stopping-deploy.json"), FakeLambdaContext())
    harness.sessions.rooms.clear()
    result = task_state.handler(load_event("ecs-task-stopped-graceful.json"), FakeLambdaContext())
    assert steps(result)[0]["verdict"] == "graceful"
    assert steps(result)[0]["dropped_sessions"] == 0
    metrics = metrics_in(capsys.readouterr().out)
    assert "ForcedKills" not in metrics
    assert "DroppedSessions" not in metrics


def test_stopped_before_stopping_gives_one_verdict_once(harness: Harness) -> None:
    # GIVEN the STOPPED event arrives first (EventBridge does not order deliveries)
    first = task_state.handler(load_event("ecs-task-stopped-crash.json"), FakeLambdaContext())
    late = task_state.handler(load_event("ecs-task-stopping-deploy.json"), FakeLambdaContext())
    again = task_state.handler(load_event("ecs-task-stopped-crash.json"), FakeLambdaContext())
    assert steps(first)[0]["verdict"] == "crashed"
    assert steps(late) == [{"action": "skip", "task_arn": TASK, "reason": "already_judged"}]
    assert steps(again) == [{"action": "skip", "task_arn": TASK, "reason": "already_judged"}]


def test_reconcile_samples_a_long_stop_and_warns_before_the_kill(harness: Harness) -> None:
    calls_on_task(harness, 2)
    harness.clock.t = T_STOPPING
    task_state.handler(load_event("ecs-task-stopping-deploy.json"), FakeLambdaContext())
    harness.ecs.described[TASK] = load_event("ecs-task-stopping-deploy.json")["detail"]  # still running
    seen = []
    for minute in range(1, 15):
        harness.clock.t = T_STOPPING + 60 * minute
        seen += [s["action"] for s in steps(reconcile.handler({}, FakeLambdaContext()))]
    assert seen.count("at_risk") == 1
    assert seen.index("at_risk") == 12  # 780 s in: within 120 s of the kill at 900 s
    record = harness.stops.get(TASK)
    assert record is not None
    assert record.sessions_remaining == 2


def test_reconcile_judges_a_stop_whose_stopped_event_was_lost(harness: Harness) -> None:
    calls_on_task(harness, 1)
    harness.clock.t = T_STOPPING
    task_state.handler(load_event("ecs-task-stopping-deploy.json"), FakeLambdaContext())
    harness.sessions.rooms.clear()
    harness.ecs.described[TASK] = load_event("ecs-task-stopped-graceful.json")["detail"]
    harness.clock.t = T_STOPPING + 420
    result = reconcile.handler({}, FakeLambdaContext())
    assert steps(result) == [
        {
            "action": "task_stopped",
            "task_arn": TASK,
            "verdict": "graceful",
            "dropped_sessions": 0,
            "exit_code": 0,
            "reason": "Scaling activity initiated by (deployment ecs-svc/4713937651372854231)",
            "service": "livekit-agents",
        }
    ]


def test_worker_stopped_on_a_draining_instance_releases_it_at_once(harness: Harness) -> None:
    # GIVEN an instance drain whose only worker is the event's task, its calls all ended
    harness.ecs.instances[INSTANCE] = EVENT_CI
    harness.ecs.tasks[EVENT_CI] = [WorkerTask(arn=TASK, last_status="RUNNING", desired_status="RUNNING")]
    calls_on_task(harness, 1)
    lifecycle.handler(load_event("asg-terminate-lifecycle-action.json"), FakeLambdaContext())
    harness.sessions.rooms.clear()
    harness.ecs.tasks[EVENT_CI] = []
    # WHEN its STOPPED event arrives, between two ticks
    result = task_state.handler(load_event("ecs-task-stopped-graceful.json"), FakeLambdaContext())
    # THEN the drain completes now
    assert [s["action"] for s in steps(result)] == ["task_stopped", "complete"]
    assert harness.lifecycle.calls[-1] == ("complete:CONTINUE", INSTANCE)
    assert CI_ARN != EVENT_CI  # the other fixture instance is untouched


def test_a_release_look_that_auto_scaling_throttles_leaves_the_drain_to_reconcile_and_keeps_the_verdict(
    harness: Harness,
) -> None:
    # GIVEN the same drain, its calls ended, and Auto Scaling refusing every call past its rate
    harness.ecs.instances[INSTANCE] = EVENT_CI
    harness.ecs.tasks[EVENT_CI] = [WorkerTask(arn=TASK, last_status="RUNNING", desired_status="RUNNING")]
    calls_on_task(harness, 1)
    lifecycle.handler(load_event("asg-terminate-lifecycle-action.json"), FakeLambdaContext())
    harness.sessions.rooms.clear()
    harness.ecs.tasks[EVENT_CI] = []
    harness.lifecycle.throttled = True
    # WHEN the STOPPED event arrives
    result = task_state.handler(load_event("ecs-task-stopped-graceful.json"), FakeLambdaContext())
    # THEN the stop is judged, the failed release is an error step (not a failed event, which
    # Lambda would retry), and the drain is still open for the next tick
    assert [s["action"] for s in steps(result)] == ["task_stopped", "error"]
    record = harness.store.get(INSTANCE)
    assert record is not None
    assert record.is_open


def test_malformed_task_event_is_rejected_and_counted(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("ecs-task-stopped-graceful.json")
    event["detail"]["taskArn"] = "not-an-arn"
    result = task_state.handler(event, FakeLambdaContext())
    assert steps(result)[0]["action"] == "reject"
    assert metrics_in(capsys.readouterr().out)["EventsRejected"] == [(STACK, 1.0)]


def test_a_task_stop_whose_task_ecs_no_longer_describes_is_closed_and_counted(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stop followed since its stopping event, whose task ECS has since forgotten (ECS
    # describes a stopped task for about an hour; its STOPPED event was lost)
    calls_on_task(harness, 1)
    harness.clock.t = T_STOPPING
    task_state.handler(load_event("ecs-task-stopping-deploy.json"), FakeLambdaContext())
    capsys.readouterr()
    harness.sessions.rooms.clear()
    harness.clock.t = T_STOPPING + 7200
    # WHEN reconcile looks at it
    result = reconcile.handler({}, FakeLambdaContext())
    # THEN it is closed with its own verdict and counted, and the next tick has nothing to look at
    (step,) = steps(result)
    assert step["action"] == "task_stopped"
    assert step["verdict"] == "unobserved"
    record = harness.stops.get(TASK)
    assert record is not None
    assert not record.is_open
    completed = metrics_in(capsys.readouterr().out)["DrainCompleted"]
    assert any(dims.get("Outcome") == "unobserved" for dims, _ in completed)
    assert steps(reconcile.handler({}, FakeLambdaContext())) == []


def test_stopped_event_finds_its_drain_by_key_without_reading_the_open_drains(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an instance drain whose only worker is the event's task, among open drains nobody may list
    harness.ecs.instances[INSTANCE] = EVENT_CI
    harness.ecs.tasks[EVENT_CI] = [WorkerTask(arn=TASK, last_status="RUNNING", desired_status="RUNNING")]
    calls_on_task(harness, 1)
    lifecycle.handler(load_event("asg-terminate-lifecycle-action.json"), FakeLambdaContext())
    harness.sessions.rooms.clear()
    harness.ecs.tasks[EVENT_CI] = []

    def no_listing() -> Iterator[DrainRecord]:
        raise AssertionError("every open drain read for one task event")

    monkeypatch.setattr(harness.store, "open_drains", no_listing)
    # WHEN its STOPPED event arrives
    result = task_state.handler(load_event("ecs-task-stopped-graceful.json"), FakeLambdaContext())
    # THEN the drain, found by the task, completes
    assert [s["action"] for s in steps(result)] == ["task_stopped", "complete"]


def test_a_sample_that_changed_nothing_writes_nothing(harness: Harness) -> None:
    # GIVEN a long stop sampled once by reconcile
    calls_on_task(harness, 2)
    harness.clock.t = T_STOPPING
    task_state.handler(load_event("ecs-task-stopping-deploy.json"), FakeLambdaContext())
    harness.ecs.described[TASK] = load_event("ecs-task-stopping-deploy.json")["detail"]  # still running
    harness.clock.t = T_STOPPING + 60
    reconcile.handler({}, FakeLambdaContext())
    record = harness.stops.get(TASK)
    assert record is not None
    # WHEN the next tick samples it and its calls are as they were
    harness.clock.t = T_STOPPING + 120
    reconcile.handler({}, FakeLambdaContext())
    # THEN the record was not written again
    again = harness.stops.get(TASK)
    assert again is not None and again.version == record.version
