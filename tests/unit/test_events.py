from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drain_coordinator.domain.events import (
    EventRejectedError,
    LaunchRequested,
    Skip,
    TerminateRequested,
    parse_lifecycle_event,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
GROUP = "livekit-agents-asg"
HOOK = "livekit-drain-terminate"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_terminate_action_parses_into_a_drain_trigger() -> None:
    trigger = parse_lifecycle_event(
        load("asg-terminate-lifecycle-action.json"), asg_name=GROUP, hook_name=HOOK
    )
    assert isinstance(trigger, TerminateRequested)
    assert trigger.lifecycle.instance_id == "i-0598c7d356eba48d7"
    assert trigger.lifecycle.action_token == "87654321-4321-4321-4321-210987654321"
    assert trigger.hook_started_at == 1_767_225_600.0


@pytest.mark.parametrize(
    ("event_file", "reason"),
    [
        ("asg-test-notification.json", "test_notification"),
        ("asg-launch-lifecycle-action.json", "launch_transition"),
    ],
)
def test_events_that_are_not_ours_are_skipped(event_file: str, reason: str) -> None:
    result = parse_lifecycle_event(load(event_file), asg_name=GROUP, hook_name=HOOK)
    assert isinstance(result, Skip)
    assert result.reason == reason


def test_terminate_action_of_another_group_is_skipped() -> None:
    result = parse_lifecycle_event(
        load("asg-terminate-lifecycle-action.json"), asg_name="other", hook_name=HOOK
    )
    assert result == Skip(reason="other_group", event_id="3e3c153a-8339-4e30-8c35-687ebef853fe")


def test_terminate_action_of_another_hook_is_skipped() -> None:
    result = parse_lifecycle_event(load("asg-terminate-lifecycle-action.json"), asg_name=GROUP, hook_name="x")
    assert isinstance(result, Skip)
    assert result.reason == "other_hook"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e["detail"].pop("EC2InstanceId"), "EC2InstanceId"),
        (lambda e: e["detail"].update(EC2InstanceId="i-../../etc"), "EC2InstanceId"),
        (lambda e: e["detail"].update(LifecycleActionToken="x" * 10_000), "LifecycleActionToken"),
        (lambda e: e.update(source="aws.ec2"), "source"),
        (lambda e: e.update(time="yesterday"), "time"),
        (lambda e: e.update(detail="not an object"), "detail"),
    ],
)
def test_malformed_events_are_rejected_with_the_field_named(mutate: Any, message: str) -> None:
    event = load("asg-terminate-lifecycle-action.json")
    mutate(event)
    with pytest.raises(EventRejectedError, match=message):
        parse_lifecycle_event(event, asg_name=GROUP, hook_name=HOOK)


def test_an_event_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(EventRejectedError):
        parse_lifecycle_event(["not", "an", "event"], asg_name=GROUP, hook_name=HOOK)  # type: ignore[arg-type]


LAUNCH_HOOK = "livekit-drain-launch"


def a_launch_from_the_warm_pool() -> dict[str, Any]:
    """The recorded launch action, as Auto Scaling sends it for an instance leaving the warm pool
    for the group (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pools-eventbridge-events.html)."""
    event = load("asg-launch-lifecycle-action.json")
    event["detail"].update(LifecycleHookName=LAUNCH_HOOK, Origin="WarmPool", Destination="AutoScalingGroup")
    return event


def test_a_launch_action_of_the_stacks_launch_hook_parses_with_where_it_comes_from() -> None:
    # GIVEN a launch action from the warm pool, and a stack with a launch hook
    event = a_launch_from_the_warm_pool()

    # WHEN it is parsed
    trigger = parse_lifecycle_event(event, asg_name=GROUP, hook_name=HOOK, launch_hook_name=LAUNCH_HOOK)

    # THEN it is a launch of that instance, from the warm pool into the group
    assert isinstance(trigger, LaunchRequested)
    assert trigger.lifecycle.instance_id == "i-0a1b2c3d4e5f60718"
    assert trigger.lifecycle.hook_name == LAUNCH_HOOK
    assert trigger.from_warm_pool


@pytest.mark.parametrize(
    ("changes", "launch_hook", "reason"),
    [
        ({}, "", "launch_transition"),  # a stack without a launch hook
        ({"LifecycleHookName": "someone-elses-launch-hook"}, LAUNCH_HOOK, "other_hook"),
        ({"AutoScalingGroupName": "other"}, LAUNCH_HOOK, "other_group"),
        (
            {"LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"},
            LAUNCH_HOOK,
            "not_a_launch_transition",
        ),
    ],
)
def test_launch_actions_not_of_the_stacks_launch_hook_are_skipped(
    changes: dict[str, str], launch_hook: str, reason: str
) -> None:
    event = a_launch_from_the_warm_pool()
    event["detail"].update(changes)
    result = parse_lifecycle_event(event, asg_name=GROUP, hook_name=HOOK, launch_hook_name=launch_hook)
    assert isinstance(result, Skip)
    assert result.reason == reason


def test_a_cold_launch_is_not_from_the_warm_pool() -> None:
    # GIVEN the recorded launch of a new instance (Origin EC2) under the stack's launch hook
    event = load("asg-launch-lifecycle-action.json")
    event["detail"]["LifecycleHookName"] = LAUNCH_HOOK
    trigger = parse_lifecycle_event(event, asg_name=GROUP, hook_name=HOOK, launch_hook_name=LAUNCH_HOOK)
    assert isinstance(trigger, LaunchRequested)
    assert not trigger.from_warm_pool
