"""template.yaml and samconfig.toml, read through drainctl.template as the local world reads them."""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file  # type: ignore[import-untyped]
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from drainctl.template import (
    EventPatternError,
    FunctionRoute,
    MissingParameterError,
    Template,
    TemplateError,
    load_template,
    matches,
    samconfig_parameter_overrides,
)
from drainctl.world.schedules import scheduled_event

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
EVENTS = ROOT / "events"
SAM = ROOT / ".venv-sam" / "bin" / "sam"

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-api-AbCdEf"
LIVEKIT = {"LiveKitUrl": "wss://livekit.example.com", "LiveKitSecretArn": SECRET_ARN}
TABLE = {
    "DrainTable": "livekit-drain-DrainTable-1A2B3C",
    "WorkQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/livekit-drain-work",
}
# What Ref returns for the resources whose physical name CloudFormation chooses.
UNNAMED_RESOURCES = {
    **TABLE,
    "DrainCoordinatorPolicy": "arn:aws:iam::123456789012:policy/livekit-drain-coordinator",
    "DependenciesLayer": "arn:aws:lambda:us-east-1:123456789012:layer:livekit-drain-deps:1",
}

# The settings the coordinator reads (drain_coordinator.settings) and Powertools' own.
CONTRACT_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "DRAIN_TABLE_NAME",
    "ECS_CLUSTER_NAME",
    "ASG_NAME",
    "LIFECYCLE_HOOK_NAME",
    "LAUNCH_LIFECYCLE_HOOK_NAME",
    "LIVEKIT_URL",
    "LIVEKIT_SECRET_ARN",
    "WORKER_DRAIN_TIMEOUT_SECONDS",
    "WORKER_STOP_TIMEOUT_SECONDS",
    "HOOK_HEARTBEAT_TIMEOUT_SECONDS",
    "DRAIN_DEADLINE_SECONDS",
    "RECONCILE_PERIOD_SECONDS",
    "WORKER_TASK_FAMILY",
    "LIVEKIT_TIMEOUT_SECONDS",
    "REBALANCE_DRAIN",
    "WORKER_CONTAINER_NAME",
    "HOST_STOP_TIMEOUT_SECONDS",
    "STACK_NAME",
    "CALL_RESCUE",
    "RESCUE_ON_DEPLOY",
    "RESCUE_AGENT_NAME",
}

# Actions IAM cannot scope to a resource: "*" is the only form they take.
NO_RESOURCE_LEVEL_ACTIONS = {
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeAutoScalingGroups",
    "ecs:DescribeTaskDefinition",
}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def params(template: Template) -> dict[str, str]:
    return template.parameters(LIVEKIT)


