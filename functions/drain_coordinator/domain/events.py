"""Incoming events, parsed into one typed trigger or a typed skip.

Every source is normalised here so the handlers only ever see a trigger (`TerminateRequested`,
`LaunchRequested`, `SpotInterruption`, `RebalanceRecommended`) or a `Skip`; anything that does not parse raises
`EventRejectedError` (logged whole, counted, never retried). Whatever the input (wrong types,
missing fields, huge strings, not even an object), a parser raises nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from drain_coordinator.domain.records import LifecycleRef

TERMINATE_DETAIL_TYPE = "EC2 Instance-terminate Lifecycle Action"
LAUNCH_DETAIL_TYPE = "EC2 Instance-launch Lifecycle Action"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
# Where an instance of a group with a warm pool comes from and goes to (a lifecycle action's
# `Origin` and `Destination`): EC2 | AutoScalingGroup | WarmPool.
# https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pools-eventbridge-events.html
WARM_POOL = "WarmPool"
AUTO_SCALING_GROUP = "AutoScalingGroup"
TEST_NOTIFICATION = "autoscaling:TEST_NOTIFICATION"
SPOT_WARNING_DETAIL_TYPE = "EC2 Spot Instance Interruption Warning"
REBALANCE_DETAIL_TYPE = "EC2 Instance Rebalance Recommendation"
# EC2 reclaims a Spot Instance two minutes after its interruption warning; nothing extends it.
SPOT_RECLAIM_SECONDS = 120
_INSTANCE_ID = r"^i-[0-9a-f]{8,17}$"


class EventRejectedError(ValueError):
    """The event is not one this coordinator can act on, and never will be: do not retry it."""


class _EventBridgeEnvelope(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(min_length=1, max_length=128)
    detail_type: str = Field(alias="detail-type", min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=256)
    account: str = Field(pattern=r"^\d{12}$")
    # EventBridge stamps an ISO 8601 UTC time; a number or a time without a zone is no such stamp.
    time: AwareDatetime
    region: str = Field(min_length=1, max_length=64)
    detail: dict[str, Any]

    @field_validator("time", mode="before")
    @classmethod
    def _time_is_text(cls, value: object) -> object:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError("time must be an ISO 8601 string")
        return value


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
    EC2InstanceId: str = Field(pattern=_INSTANCE_ID)
    LifecycleTransition: str = Field(min_length=1, max_length=64)
    # Absent from events of groups without a warm pool in older samples: "" then.
    Origin: str = Field(default="", max_length=32)
    Destination: str = Field(default="", max_length=32)


# Sample (EventBridge, aws.ec2):
# {"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
#  "resources": ["arn:aws:ec2:us-east-1a:instance/i-0598c7d356eba48d7"],
#  "detail": {"instance-id": "i-0598c7d356eba48d7", "instance-action": "terminate"}}
# {"detail-type": "EC2 Instance Rebalance Recommendation", "source": "aws.ec2",
#  "detail": {"instance-id": "i-0598c7d356eba48d7"}}
class _Ec2InstanceDetail(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    instance_id: str = Field(alias="instance-id", pattern=_INSTANCE_ID)
    # terminate | stop | hibernate; absent on a rebalance recommendation
    instance_action: str = Field(alias="instance-action", default="", max_length=32)


@dataclass(frozen=True, slots=True)
class TerminateRequested:
    """An instance of a watched group entered `Terminating:Wait` under our hook."""

    lifecycle: LifecycleRef
    hook_started_at: float
    event_id: str


@dataclass(frozen=True, slots=True)
class LaunchRequested:
    """An instance of a watched group waits under our launch hook (`Pending:Wait`, or
    `Warmed:Pending:Wait` on its way into the warm pool). From the warm pool back into the group
    (`Origin: WarmPool`, `Destination: AutoScalingGroup`) it is an instance an earlier scale-in
    drained: its container instance comes back DRAINING."""

    lifecycle: LifecycleRef
    origin: str
    destination: str
    event_id: str

    @property
    def from_warm_pool(self) -> bool:
        return self.origin == WARM_POOL and self.destination == AUTO_SCALING_GROUP


@dataclass(frozen=True, slots=True)
class SpotInterruption:
    """EC2 will reclaim this Spot Instance two minutes after `warned_at`, whatever a hook says."""

    instance_id: str
    warned_at: float
    instance_action: str
    event_id: str

    @property
    def reclaim_at(self) -> float:
        return self.warned_at + SPOT_RECLAIM_SECONDS


@dataclass(frozen=True, slots=True)
class RebalanceRecommended:
    """EC2 says this Spot Instance is at elevated risk of interruption: move off it early."""

    instance_id: str
    recommended_at: float
    event_id: str


@dataclass(frozen=True, slots=True)
class Skip:
    """A well-formed event that is not ours to act on: logged, acknowledged, never retried."""

    reason: str
    event_id: str


LifecycleTrigger = TerminateRequested | LaunchRequested | SpotInterruption | RebalanceRecommended | Skip


def parse_lifecycle_function_event(
    raw: object, *, asg_name: str, hook_name: str, launch_hook_name: str = ""
) -> LifecycleTrigger:
    """Everything the lifecycle function is routed: Auto Scaling lifecycle actions, and EC2's
    Spot interruption warnings and rebalance recommendations."""
    if isinstance(raw, Mapping) and raw.get("source") == "aws.ec2":
        return parse_ec2_event(raw)
    return parse_lifecycle_event(
        raw, asg_name=asg_name, hook_name=hook_name, launch_hook_name=launch_hook_name
    )


def parse_lifecycle_event(
    raw: object, *, asg_name: str, hook_name: str, launch_hook_name: str = ""
) -> TerminateRequested | LaunchRequested | Skip:
    """A terminate action of our hook, or a launch action of our launch hook (only a stack with
    a launch hook, `launch_hook_name`, acts on launches)."""
    envelope = _envelope(raw)
    if envelope.source != "aws.autoscaling":
        raise EventRejectedError(f"unexpected source {envelope.source!r}")
    if envelope.detail.get("Event") == TEST_NOTIFICATION:
        return Skip(reason="test_notification", event_id=envelope.id)
    if envelope.detail_type == LAUNCH_DETAIL_TYPE:
        if not launch_hook_name:
            return Skip(reason="launch_transition", event_id=envelope.id)
        return _launch(envelope, asg_name=asg_name, launch_hook_name=launch_hook_name)
    if envelope.detail_type != TERMINATE_DETAIL_TYPE:
        raise EventRejectedError(f"unexpected detail-type {envelope.detail_type!r}")
    try:
        detail = _LifecycleActionDetail.model_validate(envelope.detail)
    except ValidationError as exc:
        raise EventRejectedError(first_error(exc)) from exc
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


def _launch(
    envelope: _EventBridgeEnvelope, *, asg_name: str, launch_hook_name: str
) -> LaunchRequested | Skip:
    try:
        detail = _LifecycleActionDetail.model_validate(envelope.detail)
    except ValidationError as exc:
        raise EventRejectedError(first_error(exc)) from exc
    if detail.LifecycleTransition != LAUNCHING:
        return Skip(reason="not_a_launch_transition", event_id=envelope.id)
    if detail.AutoScalingGroupName != asg_name:
        return Skip(reason="other_group", event_id=envelope.id)
    if detail.LifecycleHookName != launch_hook_name:
        return Skip(reason="other_hook", event_id=envelope.id)
    return LaunchRequested(
        lifecycle=LifecycleRef(
            asg_name=detail.AutoScalingGroupName,
            hook_name=detail.LifecycleHookName,
            instance_id=detail.EC2InstanceId,
            action_token=detail.LifecycleActionToken,
        ),
        origin=detail.Origin,
        destination=detail.Destination,
        event_id=envelope.id,
    )


def parse_ec2_event(raw: object) -> SpotInterruption | RebalanceRecommended | Skip:
    envelope = _envelope(raw)
    if envelope.source != "aws.ec2":
        raise EventRejectedError(f"unexpected source {envelope.source!r}")
    if envelope.detail_type not in (SPOT_WARNING_DETAIL_TYPE, REBALANCE_DETAIL_TYPE):
        raise EventRejectedError(f"unexpected detail-type {envelope.detail_type!r}")
    try:
        detail = _Ec2InstanceDetail.model_validate(envelope.detail)
    except ValidationError as exc:
        raise EventRejectedError(first_error(exc)) from exc
    at = envelope.time.timestamp()
    if envelope.detail_type == REBALANCE_DETAIL_TYPE:
        return RebalanceRecommended(instance_id=detail.instance_id, recommended_at=at, event_id=envelope.id)
    # "stop" and "hibernate" take the instance away in two minutes too: drained the same way.
    return SpotInterruption(
        instance_id=detail.instance_id,
        warned_at=at,
        instance_action=detail.instance_action or "terminate",
        event_id=envelope.id,
    )


def _envelope(raw: object) -> _EventBridgeEnvelope:
    if not isinstance(raw, Mapping):
        raise EventRejectedError(f"event is a {type(raw).__name__}, not an object")
    try:
        return _EventBridgeEnvelope.model_validate(dict(raw))
    except ValidationError as exc:
        raise EventRejectedError(first_error(exc)) from exc


def first_error(exc: ValidationError) -> str:
    """The first problem pydantic found, as `field.path: message`."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "event"
    return f"{where}: {err['msg']}"
