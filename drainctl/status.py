"""`drainctl status [--stack NAME]`: what a deployed stack is doing now.

Open drains and task stops (from the drain table, through the coordinator's own store), the
terminate hook's settings (Auto Scaling), the last reconcile tick (the reconcile function's
`AWS/Lambda Invocations`), the stack's alarms (CloudWatch) and the dead-letter queue's depth (SQS).

The stack's resources are found through CloudFormation (`DescribeStacks`: parameters and outputs;
`DescribeStackResources`: the physical ids), as `sam deploy` created them. A stack CloudFormation
does not know, such as the local world's (which builds the template's resources without a stack),
is looked up by the names the template and the local world give them (`<stack>-DrainTable`,
`<stack>-terminate`, `<stack>-DeadLetterQueue`, `<stack>-reconcile`).

Credentials and region come from boto3's usual chain (`AWS_PROFILE`, `AWS_REGION`, ...);
`--endpoint-url` (or `AWS_ENDPOINT_URL`) points it at another endpoint, such as the local world's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

DEFAULT_STACK = "livekit-drain"
_DESCRIPTION = __doc__


class StatusInputError(Exception):
    """The stack cannot be looked at: no credentials, no region, no such stack (exit 2)."""


@dataclass(frozen=True)
class OpenDrain:
    instance_id: str
    age_seconds: float
    deadline_in_seconds: float
    calls_left: int | None
    tasks_left: int | None
    last_heartbeat_seconds_ago: float
    heartbeats: int
    probe_errors: int


@dataclass(frozen=True)
class OpenTaskStop:
    task_arn: str
    service: str
    container_instance: str | None
    age_seconds: float
    kill_in_seconds: float
    calls_left: int | None
    at_risk: bool


@dataclass
class StackStatus:
    stack: str
    region: str
    found_by: str  # "cloudformation" or "names"
    table: str
    hook: dict[str, Any] | None
    last_reconcile_tick: str | None
    dead_letters: int | None
    alarms: dict[str, str] = field(default_factory=dict)
    drains: list[OpenDrain] = field(default_factory=list)
    task_stops: list[OpenTaskStop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `status` to a `drainctl` command line."""
    parser = subparsers.add_parser(
        "status",
        help="open drains, task stops, alarms and dead letters of a deployed stack",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default=DEFAULT_STACK, help=f"stack name (default {DEFAULT_STACK})")
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's, e.g. AWS_REGION)")
    parser.add_argument("--profile", default=None, help="AWS profile (default: boto3's)")
    parser.add_argument("--endpoint-url", default=None, help="another AWS endpoint (the local world's)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of tables")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        status = collect(args.stack, region=args.region, profile=args.profile, endpoint_url=args.endpoint_url)
    except StatusInputError as exc:
        print(f"drainctl status: {exc}", file=sys.stderr)
        return 2
    out.write(json.dumps(status.as_dict()) + "\n" if args.json else render(status))
    return 0


# --- looking -----------------------------------------------------------------------------------


def collect(
    stack: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    now: float | None = None,
) -> StackStatus:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    at = time.time() if now is None else now
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise StatusInputError(str(exc)) from exc
    if not session.region_name:
        raise StatusInputError("no AWS region: pass --region or set AWS_REGION (or a profile's region)")
    if session.get_credentials() is None:
        raise StatusInputError(
            "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID (see `aws configure`)"
        )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    from drain_coordinator.integrations.store import StoreError

    try:
        status = _collect(session, client, stack, at)
    except StoreError as exc:
        raise StatusInputError(f"cannot read the drain table: {exc}") from exc
    except NoCredentialsError as exc:
        raise StatusInputError(f"no AWS credentials: {exc}") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code in (
            "ExpiredToken",
            "ExpiredTokenException",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
        ):
            raise StatusInputError(
                f"AWS refused the credentials ({code}): {error.get('Message', '')}"
            ) from exc
        if code in ("AccessDenied", "AccessDeniedException"):
            raise StatusInputError(f"not allowed: {error.get('Message', code)}") from exc
        raise StatusInputError(f"AWS answered {code}: {error.get('Message', '')}") from exc
    except BotoCoreError as exc:
        raise StatusInputError(f"cannot reach AWS: {exc}") from exc
    return status


