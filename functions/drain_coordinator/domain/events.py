"""Incoming events, parsed into one typed trigger or a typed skip.

Every source is normalised here so the handlers only ever see `TerminateRequested` or `Skip`;
anything that does not parse raises `EventRejectedError` (logged whole, counted, never retried).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drain_coordinator.domain.records import LifecycleRef

TERMINATE_DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"
LAUNCH_DETAIL_TYPE = "EC2 Instance-launch Lifecycle Action"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
TEST_NOTIFICATION = "autoscaling:TEST_NOTIFICATION"


class EventRejectedError(ValueError):
    """The event is not one this coordinator can act on, and never will be: do not retry it."""


class _EventBridgeEnvelope(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(min_length=1, max_length=128)
    detail_type: str = Field(alias="detail-type", min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=256)
    account: str = Field(pattern=r"^\d{12}$")
    time: datetime
    region: str = Field(min_length=1, max_length=64)
    detail: dict[str, Any]


# Sample (EventBridge, aws.autoscaling):
# {"detail-type": "EC2 Instance-terminate Lifecycle Action", "source": "aws.autoscaling",
#  "detail": {"LifecycleActionToken": "87654321-...", "AutoScalingGroupName": "livekit-agents-asg",
#             "LifecycleHookName": "livekit-drain-terminate", "EC2InstanceId": "i-0598c7d356eba48d7",
#             "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", ...}}
class _LifecycleActionDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    LifecycleActionToken: str = Field(min_length=1, max_length=36)
    AutoScalingGroupName: str = Field(min_length=1, max_length=255)
    LifecycleHookName: str = Field(min_length=1, max_length=255)
    EC2InstanceId: str = Field(pattern=r"^i-[0-9a-f]{8,17}$")
    LifecycleTransition: str = Field(min_length=1, max_length=64)


@dataclass(frozen=True, slots=True)
class TerminateRequested:
    """An instance of a watched group entered `Terminating:Wait` under our hook."""

    lifecycle: LifecycleRef
    hook_started_at: float
    event_id: str


@dataclass(frozen=True, slots=True)
class Skip:
    """A well-formed event that is not ours to act on: logged, acknowledged, never retried."""

    reason: str
    event_id: str


def parse_lifecycle_event(
    raw: Mapping[str, Any], *, asg_name: str, hook_name: str
) -> TerminateRequested | Skip:
    try:
        envelope = _EventBridgeEnvelope.model_validate(raw)
    except ValidationError as exc:
        raise EventRejectedError(_first_error(exc)) from exc
    if envelope.source != "aws.autoscaling":
        raise EventRejectedError(f"unexpected source {envelope.source!r}")
    if envelope.detail.get("Event") == TEST_NOTIFICATION:
        return Skip(reason="test_notification", event_id=envelope.id)
    if envelope.detail_type == LAUNCH_DETAIL_TYPE:
        return Skip(reason="launch_transition", event_id=envelope.id)
    if envelope.detail_type != TERMINATE_DETAIL_TYPE:
        raise EventRejectedError(f"unexpected detail-type {envelope.detail_type!r}")
    try:
        detail = _LifecycleActionDetail.model_validate(envelope.detail)
    except ValidationError as exc:
        raise EventRejectedError(_first_error(exc)) from exc
    if detail.LifecycleTransition != TERMINATING:
        return Skip(reason="not_a_terminate_transition", event_id=envelope.id)
    if detail.AutoScalingGroupName != asg_name:
        return Skip(reason="other_group", event_id=envelope.id)
    if detail.LifecycleHookName != hook_name:
        return Skip(reason="other_hook", event_id=envelope.id)
    return TerminateRequested(
        lifecycle=LifecycleRef(
            asg_name=detail.AutoScalingGroupName,
            hook_name=detail.LifecycleHookName,
            instance_id=detail.EC2InstanceId,
            action_token=detail.LifecycleActionToken,
        ),
        hook_started_at=envelope.time.timestamp(),
        event_id=envelope.id,
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "event"
    return f"{where}: {err['msg']}"
