"""Every minute (EventBridge Scheduler): advance every open drain, most urgent deadline first,
then follow every stopping worker task (sample its calls, warn before a kill, catch a lost STOPPED)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from drain_coordinator import wiring
from drain_coordinator.integrations.autoscaling import AutoScalingError
from drain_coordinator.integrations.store import StoreError
from drain_coordinator.observability import logger, metrics, tracer

# Stop taking new drains when less than this is left of the invocation: the rest wait one period
# (the open-drains index is ordered by deadline, so the next tick starts with the most urgent).
_RESERVE_MILLIS = 10_000


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    coordinator = wiring.coordinator()
    steps: list[dict[str, Any]] = []
    deferred = 0
    for record in coordinator.store_open_drains():
        if context.get_remaining_time_in_millis() < _RESERVE_MILLIS:
            deferred += 1
            continue
        try:
            steps.append(coordinator.advance(record).as_dict())
        except (AutoScalingError, StoreError) as exc:
            # One drain's failure must not starve the others; it is looked at again next tick.
            logger.exception("drain not advanced this tick", extra={"instanceID": record.instance_id})
            steps.append({"action": "error", "instance_id": record.instance_id, "error": str(exc)})
        finally:
            logger.remove_keys(["asgName", "lifecycleHookName", "lifecycleActionToken", "instanceID"])
    tracker = wiring.task_tracker()
    for stop in tracker.open_stops():
        if context.get_remaining_time_in_millis() < _RESERVE_MILLIS:
            deferred += 1
            continue
        try:
            steps.append(tracker.follow(stop))
        except StoreError as exc:
            logger.exception("task stop not followed this tick", extra={"taskArn": stop.task_arn})
            steps.append({"action": "error", "task_arn": stop.task_arn, "error": str(exc)})
        finally:
            logger.remove_keys(["taskArn", "containerInstanceArn"])
    if deferred:
        logger.warning(
            "reconcile ran out of time: drains deferred to the next tick",
            extra={"deferred": deferred},
        )
    return {"steps": steps, "deferred": deferred}
