"""`drainctl status` against the local world's AWS endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from drainctl import status as status_command
from drainctl.cli import main
from drainctl.world.world import STACK_NAME, World, WorldConfig


@pytest.fixture
def draining_world() -> Iterator[tuple[World, str]]:
    # GIVEN the local world with an instance draining two long calls, a minute into its drain,
    # and the stack's alarms and dead-letter queue as a deploy would have created them
    with World(WorldConfig(livekit_webhooks=False)) as world:
        first, _ = world.create_fleet(2, workers_per_instance=1)
        (worker,) = world.workers_on(first)
        for _ in range(2):
            world.fleet.start_call(worker, world.clock.now(), 1800.0)
        world.aws.terminate_instance(first)
        world.run(lambda: False, limit_seconds=65)
        cloudwatch = world.aws.client("cloudwatch")
        for name, state in (("forced-kills", "ALARM"), ("dead-letters", "OK")):
            cloudwatch.put_metric_alarm(
                AlarmName=f"{STACK_NAME}-{name}",
                Namespace="LiveKitDrain",
                MetricName="ForcedKills",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
            cloudwatch.set_alarm_state(AlarmName=f"{STACK_NAME}-{name}", StateValue=state, StateReason="test")
        sqs = world.aws.client("sqs")
        url = sqs.create_queue(QueueName=f"{STACK_NAME}-DeadLetterQueue")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="{}")
        yield world, first


def test_status_shows_the_open_drain_its_hook_alarms_and_dead_letters(
    draining_world: tuple[World, str],
) -> None:
    world, instance_id = draining_world
    # WHEN status looks at the stack
    status = status_command.collect(STACK_NAME, now=world.clock.now())
    # THEN the open drain is there with its age, deadline, calls left and last heartbeat
    (drain,) = status.drains
    assert drain.instance_id == instance_id
    assert 60 <= drain.age_seconds <= 70
    assert drain.deadline_in_seconds == pytest.approx(
        float(world.params["DrainDeadline"]) - drain.age_seconds, abs=2
    )
    assert drain.calls_left == 2
    assert drain.last_heartbeat_seconds_ago <= drain.age_seconds
    # AND the worker's task stop, the hook's settings, the alarms and the dead letters
    (stop,) = status.task_stops
    assert stop.calls_left == 2
    assert status.hook is not None
    assert status.hook["heartbeat_timeout"] == world.hook_heartbeat_timeout
    assert status.hook["name"] == world.hook_name
    assert status.alarms == {f"{STACK_NAME}-dead-letters": "OK", f"{STACK_NAME}-forced-kills": "ALARM"}
    assert status.dead_letters == 1
    assert status.found_by == "names"


def test_status_table_and_json_hold_the_same_drain(
    draining_world: tuple[World, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, instance_id = draining_world
    # WHEN status is asked for a table, then for JSON
    assert main(["status"]) == 0
    table = capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    # THEN both show the drain of the same instance with its two calls
    row = next(line for line in table.splitlines() if instance_id in line)
    assert row.split()[3] == "2"
    assert [d["instance_id"] for d in as_json["drains"]] == [instance_id]
    assert as_json["drains"][0]["calls_left"] == 2
    assert "ALARM" in table
    assert as_json["alarms"][f"{STACK_NAME}-forced-kills"] == "ALARM"


def test_status_of_a_stack_that_does_not_exist_says_so_in_one_line(
    draining_world: tuple[World, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--stack", "no-such-stack"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drainctl status: no such stack 'no-such-stack'")
    assert len(err.strip().splitlines()) == 1


def _no_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_status_without_a_region_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_aws_config(monkeypatch, tmp_path)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert main(["status"]) == 2
    assert (
        capsys.readouterr().err
        == "drainctl status: no AWS region: pass --region or set AWS_REGION (or a profile's region)\n"
    )


def test_status_without_credentials_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_aws_config(monkeypatch, tmp_path)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    assert main(["status", "--region", "eu-west-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drainctl status: no AWS credentials")
    assert len(err.strip().splitlines()) == 1
