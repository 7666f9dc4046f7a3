"""The pydantic models of events.py's envelopes and details, imported at the first event parsed
(not with events.py: a handler's cold start does not build them, nor load pydantic)."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

_INSTANCE_ID = r"^i-[0-9a-f]{8,17}$"


class EventBridgeEnvelope(BaseModel):
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
class LifecycleActionDetail(BaseModel):
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
class Ec2InstanceDetail(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    instance_id: str = Field(alias="instance-id", pattern=_INSTANCE_ID)
    # terminate | stop | hibernate; absent on a rebalance recommendation
    instance_action: str = Field(alias="instance-action", default="", max_length=32)
