"""`drainctl replay` takes real events: any region and account, both task-ARN formats, what the
handler does with the file's own event, a reason on stderr for every refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drainctl.cli import main

EVENTS = Path(__file__).resolve().parents[2] / "events"
REGION, ACCOUNT = "eu-west-1", "210987654321"


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["replay", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def elsewhere(text: str) -> str:
    """The same event, from another region and account."""
    return text.replace("us-east-1", REGION).replace("123456789012", ACCOUNT)


def write(tmp_path: Path, event: dict[str, Any] | str) -> str:
    path = tmp_path / "event.json"
    path.write_text(event if isinstance(event, str) else json.dumps(event))
    return str(path)


def test_a_task_stop_from_another_region_and_account_replays_with_its_verdict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a graceful task stop recorded in eu-west-1, account 210987654321
    event = write(tmp_path, elsewhere((EVENTS / "ecs-task-stopped-graceful.json").read_text()))
    # WHEN it is replayed
    status, out, err = replay(capsys, event)
    lines = json_lines(out)
    # THEN it is judged in its own region and account, as in production
    assert status == 0, err
    stopped = [line for line in lines if line.get("action") == "task_stopped"]
    assert [s["verdict"] for s in stopped] == ["graceful"]
    assert f":ecs:{REGION}:{ACCOUNT}:task/" in stopped[0]["task_arn"]
    assert lines[-1]["summary"]["verdict"] == "graceful"


def test_a_lifecycle_action_from_another_region_and_account_drains_the_instance(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a terminate lifecycle action from another region and account
    event = write(tmp_path, elsewhere((EVENTS / "asg-terminate-lifecycle-action.json").read_text()))
    # WHEN it is replayed
    status, out, err = replay(capsys, event, "--sessions", "1")
    summary = json_lines(out)[-1]["summary"]
    # THEN the instance is drained and terminated
    assert status == 0, err
    assert summary["outcome"] == "drained"
    assert summary["instance_state"] == "Terminated"


def test_an_old_format_task_arn_replays(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # GIVEN a forced kill whose task ARN has the old format, task/<id> (no cluster name)
    text = (EVENTS / "ecs-task-stopped-forced-kill.json").read_text()
    event = json.loads(text)
    long_arn = event["detail"]["taskArn"]
    short_arn = long_arn.replace("task/livekit-agents/", "task/")
    event = json.loads(text.replace(long_arn, short_arn))
    # WHEN it is replayed
    status, out, err = replay(capsys, write(tmp_path, event), "--sessions", "2")
    lines = json_lines(out)
    # THEN it is judged a forced kill of that very task
    assert status == 0, err
    (stopped,) = [line for line in lines if line.get("action") == "task_stopped"]
    assert stopped["task_arn"] == short_arn
    assert stopped["verdict"] == "forced_kill"
    assert lines[-1]["summary"]["dropped_sessions"] == 2


def test_a_running_task_event_is_skipped_as_in_production(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a task state change with desiredStatus RUNNING (a task starting)
    event = json.loads((EVENTS / "ecs-task-stopping-deploy.json").read_text())
    event["detail"]["desiredStatus"] = "RUNNING"
    event["detail"]["lastStatus"] = "RUNNING"
    for key in ("stoppingAt", "stoppedAt", "stopCode", "stoppedReason", "executionStoppedAt"):
        event["detail"].pop(key, None)
    # WHEN it is replayed
    status, out, err = replay(capsys, write(tmp_path, event))
    lines = json_lines(out)
    # THEN the task-state function skips it: no stop is followed, no verdict given
    assert status == 0, err
    assert [line["action"] for line in lines[:-1]] == ["skip"]
    assert lines[-1]["summary"]["verdict"] is None


def test_an_event_the_handler_rejects_exits_2_with_its_reason_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # GIVEN a lifecycle action without a hook name, which the handler rejects
    event = json.loads((EVENTS / "asg-terminate-lifecycle-action.json").read_text())
    event["detail"]["LifecycleHookName"] = ""
    # WHEN it is replayed
    status, _, err = replay(capsys, write(tmp_path, event))
    # THEN exit 2, and stderr says why in one line
    assert status == 2
    assert err.startswith("drainctl replay: the handler rejected the event: ")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("sample", "webhook_event"),
    [
        ("livekit-webhook-participant-joined.json", "participant_joined"),
        ("livekit-webhook-participant-left.json", "participant_left"),
        ("livekit-webhook-room-finished.json", "room_finished"),
    ],
)
def test_a_webhook_sample_replays_through_the_webhook_function(
    capsys: pytest.CaptureFixture[str], sample: str, webhook_event: str
) -> None:
    # WHEN a recorded LiveKit webhook is replayed
    status, out, err = replay(capsys, str(EVENTS / sample))
    lines = json_lines(out)
    # THEN the webhook function answered it (re-signed: the recorded token has expired)
    assert status == 0, err
    (answer,) = [line for line in lines if line.get("action") == "webhook"]
    assert answer["status_code"] == 200
    assert answer["event"] == webhook_event
    assert "re-signed" in err


def test_a_webhook_whose_body_is_not_a_livekit_event_is_refused_with_a_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = json.loads((EVENTS / "livekit-webhook-room-finished.json").read_text())
    event["body"] = "not json"
    status, _, err = replay(capsys, write(tmp_path, event))
    assert status == 2
    assert err.startswith("drainctl replay: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("*.json")))
def test_every_event_file_replays(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, _, err = replay(capsys, str(EVENTS / name))
    assert status == 0, err
    assert "Traceback" not in err


def test_the_text_format_prints_a_timeline(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN a lifecycle action is replayed with --format text
    status, out, err = replay(
        capsys, str(EVENTS / "asg-terminate-lifecycle-action.json"), "--sessions", "2", "--format", "text"
    )
    # THEN a timeline like the demo's, minutes:seconds from the event, then a summary
    assert status == 0, err
    timeline = [line for line in out.splitlines() if line.startswith("  +")]
    assert "drain started" in timeline[0]
    assert any("complete (drained)" in line for line in timeline)
    assert "outcome" in out.split("summary", 1)[1]
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])
