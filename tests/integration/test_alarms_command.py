"""`drainctl alarms test` against the local world's AWS (moto over HTTP): a stack whose alarms are
those of template.yaml (same names, same actions), created through CloudFormation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from moto.cloudwatch.models import cloudwatch_backends

from drainctl.cli import main
from drainctl.template import load_template
from drainctl.world.aws import ACCOUNT_ID, REGION, LocalAws

ROOT = Path(__file__).resolve().parents[2]
STACK = "livekit-drain"


def _stack_template() -> dict[str, Any]:
    """The shipped template's alarm topic and alarms, as plain CloudFormation moto can create."""
    shipped = load_template(ROOT / "template.yaml")
    params = shipped.parameters(
        {
            "LiveKitUrl": "wss://livekit.example.com",
            "LiveKitSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:lk-AbCdEf",
        }
    )
    bound = shipped.with_context(params=params, pseudo={"AWS::StackName": STACK})
    resources: dict[str, Any] = {"AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {}}}
    for logical_id in bound.logical_ids("AWS::CloudWatch::Alarm"):
        raw = shipped.body["Resources"][logical_id]["Properties"]
        properties: dict[str, Any] = {
            "AlarmName": bound.resolve(raw["AlarmName"], params),
            "Namespace": "LiveKitDrain",
            "MetricName": "ForcedKills",
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        }
        for prop in ("AlarmActions", "OKActions"):
            if prop in raw:
                assert raw[prop] == [{"Ref": "AlarmTopic"}], f"{logical_id}.{prop}"
                properties[prop] = [{"Ref": "AlarmTopic"}]
        resources[logical_id] = {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}
    return {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}


def _alarm_names() -> set[str]:
    return {
        str(resource["Properties"]["AlarmName"])
        for resource in _stack_template()["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


@pytest.fixture
def stack(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack in the local AWS, and the AWS CLI environment drainctl reads its credentials from."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    local_aws.client("cloudformation").create_stack(
        StackName=STACK, TemplateBody=json.dumps(_stack_template())
    )
    return STACK


def _topic_arn(local_aws: LocalAws) -> str:
    resources = local_aws.client("cloudformation").list_stack_resources(StackName=STACK)
    (arn,) = (
        r["PhysicalResourceId"]
        for r in resources["StackResourceSummaries"]
        if r["LogicalResourceId"] == "AlarmTopic"
    )
    return str(arn)


def _subscribe_a_queue(local_aws: LocalAws) -> None:
    queue_url = local_aws.client("sqs").create_queue(QueueName="pager")["QueueUrl"]
    queue_arn = local_aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    local_aws.client("sns").subscribe(
        TopicArn=_topic_arn(local_aws), Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"]
    )


def _history(name: str) -> list[str]:
    """The states the alarm went through, oldest first, then the one it is in (moto's record)."""
    alarm = cloudwatch_backends[ACCOUNT_ID][REGION].alarms[name]
    return [entry[3] for entry in alarm.history] + [alarm.state_value]


def _run(local_aws: LocalAws, *extra: str) -> int:
    return main(["alarms", "test", "--stack", STACK, "--endpoint-url", local_aws.endpoint_url, *extra])


def test_each_alarm_of_the_stack_goes_to_alarm_and_back(
    local_aws: LocalAws, stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the stack's alarms, all OK, and a confirmed subscription on their topic
    _subscribe_a_queue(local_aws)
    assert len(_alarm_names()) >= 7

    # WHEN the alarms are tested
    status = _run(local_aws, "--json")

    # THEN every alarm of the template went OK -> ALARM -> OK, and nothing is reported wrong
    report = json.loads(capsys.readouterr().out)
    assert status == 0, report["problems"]
    assert {a["name"] for a in report["alarms"]} == _alarm_names()
    for name in _alarm_names():
        assert _history(name) == ["OK", "ALARM", "OK"], name
    assert report["confirmedSubscriptions"] == {_topic_arn(local_aws): 1}


def test_an_alarm_already_in_alarm_is_left_as_it_is(
    local_aws: LocalAws, stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN one alarm really firing
    _subscribe_a_queue(local_aws)
    firing = f"{STACK}-forced-kills"
    local_aws.client("cloudwatch").set_alarm_state(AlarmName=firing, StateValue="ALARM", StateReason="real")

    # WHEN the alarms are tested
    status = _run(local_aws)

    # THEN it is not reset to OK (that would hide the incident); the others are fired
    out = capsys.readouterr().out
    assert status == 0
    assert _history(firing) == ["OK", "ALARM"]
    assert f"SKIPPED    {firing}: already in ALARM" in out
    assert _history(f"{STACK}-dropped-sessions") == ["OK", "ALARM", "OK"]


def test_a_topic_nobody_confirmed_is_a_problem(
    local_aws: LocalAws, stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the alarm topic with no subscription at all
    # WHEN the alarms are tested
    status = _run(local_aws)

    # THEN they are still fired, but the command fails and says nobody receives them
    out = capsys.readouterr().out
    assert status == 1
    assert f"PROBLEM: topic {_topic_arn(local_aws)} has no confirmed subscription" in out
    assert _history(f"{STACK}-forced-kills") == ["OK", "ALARM", "OK"]


def test_an_unknown_stack_is_one_line_on_stderr_and_exit_2(
    local_aws: LocalAws, stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stack name that does not exist
    # WHEN the alarms of it are tested
    status = main(["alarms", "test", "--stack", "no-such-stack", "--endpoint-url", local_aws.endpoint_url])

    # THEN the reason is one line on stderr, with no traceback, and nothing was fired
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("drainctl alarms test: stack no-such-stack not found")
    assert len(err.strip().splitlines()) == 1
    assert _history(f"{STACK}-forced-kills") == ["OK"]
