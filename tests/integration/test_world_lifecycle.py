"""The local world's Auto Scaling lifecycle actions, over real HTTP with boto3."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.autoscaling.responses import AutoScalingResponse

from drainctl.world.aws import LocalAws, LocalAwsError, TerminateHook
from drainctl.world.clock import VirtualClock

EVENTS = Path(__file__).resolve().parents[2] / "events"
GROUP = "livekit-agents-asg"
HOOK = "livekit-drain-terminate"
INSTANCE_A = "i-0598c7d356eba48d7"
INSTANCE_B = "i-0123456789abcdef0"
INSTANCE_C = "i-0fedcba9876543210"
UNKNOWN_TOKEN = "00000000-0000-4000-8000-000000000000"


class EventInbox:
    """What EventBridge would have delivered, in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def inbox() -> EventInbox:
    return EventInbox()


@pytest.fixture
def aws(clock: VirtualClock, inbox: EventInbox) -> Iterator[LocalAws]:
    with LocalAws(clock, on_event=inbox) as local_aws:
        yield local_aws


def a_group(
    aws: LocalAws,
    *,
    heartbeat_timeout: int = 300,
    default_result: str = "CONTINUE",
    instance_ids: tuple[str, ...] = (INSTANCE_A, INSTANCE_B),
    hook: bool = True,
) -> list[str]:
    terminate_hook = (
        TerminateHook(
            name=HOOK,
            heartbeat_timeout=heartbeat_timeout,
            default_result="ABANDON" if default_result == "ABANDON" else "CONTINUE",
        )
        if hook
        else None
    )
    return aws.create_group_with_instances(GROUP, instance_ids, terminate_hook=terminate_hook)


def lifecycle_state(aws: LocalAws, instance_id: str) -> str | None:
    answer = aws.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
    states = [i["LifecycleState"] for i in answer["AutoScalingInstances"]]
    return states[0] if states else None


def group_members(aws: LocalAws) -> dict[str, str]:
    answer = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
    return {i["InstanceId"]: i["LifecycleState"] for i in answer["AutoScalingGroups"][0]["Instances"]}


def ec2_state(aws: LocalAws, instance_id: str) -> str:
    answer = aws.client("ec2").describe_instances(InstanceIds=[instance_id])
    return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])


def heartbeat(aws: LocalAws, **target: str) -> None:
    aws.client("autoscaling").record_lifecycle_action_heartbeat(
        LifecycleHookName=target.pop("hook", HOOK), AutoScalingGroupName=GROUP, **target
    )


def heartbeat_accepted(aws: LocalAws, token: str) -> bool:
    """False once Auto Scaling answers that the action is gone."""
    try:
        heartbeat(aws, LifecycleActionToken=token)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationError":
            return False
        raise
    return True


def complete(aws: LocalAws, result: str = "CONTINUE", **target: str) -> None:
    aws.client("autoscaling").complete_lifecycle_action(
        LifecycleHookName=target.pop("hook", HOOK),
        AutoScalingGroupName=GROUP,
        LifecycleActionResult=result,
        **target,
    )


