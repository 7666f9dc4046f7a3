"""The pydantic models of task_stops.py's ECS events, imported at the first task event parsed
(not with task_stops.py: a handler's cold start does not build them, nor load pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Container(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)
    name: str = Field(default="", max_length=255)
    exit_code: int | None = None
    reason: str = Field(default="", max_length=4096)


# Sample (EventBridge, aws.ecs): {"detail-type": "ECS Task State Change", "source": "aws.ecs",
#  "detail": {"taskArn": "arn:aws:ecs:...:task/livekit-agents/5f1c...", "clusterArn": "...",
#   "lastStatus": "STOPPED", "desiredStatus": "STOPPED", "stopCode": "ServiceSchedulerInitiated",
#   "stoppingAt": "2026-01-01T01:00:00.000Z", "stoppedAt": "2026-01-01T01:15:00.000Z",
#   "containers": [{"name": "agent", "exitCode": 137}], "group": "service:livekit-agents", ...}}
class TaskDetail(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)
    task_arn: str = Field(pattern=r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task/\S{1,512}$")
    cluster_arn: str = Field(pattern=r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/\S{1,255}$")
    container_instance_arn: str | None = Field(default=None, max_length=1024)
    task_definition_arn: str = Field(min_length=1, max_length=1024)
    group: str = Field(default="", max_length=1024)
    last_status: str = Field(min_length=1, max_length=32)
    desired_status: str = Field(min_length=1, max_length=32)
    stop_code: str = Field(default="", max_length=64)
    stopped_reason: str = Field(default="", max_length=4096)
    stopping_at: datetime | None = None
    stopped_at: datetime | None = None
    version: int = 0
    containers: list[Container] = Field(default_factory=list, max_length=10)


class TaskEventEnvelope(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    id: str = Field(min_length=1, max_length=128)
    detail_type: str = Field(alias="detail-type", max_length=256)
    source: str = Field(max_length=256)
    time: datetime
    detail: dict[str, Any]
