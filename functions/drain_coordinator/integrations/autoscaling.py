"""Auto Scaling: lifecycle actions (heartbeat and complete, with "gone" as an answer, not a
failure), the group's instances held in `Terminating:Wait`, and terminating an instance so its
replacement launches first."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from drain_coordinator.domain.records import LifecycleRef

TERMINATING_WAIT = "Terminating:Wait"
# A terminate hook holding an instance on its way back to a warm pool (ReuseOnScaleIn) waits here.
# https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html
WARMED_PENDING_WAIT = "Warmed:Pending:Wait"
HOOK_WAIT_STATES = (TERMINATING_WAIT, WARMED_PENDING_WAIT)


class LifecycleActionGoneError(Exception):
    """The lifecycle action has already ended (completed elsewhere, or timed out)."""


class AutoScalingError(Exception):
    """Auto Scaling refused or failed a call after retries."""


class InstanceNotTerminableError(AutoScalingError):
    """The instance cannot be terminated now (already terminating, detached, not in the group)."""


class LifecycleActions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def record_heartbeat(self, ref: LifecycleRef) -> None:
        self._call("record_lifecycle_action_heartbeat", ref)

    def complete(self, ref: LifecycleRef, result: str = "CONTINUE") -> None:
        self._call("complete_lifecycle_action", ref, LifecycleActionResult=result)

    def waiting_instances(self, asg_name: str) -> list[str]:
        """Instances of the group held by a terminate hook (ours or any other): in
        `Terminating:Wait`, or `Warmed:Pending:Wait` on the way back to a warm pool."""
        waiting: list[str] = []
        try:
            paginator = self._client.get_paginator("describe_auto_scaling_groups")
            for page in paginator.paginate(AutoScalingGroupNames=[asg_name]):
                for group in page.get("AutoScalingGroups", []):
                    waiting += [
                        str(i["InstanceId"])
                        for i in group.get("Instances", [])
                        if i.get("LifecycleState") in HOOK_WAIT_STATES
                    ]
        except (ClientError, BotoCoreError) as exc:
            raise AutoScalingError(_describe(exc, "describe_auto_scaling_groups")) from exc
        return sorted(waiting)

    def group_of(self, instance_id: str) -> str | None:
        """The Auto Scaling group the instance belongs to, if any."""
        try:
            answer = self._client.describe_auto_scaling_instances(InstanceIds=[instance_id])
        except (ClientError, BotoCoreError) as exc:
            raise AutoScalingError(_describe(exc, "describe_auto_scaling_instances")) from exc
        found = answer.get("AutoScalingInstances", [])
        return str(found[0]["AutoScalingGroupName"]) if found else None

    def capacity_rebalance(self, asg_name: str) -> bool:
        """Whether the group's own Capacity Rebalancing is on: it then replaces an instance on a
        rebalance recommendation itself.
        https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html"""
        try:
            answer = self._client.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
        except (ClientError, BotoCoreError) as exc:
            raise AutoScalingError(_describe(exc, "describe_auto_scaling_groups")) from exc
        groups = answer.get("AutoScalingGroups", [])
        return bool(groups and groups[0].get("CapacityRebalance"))

    def terminate_keeping_capacity(self, instance_id: str) -> None:
        """Terminate the instance in its group without lowering the desired capacity: the group
        launches a replacement, and the terminate hook holds this one while it drains."""
        try:
            self._client.terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=False
            )
        except BotoCoreError as exc:
            raise AutoScalingError(_describe(exc, "terminate_instance_in_auto_scaling_group")) from exc
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationError":
                # e.g. "The instance ... is in state Terminating:Wait": already on its way out.
                raise InstanceNotTerminableError(_describe(exc, "terminate the instance")) from exc
            raise AutoScalingError(_describe(exc, "terminate_instance_in_auto_scaling_group")) from exc

    def _call(self, operation: str, ref: LifecycleRef, **extra: str) -> None:
        # A drain adopted from `Terminating:Wait` (its event was never handled) has no token:
        # Auto Scaling then finds the action by the instance id alone.
        identity = {"InstanceId": ref.instance_id}
        if ref.action_token:
            identity["LifecycleActionToken"] = ref.action_token
        try:
            getattr(self._client, operation)(
                AutoScalingGroupName=ref.asg_name,
                LifecycleHookName=ref.hook_name,
                **identity,
                **extra,
            )
        except BotoCoreError as exc:  # no answer at all: unreachable, timed out
            raise AutoScalingError(f"{operation} failed: {type(exc).__name__}: {exc}") from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            message = str(error.get("Message", ""))
            # AWS answers ValidationError "No active Lifecycle Action found with token/instance
            # ID ..." for an action that has ended: the drain is over, whoever ended it. Any
            # other ValidationError (a wrong hook or group name) is a real failure.
            if error.get("Code") == "ValidationError" and "No active Lifecycle Action" in message:
                raise LifecycleActionGoneError(message) from exc
            raise AutoScalingError(
                f"{operation} failed: {error.get('Code')}: {error.get('Message')}"
            ) from exc


def _describe(exc: ClientError | BotoCoreError, what: str) -> str:
    if isinstance(exc, BotoCoreError):
        return f"{what} failed: {type(exc).__name__}: {exc}"
    error = exc.response.get("Error", {})
    return f"{what} failed: {error.get('Code')}: {error.get('Message')}"