def _event(name: str) -> dict[str, Any]:
    loaded = json.loads((EVENTS / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def _route(
    template: Template, params: Mapping[str, str], logical_id: str, event_name: str | None = None
) -> FunctionRoute:
    (route,) = (
        r
        for r in template.function_routes(params=params)
        if r.logical_id == logical_id and event_name in (None, r.event_name)
    )
    return route


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- linters ---------------------------------------------------------------------------------


def test_template_has_no_cfn_lint_errors_or_warnings() -> None:
    # GIVEN the repository's template
    # WHEN cfn-lint checks it
    findings = lint_file(TEMPLATE)

    # THEN nothing at error or warning level is reported
    problems = [str(m) for m in findings if m.rule.severity in ("error", "warning")]
    assert problems == []


def test_sam_validate_lint_accepts_the_template() -> None:
    # GIVEN the SAM CLI of the project's second virtualenv
    if not SAM.exists():
        pytest.fail(f"{SAM.relative_to(ROOT)} is missing: `make dev` creates it")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}

    # WHEN it validates the template with its linter
    result = subprocess.run(  # noqa: S603 - a fixed command line
        [str(SAM), "validate", "--lint", "--template-file", str(TEMPLATE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # THEN it passes
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


# --- parameters ------------------------------------------------------------------------------


def test_parameters_without_values_are_the_defaults(template: Template) -> None:
    # GIVEN no samconfig and no overrides
    # WHEN the parameters are read
    values = template.parameters()

    # THEN each has its default, and the two without a default are absent
    assert values == {
        "ClusterName": "livekit-agents",
        "AutoScalingGroupName": "livekit-agents-asg",
        "WorkerDrainTimeout": "600",
        "WorkerStopTimeout": "900",
        "HookHeartbeatTimeout": "300",
        "DrainDeadline": "1200",
        "WorkerTaskFamily": "",
        "LogRetentionDays": "30",
        "AlarmEmail": "",
        **{
            name: str(spec["Default"])
            for name, spec in template.body["Parameters"].items()
            if name.startswith("Worker")
            and name not in ("WorkerDrainTimeout", "WorkerStopTimeout", "WorkerTaskFamily")
        },
        "CreateWorkerCapacityProvider": "true",
        "LogLevel": "INFO",
        "FunctionSubnetIds": "",
        "FunctionSecurityGroupIds": "",
        "RebalanceDrain": "false",
        "CallRescue": "false",
        "RescueOnDeploy": "false",
        "RescueAgentName": "",
        "CheckpointTtlHours": "24",
        "AdvanceConcurrency": "10",
        "ShardSize": "20",
        "ReserveConcurrency": "true",
        "HostStopTimeout": "30",
        "WarmPoolReuse": "false",
    }


def test_samconfig_string_overrides_replace_defaults(template: Template, tmp_path: Path) -> None:
    # GIVEN a samconfig whose parameter_overrides is one string, a value quoted
    samconfig = _write(
        tmp_path / "samconfig.toml",
        "version = 0.1\n[default.deploy.parameters]\n"
        "parameter_overrides = \"ClusterName=agents WorkerTaskFamily='voice-agent' "
        'DrainDeadline=1500"\n',
    )

    # WHEN the parameters are read with it
    values = template.parameters(samconfig=samconfig)

    # THEN its values replace the defaults and the rest keep theirs
    assert values["ClusterName"] == "agents"
    assert values["WorkerTaskFamily"] == "voice-agent"
    assert values["DrainDeadline"] == "1500"
    assert values["WorkerDrainTimeout"] == "600"


def test_samconfig_list_overrides_replace_defaults(template: Template, tmp_path: Path) -> None:
    # GIVEN a samconfig whose parameter_overrides is a list, one item in the CLI's long form
    samconfig = _write(
        tmp_path / "samconfig.toml",
        "version = 0.1\n[default.deploy.parameters]\n"
        'parameter_overrides = ["AutoScalingGroupName=agents-asg", '
        '"ParameterKey=LiveKitUrl,ParameterValue=https://lk.example.com"]\n',
    )

    # WHEN the parameters are read with it
    values = template.parameters(samconfig=samconfig)

    # THEN both forms are understood
    assert values["AutoScalingGroupName"] == "agents-asg"
    assert values["LiveKitUrl"] == "https://lk.example.com"


def test_overrides_win_over_samconfig(template: Template, tmp_path: Path) -> None:
    # GIVEN a samconfig and overrides that both set the cluster
    samconfig = _write(
        tmp_path / "samconfig.toml",
        '[default.deploy.parameters]\nparameter_overrides = "ClusterName=from-samconfig"\n',
    )

    # WHEN the parameters are read with both
    values = template.parameters({"ClusterName": "from-overrides"}, samconfig=samconfig)

    # THEN the overrides win
    assert values["ClusterName"] == "from-overrides"


def test_unknown_override_is_template_error(template: Template) -> None:
    # GIVEN an override the template does not declare
    # WHEN / THEN reading the parameters names it
    with pytest.raises(TemplateError, match=r"unknown parameter.*ClusterNmae"):
        template.parameters({"ClusterNmae": "agents"})


def test_unknown_samconfig_override_is_template_error(template: Template, tmp_path: Path) -> None:
    # GIVEN a samconfig with a misspelt parameter
    samconfig = _write(
        tmp_path / "samconfig.toml",
        '[default.deploy.parameters]\nparameter_overrides = "DrainDeadlin=900"\n',
    )

    # WHEN / THEN reading the parameters names the file's override
    with pytest.raises(TemplateError, match=r"parameter_overrides.*DrainDeadlin"):
        template.parameters(samconfig=samconfig)


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("HookHeartbeatTimeout", "60", "below MinValue"),
        ("HookHeartbeatTimeout", "7201", "above MaxValue"),
        ("DrainDeadline", "172801", "above MaxValue"),
        ("WorkerDrainTimeout", "ten minutes", "not a number"),
        ("LogRetentionDays", "2", "not one of"),
        ("LiveKitUrl", "ftp://livekit.example.com", "URL"),
        ("LiveKitSecretArn", "arn:aws:secretsmanager:us-east-1:123456789012:secret:lk", "ARN"),
        ("AutoScalingGroupName", "agents:asg", "Auto Scaling group name"),
        ("WorkerTaskFamily", "voice agent", "family"),
    ],
)
def test_override_outside_its_constraint_is_template_error(
    template: Template, name: str, value: str, complaint: str
) -> None:
    # GIVEN a value the parameter's CloudFormation constraint refuses
    # WHEN / THEN reading the parameters refuses it too
    with pytest.raises(TemplateError, match=complaint):
        template.parameters({**LIVEKIT, name: value})


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"WorkerDrainTimeout": "900", "WorkerStopTimeout": "900"}, "StopTimeoutLeavesAMargin"),
        ({"WorkerDrainTimeout": "1200", "WorkerStopTimeout": "1260"}, "DeadlineOutlastsTheDrain"),
    ],
)
def test_values_breaking_a_template_rule_are_template_error(
    template: Template, overrides: dict[str, str], rule: str
) -> None:
    # GIVEN values each within bounds that together break one of the template's Rules
    # WHEN / THEN reading the parameters names the rule
    with pytest.raises(TemplateError, match=rule):
        template.parameters(overrides)


