"""Every minute (EventBridge Scheduler): plan the tick (adopt instances held in `Terminating:Wait`
without a drain, advance every open drain, follow every stopping worker task), do the most
urgent shard here and send the rest to the work queue (services/schedule.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drain_coordinator import wiring
from drain_coordinator.observability import MetricName, logger, metrics, put_metric, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# What EventBridge Scheduler (or a classic EventBridge schedule) sends; an empty payload is a
# manual `aws lambda invoke`. Reconcile reads nothing else from its event.
_SCHEDULE_SOURCES = ("aws.scheduler", "aws.events")


class TriggerRejectedError(ValueError):
    """The invocation is no schedule tick."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        check_trigger(event)
    except TriggerRejectedError as exc:
        logger.warning("event rejected", extra={"reason": str(exc), "event": event})
        put_metric(MetricName.EVENTS_REJECTED)
        return {"steps": [{"action": "reject", "reason": str(exc)}], "deferred": 0}
    result = wiring.scheduler().tick(lambda: context.get_remaining_time_in_millis() / 1000)
    if result.deferred:
        logger.warning(
            "reconcile ran out of time: looks deferred to the next tick", extra={"deferred": result.deferred}
        )
    if result.failure is not None:
        # Every other unit was done; the invocation still fails, so the error is seen
        # (function-errors alarm, the dead-letter queue) instead of being swallowed.
        raise result.failure
    return result.as_dict()


def check_trigger(event: Any) -> None:
    if not isinstance(event, Mapping):
        raise TriggerRejectedError(f"event is a {type(event).__name__}, not an object")
    if not event:
        return
    source, detail_type = event.get("source"), event.get("detail-type")
    if source not in _SCHEDULE_SOURCES or detail_type != "Scheduled Event":
        raise TriggerRejectedError(f"not a schedule tick: {str(source)[:256]!r} / {str(detail_type)[:256]!r}")


__all__ = ["TriggerRejectedError", "check_trigger", "handler"]
