"""LifecycleActions against the local Auto Scaling (moto plus lifecycle actions) over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from drain_coordinator.domain.records import LifecycleRef
from drain_coordinator.integrations.autoscaling import (
    AutoScalingError,
    LifecycleActionGoneError,
    LifecycleActions,
)
from drain_coordinator.integrations.aws_clients import RETRY_CONFIG, total_attempts
from drainctl.world.aws import LocalAws, TerminateHook
from drainctl.world.clock import VirtualClock
from drainctl.world.lifecycle_actions import LifecycleAction
from tests.integration.conftest import (
    SINGLE_ATTEMPT,
    RetryPauses,
    aws_client,
    closed_port_url,
    inject_errors,
    throttle,
)

GROUP = "livekit-agents-asg"
HOOK = "livekit-drain-terminate"
HEARTBEAT_TIMEOUT = 300
# botocore's `max_attempts` counts retries: the first attempt comes on top.
TOTAL_ATTEMPTS = total_attempts(RETRY_CONFIG)


@dataclass
class HeldInstance:
    """An instance in Terminating:Wait under the terminate hook, and the ref a drain keeps of it."""

    aws: LocalAws
    ref: LifecycleRef

    @property
    def action(self) -> LifecycleAction:
        action = self.aws.lifecycle.action_for(self.ref.instance_id)
        assert action is not None
        return action

    def ec2_state(self) -> str:
        answer = self.aws.client("ec2").describe_instances(InstanceIds=[self.ref.instance_id])
        return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])


@pytest.fixture
def held(local_aws: LocalAws) -> HeldInstance:
    instance_id, _ = local_aws.create_group_with_instances(
        GROUP, 2, terminate_hook=TerminateHook(name=HOOK, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    )
    action = local_aws.terminate_instance(instance_id)
    assert action is not None
    ref = LifecycleRef(asg_name=GROUP, hook_name=HOOK, instance_id=instance_id, action_token=action.token)
    return HeldInstance(local_aws, ref)


def lifecycle_actions(aws: LocalAws, client: Any = None) -> LifecycleActions:
    return LifecycleActions(client or aws_client("autoscaling", aws.endpoint_url))


def call(actions: LifecycleActions, operation: str, ref: LifecycleRef) -> None:
    if operation == "heartbeat":
        actions.record_heartbeat(ref)
    else:
        actions.complete(ref)


# -- heartbeat and complete ------------------------------------------------------------------------


def test_heartbeat_restarts_the_heartbeat_timer(held: HeldInstance, virtual_clock: VirtualClock) -> None:
    # GIVEN an action 200 s into its 300 s heartbeat timeout
    virtual_clock.advance(200)

    # WHEN the drain records a heartbeat
    lifecycle_actions(held.aws).record_heartbeat(held.ref)

    # THEN the timer runs from now, and the instance is still held
    assert held.action.heartbeats == 1
    assert held.action.heartbeat_deadline == virtual_clock.now() + HEARTBEAT_TIMEOUT
    assert held.action.is_open
    assert held.aws.lifecycle.state_of(held.ref.instance_id) == "Terminating:Wait"


def test_heartbeat_keeps_the_action_past_its_first_timeout(
    held: HeldInstance, virtual_clock: VirtualClock
) -> None:
    # GIVEN a heartbeat at 200 s
    virtual_clock.advance(200)
    lifecycle_actions(held.aws).record_heartbeat(held.ref)

    # WHEN the original 300 s timeout passes and timeouts are applied
    virtual_clock.advance(150)
    held.aws.expire_due_actions()

    # THEN the action is still open
    assert held.action.is_open


@pytest.mark.parametrize("result", ["CONTINUE", "ABANDON"])
def test_complete_terminates_the_instance(held: HeldInstance, result: str) -> None:
    # GIVEN a held instance / WHEN the drain completes its action with either result
    lifecycle_actions(held.aws).complete(held.ref, result)

    # THEN a terminate hook lets the instance go either way
    assert held.action.ended_by == result
    assert held.aws.lifecycle.state_of(held.ref.instance_id) == "Terminated"
    assert held.ec2_state() == "terminated"


# -- an action that has ended ----------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["heartbeat", "complete"])
def test_call_after_completion_is_lifecycle_action_gone(held: HeldInstance, operation: str) -> None:
    # GIVEN an action completed already (by another look, or an operator)
    actions = lifecycle_actions(held.aws)
    actions.complete(held.ref)

    # WHEN / THEN Auto Scaling's ValidationError is "already ended", not a failure
    with pytest.raises(LifecycleActionGoneError, match="No active Lifecycle Action"):
        call(actions, operation, held.ref)
    assert held.action.heartbeats == 0
    assert held.action.ended_by == "CONTINUE"


@pytest.mark.parametrize("operation", ["heartbeat", "complete"])
def test_call_after_heartbeat_timeout_is_lifecycle_action_gone(
    held: HeldInstance, virtual_clock: VirtualClock, operation: str
) -> None:
    # GIVEN an action whose heartbeat timeout ran out: Auto Scaling applied its default result
    virtual_clock.advance(HEARTBEAT_TIMEOUT + 1)
    held.aws.expire_due_actions()
    assert held.action.ended_by == "heartbeat_timeout"

    # WHEN / THEN the late call finds the action gone
    with pytest.raises(LifecycleActionGoneError):
        call(lifecycle_actions(held.aws), operation, held.ref)


def test_heartbeat_with_another_actions_token_is_lifecycle_action_gone(held: HeldInstance) -> None:
    # GIVEN a ref carrying a token Auto Scaling never issued for this instance
    stale = LifecycleRef(
        asg_name=GROUP,
        hook_name=HOOK,
        instance_id=held.ref.instance_id,
        action_token="00000000-0000-4000-8000-000000000000",
    )

    # WHEN / THEN it names no open action; the real one is untouched
    with pytest.raises(LifecycleActionGoneError):
        lifecycle_actions(held.aws).record_heartbeat(stale)
    assert held.action.heartbeats == 0
    assert held.action.is_open


# -- failures --------------------------------------------------------------------------------------


def test_server_error_is_autoscaling_error(held: HeldInstance) -> None:
    # GIVEN Auto Scaling answering 500 to every heartbeat (injected below the client: moto never
    # fails this way, and a refused connection is not an answer from Auto Scaling at all)
    client = aws_client("autoscaling", held.aws.endpoint_url, config=SINGLE_ATTEMPT)
    failing = inject_errors(
        client, "RecordLifecycleActionHeartbeat", status=500, code="InternalFailure", message="boom"
    )

    # WHEN / THEN the failure is the adapter's error, not "gone"
    with pytest.raises(AutoScalingError, match="InternalFailure"):
        lifecycle_actions(held.aws, client).record_heartbeat(held.ref)
    assert failing.attempts == 1
    assert held.action.is_open


def test_throttled_heartbeat_is_retried_until_it_succeeds(
    held: HeldInstance, retry_pauses: RetryPauses
) -> None:
    # GIVEN Auto Scaling throttling every heartbeat attempt but the last the policy allows
    client = aws_client("autoscaling", held.aws.endpoint_url, config=RETRY_CONFIG)
    throttled = throttle(client, "RecordLifecycleActionHeartbeat", times=TOTAL_ATTEMPTS - 1)

    # WHEN the drain records a heartbeat through a client with the coordinator's retry policy
    lifecycle_actions(held.aws, client).record_heartbeat(held.ref)

    # THEN the last attempt reached Auto Scaling, after a backoff per throttle (standard mode:
    # no client-side rate limiter to wait on)
    assert throttled.attempts == TOTAL_ATTEMPTS
    assert len(retry_pauses.backoffs) == TOTAL_ATTEMPTS - 1
    assert retry_pauses.token_requests == 0
    assert held.action.heartbeats == 1


def test_heartbeat_throttled_past_max_attempts_is_autoscaling_error(
    held: HeldInstance, retry_pauses: RetryPauses
) -> None:
    # GIVEN Auto Scaling throttling every heartbeat attempt
    client = aws_client("autoscaling", held.aws.endpoint_url, config=RETRY_CONFIG)
    throttled = throttle(client, "RecordLifecycleActionHeartbeat")

    # WHEN / THEN the retries run out and the adapter reports the throttle
    with pytest.raises(AutoScalingError, match="Throttling"):
        lifecycle_actions(held.aws, client).record_heartbeat(held.ref)
    assert throttled.attempts == TOTAL_ATTEMPTS
    assert len(retry_pauses.backoffs) == TOTAL_ATTEMPTS - 1
    assert held.action.heartbeats == 0


def test_throttled_completion_is_retried_until_it_succeeds(
    held: HeldInstance, retry_pauses: RetryPauses
) -> None:
    # GIVEN Auto Scaling throttling the first completion attempt
    client = aws_client("autoscaling", held.aws.endpoint_url, config=RETRY_CONFIG)
    throttled = throttle(client, "CompleteLifecycleAction", times=1)

    # WHEN the drain completes
    lifecycle_actions(held.aws, client).complete(held.ref)

    # THEN the retry went through and the instance left
    assert throttled.attempts == 2
    assert held.aws.lifecycle.state_of(held.ref.instance_id) == "Terminated"


def test_unreachable_autoscaling_is_autoscaling_error(held: HeldInstance) -> None:
    # GIVEN an adapter whose Auto Scaling endpoint refuses connections
    client = aws_client("autoscaling", closed_port_url(), config=SINGLE_ATTEMPT)

    # WHEN / THEN the failure is the adapter's error, which reconcile catches per drain, not a
    # botocore exception that would end the whole tick
    with pytest.raises(AutoScalingError):
        lifecycle_actions(held.aws, client).record_heartbeat(held.ref)