def scale_in_to(aws: LocalAws, desired: int) -> None:
    aws.client("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=desired)


def key_shape(value: Any) -> Any:
    """The keys of a JSON document, nested, without the values."""
    if isinstance(value, dict):
        return {key: key_shape(item) for key, item in value.items()}
    return type(value).__name__


# -- entering Terminating:Wait ---------------------------------------------------------------------


def test_scale_in_with_terminate_hook_holds_instance_in_terminating_wait(aws: LocalAws) -> None:
    # GIVEN a group of two instances with a terminate hook
    a_group(aws)

    # WHEN it scales in by one
    scale_in_to(aws, 1)

    # THEN the first instance waits, visible in both Auto Scaling views, and is still running
    assert lifecycle_state(aws, INSTANCE_A) == "Terminating:Wait"
    assert group_members(aws) == {INSTANCE_A: "Terminating:Wait", INSTANCE_B: "InService"}
    assert ec2_state(aws, INSTANCE_A) == "running"
    assert aws.lifecycle.state_of(INSTANCE_A) == "Terminating:Wait"


def test_scale_in_emits_event_shaped_like_the_recorded_one(
    aws: LocalAws, clock: VirtualClock, inbox: EventInbox
) -> None:
    # GIVEN a group with a terminate hook, at a known virtual time
    a_group(aws)
    clock.advance(90)
    recorded = json.loads((EVENTS / "asg-terminate-lifecycle-action.json").read_text())

    # WHEN it scales in by one
    scale_in_to(aws, 1)

    # THEN one event like AWS's went out, naming this action
    assert len(inbox.events) == 1
    event = inbox.events[0]
    assert key_shape(event) == key_shape(recorded)
    assert list(event["detail"]) == list(recorded["detail"])
    group = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
    action = aws.lifecycle.action_for(INSTANCE_A)
    assert action is not None
    assert event["detail-type"] == "EC2 Instance-terminate Lifecycle Action"
    assert event["source"] == "aws.autoscaling"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["time"] == "2026-01-01T00:01:30Z"
    assert event["resources"] == [group["AutoScalingGroups"][0]["AutoScalingGroupARN"]]
    assert event["detail"] == {
        "LifecycleActionToken": action.token,
        "AutoScalingGroupName": GROUP,
        "LifecycleHookName": HOOK,
        "EC2InstanceId": INSTANCE_A,
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "NotificationMetadata": "",
        "Origin": "AutoScalingGroup",
        "Destination": "EC2",
    }


def test_each_lifecycle_action_gets_a_fresh_token(aws: LocalAws, inbox: EventInbox) -> None:
    # GIVEN a group of three instances with a terminate hook
    a_group(aws, instance_ids=(INSTANCE_A, INSTANCE_B, INSTANCE_C))

    # WHEN it scales in by two
    scale_in_to(aws, 1)

    # THEN two actions with different tokens, one per event
    tokens = [e["detail"]["LifecycleActionToken"] for e in inbox.events]
    assert len(set(tokens)) == 2
    assert sorted(a.token for a in aws.lifecycle.actions()) == sorted(tokens)


def test_terminate_instance_without_decrement_holds_it_and_launches_replacement(
    aws: LocalAws, inbox: EventInbox
) -> None:
    # GIVEN a group of two instances with a terminate hook
    a_group(aws)

    # WHEN one is terminated without decrementing the desired capacity
    action = aws.terminate_instance(INSTANCE_A, should_decrement_desired_capacity=False)

    # THEN it waits, and a third instance keeps two in service
    assert action is not None
    members = group_members(aws)
    assert members[INSTANCE_A] == "Terminating:Wait"
    assert sorted(members.values()) == ["InService", "InService", "Terminating:Wait"]
    assert [e["detail"]["EC2InstanceId"] for e in inbox.events] == [INSTANCE_A]


def test_terminate_instance_with_decrement_holds_it_without_replacement(aws: LocalAws) -> None:
    # GIVEN a group of two instances with a terminate hook
    a_group(aws)

    # WHEN one is terminated through the API, decrementing the desired capacity
    aws.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=INSTANCE_B, ShouldDecrementDesiredCapacity=True
    )

    # THEN it waits and nothing replaces it
    assert group_members(aws) == {INSTANCE_A: "InService", INSTANCE_B: "Terminating:Wait"}


def test_update_auto_scaling_group_to_lower_capacity_holds_instance(aws: LocalAws) -> None:
    # GIVEN a group of two instances with a terminate hook
    a_group(aws)

    # WHEN UpdateAutoScalingGroup lowers the desired capacity
    aws.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName=GROUP, DesiredCapacity=1)

    # THEN one instance waits instead of going at once
    assert sorted(group_members(aws).values()) == ["InService", "Terminating:Wait"]


