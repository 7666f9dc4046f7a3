"""EventBridge "EC2 Instance-terminate Lifecycle Action" -> open a drain and look at it at once.

Also routed here: "EC2 Spot Instance Interruption Warning" (DRAINING at once; the reclaim comes
in two minutes whatever anyone does) and, when REBALANCE_DRAIN is on, "EC2 Instance Rebalance
Recommendation" (the instance is terminated in its group so a normal drain starts early); and,
with a launch hook (a warm pool with ReuseOnScaleIn), "EC2 Instance-launch Lifecycle Action"
(completed; an instance back from the warm pool is set ACTIVE in ECS first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths

from drain_coordinator import wiring
from drain_coordinator.handlers._answers import rejected, skipped
from drain_coordinator.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    # The coordinator (and its services) is built, and imported, at the first event to act on.
    from drain_coordinator.services.drains import DrainStep


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    # The event types (frozen dataclasses) and what the coordinator needs come with the first
    # event, not with the module: the cold start's import is Powertools and boto3.
    from drain_coordinator.domain.events import (
        EventRejectedError,
        LaunchRequested,
        RebalanceRecommended,
        Skip,
        SpotInterruption,
        parse_lifecycle_function_event,
    )

    settings = wiring.settings()
    try:
        trigger = parse_lifecycle_function_event(
            event,
            asg_name=settings.asg_name,
            hook_name=settings.hook_name,
            launch_hook_name=settings.launch_hook_name,
        )
    except EventRejectedError as exc:
        return rejected(event, exc)
    if isinstance(trigger, Skip):
        return skipped(trigger)
    coordinator = wiring.coordinator()
    steps: list[DrainStep]
    if isinstance(trigger, SpotInterruption):
        steps = coordinator.spot_interruption(trigger, settings.asg_name, settings.hook_name)
    elif isinstance(trigger, LaunchRequested):
        steps = coordinator.instance_launched(trigger)
    elif isinstance(trigger, RebalanceRecommended):
        if not settings.rebalance_drain:
            logger.info(
                "rebalance recommendation ignored: REBALANCE_DRAIN is off",
                extra={"eventId": trigger.event_id},
            )
            return {
                "steps": [
                    {"action": "skip", "instance_id": trigger.instance_id, "reason": "rebalance_drain_off"}
                ]
            }
        steps = coordinator.rebalance(trigger, settings.asg_name)
    else:
        steps = coordinator.start_drain(trigger)
    return {"steps": [step.as_dict() for step in steps]}
