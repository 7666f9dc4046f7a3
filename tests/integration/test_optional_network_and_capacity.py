"""template.yaml's optional parts: the functions in a VPC, and the worker's capacity provider with
its cluster association (which sets the cluster's whole list of capacity providers)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from drainctl.template import Template, TemplateError, load_template

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "LiveKitUrl": "wss://livekit.example.com",
    "LiveKitSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf",
}
WORKER_ON = {
    **BASE,
    "WorkerImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/livekit-drain-worker:1",
    "WorkerSubnetIds": "subnet-0123456789abcdef0",
}
NAMES = {
    "WorkerCapacityProvider": "livekit-drain-WorkerCapacityProvider-1A2B",
    "WorkerClusterCapacityProviders": "livekit-agents",
    "WorkerTaskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/livekit-drain-worker:1",
    "WorkerAutoScalingGroup": "livekit-agents-asg",
}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(ROOT / "template.yaml")


def _created(template: Template, params: Mapping[str, str], logical_id: str) -> bool:
    condition = template.body["Resources"][logical_id].get("Condition")
    return condition is None or bool(template.resolve({"Fn::If": [condition, True, False]}, params))


def _properties(template: Template, params: Mapping[str, str], logical_id: str) -> dict[str, Any]:
    resolved = template.resolve(
        template.body["Resources"][logical_id]["Properties"], params, resource_names=NAMES
    )
    assert isinstance(resolved, dict)
    return resolved


def test_the_functions_run_outside_any_vpc_by_default(template: Template) -> None:
    # GIVEN the defaults
    params = template.parameters(BASE)

    # WHEN the functions' VpcConfig is resolved
    vpc = template.resolve({"VpcConfig": template.body["Globals"]["Function"]["VpcConfig"]}, params)

    # THEN there is none (AWS::NoValue drops it)
    assert vpc == {}


def test_subnets_and_security_groups_put_every_function_in_the_vpc(template: Template) -> None:
    # GIVEN private subnets and a security group for the functions
    params = template.parameters(
        {
            **BASE,
            "FunctionSubnetIds": "subnet-0aaa0000000000000,subnet-0bbb0000000000000",
            "FunctionSecurityGroupIds": "sg-0ccc0000000000000",
        }
    )

    # WHEN the functions' VpcConfig (Globals: every function has it) is resolved
    vpc = template.resolve(template.body["Globals"]["Function"]["VpcConfig"], params)

    # THEN the functions are in those subnets, with that group
    assert vpc == {
        "SubnetIds": ["subnet-0aaa0000000000000", "subnet-0bbb0000000000000"],
        "SecurityGroupIds": ["sg-0ccc0000000000000"],
    }
    assert all(
        "VpcConfig" not in template.body["Resources"][f]["Properties"]
        for f in template.logical_ids("AWS::Serverless::Function")
    )


def test_function_subnets_without_security_groups_are_refused(template: Template) -> None:
    # GIVEN subnets for the functions but no security group (Lambda takes both or neither)
    # WHEN / THEN the template's rule refuses the values before a deploy
    with pytest.raises(TemplateError, match="FunctionSubnetIds needs FunctionSecurityGroupIds"):
        template.parameters({**BASE, "FunctionSubnetIds": "subnet-0aaa0000000000000"})


def test_the_worker_capacity_provider_is_associated_alone_by_default(template: Template) -> None:
    # GIVEN the packaged worker with the defaults
    params = template.parameters(WORKER_ON)

    # WHEN the association and the service are resolved
    association = _properties(template, params, "WorkerClusterCapacityProviders")
    service = _properties(template, params, "WorkerService")

    # THEN the cluster's list is the worker's provider alone, and the service uses it (after it)
    assert _created(template, params, "WorkerCapacityProvider")
    assert association["CapacityProviders"] == [NAMES["WorkerCapacityProvider"]]
    assert service["CapacityProviderStrategy"] == [
        {"CapacityProvider": NAMES["WorkerCapacityProvider"], "Weight": 1}
    ]
    assert "LaunchType" not in service
    assert {"Key": "livekit-drain:capacity-providers-of", "Value": "livekit-agents"} in service["Tags"]


def test_the_clusters_other_capacity_providers_are_kept_in_its_list(template: Template) -> None:
    # GIVEN a cluster that already uses two other capacity providers
    params = template.parameters({**WORKER_ON, "WorkerOtherCapacityProviders": "FARGATE,legacy-asg-provider"})

    # WHEN the association is resolved
    association = _properties(template, params, "WorkerClusterCapacityProviders")

    # THEN they stay in the list beside the worker's
    assert association["CapacityProviders"] == [
        NAMES["WorkerCapacityProvider"],
        "FARGATE",
        "legacy-asg-provider",
    ]


def test_without_the_capacity_provider_the_cluster_is_left_alone(template: Template) -> None:
    # GIVEN the packaged worker with CreateWorkerCapacityProvider=false
    params = template.parameters({**WORKER_ON, "CreateWorkerCapacityProvider": "false"})

    # WHEN the resources and the service are resolved
    service = _properties(template, params, "WorkerService")

    # THEN no capacity provider and no association are created, and the service uses the EC2
    # launch type on the group's instances
    assert not _created(template, params, "WorkerCapacityProvider")
    assert not _created(template, params, "WorkerClusterCapacityProviders")
    assert _created(template, params, "WorkerService")
    assert service["LaunchType"] == "EC2"
    assert "CapacityProviderStrategy" not in service
    assert {"Key": "livekit-drain:capacity-providers-of", "Value": "none"} in service["Tags"]