def test_repository_samconfig_is_ready_for_a_guided_deploy(template: Template) -> None:
    # GIVEN the repository's samconfig.toml
    config = tomllib.loads(SAMCONFIG.read_text())
    default = config["default"]

    # WHEN its deploy, build and validate settings are read
    deploy = default["deploy"]["parameters"]

    # THEN it deploys the named stack with IAM capability, a managed bucket and a changeset
    # to confirm, lints on validate, and leaves every parameter to the operator
    assert default["global"]["parameters"]["stack_name"] == "livekit-drain"
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert "parameters" in default["build"]
    assert default["validate"]["parameters"]["lint"] is True
    assert samconfig_parameter_overrides(SAMCONFIG) == {}
    assert template.parameters(samconfig=SAMCONFIG) == template.parameters()


# --- routes ----------------------------------------------------------------------------------


def test_functions_route_to_the_coordinator_handlers(template: Template, params: dict[str, str]) -> None:
    # GIVEN the template's functions
    # WHEN their routes are read
    routes = {r.logical_id: r for r in template.function_routes(params=params)}

    # THEN each names a handler module of drain_coordinator and its event kind
    assert routes["LifecycleFunction"].handler == "drain_coordinator.handlers.lifecycle.handler"
    assert routes["LifecycleFunction"].kind == "EventBridgeRule"
    assert routes["ReconcileFunction"].handler == "drain_coordinator.handlers.reconcile.handler"
    assert routes["ReconcileFunction"].kind == "ScheduleV2"
    for route in routes.values():
        module = route.handler.rsplit(".", 1)[0]
        assert (ROOT / "functions" / (module.replace(".", "/") + ".py")).is_file()


