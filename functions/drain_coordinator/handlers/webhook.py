"""LiveKit webhook, through a Lambda Function URL (auth NONE: the signature is checked here).

200 with what was done for an accepted event; 401 for anything unsigned, badly signed, signed
with another key or replayed (counted as `WebhookRefused`, no drain touched); 405 for a method
other than POST; 400 for a request that is no Function URL request at all.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from drain_coordinator import wiring
from drain_coordinator.integrations.secrets import CredentialsError
from drain_coordinator.integrations.store import StoreError
from drain_coordinator.observability import MetricName, logger, metrics, put_metric, tracer
from drain_coordinator.services.webhooks import WebhookRefusedError

# Sample (Function URL, payload format 2.0; headers arrive lower-cased):
# {"version": "2.0", "routeKey": "$default", "rawPath": "/",
#  "headers": {"authorization": "eyJhbGciOiJIUzI1NiIs...", "content-type": "application/webhook+json", ...},
#  "requestContext": {"http": {"method": "POST", "path": "/", ...}, "requestId": "...", ...},
#  "body": "{\"event\":\"participant_left\",\"room\":{...},\"participant\":{...},\"id\":\"EV_...\",...}",
#  "isBase64Encoded": false}


class BadRequestError(ValueError):
    """The invocation is no Function URL request."""


@dataclass(frozen=True, slots=True)
class UrlRequest:
    method: str
    authorization: str | None
    body: str


def parse_url_request(event: dict[str, Any]) -> UrlRequest:
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    if not isinstance(method, str):
        raise BadRequestError("no requestContext.http.method")
    headers = event.get("headers") or {}
    if not isinstance(headers, dict):
        raise BadRequestError("headers is not an object")
    # Function URLs lower-case header names already; other callers may not.
    lowered = {str(k).lower(): v for k, v in headers.items()}
    authorization = lowered.get("authorization")
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        raise BadRequestError("body is not a string")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BadRequestError("body is not base64 of UTF-8 text") from exc
    return UrlRequest(
        method=method.upper(),
        authorization=authorization if isinstance(authorization, str) else None,
        body=raw,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
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
