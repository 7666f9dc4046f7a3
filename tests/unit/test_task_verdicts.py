from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drain_coordinator.domain.events import EventRejectedError, Skip
from drain_coordinator.domain.task_stops import TaskStateChange, Verdict, judge, parse_task_state_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
CLUSTER = "livekit-agents"


def change_of(name: str, **detail: Any) -> TaskStateChange:
    event = json.loads((EVENTS / name).read_text())
    event["detail"].update(detail)
    parsed = parse_task_state_event(event, cluster=CLUSTER)
    assert isinstance(parsed, TaskStateChange)
    return parsed


@pytest.mark.parametrize(
    ("event_file", "calls_up", "verdict"),
    [
        ("ecs-task-stopped-graceful.json", 0, Verdict.GRACEFUL),
        ("ecs-task-stopped-forced-kill.json", 3, Verdict.FORCED_KILL),
        ("ecs-task-stopped-oom.json", 1, Verdict.OOM),
        ("ecs-task-stopped-crash.json", 0, Verdict.CRASHED),
        ("ecs-task-stopped-graceful.json", 2, Verdict.DRAIN_TIMED_OUT),
    ],
)
def test_each_stop_is_judged_from_its_event(event_file: str, calls_up: int, verdict: Verdict) -> None:
    judgement = judge(change_of(event_file), stop_timeout=900, calls_still_up=calls_up)
    assert judgement.verdict is verdict
    assert judgement.dropped_sessions == calls_up


def test_forced_kill_reports_how_long_the_stop_took() -> None:
    judgement = judge(change_of("ecs-task-stopped-forced-kill.json"), stop_timeout=900, calls_still_up=3)
    assert judgement.stop_seconds == 900
    assert judgement.exit_code == 137


def test_a_task_whose_host_was_terminated_under_it_was_forcibly_killed() -> None:
    change = change_of(
        "ecs-task-stopped-graceful.json",
        containers=[{"name": "agent", "lastStatus": "STOPPED"}],
        stopCode="TerminationNotice",
        stoppedReason="Host EC2 (instance i-0598c7d356eba48d7) terminated.",
    )
    assert judge(change, stop_timeout=900, calls_still_up=2).verdict is Verdict.FORCED_KILL


def test_the_oom_reason_wins_over_the_exit_code() -> None:
    judgement = judge(change_of("ecs-task-stopped-oom.json"), stop_timeout=900, calls_still_up=0)
    assert judgement.verdict is Verdict.OOM
    assert "OutOfMemoryError" in judgement.reason


def test_the_stopping_transition_is_not_stopped_yet() -> None:
    change = change_of("ecs-task-stopping-deploy.json")
    assert not change.stopped
    assert change.service == "livekit-agents"
    assert change.stopped_reason.startswith("Scaling activity initiated by (deployment")


def test_task_state_of_another_cluster_is_skipped() -> None:
    event = json.loads((EVENTS / "ecs-task-stopped-graceful.json").read_text())
    assert isinstance(parse_task_state_event(event, cluster="other"), Skip)


def test_task_of_another_family_is_skipped_when_a_family_is_set() -> None:
    event = json.loads((EVENTS / "ecs-task-stopped-graceful.json").read_text())
    result = parse_task_state_event(event, cluster=CLUSTER, family="not-the-worker")
    assert result == Skip(reason="not_a_worker_task", event_id=event["id"])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e["detail"].pop("taskArn"),
        lambda e: e["detail"].update(taskArn="x" * 5000),
        lambda e: e["detail"].update(containers="nope"),
        lambda e: e.update(source="aws.autoscaling"),
    ],
)
def test_malformed_task_events_are_rejected(mutate: Any) -> None:
    event = json.loads((EVENTS / "ecs-task-stopped-graceful.json").read_text())
    mutate(event)
    with pytest.raises(EventRejectedError):
        parse_task_state_event(event, cluster=CLUSTER)