def test_lifecycle_rule_matches_the_groups_terminate_action(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the terminate lifecycle event of the default group
    event = _event("asg-terminate-lifecycle-action.json")

    # WHEN the lifecycle route is asked
    route = _route(template, params, "LifecycleFunction", "TerminateLifecycleAction")

    # THEN EventBridge would deliver it
    assert route.matches(event)


def test_lifecycle_rule_ignores_another_groups_terminate_action(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the same terminate event from another group
    event = _event("asg-terminate-lifecycle-action.json")
    event["detail"]["AutoScalingGroupName"] = "some-other-asg"

    # WHEN the lifecycle route is asked
    route = _route(template, params, "LifecycleFunction", "TerminateLifecycleAction")

    # THEN it is not delivered
    assert not route.matches(event)


def test_lifecycle_rule_ignores_launch_actions(template: Template, params: dict[str, str]) -> None:
    # GIVEN a launch lifecycle event of the same group
    event = _event("asg-launch-lifecycle-action.json")

    # WHEN the lifecycle route is asked
    route = _route(template, params, "LifecycleFunction", "TerminateLifecycleAction")

    # THEN it is not delivered
    assert event["detail"]["AutoScalingGroupName"] == params["AutoScalingGroupName"]
    assert not route.matches(event)


def test_lifecycle_rule_takes_the_launch_hooks_actions_with_warm_pool_reuse(template: Template) -> None:
    # GIVEN the stack deployed with WarmPoolReuse=true (a warm pool with ReuseOnScaleIn)
    params = template.parameters({**LIVEKIT, "WarmPoolReuse": "true"})
    route = _route(template, params, "LifecycleFunction", "TerminateLifecycleAction")
    names = {**TABLE, "LaunchLifecycleHook": "livekit-drain-launch"}
    env = template.environment("LifecycleFunction", params=params, resource_names=names)

    # WHEN / THEN the group's launch actions are delivered too, and the function knows its hook
    assert route.matches(_event("asg-launch-lifecycle-action.json"))
    assert route.matches(_event("asg-terminate-lifecycle-action.json"))
    assert env["LAUNCH_LIFECYCLE_HOOK_NAME"] == "livekit-drain-launch"
    hook = template.resource("LaunchLifecycleHook", params=params)
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert hook["DefaultResult"] == "CONTINUE"


def test_lifecycle_rule_follows_the_group_parameter(template: Template) -> None:
    # GIVEN the stack deployed for another group
    params = template.parameters({**LIVEKIT, "AutoScalingGroupName": "other-asg"})
    route = _route(template, params, "LifecycleFunction", "TerminateLifecycleAction")
    event = _event("asg-terminate-lifecycle-action.json")
    renamed = copy.deepcopy(event)
    renamed["detail"]["AutoScalingGroupName"] = "other-asg"

    # WHEN / THEN only that group's terminate actions are delivered
    assert route.matches(renamed)
    assert not route.matches(event)


def test_ec2_interruption_rule_takes_spot_warnings_but_not_rebalance_recommendations_by_default(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the lifecycle function's EC2 rule with RebalanceDrain at its default (false)
    route = _route(template, params, "LifecycleFunction", "Ec2Interruption")

    # WHEN / THEN Spot warnings are delivered, rebalance recommendations are not
    assert route.matches(_event("ec2-spot-interruption-warning.json"))
    assert not route.matches(_event("ec2-rebalance-recommendation.json"))
    assert not route.matches(_event("asg-terminate-lifecycle-action.json"))


def test_ec2_interruption_rule_takes_rebalance_recommendations_when_opted_in(template: Template) -> None:
    # GIVEN the stack deployed with RebalanceDrain=true
    params = template.parameters({**LIVEKIT, "RebalanceDrain": "true"})
    route = _route(template, params, "LifecycleFunction", "Ec2Interruption")

    # WHEN / THEN both EC2 events are delivered, and the functions are told to act on them
    assert route.matches(_event("ec2-spot-interruption-warning.json"))
    assert route.matches(_event("ec2-rebalance-recommendation.json"))
    env = template.environment("LifecycleFunction", params=params, resource_names=TABLE)
    assert env["REBALANCE_DRAIN"] == "true"


def test_reconcile_schedule_renders_the_scheduled_reconcile_event(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the recorded scheduled event
    recorded = _event("scheduled-reconcile.json")
    route = _route(template, params, "ReconcileFunction")

    # WHEN the schedule's Input is filled in with that invocation's context
    rendered = scheduled_event(
        route,
        scheduled_time=datetime.fromisoformat(recorded["time"]),
        execution_id=recorded["id"],
    )

    # THEN the schedule's ARN is the one recorded, and the payload is exactly the event
    assert route.source_arn == recorded["resources"][0]
    assert rendered == recorded


def test_reconcile_schedule_rate_is_the_reconcile_period(template: Template, params: dict[str, str]) -> None:
    # GIVEN the reconcile schedule and the period the coordinator is told
    route = _route(template, params, "ReconcileFunction")
    env = template.environment("ReconcileFunction", params=params, resource_names=TABLE)

    # WHEN the rate expression is read in seconds
    assert route.schedule_expression is not None
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|second|seconds)\)", route.schedule_expression)
    assert match is not None
    seconds = int(match.group(1)) * (60 if match.group(2).startswith("minute") else 1)

    # THEN both say the same
    assert str(seconds) == env["RECONCILE_PERIOD_SECONDS"]


def test_every_event_source_has_a_dead_letter_queue_and_retry_policy(template: Template) -> None:
    # GIVEN every function's event sources
    for logical_id in template.logical_ids("AWS::Serverless::Function"):
        # (a function behind a Function URL has none: its caller gets the answer and retries)
        events = template.body["Resources"][logical_id]["Properties"].get("Events", {})
        for event in events.values():
            properties = event["Properties"]
            if event["Type"] == "SQS":
                # The work queue holds shards of one tick: one that fails is seen again after
                # the queue's visibility timeout, found stale (the next tick planned it anew)
                # and dropped. Its failures are reported per item, not as a whole batch.
                assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
                continue
            # WHEN / THEN undeliverable events go to the stack's DLQ after bounded retries
            assert properties["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
            assert set(properties["RetryPolicy"]) == {
                "MaximumEventAgeInSeconds",
                "MaximumRetryAttempts",
            }


def test_webhook_function_is_reached_by_its_url_only(template: Template, params: dict[str, str]) -> None:
    # GIVEN the webhook function
    own = template.body["Resources"]["WebhookFunction"]["Properties"]

    # WHEN its properties and the stack's outputs are read
    outputs = template.body["Outputs"]

    # THEN it has a public URL (the signature is checked in code), no event rule, a handler
    # module of its own, and the URL is an output to paste into livekit.yaml
    assert own["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert "Events" not in own
    assert own["Handler"] == "drain_coordinator.handlers.webhook.handler"
    assert (ROOT / "functions" / "drain_coordinator" / "handlers" / "webhook.py").is_file()
    assert outputs["WebhookUrl"]["Value"] == {"Fn::GetAtt": ["WebhookFunctionUrl", "FunctionUrl"]}


# --- environment -----------------------------------------------------------------------------


def test_globals_environment_is_exactly_the_settings_contract(template: Template) -> None:
    # GIVEN the Globals section
    variables = template.body["Globals"]["Function"]["Environment"]["Variables"]

    # WHEN / THEN its variables are exactly the names the coordinator and Powertools read
    assert set(variables) == CONTRACT_ENVIRONMENT


def test_function_environment_resolves_against_the_recorded_events(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the default stack with its LiveKit parameters and a table name
    terminate = _event("asg-terminate-lifecycle-action.json")

    # WHEN a function's environment is resolved
    env = template.environment("LifecycleFunction", params=params, resource_names=TABLE)

    # THEN every contract value is set, and names agree with what AWS sends
    assert set(env) == CONTRACT_ENVIRONMENT
    assert env["DRAIN_TABLE_NAME"] == TABLE["DrainTable"]
    assert env["ASG_NAME"] == terminate["detail"]["AutoScalingGroupName"]
    assert env["LIFECYCLE_HOOK_NAME"] == terminate["detail"]["LifecycleHookName"]
    assert env["LIVEKIT_URL"] == LIVEKIT["LiveKitUrl"]
    assert env["LIVEKIT_SECRET_ARN"] == SECRET_ARN
    assert env["POWERTOOLS_SERVICE_NAME"] == "livekit-drain"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "LiveKitDrain"
    assert env["WORKER_TASK_FAMILY"] == ""
    # No warm pool reuse by default: no launch hook, launch actions skipped.
    assert env["LAUNCH_LIFECYCLE_HOOK_NAME"] == ""
    assert (
        env["WORKER_DRAIN_TIMEOUT_SECONDS"],
        env["WORKER_STOP_TIMEOUT_SECONDS"],
        env["HOOK_HEARTBEAT_TIMEOUT_SECONDS"],
        env["DRAIN_DEADLINE_SECONDS"],
    ) == ("600", "900", "300", "1200")


def test_environment_without_the_tables_name_is_template_error(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN no physical name for the table (CloudFormation generates it)
    # WHEN / THEN resolving the environment says what is missing
    with pytest.raises(TemplateError, match=r"DrainTable.*resource_names"):
        template.environment("LifecycleFunction", params=params)


def test_environment_without_livekit_parameters_is_missing_parameter_error(
    template: Template,
) -> None:
    # GIVEN only the defaults (LiveKitUrl has none)
    # WHEN / THEN resolving the environment names the parameter
    with pytest.raises(MissingParameterError, match="LiveKitUrl"):
        template.environment("LifecycleFunction", resource_names=TABLE)


def test_function_properties_merge_globals_with_their_own(template: Template, params: dict[str, str]) -> None:
    # GIVEN the reconcile function, which sets its own Timeout and retry count
    bound = template.with_context(
        params=params,
        resource_names=UNNAMED_RESOURCES,
        attributes={
            **_any_attributes(template),
            "DeadLetterQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:dlq",
        },
    )

    # WHEN its properties are read
    properties = bound.resource("ReconcileFunction")

    # THEN its own values win and the Globals fill in the rest
    assert properties["Timeout"] == 55
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["arm64"]
    invoke = properties["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 0
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"].endswith(":dlq")
    assert properties["LoggingConfig"] == {
        "LogFormat": "JSON",
        "SystemLogLevel": "WARN",
        "LogGroup": "/aws/lambda/livekit-drain-reconcile",
    }


# --- resources -------------------------------------------------------------------------------


def test_drain_table_has_the_key_index_and_ttl_the_store_uses(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the drain table
    # WHEN its properties are resolved
    table = template.resource("DrainTable", params=params)

    # THEN it is keyed by pk, with the sparse open-items index by deadline and a TTL
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "open-items"
    assert index["KeySchema"] == [
        {"AttributeName": "open_kind", "KeyType": "HASH"},
        {"AttributeName": "deadline_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {"pk": "S", "open_kind": "S", "deadline_at": "N"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_terminate_hook_waits_heartbeat_timeout_then_continues(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the lifecycle hook
    # WHEN its properties are resolved
    hook = template.resource("TerminateLifecycleHook", params=params)

    # THEN it holds terminating instances of the group, CONTINUE by default
    assert hook == {
        "AutoScalingGroupName": "livekit-agents-asg",
        "LifecycleHookName": "livekit-drain-terminate",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "HeartbeatTimeout": "300",
        "DefaultResult": "CONTINUE",
    }


def test_each_function_logs_to_its_own_log_group(template: Template, params: dict[str, str]) -> None:
    for logical_id in template.logical_ids("AWS::Serverless::Function"):
        # GIVEN a function and the log group its LoggingConfig names
        own = template.body["Resources"][logical_id]["Properties"]
        log_group_id = own["LoggingConfig"]["LogGroup"]["Ref"]

        # WHEN both are resolved
        function = template.resource(
            logical_id,
            params=params,
            resource_names=UNNAMED_RESOURCES,
            attributes=_any_attributes(template),
        )
        log_group = template.resource(log_group_id, params=params)

        # THEN the group is /aws/lambda/<function name> and keeps events for the set days
        assert log_group["LogGroupName"] == f"/aws/lambda/{function['FunctionName']}"
        assert log_group["RetentionInDays"] == params["LogRetentionDays"]


def _any_attributes(template: Template) -> dict[str, str]:
    """A stand-in value for every Fn::GetAtt target the template uses."""
    text = json.dumps(template.body)
    pairs = re.findall(r'"Fn::GetAtt": \["(\w+)", "(\w+)"\]', text)
    return {f"{logical}.{attribute}": f"{logical}-{attribute}" for logical, attribute in pairs}


# --- IAM -------------------------------------------------------------------------------------


def _statements(template: Template) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every identity-policy statement in the template, with where it is."""
    for logical_id, resource in template.body["Resources"].items():
        kind = resource["Type"]
        properties = resource.get("Properties", {})
        documents: list[Mapping[str, Any]] = []
        if kind == "AWS::IAM::ManagedPolicy":
            documents.append(properties["PolicyDocument"])
        elif kind == "AWS::IAM::Role":
            documents.extend(p["PolicyDocument"] for p in _either_branch(properties.get("Policies", [])))
        elif kind == "AWS::Serverless::Function":
            policies = properties.get("Policies", [])
            documents.extend(p for p in policies if isinstance(p, Mapping) and "Statement" in p)
        for document in documents:
            for statement in _either_statement(document["Statement"]):
                yield logical_id, statement


def _either_statement(statements: list[Any]) -> list[Mapping[str, Any]]:
    """A policy's statements, both branches of each Fn::If (AWS::NoValue left out)."""
    found: list[Mapping[str, Any]] = []
    for statement in statements:
        if isinstance(statement, Mapping) and "Fn::If" in statement:
            _, when_true, when_false = statement["Fn::If"]
            found += [s for s in (when_true, when_false) if s != {"Ref": "AWS::NoValue"}]
        else:
            found.append(statement)
    return found


def _either_branch(policies: Any) -> list[Mapping[str, Any]]:
    """A role's inline policies, both branches of an Fn::If (a condition may turn them on)."""
    if isinstance(policies, Mapping) and "Fn::If" in policies:
        _, when_true, when_false = policies["Fn::If"]
        return [*_either_branch(when_true), *_either_branch(when_false)]
    found: list[Mapping[str, Any]] = []
    for policy in _as_list(policies):
        if isinstance(policy, Mapping) and "Fn::If" in policy:
            found += _either_branch(policy)
        elif isinstance(policy, Mapping) and "PolicyDocument" in policy:
            found.append(policy)
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_iam_wildcard_resources_only_where_iam_cannot_scope(template: Template) -> None:
    statements = list(_statements(template))
    assert statements, "the template grants nothing?"
    for where, statement in statements:
        # GIVEN an Allow statement on every resource
        if statement["Effect"] != "Allow" or "*" not in _as_list(statement["Resource"]):
            continue
        actions = set(_as_list(statement["Action"]))

        # WHEN / THEN its actions have no resource-level permissions, or ECS's cluster
        # condition scopes them
        cluster_condition = any("ecs:cluster" in keys for keys in statement.get("Condition", {}).values())
        assert actions <= NO_RESOURCE_LEVEL_ACTIONS or (
            cluster_condition and all(a.startswith("ecs:") for a in actions)
        ), f"{where}: {sorted(actions)} on '*'"


def test_lifecycle_actions_are_granted_on_the_group_of_the_event(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the statement granting the lifecycle actions
    (statement,) = (
        s for _, s in _statements(template) if "autoscaling:CompleteLifecycleAction" in _as_list(s["Action"])
    )

    # WHEN its resource is resolved
    resource = template.resolve(statement["Resource"], params)

    # THEN it covers the recorded group's ARN, and only that group
    event = _event("asg-terminate-lifecycle-action.json")
    assert set(_as_list(statement["Action"])) == {
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
    }
    assert fnmatch.fnmatchcase(event["resources"][0], resource)
    assert not fnmatch.fnmatchcase(event["resources"][0].replace("agents-asg", "other"), resource)


def test_secret_read_is_granted_on_the_secret_parameter_only(
    template: Template, params: dict[str, str]
) -> None:
    # GIVEN the statement granting secret reads
    (statement,) = (
        s
        for where, s in _statements(template)
        if where == "DrainCoordinatorPolicy" and "secretsmanager:GetSecretValue" in _as_list(s["Action"])
    )

    # WHEN / THEN it names exactly the LiveKit secret
    assert template.resolve(statement["Resource"], params) == SECRET_ARN


# --- requirements ----------------------------------------------------------------------------


def _requirements() -> list[Requirement]:
    lines = (ROOT / "functions" / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def _project_dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_function_requirements_name_the_project_dependencies() -> None:
    # GIVEN the layer's requirements and the project's run-time dependencies
    # WHEN their names (with extras) are compared
    def names(requirements: list[Requirement]) -> set[tuple[str, frozenset[str]]]:
        return {(canonicalize_name(r.name), frozenset(r.extras)) for r in requirements}

    # THEN they are the same list
    assert names(_requirements()) == names(_project_dependencies())


def test_function_requirements_pin_versions_the_project_allows() -> None:
    # GIVEN the project's version ranges
    allowed = {canonicalize_name(r.name): r.specifier for r in _project_dependencies()}

    for requirement in _requirements():
        # WHEN a layer requirement's pin is read
        (pin,) = requirement.specifier
        # THEN it is exact and inside the project's range
        assert pin.operator == "=="
        assert allowed[canonicalize_name(requirement.name)].contains(pin.version)


# --- the loader and resolver on their own ----------------------------------------------------

SHORT_FORMS_TEMPLATE = """\
Parameters:
  Env: {Type: String, Default: prod}
  Size: {Type: Number, Default: 3}
  Missing: {Type: String}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsSmall: !Not [!Equals [!Ref Size, 10]]
  Both: !And [!Condition IsProd, !Condition IsSmall]
  Either: !Or [!Equals [!Ref Env, dev], !Condition IsSmall]
Mappings:
  Sizes:
    prod: {memory: 512}
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Hook:
    Type: AWS::AutoScaling::LifecycleHook
    Properties:
      LifecycleHookName: !Sub "${AWS::StackName}-hook"
  Thing:
    Type: Custom::Thing
    Properties:
      Ref: !Ref Env
      Sub: !Sub "${AWS::Region}/${Env}/${!Literal}/${Queue.Arn}"
      SubList: !Sub ["${Name}-${Env}", {Name: !Select [1, !Split [",", "a,b,c"]]}]
      GetAtt: !GetAtt Queue.Arn
      GetAttList: !GetAtt [Queue, QueueName]
      If: !If [Both, big, small]
      IfEither: !If [Either, "yes", "no"]
      Join: !Join ["-", [x, !Ref Size, !Ref Hook]]
      Map: !FindInMap [Sizes, !Ref Env, memory]
      Base64: !Base64 hi
      Dropped: !Ref AWS::NoValue
      ListWithNoValue: [a, !Ref AWS::NoValue, b]
      Version: 2012-10-17
      Import: !ImportValue other-stack-output
      Zones: !GetAZs ""
      Cidr: !Cidr ["10.0.0.0/16", 2, 8]
      Missing: !Ref Missing
"""


@pytest.fixture
def small(tmp_path: Path) -> Template:
    return load_template(_write(tmp_path / "t.yaml", SHORT_FORMS_TEMPLATE))


def test_short_forms_load_as_their_long_forms(small: Template) -> None:
    # GIVEN a template written with every short form
    thing = small.body["Resources"]["Thing"]["Properties"]

    # WHEN / THEN each reads as CloudFormation's long form
    assert thing["Ref"] == {"Ref": "Env"}
    assert thing["GetAtt"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert thing["GetAttList"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert thing["If"] == {"Fn::If": ["Both", "big", "small"]}
    assert thing["Map"] == {"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "memory"]}
    assert thing["Import"] == {"Fn::ImportValue": "other-stack-output"}
    assert thing["Zones"] == {"Fn::GetAZs": ""}
    assert thing["Cidr"] == {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}
    assert thing["Version"] == "2012-10-17"
    conditions = small.body["Conditions"]
    assert conditions["Both"] == {"Fn::And": [{"Condition": "IsProd"}, {"Condition": "IsSmall"}]}


def test_resolve_evaluates_intrinsic_functions(small: Template) -> None:
    # GIVEN the small template's parameters and the queue's ARN
    params = small.parameters()
    attributes = {
        "Queue.Arn": "arn:aws:sqs:us-east-1:123456789012:q",
        "Queue.QueueName": "q",
    }
    thing = {
        key: value
        for key, value in small.body["Resources"]["Thing"]["Properties"].items()
        if key not in ("Import", "Zones", "Cidr", "Missing")
    }

    # WHEN the properties are resolved
    resolved = small.resolve(thing, params, attributes=attributes, pseudo={"AWS::StackName": "demo"})

    # THEN every function gives what CloudFormation would
    assert resolved == {
        "Ref": "prod",
        "Sub": "us-east-1/prod/${Literal}/arn:aws:sqs:us-east-1:123456789012:q",
        "SubList": "b-prod",
        "GetAtt": "arn:aws:sqs:us-east-1:123456789012:q",
        "GetAttList": "q",
        "If": "big",
        "IfEither": "yes",
        "Join": "x-3-demo-hook",
        "Map": 512,
        "Base64": "aGk=",
        "ListWithNoValue": ["a", "b"],
        "Version": "2012-10-17",
    }


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        ("Import", TemplateError, "Fn::ImportValue needs a real deployment"),
        ("Zones", TemplateError, "Fn::GetAZs needs a real deployment"),
        ("Cidr", TemplateError, "Fn::Cidr needs a real deployment"),
        ("Missing", MissingParameterError, "parameter Missing has no value"),
        ("GetAtt", TemplateError, "Queue.Arn needs a value"),
    ],
)
def test_resolve_refuses_what_only_a_deployment_knows(
    small: Template, key: str, error: type[Exception], message: str
) -> None:
    # GIVEN a property that names something this machine cannot know
    value = small.body["Resources"]["Thing"]["Properties"][key]

    # WHEN / THEN resolving it says why
    with pytest.raises(error, match=message):
        small.resolve(value, small.parameters())


def test_resolve_ref_to_an_unnamed_resource_needs_its_name(small: Template) -> None:
    # GIVEN a Ref to a queue the template does not name
    # WHEN / THEN it resolves only once a name is given
    with pytest.raises(TemplateError, match="Queue needs its physical name"):
        small.resolve({"Ref": "Queue"}, {})
    assert small.resolve({"Ref": "Queue"}, {}, resource_names={"Queue": "q-1"}) == "q-1"


def test_load_template_refuses_a_file_without_resources(tmp_path: Path) -> None:
    # GIVEN YAML that is no template
    path = _write(tmp_path / "t.yaml", "Parameters: {}\n")

    # WHEN / THEN loading it says so
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(path)


def test_load_template_refuses_an_unknown_tag(tmp_path: Path) -> None:
    # GIVEN a template with a tag CloudFormation does not have
    path = _write(tmp_path / "t.yaml", "Resources:\n  X: !Reff Y\n")

    # WHEN / THEN loading it names the tag
    with pytest.raises(TemplateError, match="!Reff"):
        load_template(path)


# --- EventBridge patterns --------------------------------------------------------------------

EVENT: dict[str, Any] = {
    "source": "aws.ecs",
    "detail-type": "ECS Task State Change",
    "detail": {
        "lastStatus": "RUNNING",
        "desiredStatus": "STOPPED",
        "stopCode": None,
        "group": "service:voice-agents",
        "cpu": 1024,
        "containers": [{"name": "agent", "exitCode": 0}, {"name": "sidecar", "exitCode": 137}],
        "tags": ["blue", "canary"],
        "ip": "10.0.3.7",
        "spot": True,
    },
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"source": ["aws.ecs"]}, True),
        ({"source": ["aws.ec2", "aws.ecs"]}, True),
        ({"source": ["aws.ec2"]}, False),
        ({"detail": {"desiredStatus": ["STOPPED"]}}, True),
        ({"detail": {"desiredStatus": ["RUNNING"]}}, False),
        ({"detail": {"group": [{"prefix": "service:"}]}}, True),
        ({"detail": {"group": [{"prefix": "family:"}]}}, False),
        ({"detail": {"group": [{"suffix": "-agents"}]}}, True),
        ({"detail": {"lastStatus": [{"equals-ignore-case": "running"}]}}, True),
        ({"detail": {"group": [{"wildcard": "service:*agents"}]}}, True),
        ({"detail": {"group": [{"wildcard": "task:*"}]}}, False),
        ({"detail": {"lastStatus": [{"anything-but": "STOPPED"}]}}, True),
        ({"detail": {"lastStatus": [{"anything-but": ["RUNNING", "PENDING"]}]}}, False),
        ({"detail": {"group": [{"anything-but": {"prefix": "service:"}}]}}, False),
        ({"detail": {"missing": [{"anything-but": "x"}]}}, False),
        ({"detail": {"stopCode": [None]}}, True),
        ({"detail": {"stopCode": [{"exists": True}]}}, True),
        ({"detail": {"missing": [{"exists": False}]}}, True),
        ({"detail": {"missing": [{"exists": True}]}}, False),
        ({"detail": {"cpu": [{"numeric": [">", 512, "<=", 1024]}]}}, True),
        ({"detail": {"cpu": [{"numeric": ["<", 1024]}]}}, False),
        ({"detail": {"cpu": [1024]}}, True),
        ({"detail": {"cpu": ["1024"]}}, False),
        ({"detail": {"spot": [True]}}, True),
        ({"detail": {"spot": [1]}}, False),
        ({"detail": {"tags": ["canary"]}}, True),
        ({"detail": {"tags": ["green"]}}, False),
        ({"detail": {"containers": {"exitCode": [137]}}}, True),
        ({"detail": {"containers": {"exitCode": [1]}}}, False),
        ({"detail": {"ip": [{"cidr": "10.0.0.0/16"}]}}, True),
        ({"detail": {"ip": [{"cidr": "192.168.0.0/16"}]}}, False),
        ({"$or": [{"source": ["aws.ec2"]}, {"detail": {"cpu": [1024]}}]}, True),
        ({"$or": [{"source": ["aws.ec2"]}, {"detail": {"cpu": [1]}}]}, False),
        ({"source": ["aws.ecs"], "detail": {"desiredStatus": ["RUNNING"]}}, False),
    ],
)
def test_matches_follows_eventbridge_semantics(pattern: dict[str, Any], expected: bool) -> None:
    # GIVEN an ECS task event and a pattern
    # WHEN / THEN the pattern matches exactly when EventBridge's would
    assert matches(pattern, EVENT) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        {"source": "aws.ecs"},
        {"source": []},
        {"detail": {"cpu": [{"numeric": [">"]}]}},
        {"detail": {"cpu": [{"between": [1, 2]}]}},
        {"detail": {"cpu": [{"exists": "yes"}]}},
    ],
)
def test_malformed_pattern_is_event_pattern_error(pattern: dict[str, Any]) -> None:
    # GIVEN a pattern EventBridge would refuse
    # WHEN / THEN matching refuses it too
    with pytest.raises(EventPatternError):
        matches(pattern, EVENT)


def test_scheduled_event_needs_an_aware_time(template: Template, params: dict[str, str]) -> None:
    # GIVEN the reconcile route
    route = _route(template, params, "ReconcileFunction")

    # WHEN / THEN a naive time is refused: the Scheduler's time is UTC
    with pytest.raises(TemplateError, match="timezone-aware"):
        scheduled_event(route, scheduled_time=datetime(2026, 1, 1), execution_id="x")
    rendered = scheduled_event(
        route, scheduled_time=datetime(2026, 1, 1, tzinfo=UTC), execution_id="x", attempt_number=2
    )
    assert rendered["time"] == "2026-01-01T00:00:00Z"
