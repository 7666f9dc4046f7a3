"""Every alarm action reaches a topic CloudWatch can publish to.

The local world does not model SNS delivery, so this reads the template the way SNS and KMS would
judge CloudWatch's publish (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services):

- an unencrypted topic takes it;
- a topic under an AWS managed key (`alias/aws/sns`) never does: that key's policy cannot be
  changed to let `cloudwatch.amazonaws.com` use it;
- a topic under a customer managed key takes it only when the key policy lets
  `cloudwatch.amazonaws.com` call `kms:Decrypt` and `kms:GenerateDataKey*`;
- a topic policy, when the template sets one, must let `cloudwatch.amazonaws.com` publish.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from drainctl.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
CLOUDWATCH = "cloudwatch.amazonaws.com"
ACTION_PROPERTIES = ("AlarmActions", "OKActions", "InsufficientDataActions")
KMS_ACTIONS_NEEDED = ("kms:Decrypt", "kms:GenerateDataKey")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _logical_id(value: Any) -> str | None:
    """The logical id a Ref or GetAtt names, or None for anything else (a literal ARN, a Sub)."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and isinstance(argument, str):
            return argument
        if function == "Fn::GetAtt":
            name = argument[0] if isinstance(argument, list) else str(argument).split(".")[0]
            return str(name)
    return None


def _allows(statement: Mapping[str, Any], service: str, action: str) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    principal = statement.get("Principal", {})
    services = _as_list(principal.get("Service", [])) if isinstance(principal, Mapping) else []
    if service not in services:
        return False
    return any(fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in _as_list(statement["Action"]))


def _key_problem(resources: Mapping[str, Any], key: Any) -> str | None:
    """Why CloudWatch could not use this topic key, or None when it can."""
    if isinstance(key, str):
        if key.startswith("alias/aws/") or ":alias/aws/" in key:
            return f"{key} is an AWS managed key: its policy cannot let {CLOUDWATCH} use it"
        return f"{key} is a key outside the template: its policy cannot be checked here"
    logical_id = _logical_id(key)
    if logical_id is None or logical_id not in resources:
        return f"{key!r} does not name a key of the template"
    resource = resources[logical_id]
    if resource["Type"] == "AWS::KMS::Alias":
        return _key_problem(resources, resource["Properties"]["TargetKeyId"])
    if resource["Type"] != "AWS::KMS::Key":
        return f"{logical_id} is a {resource['Type']}, not a KMS key"
    statements = resource["Properties"]["KeyPolicy"]["Statement"]
    missing = [a for a in KMS_ACTIONS_NEEDED if not any(_allows(s, CLOUDWATCH, a) for s in statements)]
    if missing:
        return f"the policy of key {logical_id} does not let {CLOUDWATCH} call {', '.join(missing)}"
    return None


