"""LiveKit webhook, through a Lambda Function URL (auth NONE: the signature is checked here).

200 with what was done for an accepted event; 401 for anything unsigned, badly signed, signed
with another key or replayed (counted as `WebhookRefused`, no drain touched); 405 for a method
other than POST; 400 for a request that is no Function URL request at all.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths

from drain_coordinator import wiring
from drain_coordinator.observability import MetricName, logger, metrics, put_metric, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # With the first request, not the module's import (the cold start's is Powertools and boto3).
    from drain_coordinator.domain.webhooks import BadRequestError, parse_url_request
    from drain_coordinator.integrations.secrets import CredentialsError
    from drain_coordinator.integrations.store import StoreError
    from drain_coordinator.services.webhooks import WebhookRefusedError

    try:
        request = parse_url_request(event)
    except BadRequestError as exc:
        return _refused(400, "bad_request", str(exc))
    if request.method != "POST":
        return _refused(405, "method_not_allowed", request.method)
    try:
        outcome = wiring.webhook_service().receive(
            request.body, request.authorization, lambda: context.get_remaining_time_in_millis() / 1000
        )
    except WebhookRefusedError as exc:
        return _refused(401, exc.reason, exc.detail)
    except (CredentialsError, StoreError) as exc:
        # Our fault, not the caller's: 503 makes LiveKit retry, and reconcile looks anyway.
        logger.warning("webhook not taken: try again", extra={"error": str(exc)})
        return _response(503, {"action": "unavailable", "reason": type(exc).__name__})
    logger.info("webhook taken", extra={"action": outcome.action, "reason": outcome.reason})
    return _response(200, outcome.as_dict())


def _refused(status: int, reason: str, detail: str) -> dict[str, Any]:
    # The request is logged without its token or body: neither is ours to keep.
    logger.warning("webhook refused", extra={"status": status, "reason": reason, "detail": detail})
    put_metric(MetricName.WEBHOOK_REFUSED)
    return _response(status, {"action": "refuse", "reason": reason})


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
