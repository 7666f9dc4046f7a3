"""The work queue (SQS, through its event source mapping): one shard of a tick's work per record,
done within the invocation's time. A shard older than one period is dropped: the next tick has
planned that work again."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from drain_coordinator import wiring
from drain_coordinator.domain.schedule import Shard
from drain_coordinator.observability import logger, metrics, tracer

_processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def advance_shard(record: SQSRecord) -> dict[str, Any]:
        try:
            shard = Shard.from_body(record.body)
        except (ValueError, KeyError, TypeError) as exc:
            # Retrying cannot mend it: acknowledged, logged whole.
            logger.warning("shard rejected", extra={"reason": str(exc), "body": record.body[:1024]})
            return {"steps": [{"action": "reject", "reason": str(exc)}], "deferred": 0}
        result = wiring.scheduler().run_shard(shard, lambda: context.get_remaining_time_in_millis() / 1000)
        # One line a shard: which drains had their decision (heartbeat, wait, complete) here, when.
        logger.info(
            "shard advanced",
            extra={"decided": result.decided(), "decidedAt": result.decided_at, "deferred": result.deferred},
        )
        if result.deferred:
            logger.warning(
                "shard ran out of time: looks deferred to the next tick", extra={"deferred": result.deferred}
            )
        if result.failure is not None:
            raise result.failure  # reported as this record's failure; the rest of the batch stands
        return result.as_dict()

    answer = process_partial_response(
        event=event, record_handler=advance_shard, processor=_processor, context=context
    )
    return dict(answer)


__all__ = ["handler"]