def undeliverable_alarm_actions(body: Mapping[str, Any]) -> Iterator[str]:
    """One line per alarm action whose SNS topic CloudWatch could not publish to."""
    resources = body["Resources"]
    topic_policies = [r for r in resources.values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    for alarm_id, alarm in resources.items():
        if alarm["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for prop in ACTION_PROPERTIES:
            for action in _as_list(alarm["Properties"].get(prop, [])):
                topic_id = _logical_id(action)
                where = f"{alarm_id}.{prop}"
                if topic_id is None or resources.get(topic_id, {}).get("Type") != "AWS::SNS::Topic":
                    yield f"{where}: {action!r} is not a topic of the template"
                    continue
                key = resources[topic_id].get("Properties", {}).get("KmsMasterKeyId")
                problem = None if key is None else _key_problem(resources, key)
                if problem:
                    yield f"{where}: topic {topic_id}: {problem}"
                for policy in topic_policies:
                    names_topic = any(_logical_id(t) == topic_id for t in policy["Properties"]["Topics"])
                    statements = policy["Properties"]["PolicyDocument"]["Statement"]
                    if names_topic and not any(_allows(s, CLOUDWATCH, "sns:Publish") for s in statements):
                        yield f"{where}: the policy of topic {topic_id} does not let {CLOUDWATCH} publish"


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    return dict(load_template(TEMPLATE).body)


@pytest.fixture
def body(shipped: dict[str, Any]) -> dict[str, Any]:
    """The shipped template, for each test its own copy to change."""
    return copy.deepcopy(shipped)


def _alarm_topic_key(body: dict[str, Any]) -> dict[str, Any]:
    key = body["Resources"]["AlarmTopicKey"]
    assert isinstance(key, dict)
    return key


def test_every_alarm_action_of_the_shipped_template_reaches_a_topic_cloudwatch_can_publish_to(
    body: dict[str, Any],
) -> None:
    # GIVEN the shipped template, which has alarms
    assert any(r["Type"] == "AWS::CloudWatch::Alarm" for r in body["Resources"].values())

    # WHEN every alarm action is followed to its topic, key and policies
    problems = list(undeliverable_alarm_actions(body))

    # THEN CloudWatch can publish through each one
    assert problems == []


def test_a_topic_under_the_aws_managed_sns_key_is_undeliverable(body: dict[str, Any]) -> None:
    # GIVEN the alarm topic under alias/aws/sns, as the stack had it
    body["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"

    # WHEN the alarm actions are judged
    problems = list(undeliverable_alarm_actions(body))

    # THEN every action of every alarm is named
    assert problems
    assert all("alias/aws/sns is an AWS managed key" in p for p in problems)
    assert {p.split(".")[0] for p in problems} == {
        logical_id for logical_id, r in body["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_a_customer_key_whose_policy_omits_cloudwatch_is_undeliverable(body: dict[str, Any]) -> None:
    # GIVEN the stack's key with the CloudWatch statement taken out of its policy
    policy = _alarm_topic_key(body)["Properties"]["KeyPolicy"]
    policy["Statement"] = [
        s for s in policy["Statement"] if s.get("Principal", {}).get("Service") != CLOUDWATCH
    ]

    # WHEN the alarm actions are judged
    problems = list(undeliverable_alarm_actions(body))

    # THEN they are refused for want of kms:Decrypt and kms:GenerateDataKey
    assert problems
    assert all(
        "does not let cloudwatch.amazonaws.com call kms:Decrypt, kms:GenerateDataKey" in p for p in problems
    )


def test_a_customer_key_that_lets_cloudwatch_decrypt_only_is_undeliverable(body: dict[str, Any]) -> None:
    # GIVEN the CloudWatch statement of the key without GenerateDataKey*
    for statement in _alarm_topic_key(body)["Properties"]["KeyPolicy"]["Statement"]:
        if statement.get("Principal", {}).get("Service") == CLOUDWATCH:
            statement["Action"] = ["kms:Decrypt"]

    # WHEN / THEN the missing action is named
    problems = list(undeliverable_alarm_actions(body))
    assert problems
    assert all(p.endswith("call kms:GenerateDataKey") for p in problems)


def test_an_unencrypted_topic_is_deliverable(body: dict[str, Any]) -> None:
    # GIVEN the alarm topic without encryption (a documented choice SNS allows)
    del body["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"]

    # WHEN / THEN nothing is refused
    assert list(undeliverable_alarm_actions(body)) == []


def test_a_topic_policy_without_cloudwatch_is_undeliverable(body: dict[str, Any]) -> None:
    # GIVEN the topic policy's statements with CloudWatch's taken out
    policy = body["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]
    policy["Statement"] = [
        s for s in policy["Statement"] if s.get("Principal", {}).get("Service") != CLOUDWATCH
    ]
    policy["Statement"].append({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sns:Subscribe"})

    # WHEN / THEN every action is refused for the topic policy
    problems = list(undeliverable_alarm_actions(body))
    assert problems
    assert all("does not let cloudwatch.amazonaws.com publish" in p for p in problems)


def test_yaml_short_forms_of_the_key_reference_are_followed(tmp_path: Path) -> None:
    # GIVEN a small template whose topic names its key through an alias, in short form
    path = tmp_path / "t.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "Resources": {
                    "Key": {
                        "Type": "AWS::KMS::Key",
                        "Properties": {
                            "KeyPolicy": {
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Principal": {"Service": CLOUDWATCH},
                                        "Action": "kms:*",
                                        "Resource": "*",
                                    }
                                ]
                            }
                        },
                    },
                    "Alias": {"Type": "AWS::KMS::Alias", "Properties": {"TargetKeyId": {"Ref": "Key"}}},
                    "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": {"Ref": "Alias"}}},
                    "Alarm": {
                        "Type": "AWS::CloudWatch::Alarm",
                        "Properties": {"AlarmActions": [{"Ref": "Topic"}]},
                    },
                }
            }
        )
    )

    # WHEN / THEN a key policy granting kms:* to CloudWatch is enough
    assert list(undeliverable_alarm_actions(load_template(path).body)) == []
