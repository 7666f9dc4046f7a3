"""Powertools Logger/Metrics/Tracer, and the metric names: one source of truth.

The template's alarms and dashboard name these metrics; tests check that every name they use
is one defined here.
"""

from __future__ import annotations

import os
import warnings
from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "LiveKitDrain"
SERVICE = "livekit-drain"
# Every metric also carries the stack's name, and every alarm of a stack watches its own: two
# stacks in one account (staging and prod) never fire each other's alarms. The template sets
# STACK_NAME to AWS::StackName; settings.py validates it at cold start.
STACK_DIMENSION = "Stack"
STACK_NAME_VARIABLE = "STACK_NAME"

# A reconcile tick with no open drain has nothing to report: that is not worth a warning a minute.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


class MetricName(StrEnum):
    DRAIN_STARTED = "DrainStarted"
    DRAIN_COMPLETED = "DrainCompleted"  # dimension Outcome
    DRAIN_SECONDS = "DrainSeconds"
    HEARTBEATS = "Heartbeats"
    SESSIONS_REMAINING = "SessionsRemaining"
    FORCED_KILLS = "ForcedKills"
    DROPPED_SESSIONS = "DroppedSessions"
    PROBE_ERRORS = "ProbeErrors"
    EVENTS_REJECTED = "EventsRejected"
    WEBHOOK_REFUSED = "WebhookRefused"  # unsigned, badly signed, other key, or replayed
    DRAINS_DEFERRED = "DrainsDeferred"  # open drains not looked at for more than one period
    # a drained instance that is no ECS container instance of the cluster: released at once
    INSTANCES_NOT_REGISTERED = "InstancesNotRegistered"
    # an instance back from the warm pool whose container instance was set ACTIVE again
    INSTANCES_REACTIVATED = "InstancesReactivated"
    # call rescue: a doomed call handed to a healthy worker (functions/drain_coordinator/services/rescue.py)
    CALLS_RESCUED = "CallsRescued"
    RESCUE_FAILED = "RescueFailed"  # dimension Reason
    RESCUE_GAP_SECONDS = "RescueGapSeconds"  # from the dispatch to the new agent's join
    # a room held by a drain's worker that the room index did not name (its webhook was lost)
    INDEX_MISSES = "IndexMisses"


UNITS: dict[MetricName, MetricUnit] = {
    MetricName.DRAIN_SECONDS: MetricUnit.Seconds,
    MetricName.RESCUE_GAP_SECONDS: MetricUnit.Seconds,
}


def stack_name() -> str:
    """The stack this function belongs to (read when a metric is emitted: a cold start's own)."""
    return os.environ.get(STACK_NAME_VARIABLE) or SERVICE


def put_metric(name: MetricName, value: float = 1) -> None:
    stack = stack_name()
    if metrics.default_dimensions.get(STACK_DIMENSION) != stack:
        # Powertools Metrics default dimensions: on every metric of every flush from now on.
        metrics.set_default_dimensions(**{STACK_DIMENSION: stack})
    metrics.add_metric(name=name.value, unit=UNITS.get(name, MetricUnit.Count), value=value)


def flush_metrics() -> None:
    """Print what this invocation has gathered so far (EMF): a timeout later loses none of it."""
    if metrics.metric_set:
        metrics.flush_metrics()


def put_metric_by(name: MetricName, dimension: str, dimension_value: str, value: float = 1) -> None:
    """A metric with a dimension of its own, flushed alone so it does not leak onto the others."""
    _put_single(name, value, {dimension: dimension_value})


def put_metric_for_service(name: MetricName, cluster: str, service: str, value: float = 1) -> None:
    """The same metric again, by cluster and ECS service, to tell which service lost calls.

    The alarms watch the service-wide metric (one alarm for every service); this copy is for
    the dashboard and for drilling down.
    """
    _put_single(name, value, {"ClusterName": cluster, "ServiceName": service or "standalone"})


def _put_single(name: MetricName, value: float, dimensions: dict[str, str]) -> None:
    with single_metric(
        name=name.value,
        unit=UNITS.get(name, MetricUnit.Count),
        value=value,
        namespace=NAMESPACE,
    ) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name=STACK_DIMENSION, value=stack_name())
        for dimension, dimension_value in dimensions.items():
            metric.add_dimension(name=dimension, value=dimension_value)
