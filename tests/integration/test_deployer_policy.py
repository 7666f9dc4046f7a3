"""docs/deployer-policy.json lets a deployer run `sam deploy` and `sam delete` of template.yaml.

The actions each resource needs are not guessed: they are the create, read, update and delete
handler permissions of each resource type's CloudFormation registry schema (as cfn-lint ships
them), for every resource type of the template SAM synthesizes (with every optional part on),
plus the SAM CLI's own stack (`aws-sam-cli-managed-default`: an S3 bucket and its policy) and the
calls the SAM CLI and `drainctl alarms test` make themselves.
https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html#schema-properties-handlers
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session
import cfnlint
import pytest

from tests.integration.test_security import synthesize

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "docs" / "deployer-policy.json"
SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
REGION = "us-east-1"

# Every optional part on: the packaged worker, its capacity provider, the rebalance drain, call
# rescue (its key and checkpoint table), an alarm email, the functions in a VPC.
EVERYTHING_ON = {
    "RebalanceDrain": "true",
    "CallRescue": "true",
    "WorkerImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/livekit-drain-worker:1",
    "WorkerSubnetIds": "subnet-0123456789abcdef0",
    "WorkerTaskProtection": "true",
    "AlarmEmail": "oncall@example.com",
    "FunctionSubnetIds": "subnet-0123456789abcdef0",
    "FunctionSecurityGroupIds": "sg-0123456789abcdef0",
}
# The SAM CLI's managed stack (`sam deploy --resolve-s3`) holds the uploaded code.
SAM_CLI_STACK_TYPES = {"AWS::S3::Bucket", "AWS::S3::BucketPolicy"}
# What the SAM CLI calls itself (samcli/lib/deploy/deployer.py, samcli/lib/package/s3_uploader.py,
# samcli/commands/delete/delete_context.py), what CloudFormation needs of the caller to resolve an
# SSM parameter type (WorkerAmiId), and what `drainctl alarms test` calls.
CALLER_ACTIONS = {
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DeleteChangeSet",
    "cloudformation:ListChangeSets",
    "cloudformation:CreateStack",
    "cloudformation:UpdateStack",
    "cloudformation:DeleteStack",
    "cloudformation:RollbackStack",
    "cloudformation:DescribeStacks",
    "cloudformation:DescribeStackEvents",
    "cloudformation:ListStackResources",
    "cloudformation:GetTemplate",
    "cloudformation:GetTemplateSummary",
    "s3:PutObject",
    "s3:GetObject",
    "s3:GetObjectTagging",
    "s3:DeleteObject",
    "s3:ListBucket",
    "ssm:GetParameters",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:SetAlarmState",
    "sns:ListSubscriptionsByTopic",
}
# Handler permissions for features the template does not use, left out of the policy on purpose.
NOT_USED = {
    "kinesis:*": "DynamoDB Kinesis streaming destinations",
    "dynamodb:*Kinesis*": "DynamoDB Kinesis streaming destinations",
    "dynamodb:*Replica*": "global tables",
    "dynamodb:*Import*": "table imports",
    "dynamodb:*ContributorInsights*": "contributor insights",
    "dynamodb:*ResourcePolicy*": "table resource policies",
    "dynamodb:BatchWriteItem": "table imports",
    "dynamodb:*Item": "table imports",
    "dynamodb:Query": "table imports",
    "dynamodb:Scan": "table imports",
    "firehose:*": "log delivery to Firehose",
    "elasticloadbalancing:*": "load balancers (the workers take no inbound traffic)",
    "autoscaling:*LoadBalancer*": "load balancers",
    "autoscaling:*TrafficSources": "load balancers",
    "autoscaling:*NotificationConfiguration": "Auto Scaling notifications",
    "autoscaling:*InstanceRefresh": "instance refreshes started by CloudFormation",
    "vpc-lattice:*": "ECS VPC Lattice",
    "elasticfilesystem:*": "EFS volumes",
    "s3files:*": "EFS volumes",
    "managed-fleets:*": "ECS Managed Instances",
    "lambda:PassCapacityProvider": "Lambda managed instances",
    "lambda:*CodeSigning*": "code signing",
    "lambda:*ScalingConfig": "Lambda managed instances",
    "lambda:*RecursionConfig": "recursive loop detection settings",
    "lambda:*RuntimeManagementConfig": "runtime management settings",
    "lambda:AssociateRuntimeAlias": "runtime management settings",
    "lambda:*FunctionConcurrency": "reserved concurrency",
    "logs:*DataProtectionPolicy": "log data protection",
    "logs:*IndexPolicy": "log field indexes",
    "logs:*IndexPolicies": "log field indexes",
    "logs:*KmsKey": "log groups under KMS",
    "logs:*ResourcePolicy": "log resource policies",
    "logs:*ResourcePolicies": "log resource policies",
    "logs:CreateLogDelivery": "vended log delivery",
    "logs:PutBearerTokenAuthentication": "bearer token authentication",
    "logs:PutLogGroupDeletionProtection": "log group deletion protection",
    "logs:CreateLogStream": "writing log events (the functions do, with their roles)",
    "logs:PutLogEvents": "writing log events (the functions do, with their roles)",
    "logs:DescribeLogStreams": "writing log events",
    "sns:*DataProtectionPolicy": "SNS message data protection",
    "iam:*GroupPolicy": "IAM groups",
    "iam:*UserPolicy": "IAM users",
    "iam:*PermissionsBoundary": "permission boundaries",
    "s3tables:*": "S3 Tables",
    "s3:*MetadataTableConfiguration": "S3 metadata tables",
    "s3:UpdateBucketMetadata*": "S3 metadata tables",
    "s3:*Analytics*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*Inventory*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*IntelligentTiering*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*Metrics*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*Replication*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*Website*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*Accelerate*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*ObjectLock*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*BucketAbac": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*Cors": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*CORS": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*Lifecycle*": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*BucketAcl": "S3 bucket features the SAM CLI bucket does not use",
    "s3:PutObjectAcl": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*BucketNotification": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*BucketLogging": "S3 bucket features the SAM CLI bucket does not use",
    "s3:*BucketOwnershipControls": "S3 bucket features the SAM CLI bucket does not use",
    "s3:REST.PUT.OBJECT": "not an IAM action (an S3 access log operation in the schema)",
    "s3:GetObjectMetadata": "S3 metadata tables",
    "s3:GetObjectVersion": "object versions",
}


@cache
def _synthesized_types() -> frozenset[str]:
    resources = json.loads(synthesize(EVERYTHING_ON))["Resources"]
    return frozenset(r["Type"] for r in resources.values())


def _schema(resource_type: str) -> Mapping[str, Any]:
    index = json.loads((SCHEMAS / "providers" / f"{REGION}.json").read_text())
    loaded = json.loads((SCHEMAS / "resources" / f"{index[resource_type]}.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


def handler_permissions(resource_type: str) -> set[str]:
    handlers = _schema(resource_type).get("handlers", {})
    assert handlers, f"{resource_type} has no handlers in its schema: its permissions cannot be derived"
    return {
        p
        for kind in ("create", "read", "update", "delete")
        for p in handlers.get(kind, {}).get("permissions", [])
    }


def needed_actions() -> set[str]:
    needed = set(CALLER_ACTIONS)
    for resource_type in _synthesized_types() | SAM_CLI_STACK_TYPES:
        needed |= handler_permissions(resource_type)
    return {a for a in needed if not any(fnmatch.fnmatchcase(a, pattern) for pattern in NOT_USED)}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed_patterns(document: Mapping[str, Any]) -> Iterator[str]:
    for statement in document["Statement"]:
        if statement["Effect"] == "Allow":
            yield from _as_list(statement["Action"])


def _covered(action: str, patterns: list[str]) -> bool:
    # IAM matches action names case-insensitively; a handler's "ec2:Describe*" is covered by the
    # same wildcard, or by its own pattern in the policy.
    return any(
        fnmatch.fnmatchcase(action.lower(), p.lower()) or action.lower() == p.lower() for p in patterns
    )


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    loaded = json.loads(POLICY.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_policy_allows_every_action_the_templates_resources_and_the_sam_cli_need(
    policy: dict[str, Any],
) -> None:
    # GIVEN what each resource type of the synthesized stack needs, and what the SAM CLI calls
    needed = needed_actions()
    assert "ecs:PutClusterCapacityProviders" in needed  # derived, not listed by hand
    assert "kms:PutKeyPolicy" in needed

    # WHEN the policy's allowed actions are matched against it
    patterns = list(allowed_patterns(policy))
    missing = sorted(a for a in needed if not _covered(a, patterns))

    # THEN nothing is missing
    assert missing == []


def test_the_policy_allows_nothing_the_template_does_not_need(policy: dict[str, Any]) -> None:
    # GIVEN the needed actions
    needed = needed_actions()

    # WHEN / THEN each action the policy names is one of them, a wildcard a handler asks for, or a
    # wildcard (kept for IAM's size limit) every API operation of which is needed
    extra = sorted(p for p in allowed_patterns(policy) if p not in needed and not _only_needed(p, needed))
    assert extra == []


def _only_needed(pattern: str, needed: set[str]) -> bool:
    """True for a wildcard whose every match among the service's API operations is needed."""
    if "*" not in pattern or ":" not in pattern:
        return False
    service, _, name = pattern.partition(":")
    try:
        operations = botocore.session.get_session().get_service_model(service).operation_names
    except botocore.exceptions.UnknownServiceError:
        return False
    matched = [f"{service}:{op}" for op in operations if fnmatch.fnmatchcase(op, name)]
    return bool(matched) and all(action in needed for action in matched)


def test_the_policy_is_a_valid_identity_policy_document(policy: dict[str, Any]) -> None:
    # GIVEN the policy as IAM would take it
    # WHEN / THEN it has a version, and every statement an effect, actions and resources
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny"), statement
        assert _as_list(statement["Action"]), statement
        assert _as_list(statement["Resource"]), statement
    assert len(json.dumps(policy, separators=(",", ":"))) <= 6144, "over IAM's managed policy size limit"


def test_a_policy_missing_one_handler_permission_is_caught(policy: dict[str, Any]) -> None:
    # GIVEN the policy without the capacity provider association's permission
    for statement in policy["Statement"]:
        statement["Action"] = [
            a for a in _as_list(statement["Action"]) if a != "ecs:PutClusterCapacityProviders"
        ]

    # WHEN / THEN the check names it
    patterns = list(allowed_patterns(policy))
    assert [a for a in sorted(needed_actions()) if not _covered(a, patterns)] == [
        "ecs:PutClusterCapacityProviders"
    ]