def test_terminating_a_waiting_instance_again_is_validation_error(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    aws.terminate_instance(INSTANCE_A)

    # WHEN it is terminated again
    with pytest.raises(ClientError) as error:
        aws.terminate_instance(INSTANCE_A)

    # THEN Auto Scaling refuses, and still one action only
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert len(aws.lifecycle.actions()) == 1


def test_group_without_hook_terminates_at_once(aws: LocalAws, inbox: EventInbox) -> None:
    # GIVEN a group of three instances without a lifecycle hook
    a_group(aws, instance_ids=(INSTANCE_A, INSTANCE_B, INSTANCE_C), hook=False)

    # WHEN one instance is terminated and the group scales in by another
    aws.terminate_instance(INSTANCE_A)
    scale_in_to(aws, 1)

    # THEN both left the group at once, with no lifecycle action and no event
    assert len(group_members(aws)) == 1
    assert ec2_state(aws, INSTANCE_A) == "terminated"
    assert inbox.events == []
    assert aws.lifecycle.actions() == []


# -- heartbeats ------------------------------------------------------------------------------------


def test_heartbeat_restarts_heartbeat_timer(aws: LocalAws, clock: VirtualClock) -> None:
    # GIVEN an instance held by a hook with a 300 s heartbeat timeout
    a_group(aws, heartbeat_timeout=300)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None

    # WHEN a heartbeat comes 200 s in, and the clock reaches 400 s
    clock.advance(200)
    heartbeat(aws, LifecycleActionToken=action.token)
    clock.advance(200)
    ended = aws.expire_due_actions()

    # THEN the instance still waits: its timer now runs out at 500 s
    assert ended == []
    assert lifecycle_state(aws, INSTANCE_A) == "Terminating:Wait"
    current = aws.lifecycle.action_for(INSTANCE_A)
    assert current is not None
    assert current.heartbeats == 1
    assert current.heartbeat_deadline == action.started_at + 500


def test_heartbeat_by_instance_id_restarts_heartbeat_timer(aws: LocalAws, clock: VirtualClock) -> None:
    # GIVEN an instance held by a hook with a 300 s heartbeat timeout
    a_group(aws, heartbeat_timeout=300)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None

    # WHEN a heartbeat names the instance instead of the token
    clock.advance(100)
    heartbeat(aws, InstanceId=INSTANCE_A)

    # THEN the timer restarted from now
    current = aws.lifecycle.action_for(INSTANCE_A)
    assert current is not None
    assert current.heartbeat_deadline == action.started_at + 400


def test_heartbeat_after_completion_is_validation_error(aws: LocalAws) -> None:
    # GIVEN an action completed with CONTINUE
    a_group(aws)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None
    complete(aws, LifecycleActionToken=action.token)

    # WHEN a heartbeat follows
    with pytest.raises(ClientError) as error:
        heartbeat(aws, LifecycleActionToken=action.token)

    # THEN AWS's "already gone" answer
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert f"No active Lifecycle Action found with token {action.token}" in str(error.value)


def test_concurrent_heartbeats_are_all_counted(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None
    aws.client("autoscaling")  # built once here, shared by the threads

    # WHEN four threads send five heartbeats each
    def beat() -> None:
        for _ in range(5):
            heartbeat(aws, LifecycleActionToken=action.token)

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN every heartbeat was recorded
    current = aws.lifecycle.action_for(INSTANCE_A)
    assert current is not None
    assert current.heartbeats == 20


# -- completion ------------------------------------------------------------------------------------


@pytest.mark.parametrize("result", ["CONTINUE", "ABANDON"])
def test_complete_terminates_instance_whatever_the_result(
    aws: LocalAws, clock: VirtualClock, result: str
) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None

    # WHEN the action is completed 42 s later
    clock.advance(42)
    complete(aws, result, LifecycleActionToken=action.token)

    # THEN the instance is terminated in EC2 and gone from the group
    assert ec2_state(aws, INSTANCE_A) == "terminated"
    assert INSTANCE_A not in group_members(aws)
    assert lifecycle_state(aws, INSTANCE_A) is None
    assert aws.lifecycle.state_of(INSTANCE_A) == "Terminated"
    ended = aws.lifecycle.action_for(INSTANCE_A)
    assert ended is not None
    assert (ended.ended_by, ended.result, ended.ended_at) == (result, result, action.started_at + 42)


def test_complete_by_instance_id_terminates_instance(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    aws.terminate_instance(INSTANCE_A)

    # WHEN the action is completed naming the instance, not the token
    complete(aws, InstanceId=INSTANCE_A)

    # THEN the instance is terminated
    assert ec2_state(aws, INSTANCE_A) == "terminated"
    ended = aws.lifecycle.action_for(INSTANCE_A)
    assert ended is not None
    assert ended.ended_by == "CONTINUE"


def test_complete_by_instance_id_of_no_action_is_validation_error(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook, and another in service
    a_group(aws)
    aws.terminate_instance(INSTANCE_A)

    # WHEN a completion names the instance in service
    with pytest.raises(ClientError) as error:
        complete(aws, InstanceId=INSTANCE_B)

    # THEN no action matches, and the instance in service stays
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert f"No active Lifecycle Action found with instance ID {INSTANCE_B}" in str(error.value)
    assert group_members(aws)[INSTANCE_B] == "InService"


def test_wrong_token_is_validation_error(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    aws.terminate_instance(INSTANCE_A)

    # WHEN a completion carries a token no action has
    with pytest.raises(ClientError) as error:
        complete(aws, LifecycleActionToken=UNKNOWN_TOKEN)

    # THEN ValidationError, and the instance still waits
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert f"No active Lifecycle Action found with token {UNKNOWN_TOKEN}" in str(error.value)
    assert lifecycle_state(aws, INSTANCE_A) == "Terminating:Wait"


def test_token_of_another_instance_is_validation_error(aws: LocalAws) -> None:
    # GIVEN two instances held by the hook
    a_group(aws)
    first = aws.terminate_instance(INSTANCE_A)
    aws.terminate_instance(INSTANCE_B)
    assert first is not None

    # WHEN a completion pairs the first token with the second instance
    with pytest.raises(ClientError) as error:
        complete(aws, LifecycleActionToken=first.token, InstanceId=INSTANCE_B)

    # THEN no action matches both, and both still wait
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert set(group_members(aws).values()) == {"Terminating:Wait"}


def test_unknown_hook_is_validation_error(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None

    # WHEN a heartbeat names another hook
    with pytest.raises(ClientError) as error:
        heartbeat(aws, hook="some-other-hook", LifecycleActionToken=action.token)

    # THEN ValidationError
    assert error.value.response["Error"]["Code"] == "ValidationError"


def test_unknown_group_is_validation_error(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None

    # WHEN a completion names a group that does not exist
    with pytest.raises(ClientError) as error:
        aws.client("autoscaling").complete_lifecycle_action(
            LifecycleHookName=HOOK,
            AutoScalingGroupName="no-such-group",
            LifecycleActionResult="CONTINUE",
            LifecycleActionToken=action.token,
        )

    # THEN ValidationError, and the instance still waits
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert lifecycle_state(aws, INSTANCE_A) == "Terminating:Wait"


def test_result_other_than_continue_or_abandon_is_validation_error(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    aws.terminate_instance(INSTANCE_A)

    # WHEN a completion carries an unknown result
    with pytest.raises(ClientError) as error:
        complete(aws, "PROCEED", InstanceId=INSTANCE_A)

    # THEN ValidationError, and the instance still waits
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert lifecycle_state(aws, INSTANCE_A) == "Terminating:Wait"


# -- timeouts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("default_result", ["CONTINUE", "ABANDON"])
def test_heartbeat_timeout_applies_default_result(
    aws: LocalAws, clock: VirtualClock, default_result: str
) -> None:
    # GIVEN an instance held by a hook with a 60 s heartbeat timeout
    a_group(aws, heartbeat_timeout=60, default_result=default_result)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None

    # WHEN 61 s pass without a heartbeat
    clock.advance(61)
    ended = aws.expire_due_actions()

    # THEN the hook's default result ended the action at 60 s and the instance is terminated
    assert [a.token for a in ended] == [action.token]
    assert ended[0].ended_by == "heartbeat_timeout"
    assert ended[0].result == default_result
    assert ended[0].ended_at == action.started_at + 60
    assert ec2_state(aws, INSTANCE_A) == "terminated"
    assert INSTANCE_A not in group_members(aws)


def test_expired_action_ends_on_the_next_autoscaling_request(aws: LocalAws, clock: VirtualClock) -> None:
    # GIVEN an instance held by a hook with a 60 s heartbeat timeout
    a_group(aws, heartbeat_timeout=60)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None

    # WHEN the timer runs out and the next thing is a heartbeat (no explicit expiry)
    clock.advance(60)
    with pytest.raises(ClientError) as error:
        heartbeat(aws, LifecycleActionToken=action.token)

    # THEN the action had already ended
    assert error.value.response["Error"]["Code"] == "ValidationError"
    ended = aws.lifecycle.action_for(INSTANCE_A)
    assert ended is not None
    assert ended.ended_by == "heartbeat_timeout"
    assert ec2_state(aws, INSTANCE_A) == "terminated"


def test_global_timeout_caps_heartbeats(aws: LocalAws, clock: VirtualClock) -> None:
    # GIVEN an instance held by a hook with a 30 s heartbeat timeout (global: 100 x 30 s)
    a_group(aws, heartbeat_timeout=30)
    action = aws.terminate_instance(INSTANCE_A)
    assert action is not None
    assert action.global_deadline == action.started_at + 3000

    # WHEN heartbeats come every 20 s, for as long as they are accepted
    accepted = 0
    clock.advance(20)
    while heartbeat_accepted(aws, action.token):
        accepted += 1
        current = aws.lifecycle.action_for(INSTANCE_A)
        assert current is not None
        assert current.heartbeat_deadline <= current.global_deadline
        clock.advance(20)

    # THEN the wait ended at the global deadline, however many heartbeats came
    ended = aws.lifecycle.action_for(INSTANCE_A)
    assert ended is not None
    assert (ended.ended_by, ended.ended_at) == ("global_timeout", action.started_at + 3000)
    assert ended.heartbeats == accepted == 149
    assert ec2_state(aws, INSTANCE_A) == "terminated"


def test_global_timeout_is_at_most_48_hours(aws: LocalAws) -> None:
    # GIVEN a hook with the longest heartbeat timeout, 7200 s (100 x 7200 s > 48 h)
    a_group(aws, heartbeat_timeout=7200)

    # WHEN an instance is held
    action = aws.terminate_instance(INSTANCE_A)

    # THEN the whole wait is capped at 48 h, as DescribeLifecycleHooks says too
    assert action is not None
    assert action.global_deadline == action.started_at + 172_800
    hooks = aws.client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=GROUP)
    assert hooks["LifecycleHooks"][0]["GlobalTimeout"] == 172_800


# -- the world itself ------------------------------------------------------------------------------


def test_chosen_instance_ids_are_visible_in_ec2_and_autoscaling(aws: LocalAws) -> None:
    # GIVEN the ids of a real event

    # WHEN a group is built with them
    launched = aws.create_group_with_instances(GROUP, [INSTANCE_A, INSTANCE_B])

    # THEN EC2 and Auto Scaling both know exactly those instances
    reservations = aws.client("ec2").describe_instances()["Reservations"]
    in_ec2 = {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}
    tags = {
        t["Value"]
        for r in reservations
        for i in r["Instances"]
        for t in i.get("Tags", [])
        if t["Key"] == "aws:autoscaling:groupName"
    }
    assert launched == [INSTANCE_A, INSTANCE_B]
    assert in_ec2 == {INSTANCE_A: "running", INSTANCE_B: "running"}
    assert tags == {GROUP}
    assert group_members(aws) == {INSTANCE_A: "InService", INSTANCE_B: "InService"}


def test_chosen_instance_id_already_in_use_is_refused(aws: LocalAws) -> None:
    # GIVEN a group holding an instance
    aws.create_group_with_instances(GROUP, [INSTANCE_A])

    # WHEN another group asks for the same id
    with pytest.raises(LocalAwsError, match="already in use"):
        aws.create_group_with_instances("other-asg", [INSTANCE_A])

    # THEN nothing else was launched
    reservations = aws.client("ec2").describe_instances()["Reservations"]
    assert [i["InstanceId"] for r in reservations for i in r["Instances"]] == [INSTANCE_A]


def test_terminate_with_a_replayed_token_answers_that_token(aws: LocalAws, inbox: EventInbox) -> None:
    # GIVEN the token of a recorded event and a group with its ids
    recorded = json.loads((EVENTS / "asg-terminate-lifecycle-action.json").read_text())
    token = recorded["detail"]["LifecycleActionToken"]
    a_group(aws)

    # WHEN its instance is terminated with that token, then heartbeated and completed by it
    aws.terminate_instance(recorded["detail"]["EC2InstanceId"], lifecycle_action_token=token)
    heartbeat(aws, LifecycleActionToken=token)
    complete(aws, LifecycleActionToken=token)

    # THEN the event and the action carry the recorded token
    assert inbox.events[0]["detail"]["LifecycleActionToken"] == token
    ended = aws.lifecycle.action_for(INSTANCE_A)
    assert ended is not None
    assert (ended.token, ended.heartbeats, ended.ended_by) == (token, 1, "CONTINUE")


def test_deleting_the_hook_completes_its_open_actions(aws: LocalAws) -> None:
    # GIVEN an instance held by the hook
    a_group(aws)
    aws.terminate_instance(INSTANCE_A)

    # WHEN the hook is deleted
    aws.client("autoscaling").delete_lifecycle_hook(LifecycleHookName=HOOK, AutoScalingGroupName=GROUP)

    # THEN the wait ended with CONTINUE, as AWS does for a terminate hook
    ended = aws.lifecycle.action_for(INSTANCE_A)
    assert ended is not None
    assert ended.ended_by == "CONTINUE"
    assert ec2_state(aws, INSTANCE_A) == "terminated"


def test_worlds_run_one_after_another_from_a_clean_state(clock: VirtualClock) -> None:
    # GIVEN a world that built a group with a hook, then stopped
    with LocalAws(clock) as first:
        a_group(first)
    assert "complete_lifecycle_action" not in vars(AutoScalingResponse)

    # WHEN a second world starts
    with LocalAws(clock) as second:
        groups = second.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
        reservations = second.client("ec2").describe_instances()["Reservations"]
        extended = "complete_lifecycle_action" in vars(AutoScalingResponse)

    # THEN it sees nothing of the first, and has the extension while it runs
    assert groups == []
    assert reservations == []
    assert extended


def test_second_running_world_is_refused(aws: LocalAws, clock: VirtualClock) -> None:
    # GIVEN a running world

    # WHEN a second one starts in the same process
    with pytest.raises(LocalAwsError, match="another local AWS"):
        LocalAws(clock).start()

    # THEN the first one still answers, extension and all
    a_group(aws)
    assert aws.terminate_instance(INSTANCE_A) is not None
