"""Incoming events, parsed into one typed trigger or a typed skip.

Every source is normalised here so the handlers only ever see a trigger (`TerminateRequested`,
`LaunchRequested`, `SpotInterruption`, `RebalanceRecommended`) or a `Skip`; anything that does not parse raises
`EventRejectedError` (logged whole, counted, never retried). Whatever the input (wrong types,
missing fields, huge strings, not even an object), a parser raises nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drain_coordinator.domain.records import LifecycleRef

if TYPE_CHECKING:
    from pydantic import ValidationError

    from drain_coordinator.domain.events_schema import (
        EventBridgeEnvelope,
        LifecycleActionDetail,
    )

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


class EventRejectedError(ValueError):
    """The event is not one this coordinator can act on, and never will be: do not retry it."""


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
    detail = _lifecycle_detail(envelope.detail)
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


def _launch(envelope: EventBridgeEnvelope, *, asg_name: str, launch_hook_name: str) -> LaunchRequested | Skip:
    detail = _lifecycle_detail(envelope.detail)
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
    from pydantic import ValidationError

    from drain_coordinator.domain.events_schema import Ec2InstanceDetail

    try:
        detail = Ec2InstanceDetail.model_validate(envelope.detail)
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


def _envelope(raw: object) -> EventBridgeEnvelope:
    if not isinstance(raw, Mapping):
        raise EventRejectedError(f"event is a {type(raw).__name__}, not an object")
    # pydantic and the models come with the first event parsed, not with the handler's import.
    from pydantic import ValidationError

    from drain_coordinator.domain.events_schema import EventBridgeEnvelope

    try:
        return EventBridgeEnvelope.model_validate(dict(raw))
    except ValidationError as exc:
        raise EventRejectedError(first_error(exc)) from exc


def _lifecycle_detail(detail: dict[str, Any]) -> LifecycleActionDetail:
    from pydantic import ValidationError

    from drain_coordinator.domain.events_schema import LifecycleActionDetail

    try:
        return LifecycleActionDetail.model_validate(detail)
    except ValidationError as exc:
        raise EventRejectedError(first_error(exc)) from exc


def first_error(exc: ValidationError) -> str:
    """The first problem pydantic found, as `field.path: message`."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "event"
    return f"{where}: {err['msg']}"
