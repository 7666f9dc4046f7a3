"""Small builders shared by the tests: records and probes in the drain's own words."""

from __future__ import annotations

from typing import Any

from drain_coordinator.domain.probe import Probe, WorkerTask
from drain_coordinator.domain.records import DrainRecord, LifecycleRef

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TASK_A = "arn:aws:ecs:us-east-1:123456789012:task/agents/0123456789abcdef0123456789abcdef"
TASK_B = "arn:aws:ecs:us-east-1:123456789012:task/agents/fedcba9876543210fedcba9876543210"


def a_ref(instance_id: str = "i-0598c7d356eba48d7") -> LifecycleRef:
    return LifecycleRef(
        asg_name="livekit-agents-asg",
        hook_name="livekit-drain-terminate",
        instance_id=instance_id,
        action_token="87654321-4321-4321-4321-210987654321",
    )


def a_record(*, deadline: float = 1200, heartbeat_timeout: int = 300, **overrides: Any) -> DrainRecord:
    fields: dict[str, Any] = {
        "lifecycle": a_ref(),
        "cluster": "agents",
        "container_instance_arn": "arn:aws:ecs:us-east-1:123456789012:container-instance/agents/ci-1",
        "hook_started_at": T0,
        "deadline_at": T0 + deadline,
        "heartbeat_timeout": heartbeat_timeout,
        "last_heartbeat_at": T0,
        "opened_at": T0,
    }
    fields.update(overrides)
    return DrainRecord(**fields)


def a_probe(sessions: int = 0, tasks: int = 0, *, stopping: bool = True) -> Probe:
    task_list = tuple(
        WorkerTask(
            arn=f"{TASK_A[:-2]}{i:02d}",
            last_status="RUNNING",
            desired_status="STOPPED" if stopping else "RUNNING",
        )
        for i in range(tasks)
    )
    rooms = {f"call-{i}": TASK_A for i in range(sessions)}
    return Probe(tasks=task_list, sessions=rooms)
