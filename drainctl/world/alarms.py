"""The template's CloudWatch alarms, evaluated on the metrics the handlers really emitted (EMF).

The local world has no CloudWatch; this is the part of it the alarms need: datapoints from the
handlers' EMF output, bucketed by period on the virtual clock, compared the way an alarm does
(M of N periods breaching). An alarm that names a metric, namespace or dimension set the code
does not emit simply never fires here: the tests rely on that.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from drainctl.template import Template
from drainctl.world.lambda_runtime import Invocation

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@dataclass(frozen=True)
class AlarmSpec:
    logical_id: str
    name: str
    namespace: str
    metric: str
    dimensions: Mapping[str, str]
    statistic: str
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    description: str


@dataclass(frozen=True)
class Datapoint:
    t: float
    namespace: str
    metric: str
    dimensions: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Firing:
    alarm: AlarmSpec
    t: float  # the end of the first period in which the alarm went to ALARM
    value: float


def alarm_specs(template: Template) -> list[AlarmSpec]:
    """Single-metric alarms of the template (metric-math alarms watch AWS's own metrics)."""
    specs = []
    for logical_id in template.logical_ids("AWS::CloudWatch::Alarm"):
        props = template.resource(logical_id)
        if "MetricName" not in props:
            continue
        specs.append(
            AlarmSpec(
                logical_id=logical_id,
                name=str(props.get("AlarmName", logical_id)),
                namespace=str(props["Namespace"]),
                metric=str(props["MetricName"]),
                dimensions={str(d["Name"]): str(d["Value"]) for d in props.get("Dimensions", [])},
                statistic=str(props.get("Statistic", "Sum")),
                period=int(props.get("Period", 60)),
                evaluation_periods=int(props.get("EvaluationPeriods", 1)),
                datapoints_to_alarm=int(props.get("DatapointsToAlarm", props.get("EvaluationPeriods", 1))),
                threshold=float(props["Threshold"]),
                comparison=str(props["ComparisonOperator"]),
                description=" ".join(str(props.get("AlarmDescription", "")).split()),
            )
        )
    return specs


def datapoints(invocations: Iterable[Invocation]) -> list[Datapoint]:
    """Every metric value the handlers printed as EMF, at the virtual time of its invocation."""
    points = []
    for invocation in invocations:
        for line in invocation.output.splitlines():
            blob = _emf(line)
            if blob is None:
                continue
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for dimension_set in directive["Dimensions"]:
                    dims = {name: str(blob[name]) for name in dimension_set}
                    for metric in directive["Metrics"]:
                        values = blob[metric["Name"]]
                        for value in values if isinstance(values, list) else [values]:
                            points.append(
                                Datapoint(
                                    invocation.t, directive["Namespace"], metric["Name"], dims, float(value)
                                )
                            )
    return points


def firing(specs: Iterable[AlarmSpec], points: list[Datapoint]) -> list[Firing]:
    fired = []
    for spec in specs:
        buckets: dict[int, list[float]] = {}
        for p in points:
            # CloudWatch matches a metric by its exact dimension set.
            if (
                p.namespace == spec.namespace
                and p.metric == spec.metric
                and dict(p.dimensions) == dict(spec.dimensions)
            ):
                buckets.setdefault(int(p.t // spec.period), []).append(p.value)
        first = _first_alarm(spec, buckets)
        if first is not None:
            fired.append(first)
    return sorted(fired, key=lambda f: f.t)


def _first_alarm(spec: AlarmSpec, buckets: dict[int, list[float]]) -> Firing | None:
    compare = _COMPARE[spec.comparison]
    breaching = {
        k: _stat(spec.statistic, v)
        for k, v in buckets.items()
        if compare(_stat(spec.statistic, v), spec.threshold)
    }
    for end in sorted(breaching):
        window = range(end - spec.evaluation_periods + 1, end + 1)
        if sum(1 for k in window if k in breaching) >= spec.datapoints_to_alarm:
            return Firing(spec, (end + 1) * spec.period, breaching[end])
    return None


def _stat(statistic: str, values: list[float]) -> float:
    if statistic == "Maximum":
        return max(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Average":
        return sum(values) / len(values)
    return sum(values)


def _emf(line: str) -> dict[str, Any] | None:
    if not line.startswith("{") or '"_aws"' not in line:
        return None
    blob = json.loads(line)
    return blob if isinstance(blob, dict) and "CloudWatchMetrics" in blob.get("_aws", {}) else None
