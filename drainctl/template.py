"""The SAM template, read the way CloudFormation, SAM and EventBridge read it.

The local world builds its table, environment and event routes from `template.yaml` itself, so
what runs locally cannot drift from what is deployed. Libraries do the reading, imported where
used (`drainctl --help` loads none): cfn-lint's decoder (YAML short forms) and its SAM Globals
merge; the SAM translator, whose rules, schedules and event source mappings the routes are read
from; moto's `EventPattern`, behind a check of the pattern and two rules of AWS it misses.
Intrinsic functions, conditions, Rules and parameter constraints are evaluated here, strictly:
what only a deployment knows raises `TemplateError`, where the libraries' evaluators (the SAM
translator's, moto's CloudFormation) leave it unresolved or guess.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shlex
import tomllib
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypedDict, Unpack

import yaml

__all__ = [
    "DEFAULT_PSEUDO_PARAMETERS",
    "EventPatternError",
    "FunctionRoute",
    "MissingParameterError",
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


def load_template(path: Path) -> Template:
    """Parse a CloudFormation/SAM YAML template, short-form tags turned into their long form."""
    from cfnlint.decode.cfn_yaml import loads
    from cfnlint.helpers import FUNCTION_RULES, FUNCTIONS

    try:  # cfn-lint's nodes as plain data, dates as CloudFormation reads them (text)
        text = json.dumps(loads(path.read_text(encoding="utf-8"), str(path)), default=lambda d: d.isoformat())
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template {path} is not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid template YAML: {exc}") from exc
    # every "Fn::" key (a quote inside a string is escaped) must be one of CloudFormation's functions
    if unknown := sorted(set(re.findall(r'(?<!\\)"(Fn::[^"\\]*)":', text)) - FUNCTIONS - FUNCTION_RULES):
        raise TemplateError(f"unknown CloudFormation tag !{unknown[0].removeprefix('Fn::')}")
    if not isinstance(body := json.loads(text), dict) or not isinstance(body.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return Template(path=path, body=body)


def samconfig_parameter_overrides(path: Path, config_env: str = "default") -> dict[str, str]:
    """The `parameter_overrides` of a samconfig file (deploy first, then global), as a dict.

    Both forms SAM accepts are read: the string `"A=1 B='two words'"` and the list
    `["A=1", "B=two words"]`; each item may also be `ParameterKey=A,ParameterValue=1`.
    """
    try:
        env = tomllib.loads(path.read_text(encoding="utf-8")).get(config_env, {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read samconfig {path}: {exc}") from exc
    sections = [env.get(command, {}).get("parameters", {}) for command in ("deploy", "global")]
    raw: Any = next((s["parameter_overrides"] for s in sections if "parameter_overrides" in s), [])
    if isinstance(raw, str):
        try:
            items = shlex.split(raw)
        except ValueError as exc:
            raise TemplateError(f"{path}: unreadable parameter_overrides: {exc}") from exc
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        items = [re.sub(r"^([^=]*=)([\"'])(.*)\2$", r"\1\3", item.strip(), flags=re.DOTALL) for item in raw]
    else:
        raise TemplateError(f"{path}: parameter_overrides must be a string or a list of strings")
    overrides = {}
    for item in items:
        long_form = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", item, re.DOTALL)
        key, sep, value = (long_form[1], "=", long_form[2]) if long_form else item.partition("=")
        if not sep or not key or (item.startswith("ParameterKey=") and not long_form):
            raise TemplateError(f"{path}: unreadable parameter override {item!r} (NAME=VALUE)")
        overrides[key] = value
    return overrides


# ---------------------------------------------------------------------------------------------
# Routes: which function each event reaches

RouteKind = Literal["EventBridgeRule", "ScheduleV2", "SQS"]


@dataclass(frozen=True)
class FunctionRoute:
    """One event source of one function, resolved.

    `source_arn` is the rule's or the schedule's ARN when the template names it; a schedule's
    `input` is what drainctl.world.schedules fills in for each invocation.
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
_NO_VALUE: Final = object()  # what Ref AWS::NoValue resolves to: the entry is dropped
_UNRESOLVABLE_HERE: Final = ("Fn::ImportValue", "Fn::GetAZs", "Fn::Cidr", "Fn::Transform")


