"""Auto Scaling lifecycle actions: heartbeat and complete, with "gone" as an answer, not a failure."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from drain_coordinator.domain.records import LifecycleRef


class LifecycleActionGoneError(Exception):
    """The lifecycle action has already ended (completed elsewhere, or timed out)."""


class AutoScalingError(Exception):
    """Auto Scaling refused or failed a call after retries."""


class LifecycleActions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def record_heartbeat(self, ref: LifecycleRef) -> None:
        self._call(
            "record_lifecycle_action_heartbeat",
            ref,
        )

    def complete(self, ref: LifecycleRef, result: str = "CONTINUE") -> None:
        self._call("complete_lifecycle_action", ref, LifecycleActionResult=result)

    def _call(self, operation: str, ref: LifecycleRef, **extra: str) -> None:
        try:
            getattr(self._client, operation)(
                AutoScalingGroupName=ref.asg_name,
                LifecycleHookName=ref.hook_name,
                LifecycleActionToken=ref.action_token,
                InstanceId=ref.instance_id,
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
