"""Security: least-privilege IAM in the template SAM synthesizes, the LiveKit secret never in a log,
the drain table and the dead-letter queue encrypted, the queue alarmed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

from drainctl.template import Template, load_template
from drainctl.world.fleet import CallEnd
from drainctl.world.world import World
from tests.integration.test_world_end_to_end import run_until_released, scale_in, start_calls

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
REGION, ACCOUNT = "us-east-1", "123456789012"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:livekit-api-AbCdEf"
TABLE_NAME = "livekit-drain-DrainTable-1A2B3C"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/livekit-agents"
GROUP_ARN = (
    f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/livekit-agents-asg"
)
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE_NAME}"
DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:livekit-drain-DeadLetterQueue"
WORK_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:livekit-drain-work"
RECONCILE_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:livekit-drain-reconcile"

TASKS_OF_THE_CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/livekit-agents/*"

# Every resource a statement of the stack may name, and nothing wider.
OWN_RESOURCES = [
    GROUP_ARN,
    CLUSTER_ARN,
    TASKS_OF_THE_CLUSTER,
    TABLE_ARN,
    f"{TABLE_ARN}/index/*",
    SECRET_ARN,
    DLQ_ARN,
    WORK_QUEUE_ARN,
    RECONCILE_ARN,
    f"{RECONCILE_ARN}:*",
]
# Actions IAM cannot scope to a resource: "*" is the only form they take.
NO_RESOURCE_LEVEL_ACTIONS = {
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "ecs:DescribeTaskDefinition",
}
# AWS managed policies the stack attaches: SAM's for logs and X-Ray, ECS's for the worker hosts.
# SAM attaches AWSLambdaVPCAccessExecutionRole to every function whose VpcConfig is set, and an
# !If on FunctionsInVpc counts as set: outside a VPC it is granted and unused (network
# interfaces only; https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html).
AWS_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    # SAM's for an SQS event source (the advance function's work queue): receive, delete and
    # read the attributes of the queue its event source mapping polls.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/livekit-drain-DrainCoordinatorPolicy"

BASE_PARAMS = {"LiveKitUrl": "wss://livekit.example.com", "LiveKitSecretArn": SECRET_ARN}
# The stack as the defaults make it, and with every optional part on (the packaged worker, the
# rebalance drain).
SCENARIOS = {
    "defaults": BASE_PARAMS,
    "everything on": {
        **BASE_PARAMS,
        "RebalanceDrain": "true",
        "WorkerImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/livekit-drain-worker:1",
        "WorkerSubnetIds": "subnet-0123456789abcdef0",
        "WorkerTaskProtection": "true",
    },
}

# SAM's own translator (in the SAM CLI's virtualenv), as `sam deploy` runs it; code locations
# stand in for what `sam package` uploads. Its second argument is the parameter values (JSON).
_TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
template = yaml_parse(open(sys.argv[1]).read())
template["Globals"]["Function"]["CodeUri"] = "s3://bucket/functions.zip"
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::LayerVersion":
        resource["Properties"]["ContentUri"] = "s3://bucket/layer.zip"
class NoManagedPolicies:
    def load(self):
        return {}
print(json.dumps(transform(template, json.loads(sys.argv[2]), NoManagedPolicies())))
"""


