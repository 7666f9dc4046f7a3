"""The template's alarms and dashboard watch exactly the metrics the code emits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drain_coordinator.domain.records import DrainOutcome
from drain_coordinator.domain.task_stops import Verdict
from drain_coordinator.observability import NAMESPACE, SERVICE, STACK_DIMENSION, MetricName
from drainctl.template import Template, load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
OUTCOMES = {o.value for o in DrainOutcome} | {v.value for v in Verdict}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE)


def own_alarms(template: Template) -> list[dict[str, object]]:
    alarms = []
    for logical_id in template.logical_ids("AWS::CloudWatch::Alarm"):
        props = template.body["Resources"][logical_id]["Properties"]
        if props.get("Namespace") == NAMESPACE:
            alarms.append(props)
    return alarms


def test_every_alarm_on_our_namespace_names_an_emitted_metric_and_dimension_set(template: Template) -> None:
    alarms = own_alarms(template)
    assert {a["MetricName"] for a in alarms} >= {
        "ForcedKills",
        "DroppedSessions",
        "DrainCompleted",
        "ProbeErrors",
    }
    for alarm in alarms:
        assert alarm["MetricName"] in {m.value for m in MetricName}
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}  # type: ignore[attr-defined]
        assert dimensions["service"] == SERVICE
        # each alarm watches its own stack's metrics only
        assert dimensions[STACK_DIMENSION] == {"Ref": "AWS::StackName"}
        # only DrainCompleted carries another dimension, and it is one of the outcomes the code sets
        extra = set(dimensions) - {"service", STACK_DIMENSION}
        if alarm["MetricName"] == MetricName.DRAIN_COMPLETED:
            assert extra == {"Outcome"}
            assert dimensions["Outcome"] in OUTCOMES
        else:
            assert extra == set()


def test_the_alarms_the_issue_asks_for_exist_with_actions_and_descriptions(template: Template) -> None:
    resources = template.body["Resources"]
    for logical_id in (
        "ForcedKillsAlarm",
        "DroppedSessionsAlarm",
        "DeadlineDrainsAlarm",
        "ProbeErrorsAlarm",
        "DeadLetterQueueAlarm",
        "FunctionErrorsAlarm",
    ):
        props = resources[logical_id]["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert len(props["AlarmDescription"]) > 150  # what happened and what to do
    assert resources["ProbeErrorsAlarm"]["Properties"]["DatapointsToAlarm"] >= 3  # sustained, not one blip


def test_the_dashboard_only_names_emitted_metrics(template: Template) -> None:
    body = template.body["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r'"LiveKitDrain", "(\w+)"', body)) | set(
        re.findall(r'MetricName=\\"(\w+)\\"', body)
    )
    assert names
    assert names <= {m.value for m in MetricName}
    # the body is JSON once CloudFormation substitutes it
    widgets = json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "substituted", body))["widgets"]
    assert len(widgets) >= 5


def test_refused_webhooks_have_their_alarm(template: Template) -> None:
    # GIVEN the alarm on the webhook function's refusals
    props = template.body["Resources"]["WebhookRefusedAlarm"]["Properties"]

    # WHEN / THEN it watches the metric the handler emits, notifies, and says what to do
    assert props["MetricName"] == MetricName.WEBHOOK_REFUSED
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert "webhook.api_key" in " ".join(props["AlarmDescription"].split())
