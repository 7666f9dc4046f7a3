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


@pytest.mark.parametrize(
    ("event_file", "calls_up", "counted", "pages"),
    [
        ("ecs-task-stopped-forced-kill.json", 2, True, True),  # a kill that dropped calls
        ("ecs-task-stopped-forced-kill.json", 0, True, False),  # an idle worker killed: no call lost
        ("ecs-task-stopped-forced-kill.json", 0, False, True),  # LiveKit not asked: calls unknown
        ("ecs-task-stopped-oom.json", 0, True, False),
        ("ecs-task-stopped-oom.json", 1, True, True),
        ("ecs-task-stopped-graceful.json", 0, False, False),  # not a kill, whatever the count
        ("ecs-task-stopped-crash.json", 0, False, False),
    ],
)
def test_a_kill_pages_when_it_dropped_calls_or_its_calls_could_not_be_counted(
    event_file: str, calls_up: int, counted: bool, pages: bool
) -> None:
    judgement = judge(change_of(event_file), stop_timeout=900, calls_still_up=calls_up, calls_counted=counted)
    assert judgement.pages_as_forced_kill is pages


@pytest.mark.parametrize(
    ("counted", "drain_timeout", "verdict", "dropped"),
    [
        (False, 600, Verdict.GRACEFUL, 0),  # exit 0 at 412 s, its drain timeout 600 s: drained
        (False, 400, Verdict.DRAIN_TIMED_OUT, 2),  # past its drain timeout: it may have given up
        (False, None, Verdict.DRAIN_TIMED_OUT, 2),  # timeout unknown: the last count stands
        (True, 600, Verdict.DRAIN_TIMED_OUT, 2),  # LiveKit answered: its count is the truth
    ],
)
def test_a_clean_exit_before_the_drain_timeout_outweighs_a_stale_count_when_livekit_is_not_asked(
    counted: bool, drain_timeout: int | None, verdict: Verdict, dropped: int
) -> None:
    # GIVEN a worker that exited 0 412 s after its SIGTERM, two calls up at the last count seen
    judgement = judge(
        change_of("ecs-task-stopped-graceful.json"),
        stop_timeout=900,
        calls_still_up=2,
        calls_counted=counted,
        drain_timeout=drain_timeout,
    )
    assert (judgement.verdict, judgement.dropped_sessions) == (verdict, dropped)


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


def test_a_sidecar_listed_first_does_not_decide_the_verdict() -> None:
    # GIVEN a published-shape STOPPED event: envoy exit 0 listed first, the worker `app` exit 2
    change = change_of("ecs-task-stopped-sidecar-first.json")
    # WHEN it is judged with the worker container named
    judgement = judge(change, stop_timeout=900, calls_still_up=0, worker_container="app")
    # THEN the worker's own exit decides: it crashed
    assert judgement.verdict is Verdict.CRASHED
    assert judgement.exit_code == 2


def test_a_worker_container_not_named_in_the_event_is_the_one_that_failed() -> None:
    # GIVEN the sidecar-first event and the default worker container name, which it does not use
    change = change_of("ecs-task-stopped-sidecar-first.json")
    # WHEN it is judged
    judgement = judge(change, stop_timeout=900, calls_still_up=0)
    # THEN a sidecar's clean exit does not make the stop look graceful
    assert judgement.verdict is Verdict.CRASHED
    assert judgement.exit_code == 2


def test_a_sigkilled_worker_beside_a_sidecar_that_exited_cleanly_is_a_forced_kill() -> None:
    # GIVEN a worker SIGKILLed at stopTimeout, its FireLens sidecar exiting 0 and listed first
    change = change_of(
        "ecs-task-stopped-forced-kill.json",
        containers=[
            {"name": "log_router", "lastStatus": "STOPPED", "exitCode": 0},
            {"name": "worker", "lastStatus": "STOPPED", "exitCode": 137},
        ],
    )
    # WHEN it is judged on the worker container
    judgement = judge(change, stop_timeout=900, calls_still_up=2, worker_container="worker")
    # THEN it is the kill it was, with its calls
    assert judgement.verdict is Verdict.FORCED_KILL
    assert judgement.dropped_sessions == 2


def test_an_out_of_memory_sidecar_is_not_the_worker_running_out_of_memory() -> None:
    # GIVEN an X-Ray sidecar killed for memory while the worker drained and exited 0
    change = change_of(
        "ecs-task-stopped-graceful.json",
        containers=[
            {"name": "xray-daemon", "lastStatus": "STOPPED", "exitCode": 137, "reason": "OutOfMemoryError"},
            {"name": "worker", "lastStatus": "STOPPED", "exitCode": 0},
        ],
    )
    # WHEN judged on the worker
    judgement = judge(change, stop_timeout=900, calls_still_up=0, worker_container="worker")
    # THEN the worker's clean drain stands
    assert judgement.verdict is Verdict.GRACEFUL
