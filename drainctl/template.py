"""The SAM template, read the way CloudFormation and EventBridge would read it.

The local world builds its table, environment and event routes from `template.yaml` itself, so
what runs locally cannot drift from what is deployed:

    template = load_template(Path("template.yaml"))
    params = template.parameters({"LiveKitUrl": url, "LiveKitSecretArn": arn})
    env = template.environment("LifecycleFunction", params=params,
                               resource_names={"DrainTable": "drains"})
    for route in template.function_routes(params=params):
        if route.matches(event): ...

Intrinsic functions are resolved with the given parameters, resource names, attributes and
pseudo parameters; anything that only a real deployment knows raises `TemplateError`.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import yaml

__all__ = [
    "DEFAULT_PSEUDO_PARAMETERS",
    "EventPatternError",
    "FunctionRoute",
    "RouteKind",
    "Template",
    "TemplateError",
    "load_template",
    "matches",
    "samconfig_parameter_overrides",
]


class TemplateError(Exception):
    """The template, a parameter value or a samconfig file is wrong, or cannot be resolved here."""


class MissingParameterError(TemplateError):
    """A parameter has neither a default nor a given value."""


class EventPatternError(TemplateError):
    """An EventBridge event pattern is malformed."""


DEFAULT_PSEUDO_PARAMETERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::StackName": "livekit-drain",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackId": (
            "arn:aws:cloudformation:us-east-1:123456789012:stack/livekit-drain/"
            "00000000-0000-0000-0000-000000000000"
        ),
    }
)

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})

# ---------------------------------------------------------------------------------------------
# YAML with CloudFormation short forms: cfn-lint's decoder


def load_template(path: Path) -> Template:
    """Parse a CloudFormation/SAM YAML template, short-form tags turned into their long form."""
    from cfnlint.decode.cfn_yaml import loads

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template {path} is not UTF-8 text (byte {exc.start})") from exc
    try:
        body = _plain(loads(text, str(path)))
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid template YAML: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return Template(path=path, body=body)


def _plain(value: Any) -> Any:
    """cfn-lint's nodes as plain data; dates as CloudFormation reads them (text); tags checked."""
    from cfnlint.helpers import FUNCTION_RULES, FUNCTIONS

    if isinstance(value, dict):
        for key in value:
            if str(key).startswith("Fn::") and key not in FUNCTIONS | FUNCTION_RULES:
                raise TemplateError(f"unknown CloudFormation tag !{str(key).removeprefix('Fn::')}")
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return str(value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------------------------
# samconfig.toml


def samconfig_parameter_overrides(path: Path, config_env: str = "default") -> dict[str, str]:
    """The `parameter_overrides` of a samconfig file (deploy first, then global), as a dict.

    Both forms SAM accepts are read: the string `"A=1 B='two words'"` and the list
    `["A=1", "B=two words"]`; each item may also be `ParameterKey=A,ParameterValue=1`.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError(f"cannot read samconfig {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise TemplateError(f"samconfig {path} is not UTF-8 text (byte {exc.start})") from exc
    env = data.get(config_env, {})
    raw: Any = None
    for command in ("deploy", "global"):
        raw = env.get(command, {}).get("parameters", {}).get("parameter_overrides")
        if raw is not None:
            break
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            items = shlex.split(raw)
        except ValueError as exc:
            raise TemplateError(f"{path}: unreadable parameter_overrides: {exc}") from exc
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        items = [_unquote(item.strip()) for item in raw]
    else:
        raise TemplateError(f"{path}: parameter_overrides must be a string or a list of strings")
    return dict(_parse_override(item, path) for item in items)


def _unquote(text: str) -> str:
    key, sep, value = text.partition("=")
    if sep and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return f"{key}={value[1:-1]}"
    return text


def _parse_override(item: str, path: Path) -> tuple[str, str]:
    if item.startswith("ParameterKey="):
        match = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", item, re.DOTALL)
        if match is None:
            raise TemplateError(f"{path}: unreadable parameter override {item!r}")
        return match.group(1), match.group(2)
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise TemplateError(f"{path}: parameter override {item!r} is not NAME=VALUE")
    return key, value


# ---------------------------------------------------------------------------------------------
# Routes: which function each event reaches

RouteKind = Literal["EventBridgeRule", "ScheduleV2", "SQS"]

_SCHEDULER_CONTEXT: Final = (
    "<aws.scheduler.schedule-arn>",
    "<aws.scheduler.scheduled-time>",
    "<aws.scheduler.execution-id>",
    "<aws.scheduler.attempt-number>",
)


@dataclass(frozen=True)
class FunctionRoute:
    """One event source of one function, resolved.

    `source_arn` is the rule's or the schedule's ARN when the template names it.
    """

    logical_id: str
    handler: str
    event_name: str
    kind: RouteKind
    source_arn: str | None = None
    pattern: Mapping[str, Any] | None = None
    schedule_expression: str | None = None
    input: str | None = None
    # SQS: the queue's logical id, and the event source mapping's batch size and concurrency
    queue: str | None = None
    batch_size: int = 10
    maximum_concurrency: int | None = None

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when this route's EventBridge rule would deliver `event`."""
        return self.kind == "EventBridgeRule" and self.pattern is not None and matches(self.pattern, event)

    def scheduled_event(
        self,
        *,
        scheduled_time: datetime,
        execution_id: str,
        attempt_number: int = 1,
        schedule_arn: str | None = None,
    ) -> dict[str, Any]:
        """The payload EventBridge Scheduler hands the function: `input`, context filled in."""
        if self.kind != "ScheduleV2" or self.input is None:
            raise TemplateError(f"{self.logical_id}.{self.event_name} is not a schedule with Input")
        if scheduled_time.tzinfo is None:
            raise TemplateError("scheduled_time must be timezone-aware")
        arn = schedule_arn or self.source_arn
        if arn is None:
            raise TemplateError(f"{self.logical_id}.{self.event_name}: the schedule has no Name")
        values = (
            arn,
            scheduled_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            execution_id,
            str(attempt_number),
        )
        text = self.input
        for keyword, value in zip(_SCHEDULER_CONTEXT, values, strict=True):
            text = text.replace(keyword, value)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(f"{self.logical_id}.{self.event_name}: Input is not JSON") from exc
        if not isinstance(payload, dict):
            raise TemplateError(f"{self.logical_id}.{self.event_name}: Input is not an object")
        return payload


# ---------------------------------------------------------------------------------------------
# The template


# Ref on these returns the physical name, which the template may set itself.
_NAME_PROPERTY: Final = {
    "AWS::AutoScaling::AutoScalingGroup": "AutoScalingGroupName",
    "AWS::AutoScaling::LifecycleHook": "LifecycleHookName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Serverless::Function": "FunctionName",
}

_SERVERLESS_PREFIX: Final = "AWS::Serverless::"


@dataclass(frozen=True, eq=False)
class Template:
    """A parsed template, plus the values its intrinsic functions resolve against.

    Every method that resolves takes `params`, `resource_names`, `attributes` and `pseudo`;
    those left out come from `with_context`, else from the defaults (parameter defaults, no
    resource names, no attributes, `DEFAULT_PSEUDO_PARAMETERS`).
    `resource_names` maps a logical id to the physical name `Ref` returns; `attributes` maps
    `"LogicalId.Attribute"` to what `Fn::GetAtt` returns.
    """

    path: Path
    body: Mapping[str, Any]
    bound_params: Mapping[str, str] | None = None
    bound_resource_names: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    bound_attributes: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    bound_pseudo: Mapping[str, str] = field(default_factory=lambda: DEFAULT_PSEUDO_PARAMETERS)

    def with_context(
        self,
        *,
        params: Mapping[str, str] | None = None,
        resource_names: Mapping[str, str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> Template:
        """A copy whose methods resolve with these values unless told otherwise."""
        return replace(
            self,
            bound_params=self.bound_params if params is None else dict(params),
            bound_resource_names=(
                self.bound_resource_names if resource_names is None else dict(resource_names)
            ),
            bound_attributes=self.bound_attributes if attributes is None else dict(attributes),
            bound_pseudo=(self.bound_pseudo if pseudo is None else {**DEFAULT_PSEUDO_PARAMETERS, **pseudo}),
        )

    # -- parameters --------------------------------------------------------------------------

    def parameters(
        self,
        overrides: Mapping[str, str] | None = None,
        samconfig: Path | None = None,
        *,
        config_env: str = "default",
    ) -> dict[str, str]:
        """Parameter values: defaults, then samconfig's parameter_overrides, then `overrides`.

        Values are checked against each parameter's constraints (AllowedValues,
        AllowedPattern, Min/MaxLength, Min/MaxValue) and the template's Rules. A parameter
        with no default and no value is left out; resolving a `Ref` to it raises.
        """
        declared = self._declared_parameters()
        values = {
            name: _as_text(spec["Default"], f"Parameters.{name}.Default")
            for name, spec in declared.items()
            if "Default" in spec
        }
        if samconfig is not None:
            from_config = samconfig_parameter_overrides(samconfig, config_env)
            values.update(self._known(from_config, f"{samconfig} parameter_overrides"))
        if overrides:
            values.update(self._known(overrides, "parameter overrides"))
        for name, value in values.items():
            _check_parameter(name, declared[name], value)
        self._check_rules(values)
        return values

    def _declared_parameters(self) -> dict[str, Mapping[str, Any]]:
        declared = self.body.get("Parameters", {})
        if not isinstance(declared, Mapping):
            raise TemplateError("Parameters must be a mapping")
        return {str(name): spec for name, spec in declared.items()}

    def _known(self, given: Mapping[str, str], source: str) -> dict[str, str]:
        declared = self._declared_parameters()
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise TemplateError(
                f"{source}: unknown parameter(s) {', '.join(unknown)}; "
                f"the template declares {', '.join(sorted(declared))}"
            )
        return {name: _as_text(value, f"{source}.{name}") for name, value in given.items()}

    def _check_rules(self, values: Mapping[str, str]) -> None:
        rules = self.body.get("Rules", {})
        resolver = self._resolver(values, None, None, None)
        for name, rule in rules.items():
            try:
                if "RuleCondition" in rule and not resolver.truth(
                    rule["RuleCondition"], f"Rules.{name}.RuleCondition"
                ):
                    continue
                for index, assertion in enumerate(rule.get("Assertions", [])):
                    where = f"Rules.{name}.Assertions[{index}]"
                    if not resolver.truth(assertion["Assert"], where):
                        description = assertion.get("AssertDescription", "assertion failed")
                        raise TemplateError(f"rule {name}: {' '.join(str(description).split())}")
            except MissingParameterError:
                # A rule over a parameter nobody gave cannot be judged here; a deploy
                # would demand the value first.
                continue

    # -- resolution --------------------------------------------------------------------------

    def resolve(
        self,
        value: Any,
        params: Mapping[str, str],
        *,
        resource_names: Mapping[str, str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> Any:
        """`value` with every intrinsic function evaluated (AWS::NoValue entries dropped)."""
        return self._resolver(params, resource_names, attributes, pseudo).resolve(value, "value")

    def _resolver(
        self,
        params: Mapping[str, str] | None,
        resource_names: Mapping[str, str] | None,
        attributes: Mapping[str, Any] | None,
        pseudo: Mapping[str, str] | None,
    ) -> _Resolver:
        if params is None:
            params = self.bound_params if self.bound_params is not None else self.parameters()
        return _Resolver(
            body=self.body,
            params=params,
            resource_names=self.bound_resource_names if resource_names is None else resource_names,
            attributes=self.bound_attributes if attributes is None else attributes,
            pseudo=self.bound_pseudo if pseudo is None else {**DEFAULT_PSEUDO_PARAMETERS, **pseudo},
        )

    # -- resources ---------------------------------------------------------------------------

    def logical_ids(self, resource_type: str | None = None) -> list[str]:
        """Logical ids of the template's resources, of one type if given, in template order."""
        return [
            logical_id
            for logical_id, resource in self.body["Resources"].items()
            if resource_type is None or resource.get("Type") == resource_type
        ]

    def resource_type(self, logical_id: str) -> str:
        return str(self._raw_resource(logical_id).get("Type", ""))

    def resource(
        self,
        logical_id: str,
        *,
        params: Mapping[str, str] | None = None,
        resource_names: Mapping[str, str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The resource's Properties (SAM Globals merged in), resolved."""
        resolver = self._resolver(params, resource_names, attributes, pseudo)
        resolved = resolver.resolve(self._properties(logical_id), f"{logical_id}.Properties")
        assert isinstance(resolved, dict)
        return resolved

    def environment(
        self,
        logical_id: str,
        *,
        params: Mapping[str, str] | None = None,
        resource_names: Mapping[str, str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """A function's environment variables: Globals merged with its own, resolved."""
        variables = self._properties(logical_id).get("Environment", {}).get("Variables", {})
        resolver = self._resolver(params, resource_names, attributes, pseudo)
        where = f"{logical_id}.Environment.Variables"
        resolved = resolver.resolve(variables, where)
        return {name: _as_text(value, f"{where}.{name}") for name, value in resolved.items()}

    def function_routes(
        self,
        *,
        params: Mapping[str, str] | None = None,
        resource_names: Mapping[str, str] | None = None,
        attributes: Mapping[str, Any] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> list[FunctionRoute]:
        """Every event source of every function, in template order."""
        resolver = self._resolver(params, resource_names, attributes, pseudo)
        routes: list[FunctionRoute] = []
        for logical_id in self.logical_ids("AWS::Serverless::Function"):
            properties = self._properties(logical_id)
            handler = resolver.resolve(properties.get("Handler"), f"{logical_id}.Handler")
            if not isinstance(handler, str):
                raise TemplateError(f"{logical_id} has no Handler")
            for event_name, event in properties.get("Events", {}).items():
                routes.append(self._route(resolver, logical_id, handler, event_name, event))
        return routes

    def _route(
        self,
        resolver: _Resolver,
        logical_id: str,
        handler: str,
        event_name: str,
        event: Mapping[str, Any],
    ) -> FunctionRoute:
        where = f"{logical_id}.Events.{event_name}"
        kind = event.get("Type")
        props = event.get("Properties", {})
        arn_prefix = f"arn:{resolver.pseudo_value('AWS::Partition')}"
        region_account = f"{resolver.pseudo_value('AWS::Region')}:{resolver.pseudo_value('AWS::AccountId')}"
        if kind == "EventBridgeRule":
            pattern = resolver.resolve(props.get("Pattern"), f"{where}.Pattern")
            if not isinstance(pattern, dict):
                raise TemplateError(f"{where}: an EventBridgeRule needs a Pattern")
            rule_name = resolver.resolve(props.get("RuleName"), f"{where}.RuleName")
            bus = resolver.resolve(props.get("EventBusName", "default"), f"{where}.EventBusName")
            rule_path = f"rule/{rule_name}" if bus == "default" else f"rule/{bus}/{rule_name}"
            return FunctionRoute(
                logical_id=logical_id,
                handler=handler,
                event_name=event_name,
                kind="EventBridgeRule",
                source_arn=(
                    None if rule_name is None else f"{arn_prefix}:events:{region_account}:{rule_path}"
                ),
                pattern=pattern,
            )
        if kind == "ScheduleV2":
            expression = resolver.resolve(props.get("ScheduleExpression"), f"{where}.Schedule")
            payload = resolver.resolve(props.get("Input"), f"{where}.Input")
            name = resolver.resolve(props.get("Name"), f"{where}.Name")
            group = resolver.resolve(props.get("GroupName", "default"), f"{where}.GroupName")
            return FunctionRoute(
                logical_id=logical_id,
                handler=handler,
                event_name=event_name,
                kind="ScheduleV2",
                source_arn=(
                    None
                    if name is None
                    else f"{arn_prefix}:scheduler:{region_account}:schedule/{group}/{name}"
                ),
                schedule_expression=None if expression is None else str(expression),
                input=None if payload is None else str(payload),
            )
        if kind == "SQS":
            queue = props.get("Queue")
            queue_id = queue.get("Fn::GetAtt", [None])[0] if isinstance(queue, Mapping) else None
            if isinstance(queue_id, str) and "." in queue_id:
                queue_id = queue_id.split(".", 1)[0]
            scaling = resolver.resolve(props.get("ScalingConfig", {}), f"{where}.ScalingConfig") or {}
            maximum = scaling.get("MaximumConcurrency") if isinstance(scaling, Mapping) else None
            return FunctionRoute(
                logical_id=logical_id,
                handler=handler,
                event_name=event_name,
                kind="SQS",
                queue=str(queue_id) if queue_id else None,
                batch_size=int(str(resolver.resolve(props.get("BatchSize", 10), f"{where}.BatchSize"))),
                maximum_concurrency=None if maximum is None else int(str(maximum)),
            )
        raise TemplateError(
            f"{where}: event type {kind!r} has no local route (EventBridgeRule, ScheduleV2 and SQS do)"
        )

    def _raw_resource(self, logical_id: str) -> Mapping[str, Any]:
        resource = self.body["Resources"].get(logical_id)
        if not isinstance(resource, Mapping):
            raise TemplateError(f"the template has no resource {logical_id}")
        return resource

    def _properties(self, logical_id: str) -> dict[str, Any]:
        """Unresolved Properties, with the SAM Globals of the resource's kind merged in."""
        resource = self._raw_resource(logical_id)
        properties = dict(resource.get("Properties", {}))
        kind = str(resource.get("Type", ""))
        if kind.startswith(_SERVERLESS_PREFIX):
            section = self.body.get("Globals", {}).get(kind.removeprefix(_SERVERLESS_PREFIX), {})
            merged = _merge_globals(section, properties)
            assert isinstance(merged, dict)
            return merged
        return properties


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, Mapping) or len(value) != 1:
        return False
    key = next(iter(value))
    return key in ("Ref", "Condition") or str(key).startswith("Fn::")


def _merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's rule: maps merge key by key, lists concatenate, anything else the resource wins."""
    if (
        isinstance(global_value, Mapping)
        and isinstance(local_value, Mapping)
        and not _is_intrinsic(global_value)
        and not _is_intrinsic(local_value)
    ):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


# ---------------------------------------------------------------------------------------------
# Parameter constraints


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    kind = str(spec.get("Type", "String"))
    if kind == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise TemplateError(f"parameter {name}={value!r} is not a number")
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value} is below MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value} is above MaxValue {spec['MaxValue']}")
        allowed = spec.get("AllowedValues")
        if allowed is not None and number not in {float(v) for v in allowed}:
            raise TemplateError(f"parameter {name}={value} is not one of {list(allowed)}")
        return
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise TemplateError(f"parameter {name} is shorter than MinLength {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise TemplateError(f"parameter {name} is longer than MaxLength {spec['MaxLength']}")
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in {_as_text(v, name) for v in allowed}:
        raise TemplateError(f"parameter {name}={value!r} is not one of {list(allowed)}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        hint = spec.get("ConstraintDescription", f"AllowedPattern {pattern}")
        raise TemplateError(f"parameter {name}={value!r} is not {hint}")


def _as_text(value: Any, where: str) -> str:
    """A scalar as CloudFormation writes it into a string (parameters, environment values)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# Intrinsic functions

_NO_VALUE: Final = object()  # what Ref AWS::NoValue resolves to: the entry is dropped
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
_UNRESOLVABLE_HERE: Final = ("Fn::ImportValue", "Fn::GetAZs", "Fn::Cidr", "Fn::Transform")


@dataclass(frozen=True)
class _Resolver:
    body: Mapping[str, Any]
    params: Mapping[str, str]
    resource_names: Mapping[str, str]
    attributes: Mapping[str, Any]
    pseudo: Mapping[str, str]
    _conditions: dict[str, bool] = field(default_factory=dict)
    _evaluating: set[str] = field(default_factory=set)

    def resolve(self, value: Any, where: str) -> Any:
        resolved = self._value(value, where)
        return None if resolved is _NO_VALUE else resolved

    def truth(self, value: Any, where: str) -> bool:
        resolved = self._value(value, where)
        if not isinstance(resolved, bool):
            raise TemplateError(f"{where}: expected a condition, got {resolved!r}")
        return resolved

    def pseudo_value(self, name: str) -> str:
        if name not in self.pseudo:
            raise TemplateError(f"pseudo parameter {name} has no value here")
        return self.pseudo[name]

    def _value(self, value: Any, where: str) -> Any:
        if isinstance(value, Mapping):
            if _is_intrinsic(value) and next(iter(value)) != "Condition":
                (function, argument), *_ = value.items()
                return self._intrinsic(str(function), argument, where)
            resolved_map: dict[str, Any] = {}
            for key, item in value.items():
                resolved = self._value(item, f"{where}.{key}")
                if resolved is not _NO_VALUE:
                    resolved_map[str(key)] = resolved
            return resolved_map
        if isinstance(value, list):
            resolved_items = (self._value(item, f"{where}[{i}]") for i, item in enumerate(value))
            return [item for item in resolved_items if item is not _NO_VALUE]
        return value

    def _intrinsic(self, function: str, argument: Any, where: str) -> Any:
        handlers: dict[str, Callable[[Any, str], Any]] = {
            "Ref": self._ref,
            "Fn::Sub": self._sub,
            "Fn::GetAtt": self._get_att,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Fn::Contains": self._contains,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
        }
        handler = handlers.get(function)
        if handler is None:
            if function in _UNRESOLVABLE_HERE:
                raise TemplateError(f"{where}: {function} needs a real deployment to resolve")
            raise TemplateError(f"{where}: unsupported intrinsic function {function}")
        return handler(argument, f"{where}.{function}")

    # Ref / GetAtt / Sub

    def _ref(self, argument: Any, where: str) -> Any:
        name = self._value(argument, where)
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref needs a name, got {name!r}")
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name.startswith("AWS::"):
            return self.pseudo_value(name)
        declared = self.body.get("Parameters", {})
        if name in declared:
            if name not in self.params:
                raise MissingParameterError(
                    f"{where}: parameter {name} has no value (no Default): give it in the "
                    "parameter overrides or in samconfig's parameter_overrides"
                )
            value = self.params[name]
            kind = str(declared[name].get("Type", "String"))
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                return [item.strip() for item in value.split(",")]
            return value
        return self._resource_name(name, where)

    def _resource_name(self, logical_id: str, where: str) -> str:
        if logical_id in self.resource_names:
            return self.resource_names[logical_id]
        resource = self.body["Resources"].get(logical_id)
        if not isinstance(resource, Mapping):
            raise TemplateError(f"{where}: Ref to {logical_id}, which the template does not declare")
        name_property = _NAME_PROPERTY.get(str(resource.get("Type")))
        properties = resource.get("Properties", {})
        if name_property is not None and name_property in properties:
            name = self._value(properties[name_property], f"{logical_id}.{name_property}")
            return _as_text(name, f"{logical_id}.{name_property}")
        raise TemplateError(f"{where}: Ref to {logical_id} needs its physical name: pass resource_names")

    def _get_att(self, argument: Any, where: str) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        parts = self._value(argument, where)
        if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) for p in parts)):
            raise TemplateError(f"{where}: Fn::GetAtt needs [LogicalId, Attribute]")
        key = f"{parts[0]}.{parts[1]}"
        if key not in self.attributes:
            raise TemplateError(f"{where}: Fn::GetAtt {key} needs a value: pass attributes")
        return self.attributes[key]

    def _sub(self, argument: Any, where: str) -> str:
        variables: Mapping[str, Any] = {}
        if isinstance(argument, list):
            if len(argument) != 2 or not isinstance(argument[1], Mapping):
                raise TemplateError(f"{where}: Fn::Sub needs a string or [string, {{variables}}]")
            argument, variables = argument
        if not isinstance(argument, str):
            raise TemplateError(f"{where}: Fn::Sub needs a string")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = self._value(variables[name], f"{where}.{name}")
            elif "." in name:
                value = self._get_att(name, where)
            else:
                value = self._ref(name, where)
            return _as_text(value, f"{where}.${{{name}}}")

        return _SUB_VARIABLE.sub(substitute, argument)

    # Conditions

    def _condition(self, name: Any, where: str) -> bool:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: a condition name must be a string")
        if name in self._conditions:
            return self._conditions[name]
        conditions = self.body.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"{where}: the template has no condition {name}")
        if name in self._evaluating:
            raise TemplateError(f"{where}: condition {name} depends on itself")
        self._evaluating.add(name)
        try:
            value = self._operand(conditions[name], f"Conditions.{name}")
        finally:
            self._evaluating.discard(name)
        self._conditions[name] = value
        return value

    def _operand(self, value: Any, where: str) -> bool:
        """A condition operand: another function, or `{"Condition": name}`."""
        if isinstance(value, Mapping) and len(value) == 1 and "Condition" in value:
            return self._condition(value["Condition"], where)
        resolved = self._value(value, where)
        if not isinstance(resolved, bool):
            raise TemplateError(f"{where}: expected a condition, got {resolved!r}")
        return resolved

    def _if(self, argument: Any, where: str) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"{where}: Fn::If needs [condition, then, else]")
        name, when_true, when_false = argument
        chosen = when_true if self._condition(name, where) else when_false
        return self._value(chosen, where)

    def _equals(self, argument: Any, where: str) -> bool:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Equals needs two values")
        left, right = (self._value(item, where) for item in argument)
        if isinstance(left, str | int | float | bool) and isinstance(right, str | int | float | bool):
            return _as_text(left, where) == _as_text(right, where)
        return bool(left == right)

    def _not(self, argument: Any, where: str) -> bool:
        if not (isinstance(argument, list) and len(argument) == 1):
            raise TemplateError(f"{where}: Fn::Not needs one condition")
        return not self._operand(argument[0], where)

    def _and(self, argument: Any, where: str) -> bool:
        operands = self._operands(argument, where)
        return all(self._operand(item, where) for item in operands)

    def _or(self, argument: Any, where: str) -> bool:
        operands = self._operands(argument, where)
        return any(self._operand(item, where) for item in operands)

    @staticmethod
    def _operands(argument: Any, where: str) -> Sequence[Any]:
        if not (isinstance(argument, list) and 2 <= len(argument) <= 10):
            raise TemplateError(f"{where}: needs 2 to 10 conditions")
        return argument

    def _contains(self, argument: Any, where: str) -> bool:
        # A Rules function: is the value one of the list's members?
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Contains needs [list, value]")
        members, value = (self._value(item, where) for item in argument)
        if not isinstance(members, list):
            raise TemplateError(f"{where}: Fn::Contains needs a list")
        text = _as_text(value, where)
        return any(_as_text(member, where) == text for member in members)

    # Lists and strings

    def _join(self, argument: Any, where: str) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Join needs [delimiter, list]")
        delimiter = self._value(argument[0], where)
        items = self._value(argument[1], where)
        if not isinstance(delimiter, str) or not isinstance(items, list):
            raise TemplateError(f"{where}: Fn::Join needs [delimiter, list]")
        return delimiter.join(_as_text(item, where) for item in items)

    def _select(self, argument: Any, where: str) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Select needs [index, list]")
        index = self._value(argument[0], where)
        items = self._value(argument[1], where)
        try:
            position = int(index)
        except (TypeError, ValueError):
            raise TemplateError(f"{where}: Fn::Select index {index!r} is not a number") from None
        if not isinstance(items, list) or not 0 <= position < len(items):
            raise TemplateError(f"{where}: Fn::Select index {position} is out of range")
        return items[position]

    def _split(self, argument: Any, where: str) -> list[str]:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"{where}: Fn::Split needs [delimiter, string]")
        delimiter = self._value(argument[0], where)
        text = self._value(argument[1], where)
        if not isinstance(delimiter, str) or not delimiter or not isinstance(text, str):
            raise TemplateError(f"{where}: Fn::Split needs [delimiter, string]")
        return text.split(delimiter)

    def _find_in_map(self, argument: Any, where: str) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"{where}: Fn::FindInMap needs [map, key, key]")
        map_name, first, second = (_as_text(self._value(a, where), where) for a in argument)
        try:
            return self._value(self.body["Mappings"][map_name][first][second], where)
        except (KeyError, TypeError):
            raise TemplateError(f"{where}: no mapping {map_name}.{first}.{second}") from None

    def _base64(self, argument: Any, where: str) -> str:
        text = _as_text(self._value(argument, where), where)
        return base64.b64encode(text.encode("utf-8")).decode("ascii")


# ---------------------------------------------------------------------------------------------
# EventBridge event patterns: moto's matcher, behind a check of the pattern and two AWS rules
# moto does not follow (JSON types must agree: true is not 1; arrays of objects are searched).

_FILTERS: Final = {
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "exists",
    "numeric",
    "cidr",
}
_TRUE, _FALSE = "\x00true", "\x00false"  # booleans, told apart from 1 and 0


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """True when EventBridge would deliver `event` to a rule with `pattern`."""
    from moto.events.exceptions import InvalidEventPatternException
    from moto.events.models import EventPattern

    if not isinstance(pattern, Mapping):
        raise EventPatternError("an event pattern must be an object")
    _check_pattern(pattern, "pattern")
    try:
        loaded = EventPattern.load(json.dumps(_booleans(pattern, pattern=True)))
    except InvalidEventPatternException as exc:
        raise EventPatternError(f"malformed event pattern: {exc.message}") from None
    return bool(loaded.matches_event(_booleans(_flatten_arrays(event))))


def _check_pattern(pattern: Mapping[str, Any], where: str) -> None:
    for key, rule in pattern.items():
        if key == "$or":
            if not (isinstance(rule, list) and len(rule) >= 2 and all(isinstance(b, Mapping) for b in rule)):
                raise EventPatternError(f"{where}.$or: needs a list of at least two patterns")
            for branch in rule:
                _check_pattern(branch, where)
        elif isinstance(rule, Mapping):
            _check_pattern(rule, f"{where}.{key}")
        elif isinstance(rule, list) and not all(map(_filter_ok, rule)):
            raise EventPatternError(f"{where}.{key}: a malformed filter in {rule}")


def _filter_ok(condition: Any) -> bool:
    if not isinstance(condition, Mapping):
        return not isinstance(condition, list)
    (name, argument), *rest = condition.items() if condition else [(None, None)]
    if rest or name not in _FILTERS:
        return False
    if name == "exists":
        return isinstance(argument, bool)
    if name == "numeric":
        operands = argument if isinstance(argument, list) else []
        pairs = list(zip(operands[::2], operands[1::2], strict=False))
        operators = ("<", "<=", "=", ">=", ">")
        return (
            bool(pairs)
            and len(operands) % 2 == 0
            and all(op in operators and type(n) in (int, float) for op, n in pairs)
        )
    return True


def _flatten_arrays(value: Any) -> Any:
    """EventBridge reads `[{"a": 1}, {"a": 2}]` as `{"a": [1, 2]}`."""
    if isinstance(value, Mapping):
        return {key: _flatten_arrays(item) for key, item in value.items()}
    if isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
        merged: dict[str, list[Any]] = {}
        for item in value:
            for key, inner in item.items() if isinstance(item, Mapping) else []:
                merged.setdefault(key, []).extend(inner if isinstance(inner, list) else [inner])
        return {key: _flatten_arrays(items) for key, items in merged.items()}
    return value


def _booleans(value: Any, pattern: bool = False) -> Any:
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, Mapping):
        keep = pattern and list(value) == ["exists"]  # the filter itself takes a real boolean
        return value if keep else {key: _booleans(item, pattern) for key, item in value.items()}
    return [_booleans(item, pattern) for item in value] if isinstance(value, list) else value
