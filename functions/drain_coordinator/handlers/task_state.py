"""EventBridge "ECS Task State Change" (desired STOPPED) -> follow the stop; on STOPPED, judge it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths

from drain_coordinator import wiring
from drain_coordinator.handlers._answers import rejected, skipped
from drain_coordinator.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # With the first event, not the module's import (the cold start's is Powertools and boto3).
    from drain_coordinator.domain.events import EventRejectedError, Skip
    from drain_coordinator.domain.task_stops import parse_task_state_event

    settings = wiring.settings()
    try:
        change = parse_task_state_event(event, cluster=settings.cluster, family=settings.worker_task_family)
    except EventRejectedError as exc:
        return rejected(event, exc)
    if isinstance(change, Skip):
        return skipped(change)
    return {"steps": wiring.task_tracker().on_change(change)}
