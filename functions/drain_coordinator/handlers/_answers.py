"""The answers every EventBridge handler gives an event it will not act on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drain_coordinator.observability import MetricName, logger, put_metric

if TYPE_CHECKING:
    from drain_coordinator.domain.events import EventRejectedError, Skip


def rejected(event: Any, exc: EventRejectedError) -> dict[str, Any]:
    """Logged whole and acknowledged: a retry would fail the same way, so nothing is raised."""
    logger.warning("event rejected", extra={"reason": str(exc), "event": event})
    put_metric(MetricName.EVENTS_REJECTED)
    return {"steps": [{"action": "reject", "reason": str(exc)}]}


def skipped(skip: Skip) -> dict[str, Any]:
    """A well-formed event that is not ours: logged and acknowledged, never retried."""
    logger.info("event skipped", extra={"reason": skip.reason, "eventId": skip.event_id})
    return {"steps": [{"action": "skip", "reason": skip.reason}]}
