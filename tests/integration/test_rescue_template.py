"""The template's call-rescue parts: opt-in, the checkpoint table (KMS, TTL, the worker role
only), the coordinator's settings, the failed-rescue alarm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drainctl.template import Template, load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE)


def resources(template: Template) -> dict[str, Any]:
    return dict(template.body["Resources"])


def test_rescue_is_opt_in_and_the_checkpoint_store_exists_only_with_it(template: Template) -> None:
    # GIVEN the template's defaults
    params = template.body["Parameters"]
    # THEN rescue and rescue-on-deploy are off, and the key and table hang on CallRescue
    assert params["CallRescue"]["Default"] == "false"
    assert params["RescueOnDeploy"]["Default"] == "false"
    assert template.body["Conditions"]["CallRescueOn"] == {"Fn::Equals": [{"Ref": "CallRescue"}, "true"]}
    assert resources(template)["CheckpointTable"]["Condition"] == "CallRescueOn"
    assert resources(template)["CheckpointKey"]["Condition"] == "CallRescueOn"


def test_the_checkpoint_table_is_keyed_by_room_expires_and_is_encrypted_with_the_stacks_key(
    template: Template,
) -> None:
    # GIVEN the checkpoint table
    props = resources(template)["CheckpointTable"]["Properties"]
    # THEN one item per room, a TTL attribute, SSE with the stack's own rotating KMS key
    assert props["KeySchema"] == [{"AttributeName": "room", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Ref": "CheckpointKey"},
    }
    assert resources(template)["CheckpointKey"]["Properties"]["EnableKeyRotation"] is True


def test_only_the_worker_role_may_read_or_write_checkpoints(template: Template) -> None:
    # GIVEN the table's resource policy and every role of the stack
    policy = resources(template)["CheckpointTable"]["Properties"]["ResourcePolicy"]["Fn::If"]
    (deny,) = policy[1]["PolicyDocument"]["Statement"]
    # THEN every principal but the worker task role is denied reads and writes
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"} <= set(deny["Action"])
    assert deny["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}}
    }
    # AND the worker role is the one role granted the table
    granted = [
        logical_id
        for logical_id, body in resources(template).items()
        if body["Type"] == "AWS::IAM::Role" and "checkpoints" in str(body["Properties"].get("Policies", ""))
    ]
    assert granted == ["WorkerTaskRole"]


def test_the_functions_and_the_worker_get_the_rescue_settings(template: Template) -> None:
    # GIVEN the functions' shared environment and the worker container's
    env = template.body["Globals"]["Function"]["Environment"]["Variables"]
    (container,) = resources(template)["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"]
    worker_env = {e["Name"]: e["Value"] for e in container["Environment"]}
    # THEN the coordinator reads CallRescue, RescueOnDeploy and the agent name; the worker its table
    assert env["CALL_RESCUE"] == {"Ref": "CallRescue"}
    assert env["RESCUE_ON_DEPLOY"] == {"Ref": "RescueOnDeploy"}
    assert env["RESCUE_AGENT_NAME"] == {"Ref": "RescueAgentName"}
    assert worker_env["LIVEKIT_DRAIN_CHECKPOINT_TABLE"] == {
        "Fn::If": ["CallRescueOn", {"Ref": "CheckpointTable"}, ""]
    }


def test_failed_rescues_are_alarmed_with_what_to_do_for_each_reason(template: Template) -> None:
    # GIVEN the failed-rescue alarm
    props = resources(template)["RescueFailedAlarm"]["Properties"]
    # THEN it watches RescueFailed of this stack and says what to do for every reason
    assert props["MetricName"] == "RescueFailed"
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    for reason in ("no_capacity", "no_state", "dispatch_refused", "timeout"):
        assert reason in props["AlarmDescription"]
