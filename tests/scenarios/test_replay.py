"""`drainctl replay` on the event files: the whole coordinator, on the local world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drainctl.cli import main

EVENTS = Path(__file__).resolve().parents[2] / "events"
TERMINATE = str(EVENTS / "asg-terminate-lifecycle-action.json")


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    status = main(["replay", *args])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    return status, lines, captured.err


def test_replay_heartbeats_while_calls_run_and_completes_once(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN three calls of 6-8 minutes: longer than the hook's 300 s heartbeat timeout
    status, lines, _ = replay(capsys, TERMINATE, "--sessions", "3", "--call-seconds", "360-480")
    actions = [line.get("action") for line in lines[:-1]]
    summary = lines[-1]["summary"]
    # THEN the drain starts, heartbeats while the calls run, and completes exactly once
    assert status == 0
    assert actions[0] == "drain_started"
    assert actions.count("complete") == 1
    assert actions[-1] == "complete"
    heartbeats = [line for line in lines if line.get("action") == "heartbeat" or line.get("heartbeat")]
    assert heartbeats
    # a look that heartbeat saw calls still up; one sent ahead of its look saw nothing yet
    assert all(line["sessions"] > 0 for line in heartbeats if "sessions" in line)
    assert summary["outcome"] == "drained"
    assert summary["dropped_sessions"] == 0
    assert summary["instance_state"] == "Terminated"
    assert summary["heartbeats"] == len(heartbeats)
    # AND the completion came after the last call (calls end at 360-480 s)
    assert lines[-2]["t"] >= 360


def test_replay_without_sessions_completes_without_heartbeat(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = replay(capsys, TERMINATE, "--sessions", "0")
    instance_actions = [
        line["action"] for line in lines[:-1] if "instance_id" in line and "task_arn" not in line
    ]
    (stopped,) = [line for line in lines if line.get("action") == "task_stopped"]
    assert status == 0
    assert instance_actions == ["drain_started", "complete"]
    assert stopped["verdict"] == "graceful"
    assert lines[-1]["summary"]["outcome"] == "drained"
    assert lines[-1]["summary"]["heartbeats"] == 0
    assert (
        lines[-2]["t"] <= 10
    )  # the worker exits seconds after SIGTERM; its STOPPED event releases the instance


def test_replay_calls_longer_than_the_worker_drain_timeout_are_dropped_by_the_worker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN calls far longer than the worker's drain_timeout (600 s)
    status, lines, _ = replay(capsys, TERMINATE, "--sessions", "2", "--call-seconds", "5000-5000")
    complete = next(line for line in lines if line.get("action") == "complete")
    # THEN the worker gives up its drain at 600 s, the instance empties, and is released before
    # the deadline; the two calls the worker abandoned are counted as dropped
    assert status == 0
    assert 600 <= complete["t"] <= 1200
    assert lines[-1]["summary"]["dropped_sessions"] == 2


def test_replay_is_deterministic_for_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    _, first, _ = replay(capsys, TERMINATE, "--sessions", "4", "--seed", "11")
    _, second, _ = replay(capsys, TERMINATE, "--sessions", "4", "--seed", "11")
    assert first == second


@pytest.mark.parametrize(
    ("event_file", "reason"),
    [
        ("asg-test-notification.json", "test_notification"),
        ("asg-launch-lifecycle-action.json", "launch_transition"),
    ],
)
def test_replay_of_events_that_are_not_ours_skips(
    capsys: pytest.CaptureFixture[str], event_file: str, reason: str
) -> None:
    status, lines, _ = replay(capsys, str(EVENTS / event_file))
    assert status == 0
    assert lines[0] == {"t": 0.0, "action": "skip", "reason": reason}


def test_replay_refuses_a_file_that_is_not_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "event.json"
    bad.write_text("{not json")
    status, lines, err = replay(capsys, str(bad))
    assert status == 2
    assert lines == []
    assert "not JSON" in err


def test_replay_rejects_an_event_the_handler_rejects(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = json.loads(Path(TERMINATE).read_text())
    event["detail"]["LifecycleHookName"] = ""
    bad = tmp_path / "event.json"
    bad.write_text(json.dumps(event))
    status, lines, _ = replay(capsys, str(bad))
    assert status == 2
    assert lines[0]["action"] == "reject"


@pytest.mark.parametrize("args", [["--sessions", "-1"], ["--call-seconds", "8-3"], ["--call-seconds", "x"]])
def test_replay_refuses_bad_options(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    status, _, err = replay(capsys, TERMINATE, *args)
    assert status == 2
    assert err.startswith("drainctl replay: ")


def test_replay_forced_kill_prints_the_verdict_the_dropped_calls_and_the_alarms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines, _ = replay(capsys, str(EVENTS / "ecs-task-stopped-forced-kill.json"), "--sessions", "3")
    (stopped,) = [line for line in lines if line.get("action") == "task_stopped"]
    alarms = {line["alarm"]: line for line in lines if line.get("action") == "alarm"}
    summary = lines[-1]["summary"]
    assert status == 0
    assert stopped["verdict"] == "forced_kill"
    assert stopped["dropped_sessions"] == 3
    assert stopped["t"] == 0.0
    assert alarms["livekit-drain-forced-kills"]["metric"] == "ForcedKills"
    assert alarms["livekit-drain-dropped-sessions"]["value"] == 3.0
    assert summary["dropped_sessions"] == 3
    # and the coordinator warned before the kill
    assert any(line.get("action") == "at_risk" and line["t"] < 0 for line in lines)


def test_replay_graceful_stop_prints_graceful_and_no_alarm(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = replay(capsys, str(EVENTS / "ecs-task-stopped-graceful.json"), "--sessions", "3")
    (stopped,) = [line for line in lines if line.get("action") == "task_stopped"]
    assert status == 0
    assert stopped["verdict"] == "graceful"
    assert stopped["dropped_sessions"] == 0
    assert not [line for line in lines if line.get("action") == "alarm"]
    assert lines[-1]["summary"]["alarms"] == []


@pytest.mark.parametrize(
    ("event_file", "verdict"),
    [("ecs-task-stopped-oom.json", "oom"), ("ecs-task-stopped-crash.json", "crashed")],
)
def test_replay_of_a_worker_dying_on_its_own(
    capsys: pytest.CaptureFixture[str], event_file: str, verdict: str
) -> None:
    status, lines, _ = replay(capsys, str(EVENTS / event_file), "--sessions", "2")
    (stopped,) = [line for line in lines if line.get("action") == "task_stopped"]
    assert status == 0
    assert stopped["verdict"] == verdict


def test_replay_of_the_stopping_transition_follows_the_stop_to_its_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines, _ = replay(capsys, str(EVENTS / "ecs-task-stopping-deploy.json"), "--sessions", "2")
    actions = [line.get("action") for line in lines[:-1]]
    assert status == 0
    assert actions[0] == "task_stopping"
    assert actions[-1] == "task_stopped"
    assert lines[-1]["summary"]["verdict"] == "graceful"


def test_replay_spot_warning_drains_at_once_and_counts_the_calls_the_reclaim_cut(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines, _ = replay(capsys, str(EVENTS / "ec2-spot-interruption-warning.json"), "--sessions", "3")
    (stopped,) = [line for line in lines if line.get("action") == "task_stopped"]
    assert status == 0
    assert lines[0]["action"] == "drain_started"
    assert stopped["verdict"] == "forced_kill"
    assert stopped["dropped_sessions"] == 3
    assert stopped["t"] == 120.0  # the reclaim comes two minutes after the warning, whatever happens
    assert lines[-1]["summary"]["dropped_sessions"] == 3
    assert "livekit-drain-dropped-sessions" in lines[-1]["summary"]["alarms"]


@pytest.mark.parametrize(("opt_in", "first_action"), [("false", "skip"), ("true", "rebalance")])
def test_replay_rebalance_recommendation_drains_early_only_when_opted_in(
    capsys: pytest.CaptureFixture[str], opt_in: str, first_action: str
) -> None:
    status, lines, _ = replay(
        capsys,
        str(EVENTS / "ec2-rebalance-recommendation.json"),
        "--sessions",
        "2",
        "--call-seconds",
        "60-120",
        "--param",
        f"RebalanceDrain={opt_in}",
    )
    assert status == 0
    assert lines[0]["action"] == first_action
    summary = lines[-1]["summary"]
    assert summary["dropped_sessions"] == 0
    assert summary["instance_state"] == ("Terminated" if opt_in == "true" else "InService")


@pytest.mark.parametrize("params", [(), ("--param", "WorkerContainerName=app")])
def test_replay_of_a_stop_listing_a_sidecar_first_gives_the_workers_verdict(
    capsys: pytest.CaptureFixture[str], params: tuple[str, ...]
) -> None:
    # GIVEN the published shape: envoy exit 0 listed first, the worker `app` exit 2
    # WHEN it is replayed with two calls on the worker
    status, lines, _ = replay(
        capsys, str(EVENTS / "ecs-task-stopped-sidecar-first.json"), "--sessions", "2", *params
    )
    (stopped,) = [line for line in lines if line.get("action") == "task_stopped"]
    # THEN the worker crashed, and its calls are counted as dropped
    assert status == 0
    assert stopped["verdict"] == "crashed"
    assert stopped["exit_code"] == 2
    assert stopped["dropped_sessions"] == 2


@pytest.mark.parametrize(
    ("event_file", "verdict"),
    [("ecs-task-stopped-oom.json", "oom"), ("ecs-task-stopped-crash.json", "crashed")],
)
def test_a_worker_dying_on_its_own_with_calls_up_counts_them_and_raises_the_dropped_sessions_alarm(
    capsys: pytest.CaptureFixture[str], event_file: str, verdict: str
) -> None:
    # GIVEN a worker holding three calls that crashes or runs out of memory, never told to stop
    # WHEN its STOPPED event is replayed
    status, lines, _ = replay(capsys, str(EVENTS / event_file), "--sessions", "3")
    (stopped,) = [line for line in lines if line.get("action") == "task_stopped"]
    summary = lines[-1]["summary"]
    # THEN its three calls are its dropped sessions, and the dropped-sessions alarm fires
    assert status == 0
    assert stopped["verdict"] == verdict
    assert stopped["dropped_sessions"] == 3
    assert summary["dropped_sessions"] == 3
    assert "livekit-drain-dropped-sessions" in summary["alarms"]