def _collect(session: Any, client: Any, stack: str, at: float) -> StackStatus:
    from botocore.exceptions import ClientError

    names = _names_from_cloudformation(client("cloudformation"), stack)
    found_by = "cloudformation"
    if names is None:
        names = {
            "DrainTable": f"{stack}-DrainTable",
            "TerminateLifecycleHook": f"{stack}-terminate",
            "DeadLetterQueue": f"{stack}-DeadLetterQueue",
            "ReconcileFunction": f"{stack}-reconcile",
        }
        found_by = "names"
    dynamodb = client("dynamodb")
    try:
        dynamodb.describe_table(TableName=names["DrainTable"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        where = "CloudFormation does not know it, and there is no table " + names["DrainTable"]
        if found_by == "cloudformation":
            where = f"its table {names['DrainTable']} does not exist"
        raise StatusInputError(f"no such stack {stack!r} in {session.region_name}: {where}") from None
    status = StackStatus(
        stack=stack,
        region=str(session.region_name),
        found_by=found_by,
        table=names["DrainTable"],
        hook=None,
        last_reconcile_tick=None,
        dead_letters=None,
    )
    _open_records(session, client, status, at)
    status.hook = _hook(client("autoscaling"), names, status)
    status.last_reconcile_tick = _last_tick(
        client("cloudwatch"), names.get("ReconcileFunction", ""), at, status
    )
    status.alarms = _alarms(client("cloudwatch"), stack)
    status.dead_letters = _dead_letters(client("sqs"), names.get("DeadLetterQueue", ""), status)
    return status


def _names_from_cloudformation(cloudformation: Any, stack: str) -> dict[str, str] | None:
    """Logical id -> physical id, with the parameters (`param:NAME`); None when no such stack."""
    from botocore.exceptions import ClientError

    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
            return None
        raise
    names = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in resources}
    for parameter in described.get("Parameters", []):
        names[f"param:{parameter['ParameterKey']}"] = parameter.get("ParameterValue", "")
    for output in described.get("Outputs", []):
        if output.get("OutputKey") == "DrainTableName":
            names.setdefault("DrainTable", output["OutputValue"])
        if output.get("OutputKey") == "LifecycleHookName":
            names.setdefault("TerminateLifecycleHook", output["OutputValue"])
    return names


def _open_records(session: Any, client: Any, status: StackStatus, at: float) -> None:
    from drain_coordinator.integrations.store import DrainStore, TaskStopStore

    table = session.resource("dynamodb", endpoint_url=client("dynamodb").meta.endpoint_url).Table(
        status.table
    )
    for drain in DrainStore(table).open_drains():
        status.drains.append(
            OpenDrain(
                instance_id=drain.instance_id,
                age_seconds=round(at - drain.hook_started_at, 1),  # since Terminating:Wait began
                deadline_in_seconds=round(drain.deadline_at - at, 1),
                calls_left=drain.sessions_remaining,
                tasks_left=drain.tasks_remaining,
                last_heartbeat_seconds_ago=round(at - drain.last_heartbeat_at, 1),
                heartbeats=drain.heartbeats,
                probe_errors=drain.probe_errors,
            )
        )
    for stop in TaskStopStore(table).open_stops():
        status.task_stops.append(
            OpenTaskStop(
                task_arn=stop.task_arn,
                service=stop.service,
                container_instance=stop.container_instance_arn,
                age_seconds=round(at - stop.stopping_at, 1),
                kill_in_seconds=round(stop.kill_at - at, 1),
                calls_left=stop.sessions_remaining,
                at_risk=stop.at_risk_warned,
            )
        )


def _hook(autoscaling: Any, names: dict[str, str], status: StackStatus) -> dict[str, Any] | None:
    """The terminate hook, found by name on the stack's group (or on any group, by name)."""
    hook_name = names.get("TerminateLifecycleHook", "")
    group = names.get("param:AutoScalingGroupName")
    groups = [group] if group else _groups(autoscaling)
    for name in groups:
        hooks = autoscaling.describe_lifecycle_hooks(
            AutoScalingGroupName=name, LifecycleHookNames=[hook_name]
        )
        for hook in hooks.get("LifecycleHooks", []):
            return {
                "name": hook["LifecycleHookName"],
                "group": hook["AutoScalingGroupName"],
                "heartbeat_timeout": hook.get("HeartbeatTimeout"),
                "global_timeout": hook.get("GlobalTimeout"),
                "default_result": hook.get("DefaultResult"),
            }
    status.notes.append(f"no lifecycle hook {hook_name} found on {', '.join(groups) or 'any group'}")
    return None


def _groups(autoscaling: Any) -> list[str]:
    pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate()
    return [g["AutoScalingGroupName"] for page in pages for g in page.get("AutoScalingGroups", [])]


def _last_tick(cloudwatch: Any, function_name: str, at: float, status: StackStatus) -> str | None:
    """The last minute the reconcile function ran in the past hour (AWS/Lambda Invocations)."""
    answer = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[{"Name": "FunctionName", "Value": function_name}],
        StartTime=datetime.fromtimestamp(at, tz=UTC) - timedelta(hours=1),
        EndTime=datetime.fromtimestamp(at, tz=UTC),
        Period=60,
        Statistics=["Sum"],
    )
    ran = [p["Timestamp"] for p in answer.get("Datapoints", []) if p.get("Sum", 0) > 0]
    if not ran:
        status.notes.append(f"{function_name} has no invocation in the last hour (AWS/Lambda Invocations)")
        return None
    return str(max(ran).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _alarms(cloudwatch: Any, stack: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{stack}-"):
        for alarm in page.get("MetricAlarms", []):
            found[alarm["AlarmName"]] = alarm["StateValue"]
    return dict(sorted(found.items()))


def _dead_letters(sqs: Any, queue: str, status: StackStatus) -> int | None:
    from botocore.exceptions import ClientError

    try:
        url = queue if queue.startswith("http") else sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    except ClientError as exc:
        if "NonExistentQueue" not in str(exc.response.get("Error", {}).get("Code", "")):
            raise
        status.notes.append(f"no dead-letter queue {queue}")
        return None
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


# --- showing -----------------------------------------------------------------------------------


def render(status: StackStatus) -> str:
    lines = [
        f"stack {status.stack} ({status.region}, resources found by {status.found_by}), table {status.table}"
    ]
    hook = status.hook
    lines.append(
        f"hook  {hook['name']} on {hook['group']}: heartbeat timeout {hook['heartbeat_timeout']} s, "
        f"global timeout {hook['global_timeout']} s, default {hook['default_result']}"
        if hook
        else "hook  not found"
    )
    lines.append(f"last reconcile tick  {status.last_reconcile_tick or 'none in the last hour'}")
    lines.append(
        "dead-letter queue    "
        + ("not found" if status.dead_letters is None else f"{status.dead_letters} messages")
    )
    lines.append("")
    lines.append(f"open drains ({len(status.drains)})")
    if status.drains:
        lines += _table(
            ["INSTANCE", "AGE", "DEADLINE IN", "CALLS LEFT", "TASKS", "LAST HEARTBEAT", "HEARTBEATS"],
            [
                [
                    d.instance_id,
                    _duration(d.age_seconds),
                    _duration(d.deadline_in_seconds),
                    _maybe(d.calls_left),
                    _maybe(d.tasks_left),
                    f"{_duration(d.last_heartbeat_seconds_ago)} ago",
                    str(d.heartbeats),
                ]
                for d in status.drains
            ],
        )
    lines.append("")
    lines.append(f"open task stops ({len(status.task_stops)})")
    if status.task_stops:
        lines += _table(
            ["TASK", "SERVICE", "CONTAINER INSTANCE", "AGE", "KILL IN", "CALLS LEFT", "AT RISK"],
            [
                [
                    s.task_arn.rsplit("/", 1)[-1],
                    s.service,
                    (s.container_instance or "-").rsplit("/", 1)[-1],
                    _duration(s.age_seconds),
                    _duration(s.kill_in_seconds),
                    _maybe(s.calls_left),
                    "yes" if s.at_risk else "no",
                ]
                for s in status.task_stops
            ],
        )
    lines.append("")
    lines.append(f"alarms ({len(status.alarms)})")
    lines += [f"  {state:<17} {name}" for name, state in status.alarms.items()] or ["  none found"]
    for note in status.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _maybe(value: int | None) -> str:
    return "?" if value is None else str(value)


def _duration(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    whole = abs(round(seconds))
    if whole >= 3600:
        return f"{sign}{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{sign}{whole // 60}m{whole % 60:02d}s"