def synthesize(params: Mapping[str, str] | None = None) -> str:
    """template.yaml as plain CloudFormation (JSON text), translated by SAM's own translator."""
    if not SAM_PYTHON.exists():
        pytest.fail(f"{SAM_PYTHON.relative_to(ROOT)} is missing: `make dev` creates it")
    result = subprocess.run(  # noqa: S603 - a fixed command line
        [str(SAM_PYTHON), "-c", _TRANSLATE, str(ROOT / "template.yaml"), json.dumps(dict(params or {}))],
        env={"AWS_DEFAULT_REGION": REGION, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("synthesized") / "template.json"
    path.write_text(synthesize())
    return load_template(path)


def bound(template: Template, params: Mapping[str, str]) -> Template:
    return template.with_context(
        params=template.parameters(params),
        resource_names={
            "DrainTable": TABLE_NAME,
            "DrainCoordinatorPolicy": POLICY_ARN,
            "DeadLetterQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/livekit-drain-DeadLetterQueue",
            "AlarmTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:livekit-drain-AlarmTopic",
            "WorkQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/livekit-drain-work",
        },
        attributes={
            "WorkQueue.Arn": WORK_QUEUE_ARN,
            "WorkQueue.QueueName": "livekit-drain-work",
            "DeadLetterQueue.Arn": DLQ_ARN,
            "DeadLetterQueue.QueueName": "livekit-drain-DeadLetterQueue",
            "ReconcileFunction.Arn": RECONCILE_ARN,
            "ReconcileScheduleRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/livekit-drain-ReconcileScheduleRole",
        },
    )


def _created(template: Template, logical_id: str) -> bool:
    condition = template.body["Resources"][logical_id].get("Condition")
    return condition is None or bool(
        template.resolve({"Fn::If": [condition, True, False]}, template.bound_params or {})
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def identity_statements(template: Template) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every identity-policy statement of the resources the stack creates, resolved."""
    for logical_id in template.logical_ids():
        kind = template.resource_type(logical_id)
        if kind not in ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy") or not _created(template, logical_id):
            continue
        properties = template.resource(logical_id)
        documents = (
            [properties["PolicyDocument"]]
            if kind == "AWS::IAM::ManagedPolicy"
            else [p["PolicyDocument"] for p in properties.get("Policies", [])]
        )
        for document in documents:
            for statement in document["Statement"]:
                yield logical_id, statement


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_statement_grants_a_wildcard_action(synthesized: Template, scenario: str) -> None:
    # GIVEN the synthesized stack's identity policies
    statements = list(identity_statements(bound(synthesized, SCENARIOS[scenario])))
    assert statements

    # WHEN / THEN every action is named in full: no "*", no "service:*", no "service:Get*"
    for where, statement in statements:
        for action in _as_list(statement["Action"]):
            assert "*" not in action, f"{where}: {action}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_allow_names_the_stacks_own_resources_or_what_iam_cannot_scope(
    synthesized: Template, scenario: str
) -> None:
    for where, statement in identity_statements(bound(synthesized, SCENARIOS[scenario])):
        # GIVEN an Allow statement
        if statement["Effect"] != "Allow":
            continue
        actions = set(_as_list(statement["Action"]))
        resources = _as_list(statement["Resource"])
        if resources == ["*"]:
            # WHEN it names every resource, THEN IAM has no narrower form for its actions, or
            # ECS's cluster condition scopes them to the cluster
            condition = statement.get("Condition", {}).get("ArnEquals", {})
            scoped = condition.get("ecs:cluster") == CLUSTER_ARN and all(
                a.startswith("ecs:") for a in actions
            )
            assert actions <= NO_RESOURCE_LEVEL_ACTIONS or scoped, f"{where}: {sorted(actions)} on *"
            continue
        # WHEN it names resources, THEN each is the group, the cluster (or its tasks), the table
        # (or its indexes), the secret, the dead-letter queue or the reconcile function
        for resource in resources:
            assert resource in OWN_RESOURCES, f"{where}: {sorted(actions)} on {resource}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_service_is_granted_on_its_own_resource_only(synthesized: Template, scenario: str) -> None:
    # GIVEN the resources each action is granted on
    granted: dict[str, set[str]] = {}
    for _, statement in identity_statements(bound(synthesized, SCENARIOS[scenario])):
        for action in _as_list(statement["Action"]):
            granted.setdefault(action, set()).update(_as_list(statement["Resource"]))

    # WHEN / THEN Auto Scaling changes touch the group, DynamoDB the table, Secrets Manager the secret
    for action, resources in granted.items():
        service, name = action.split(":", 1)
        if service == "autoscaling" and not name.startswith("Describe"):
            assert resources == {GROUP_ARN}, action
        elif service == "dynamodb":
            assert resources <= {TABLE_ARN, f"{TABLE_ARN}/index/*"}, action
        elif service == "secretsmanager":
            assert resources == {SECRET_ARN}, action
        elif service == "sqs":
            assert resources <= {DLQ_ARN, WORK_QUEUE_ARN}, action
        elif service == "ecs" and action not in NO_RESOURCE_LEVEL_ACTIONS:
            assert resources <= {"*", CLUSTER_ARN, TASKS_OF_THE_CLUSTER}, action


def test_the_rebalance_drain_may_terminate_instances_only_when_opted_in_and_only_in_the_group(
    synthesized: Template,
) -> None:
    # GIVEN the stack with the rebalance drain off (the default), then on
    def terminate_grants(params: Mapping[str, str]) -> list[Mapping[str, Any]]:
        return [
            s
            for _, s in identity_statements(bound(synthesized, params))
            if "autoscaling:TerminateInstanceInAutoScalingGroup" in _as_list(s["Action"])
        ]

    # WHEN / THEN off: nothing may terminate an instance; on: only instances of the group
    assert terminate_grants(BASE_PARAMS) == []
    (statement,) = terminate_grants({**BASE_PARAMS, "RebalanceDrain": "true"})
    assert _as_list(statement["Action"]) == ["autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert statement["Resource"] == GROUP_ARN


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_only_known_aws_managed_policies_are_attached(synthesized: Template, scenario: str) -> None:
    template = bound(synthesized, SCENARIOS[scenario])
    for logical_id in template.logical_ids("AWS::IAM::Role"):
        if _created(template, logical_id):
            attached = set(template.resource(logical_id).get("ManagedPolicyArns", []))
            assert attached <= AWS_MANAGED_POLICIES | {POLICY_ARN}, logical_id


def test_service_roles_trust_only_this_account(synthesized: Template) -> None:
    # GIVEN the roles services other than Lambda and EC2 assume (Scheduler, ECS tasks)
    template = bound(synthesized, SCENARIOS["everything on"])
    checked = 0
    for logical_id in template.logical_ids("AWS::IAM::Role"):
        for statement in template.resource(logical_id)["AssumeRolePolicyDocument"]["Statement"]:
            services = set(_as_list(statement["Principal"].get("Service", [])))
            if not services & {"scheduler.amazonaws.com", "ecs-tasks.amazonaws.com"}:
                continue
            # WHEN / THEN the confused-deputy condition names this account
            assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT, logical_id
            checked += 1
    assert checked >= 3


def test_the_dead_letter_queue_takes_messages_only_from_the_stacks_rules_over_tls(
    synthesized: Template,
) -> None:
    # GIVEN the queue's resource policy
    policy = bound(synthesized, BASE_PARAMS).resource("DeadLetterQueuePolicy")["PolicyDocument"]
    statements = {s.get("Sid"): s for s in policy["Statement"]}

    # WHEN / THEN EventBridge may send only from the stack's rules, the EC2 one included
    rules = statements["EventBridgeRuleDeadLetters"]["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(rules) == sorted(
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/livekit-drain-{name}"
        for name in ("asg-terminate", "task-state", "ec2-interruption")
    )
    # THEN anything without TLS is refused
    tls = statements["TlsOnly"]
    assert (tls["Effect"], tls["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_the_drain_table_is_encrypted_and_recoverable(synthesized: Template) -> None:
    table = bound(synthesized, BASE_PARAMS).resource("DrainTable")
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_dead_letter_queue_is_encrypted_and_alarmed(synthesized: Template) -> None:
    template = bound(synthesized, BASE_PARAMS)
    # GIVEN the queue and the alarms
    queue = template.resource("DeadLetterQueue")
    (alarm,) = [
        template.resource(a)
        for a in template.logical_ids("AWS::CloudWatch::Alarm")
        if template.resource(a).get("Namespace") == "AWS/SQS"
    ]
    # WHEN / THEN the queue is encrypted at rest, and one visible message sets off the alarm
    assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "livekit-drain-DeadLetterQueue"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"]


# -- the LiveKit secret never reaches a log ------------------------------------------------------


def everything_printed(world: World) -> str:
    return "\n".join(i.output + json.dumps(i.result, default=str) for i in world.lambdas.invocations)


def secret_in(text: str, world: World) -> bool:
    return world.livekit.api_secret in text


@pytest.mark.parametrize("failure", ["livekit refuses the key", "secret unreadable", "secret malformed"])
def test_the_livekit_api_secret_never_appears_in_any_output(
    failure: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with World() as world:
        secret = world.livekit.api_secret
        secrets = world.aws.client("secretsmanager")
        # (LiveKit's webhooks stay on: with the secret unreadable the webhook function answers
        # 503, and LiveKit would retry)
        # GIVEN a drain running while LiveKit authentication or the credentials fail
        (victim,) = world.create_fleet(1)
        (call,) = start_calls(world, victim, [[150.0]])
        if failure == "livekit refuses the key":
            world.livekit.faults.unauthorized = True
        elif failure == "secret unreadable":
            secrets.delete_secret(SecretId=world.params["LiveKitSecretArn"], ForceDeleteWithoutRecovery=True)
        elif failure == "secret malformed":  # the value cut short: not JSON, yet holding the secret
            secrets.put_secret_value(
                SecretId=world.params["LiveKitSecretArn"],
                SecretString=json.dumps({"api_key": world.livekit.api_key, "api_secret": secret})[:-2],
            )
        parameters.clear_caches()  # type: ignore[no-untyped-call]

        # WHEN the instance is scaled in and held until its worker leaves
        scale_in(world, victim)
        run_until_released(world, victim)

        # THEN every look failed, for the reason given...
        printed = everything_printed(world)
        assert '"probe failed' in printed
        assert call.end is CallEnd.HUNG_UP
        # THEN ...and not one handler output, log record or console line holds the secret
        captured = capsys.readouterr()
        assert not secret_in(printed, world)
        assert not secret_in(captured.out + captured.err, world)
        assert not secret_in(caplog.text, world)
        assert all(secret not in json.dumps(d.result, default=str) for d in world.deliveries)
