"""EventBridge Scheduler's delivery, as the local world runs it: what a schedule hands its target.

The payload is the schedule's `Input` with the Scheduler's context attributes
(`<aws.scheduler.schedule-arn>`, `<aws.scheduler.scheduled-time>`, `<aws.scheduler.execution-id>`,
`<aws.scheduler.attempt-number>`) filled in for that invocation
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from drainctl.template import FunctionRoute, TemplateError

_CONTEXT: Final = ("schedule-arn", "scheduled-time", "execution-id", "attempt-number")


def scheduled_event(
    route: FunctionRoute,
    *,
    scheduled_time: datetime,
    execution_id: str,
    attempt_number: int = 1,
    schedule_arn: str | None = None,
) -> dict[str, Any]:
    """The payload EventBridge Scheduler hands the function of `route`: `input`, context filled in."""
    where = f"{route.logical_id}.{route.event_name}"
    if route.kind != "ScheduleV2" or route.input is None:
        raise TemplateError(f"{where} is not a schedule with Input")
    if scheduled_time.tzinfo is None:
        raise TemplateError("scheduled_time must be timezone-aware")
    if (arn := schedule_arn or route.source_arn) is None:
        raise TemplateError(f"{where}: the schedule has no Name")
    time = scheduled_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = route.input
    for keyword, value in zip(_CONTEXT, (arn, time, execution_id, attempt_number), strict=True):
        text = text.replace(f"<aws.scheduler.{keyword}>", str(value))
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{where}: Input is not JSON") from exc
    if not isinstance(payload, dict):
        raise TemplateError(f"{where}: Input is not an object")
    return payload