class _Names(TypedDict, total=False):
    resource_names: Mapping[str, str] | None
    attributes: Mapping[str, Any] | None
    pseudo: Mapping[str, str] | None


class _Context(_Names, total=False):
    params: Mapping[str, str] | None


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
    _conditions: dict[str, bool | None] = field(default_factory=dict, init=False, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)  # shared by the copies

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
            bound_resource_names=self.bound_resource_names
            if resource_names is None
            else dict(resource_names),
            bound_attributes=self.bound_attributes if attributes is None else dict(attributes),
            bound_pseudo=self.bound_pseudo if pseudo is None else {**DEFAULT_PSEUDO_PARAMETERS, **pseudo},
        )

    def _bound(self, **context: Unpack[_Context]) -> Template:
        if context.get("params") is None and self.bound_params is None:
            context["params"] = self.parameters()
        return self.with_context(**context)

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
        if not isinstance(declared := self.body.get("Parameters", {}), Mapping):
            raise TemplateError("Parameters must be a mapping")
        values = {n: _as_text(s["Default"], f"Parameters.{n}") for n, s in declared.items() if "Default" in s}
        sources = [(overrides or {}, "parameter overrides")]
        if samconfig is not None:
            given = samconfig_parameter_overrides(samconfig, config_env)
            sources.insert(0, (given, f"{samconfig} parameter_overrides"))
        for source_values, source in sources:
            if unknown := sorted(set(source_values) - set(declared)):
                raise TemplateError(
                    f"{source}: unknown parameter(s) {', '.join(unknown)}; "
                    f"the template declares {', '.join(sorted(declared))}"
                )
            values.update({name: _as_text(v, f"{source}.{name}") for name, v in source_values.items()})
        for name, value in values.items():
            _check_parameter(name, declared[name], value)
        bound = self.with_context(params=values)
        for name, rule in self.body.get("Rules", {}).items():
            try:  # a rule over a parameter nobody gave cannot be judged here; a deploy would ask first
                if "RuleCondition" in rule and not bound._truth(rule["RuleCondition"], f"Rules.{name}"):
                    continue
                for assertion in rule.get("Assertions", []):
                    if not bound._truth(assertion["Assert"], f"Rules.{name}.Assertions"):
                        description = assertion.get("AssertDescription", "assertion failed")
                        raise TemplateError(f"rule {name}: {' '.join(str(description).split())}")
            except MissingParameterError:
                continue
        return values

    def resolve(self, value: Any, params: Mapping[str, str], **context: Unpack[_Names]) -> Any:
        """`value` with every intrinsic function evaluated (AWS::NoValue entries dropped)."""
        return self._bound(params=params, **context)._resolved(value, "value")

    def logical_ids(self, resource_type: str | None = None) -> list[str]:
        """Logical ids of the template's resources, of one type if given, in template order."""
        resources = self.body["Resources"].items()
        return [lid for lid, r in resources if resource_type is None or r.get("Type") == resource_type]

    def resource_type(self, logical_id: str) -> str:
        return str(self._raw_resource(logical_id).get("Type", ""))

    def resource(self, logical_id: str, **context: Unpack[_Context]) -> dict[str, Any]:
        """The resource's Properties (SAM Globals merged in), resolved."""
        resolved = self._bound(**context)._resolved(self._properties(logical_id), logical_id)
        assert isinstance(resolved, dict)
        return resolved

    def environment(self, logical_id: str, **context: Unpack[_Context]) -> dict[str, str]:
        """A function's environment variables: Globals merged with its own, resolved."""
        variables = self._properties(logical_id).get("Environment", {}).get("Variables", {})
        where = f"{logical_id}.Environment.Variables"
        resolved = self._bound(**context)._resolved(variables, where)
        return {name: _as_text(value, f"{where}.{name}") for name, value in resolved.items()}

    def function_routes(self, **context: Unpack[_Context]) -> list[FunctionRoute]:
        """Every event source of every function, in template order, read from what SAM makes of it."""
        bound, generated = self._bound(**context), self._translated["Resources"]
        routes: list[FunctionRoute] = []
        for logical_id in self.logical_ids("AWS::Serverless::Function"):
            properties = self._properties(logical_id)
            if not isinstance(handler := bound._resolved(properties.get("Handler"), logical_id), str):
                raise TemplateError(f"{logical_id} has no Handler")
            for name, event in properties.get("Events", {}).items():
                route = FunctionRoute(logical_id, handler, name, event.get("Type"))
                routes.append(bound._route(route, generated.get(logical_id + name, {}).get("Properties", {})))
        return routes

    def _raw_resource(self, logical_id: str) -> Mapping[str, Any]:
        if not isinstance(resource := self.body["Resources"].get(logical_id), Mapping):
            raise TemplateError(f"the template has no resource {logical_id}")
        return resource

    def _properties(self, logical_id: str) -> dict[str, Any]:
        """Unresolved Properties, with the SAM Globals of the resource's kind merged in."""
        from cfnlint.template.transforms._sam_globals import merge_globals

        self._raw_resource(logical_id)
        if "merged" not in self._cache:
            self._cache["merged"] = merge_globals(deepcopy(dict(self.body)))
        return dict(self._cache["merged"]["Resources"][logical_id].get("Properties", {}))

    @property
    def _translated(self) -> dict[str, Any]:
        """The template as SAM translates it, offline: the code "uploaded", no managed policies looked up."""
        from boto3.session import Session
        from samtranslator.model.exceptions import InvalidDocumentException
        from samtranslator.parser.parser import Parser
        from samtranslator.translator.translator import Translator

        if "translated" not in self._cache:
            body = deepcopy(dict(self.body))
            resources = [r.get("Properties", {}) for r in body["Resources"].values()]
            for properties in [body.get("Globals", {}).get("Function", {}), *resources]:
                for key in ("CodeUri", "ContentUri"):  # a local path `sam deploy` would upload
                    if isinstance(properties.get(key), str):
                        properties[key] = "s3://local/code.zip"
            session = Session(region_name=self._pseudo("AWS::Region"))
            translator = Translator({}, Parser(), boto_session=session)
            try:
                self._cache["translated"] = translator.translate(body, {}, get_managed_policy_map=dict)
            except InvalidDocumentException as exc:
                raise TemplateError(f"SAM cannot translate {self.path}: {exc.message}") from None
        translated: dict[str, Any] = self._cache["translated"]
        return translated

    def _route(self, route: FunctionRoute, props: Mapping[str, Any]) -> FunctionRoute:
        """One event of a function, from the rule, schedule or event source mapping SAM makes of it."""
        where = f"{route.logical_id}.Events.{route.event_name}"

        def prop(name: str, default: Any = None, within: Mapping[str, Any] = props) -> Any:
            return self._resolved(within.get(name, default), f"{where}.{name}")

        partition, region, account = (self._pseudo(f"AWS::{n}") for n in ("Partition", "Region", "AccountId"))
        match route.kind:
            case "EventBridgeRule":
                if not isinstance(pattern := prop("EventPattern"), dict):
                    raise TemplateError(f"{where}: an EventBridgeRule needs a Pattern")
                name, bus = prop("Name"), prop("EventBusName", "default")
                rule = f"rule/{name}" if bus == "default" else f"rule/{bus}/{name}"
                arn = f"arn:{partition}:events:{region}:{account}:{rule}"
                return replace(route, source_arn=name and arn, pattern=pattern)
            case "ScheduleV2":
                name, group = prop("Name"), prop("GroupName", "default")
                payload = prop("Input", within=props.get("Target", {}))
                expression = prop("ScheduleExpression")
                arn = f"arn:{partition}:scheduler:{region}:{account}:schedule/{group}/{name}"
                return replace(
                    route,
                    source_arn=name and arn,
                    schedule_expression=None if expression is None else str(expression),
                    input=None if payload is None else str(payload),
                )
            case "SQS":
                queue = props.get("EventSourceArn")  # the queue's logical id, from its Fn::GetAtt
                queue_id = queue.get("Fn::GetAtt", [None])[0] if isinstance(queue, Mapping) else None
                maximum = prop("ScalingConfig", {}).get("MaximumConcurrency")
                return replace(
                    route,
                    queue=queue_id.split(".", 1)[0] or None if isinstance(queue_id, str) else None,
                    batch_size=int(str(prop("BatchSize", 10))),
                    maximum_concurrency=None if maximum is None else int(str(maximum)),
                )
        raise TemplateError(
            f"{where}: event type {route.kind!r} has no local route (EventBridgeRule, ScheduleV2 and SQS do)"
        )

    # -- intrinsic functions, as CloudFormation documents them (intrinsic-function-reference.html,
    # and rules-section-structure.html for Fn::Contains, under
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/); a malformed call is a
    # TemplateError (cfn-lint judges the shape)

    def _resolved(self, value: Any, where: str) -> Any:
        return None if (resolved := self._value(value, where)) is _NO_VALUE else resolved

    def _truth(self, value: Any, where: str) -> bool:
        if isinstance(value, Mapping) and list(value) == ["Condition"]:
            return self._condition(value["Condition"], where)
        if not isinstance(resolved := self._value(value, where), bool):
            raise TemplateError(f"{where}: expected a condition, got {resolved!r}")
        return resolved

    def _condition(self, name: str, where: str) -> bool:
        if name not in self.body.get("Conditions", {}):
            raise TemplateError(f"{where}: the template has no condition {name}")
        if name not in self._conditions:
            self._conditions[name] = None  # being evaluated
            self._conditions[name] = self._truth(self.body["Conditions"][name], f"Conditions.{name}")
        if (value := self._conditions[name]) is None:
            raise TemplateError(f"{where}: condition {name} depends on itself")
        return value

    def _pseudo(self, name: str) -> str:
        if name not in self.bound_pseudo:
            raise TemplateError(f"pseudo parameter {name} has no value here")
        return self.bound_pseudo[name]

    def _value(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            items = (self._value(item, f"{where}[{i}]") for i, item in enumerate(value))
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        function = str(next(iter(value), ""))
        if len(value) != 1 or not (function == "Ref" or function.startswith("Fn::")):
            pairs = ((str(key), self._value(item, f"{where}.{key}")) for key, item in value.items())
            return {key: item for key, item in pairs if item is not _NO_VALUE}
        if function in _UNRESOLVABLE_HERE:
            raise TemplateError(f"{where}.{function}: {function} needs a real deployment to resolve")
        try:
            return self._call(function, value[function], f"{where}.{function}")
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise TemplateError(f"{where}.{function}: cannot evaluate {value[function]!r} ({exc})") from None

    def _call(self, function: str, argument: Any, where: str) -> Any:
        def resolved(item: Any) -> Any:
            return self._value(item, where)

        def text(item: Any) -> str:
            return _as_text(self._value(item, where), where)

        match function:
            case "Ref":
                return self._ref(resolved(argument), where)
            case "Fn::GetAtt":
                logical_id, attribute = resolved(
                    argument.split(".", 1) if isinstance(argument, str) else argument
                )
                if (key := f"{logical_id}.{attribute}") not in self.bound_attributes:
                    raise TemplateError(f"{where}: Fn::GetAtt {key} needs a value: pass attributes")
                return self.bound_attributes[key]
            case "Fn::Sub":
                template, variables = (argument, {}) if isinstance(argument, str) else argument

                def substitute(match: re.Match[str]) -> str:
                    if (name := match.group(1)).startswith("!"):  # ${!Literal} is written as ${Literal}
                        return "${" + name[1:] + "}"
                    if name in variables:
                        return text(variables[name])
                    return text({"Fn::GetAtt": name} if "." in name else {"Ref": name})

                return re.sub(r"\$\{([^}]*)\}", substitute, template)
            case "Fn::If":
                name, when_true, when_false = argument
                return resolved(when_true if self._condition(name, where) else when_false)
            case "Fn::Equals":
                left, right = map(resolved, argument)
                if all(isinstance(side, str | int | float) for side in (left, right)):
                    return _as_text(left, where) == _as_text(right, where)
                return bool(left == right)
            case "Fn::Not":
                (operand,) = argument
                return not self._truth(operand, where)
            case "Fn::And" | "Fn::Or":
                truths = (self._truth(operand, where) for operand in argument)
                return all(truths) if function == "Fn::And" else any(truths)
            case "Fn::Contains":  # Rules: is the value one of the list's?
                members, member = map(resolved, argument)
                return _as_text(member, where) in [_as_text(each, where) for each in members]
            case "Fn::Join":
                delimiter, items = map(resolved, argument)
                return str(delimiter).join(_as_text(item, where) for item in items)
            case "Fn::Select":
                index, items = map(resolved, argument)
                if not 0 <= int(index) < len(items):
                    raise TemplateError(f"{where}: Fn::Select index {index} is out of range")
                return items[int(index)]
            case "Fn::Split":
                delimiter, source = map(text, argument)
                return source.split(delimiter)
            case "Fn::FindInMap":
                map_name, first, second = map(text, argument)
                return resolved(self.body["Mappings"][map_name][first][second])
            case "Fn::Base64":
                return base64.b64encode(text(argument).encode()).decode("ascii")
        raise TemplateError(f"{where}: unsupported intrinsic function {function}")

    def _ref(self, name: str, where: str) -> Any:
        declared = self.body.get("Parameters", {})
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name.startswith("AWS::"):
            return self._pseudo(name)
        if name in declared:
            if (value := (self.bound_params or {}).get(name)) is None:
                raise MissingParameterError(
                    f"{where}: parameter {name} has no value (no Default): give it in the "
                    "parameter overrides or in samconfig's parameter_overrides"
                )
            kind = str(declared[name].get("Type", "String"))
            is_list = kind == "CommaDelimitedList" or kind.startswith("List<")
            return [item.strip() for item in value.split(",")] if is_list else value
        if name in self.bound_resource_names:
            return self.bound_resource_names[name]
        if not isinstance(resource := self.body["Resources"].get(name), Mapping):
            raise TemplateError(f"{where}: Ref to {name}, which the template does not declare")
        properties = resource.get("Properties", {})
        if (prop := _NAME_PROPERTY.get(str(resource.get("Type")), "")) in properties:
            return _as_text(self._value(properties[prop], f"{name}.{prop}"), f"{name}.{prop}")
        raise TemplateError(f"{where}: Ref to {name} needs its physical name: pass resource_names")


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    """CloudFormation's parameter constraints."""
    numeric = str(spec.get("Type", "String")) == "Number"
    try:
        measure = float(value) if numeric else len(value)
    except ValueError:
        measure = math.nan
    if not math.isfinite(measure):
        raise TemplateError(f"parameter {name}={value!r} is not a number")
    low, high = ("MinValue", "MaxValue") if numeric else ("MinLength", "MaxLength")
    subject, shown = (f"{name}={value}", value) if numeric else (name, repr(value))
    below, above = ("below", "above") if numeric else ("shorter than", "longer than")
    if low in spec and measure < float(spec[low]):
        raise TemplateError(f"parameter {subject} is {below} {low} {spec[low]}")
    if high in spec and measure > float(spec[high]):
        raise TemplateError(f"parameter {subject} is {above} {high} {spec[high]}")
    allowed = spec.get("AllowedValues")
    as_allowed = float if numeric else lambda v: _as_text(v, name)
    if allowed is not None and as_allowed(value) not in {as_allowed(v) for v in allowed}:
        raise TemplateError(f"parameter {name}={shown} is not one of {list(allowed)}")
    if (pattern := spec.get("AllowedPattern")) is not None and re.fullmatch(str(pattern), value) is None:
        hint = spec.get("ConstraintDescription", f"AllowedPattern {pattern}")
        raise TemplateError(f"parameter {name}={value!r} is not {hint}")


def _as_text(value: Any, where: str) -> str:
    """A scalar as CloudFormation writes it into a string (parameters, environment values)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{where}: expected a string, got {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# EventBridge event patterns (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html
# and its eb-create-pattern-operators.html): moto's matcher, behind a check of the pattern and two
# AWS rules moto does not follow (JSON types must agree: true is not 1; arrays of objects are searched).

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
