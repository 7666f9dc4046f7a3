"""`drainctl alarms test`: prove that each alarm of a deployed stack reaches a person.

An alarm whose notification is never delivered looks exactly like a quiet fleet. This command
takes the stack's alarms from CloudFormation, and for each one that is not already in ALARM sets
it to ALARM with `SetAlarmState` (CloudWatch then runs its alarm actions: the SNS topic and every
subscription on it), then sets it back to the state it was in. CloudWatch re-evaluates the alarm
at its next period anyway, so the test state lasts at most one period.
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_SetAlarmState.html

It also lists, for each topic the alarms notify, the confirmed subscriptions: a topic without one
(an email subscription still `PendingConfirmation` counts as none) delivers to nobody.

Exit status: 0 when every alarm was fired and every topic has a confirmed subscription; 1 when
an alarm has no alarm action, a topic has no confirmed subscription, or the stack has no alarm;
2 when the stack cannot be read (wrong name, region or credentials).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["AlarmTestResult", "AlarmsInputError", "add_parser", "fire_test_notifications", "run"]

ALARM_RESOURCE_TYPE: Final = "AWS::CloudWatch::Alarm"
TEST_REASON: Final = "drainctl alarms test: a test notification, not an incident"
# DescribeAlarms takes at most 100 names per call.
_DESCRIBE_BATCH: Final = 100


class AlarmsInputError(Exception):
    """The stack or its alarms cannot be read."""


@dataclass(frozen=True, slots=True)
class AlarmTestResult:
    """What happened to one alarm."""

    name: str
    state_before: str
    fired: bool
    topics: tuple[str, ...]

    def line(self) -> str:
        if not self.topics:
            return f"NO ACTION  {self.name}: it has no alarm action, nobody is notified when it fires"
        if not self.fired:
            return (
                f"SKIPPED    {self.name}: already in ALARM (its notification went out when it fired; "
                "left as it is)"
            )
        return f"FIRED      {self.name}: ALARM, then back to {self.state_before}"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `alarms test` to a `drainctl` command line."""
    alarms = subparsers.add_parser("alarms", help="the deployed stack's alarms")
    actions = alarms.add_subparsers(dest="alarms_command", required=True)
    test = actions.add_parser(
        "test",
        help="fire a test notification through each alarm of the stack, then reset it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("--stack", required=True, help="the stack's name (samconfig.toml's stack_name)")
    test.add_argument("--region", default=None, help="the stack's region (default: the AWS CLI's)")
    test.add_argument("--profile", default=None, help="an AWS CLI profile")
    test.add_argument("--endpoint-url", default=None, help=argparse.SUPPRESS)
    test.add_argument("--json", action="store_true", help="one JSON document instead of lines")


def run(args: argparse.Namespace) -> int:
    """Run `drainctl alarms test` with parsed arguments; returns the exit status."""
    import boto3  # the CLI's other commands do not pay for boto3 at start
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        clients = {
            name: session.client(name, endpoint_url=args.endpoint_url)
            for name in ("cloudformation", "cloudwatch", "sns")
        }
        results, subscriptions = fire_test_notifications(
            args.stack, clients["cloudformation"], clients["cloudwatch"], clients["sns"]
        )
    except AlarmsInputError as exc:
        print(f"drainctl alarms test: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"drainctl alarms test: {_one_line(exc)}", file=sys.stderr)
        return 2
    problems = _problems(results, subscriptions)
    if args.json:
        print(
            json.dumps(
                {
                    "stack": args.stack,
                    "alarms": [
                        {"name": r.name, "stateBefore": r.state_before, "fired": r.fired, "topics": r.topics}
                        for r in results
                    ],
                    "confirmedSubscriptions": subscriptions,
                    "problems": problems,
                }
            )
        )
    else:
        for result in results:
            print(result.line())
        for topic, confirmed in subscriptions.items():
            print(f"topic {topic}: {confirmed} confirmed subscription(s)")
        for problem in problems:
            print(f"PROBLEM: {problem}")
        if not problems:
            print("Each fired alarm sent an ALARM notification (and an OK one if it has OK actions).")
    return 1 if problems else 0


def fire_test_notifications(
    stack: str, cloudformation: Any, cloudwatch: Any, sns: Any
) -> tuple[list[AlarmTestResult], dict[str, int]]:
    """Fire each alarm of the stack that is not in ALARM, then put it back; count confirmed subscriptions."""
    names = list(_stack_alarm_names(stack, cloudformation))
    alarms = list(_describe(names, cloudwatch))
    found = {alarm["AlarmName"] for alarm in alarms}
    missing = [name for name in names if name not in found]
    if missing:
        raise AlarmsInputError(f"alarms of stack {stack} not found in CloudWatch: {', '.join(missing)}")
    results: list[AlarmTestResult] = []
    topics: dict[str, int] = {}
    for alarm in alarms:
        name, state = alarm["AlarmName"], alarm["StateValue"]
        alarm_topics = tuple(a for a in alarm.get("AlarmActions", []) if a.split(":")[2:3] == ["sns"])
        for topic in alarm_topics:
            if topic not in topics:
                topics[topic] = _confirmed_subscriptions(topic, sns)
        fire = bool(alarm_topics) and state != "ALARM"
        if fire:
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=TEST_REASON)
            cloudwatch.set_alarm_state(
                AlarmName=name,
                StateValue=state,
                StateReason=f"drainctl alarms test: back to {state} after the test notification",
            )
        results.append(AlarmTestResult(name=name, state_before=state, fired=fire, topics=alarm_topics))
    return results, topics


def _stack_alarm_names(stack: str, cloudformation: Any) -> Iterator[str]:
    from botocore.exceptions import ClientError

    try:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
            for resource in page["StackResourceSummaries"]:
                if resource["ResourceType"] == ALARM_RESOURCE_TYPE and resource.get("PhysicalResourceId"):
                    yield resource["PhysicalResourceId"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise AlarmsInputError(f"stack {stack} not found: {_one_line(exc)}") from exc
        raise


def _describe(names: Sequence[str], cloudwatch: Any) -> Iterator[dict[str, Any]]:
    for start in range(0, len(names), _DESCRIBE_BATCH):
        batch = list(names[start : start + _DESCRIBE_BATCH])
        response = cloudwatch.describe_alarms(AlarmNames=batch, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        yield from response.get("MetricAlarms", [])
        yield from response.get("CompositeAlarms", [])


def _confirmed_subscriptions(topic: str, sns: Any) -> int:
    confirmed = 0
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
        for subscription in page["Subscriptions"]:
            arn = subscription.get("SubscriptionArn", "")
            if arn.startswith("arn:"):  # otherwise "PendingConfirmation" (or "Deleted")
                confirmed += 1
    return confirmed


def _problems(results: Sequence[AlarmTestResult], subscriptions: dict[str, int]) -> list[str]:
    problems: list[str] = []
    if not results:
        problems.append("the stack has no CloudWatch alarm")
    problems.extend(f"alarm {r.name} has no alarm action" for r in results if not r.topics)
    problems.extend(
        f"topic {topic} has no confirmed subscription: nobody receives its alarms "
        "(confirm the email AWS sent, or subscribe a pager: docs/deploy.md)"
        for topic, confirmed in subscriptions.items()
        if confirmed == 0
    )
    return problems


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
