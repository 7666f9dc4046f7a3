"""Reading the `Budget` out of the template (parameters resolved from defaults, samconfig and the
command line) and, when given, the worker's own task definition file.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from drain_coordinator.settings import Settings
from drainctl.check.core import (
    DEFAULT_AWS_LATENCY,
    DEFAULT_LIVEKIT_LATENCY,
    DEFAULT_MARGIN_SECONDS,
    DEFAULT_ROOMS_PER_DRAIN,
    HOOK_DEFAULT_HEARTBEAT_SECONDS,
    LAMBDA_DEFAULT_TIMEOUT_SECONDS,
    WORKER_DECLARED_STOP_TIMEOUT_ENV,
    WORKER_DRAIN_TIMEOUT_ENV,
    Budget,
    CheckInputError,
    CoordinatorNumbers,
    HostStopTimeout,
    LookCost,
    NotADrainTemplateError,
)
from drainctl.check.durations import (
    _WARM_POOLS_CHECK_SETTING,
    _last_setting,
    ecs_duration_seconds,
    host_stop_timeout_setting,
    schedule_period_seconds,
)
from drainctl.template import Template, TemplateError, load_template, samconfig_parameter_overrides

LIFECYCLE_HANDLER: Final = "drain_coordinator.handlers.lifecycle.handler"
RECONCILE_HANDLER: Final = "drain_coordinator.handlers.reconcile.handler"
_FARGATE_PROVIDERS: Final = frozenset({"FARGATE", "FARGATE_SPOT"})
_SETTINGS_FIELDS: Final = Settings.model_fields


@dataclass(frozen=True)
class CheckInputs:
    """What `drainctl check` was asked to read, and the margin and p99 it was told."""

    template: Path
    config: Path | None = None  # None: samconfig.toml next to the template, if there is one
    config_env: str = "default"
    params: Mapping[str, str] = field(default_factory=dict)
    task_definition: Path | None = None
    p99_call_seconds: float | None = None
    margin: int = DEFAULT_MARGIN_SECONDS
    open_drains: int | None = None
    aws_latency: tuple[float, float] = DEFAULT_AWS_LATENCY
    livekit_latency: tuple[float, float] = DEFAULT_LIVEKIT_LATENCY
    rooms_per_drain: int = DEFAULT_ROOMS_PER_DRAIN

    @property
    def samconfig(self) -> Path | None:
        """The samconfig file whose parameter_overrides apply, if any."""
        if self.config is not None:
            return self.config
        beside = self.template.parent / "samconfig.toml"
        return beside if beside.is_file() else None


class _DeployTimeAttributes(Mapping[str, Any]):
    """Every `Fn::GetAtt` answered with a placeholder: the budget never reads an attribute."""

    def __getitem__(self, key: str) -> Any:
        return f"<{key}>"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class _Reader:
    """Resolves only the values the budget needs, so an unrelated `Ref` cannot stop the check."""

    template: Template
    params: Mapping[str, str]

    def resolve(self, value: Any, where: str) -> Any:
        names = {logical_id: logical_id for logical_id in self.template.logical_ids()}
        try:
            return self.template.resolve(
                value, self.params, resource_names=names, attributes=_DeployTimeAttributes()
            )
        except TemplateError as exc:
            raise CheckInputError(f"{self.template.path}: {where}: {exc}") from exc

    def active(self, logical_id: str) -> bool:
        """False when the resource's Condition is false: CloudFormation would not create it."""
        condition = self.raw_resource(logical_id).get("Condition")
        if condition is None:
            return True
        return bool(self.resolve({"Fn::If": [condition, True, False]}, f"{logical_id}.Condition"))

    def raw_resource(self, logical_id: str) -> Mapping[str, Any]:
        resource = self.template.body["Resources"][logical_id]
        if not isinstance(resource, Mapping):
            raise CheckInputError(f"{self.template.path}: resource {logical_id} is not a mapping")
        return resource

    def raw_properties(self, logical_id: str) -> Mapping[str, Any]:
        properties = self.raw_resource(logical_id).get("Properties", {})
        if not isinstance(properties, Mapping):
            raise CheckInputError(f"{self.template.path}: {logical_id}.Properties is not a mapping")
        return properties

    def resources(self, resource_type: str) -> list[str]:
        return [lid for lid in self.template.logical_ids(resource_type) if self.active(lid)]

    def function_value(self, logical_id: str, name: str) -> Any:
        """A function property, unresolved, the SAM Globals' value when the function sets none."""
        properties = self.raw_properties(logical_id)
        if name in properties:
            return properties[name]
        return self._function_globals(logical_id).get(name)

    def function_variable(self, logical_id: str, name: str) -> Any:
        """One environment variable of a function, unresolved (the function's own over Globals)."""
        for source in (self.raw_properties(logical_id), self._function_globals(logical_id)):
            variables = _mapping(_mapping(source.get("Environment", {})).get("Variables", {}))
            if name in variables:
                return variables[name]
        return None

    def _function_globals(self, logical_id: str) -> Mapping[str, Any]:
        # Globals apply to SAM functions only, not to plain AWS::Lambda::Function resources.
        if self.raw_resource(logical_id).get("Type") != "AWS::Serverless::Function":
            return {}
        return _mapping(_mapping(self.template.body.get("Globals", {})).get("Function", {}))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seconds(value: Any, where: str) -> float:
    """A number of seconds as the template or the task definition writes it: 900 or "900"."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise CheckInputError(f"{where}: {value!r} is not a number of seconds")
    return number


def _whole_seconds(value: Any, where: str) -> int:
    number = _seconds(value, where)
    if not number.is_integer():
        raise CheckInputError(f"{where}: {value!r} is not a whole number of seconds")
    return int(number)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


# -- parameters ---------------------------------------------------------------------------------


def _parameters(
    template: Template, inputs: CheckInputs, config: Path | None
) -> tuple[dict[str, str], str | None]:
    """(values, why CloudFormation would refuse them or None). Unknown names are input errors."""
    declared = _mapping(template.body.get("Parameters", {}))
    given: dict[str, str] = {}
    if config is not None:
        try:
            from_config = samconfig_parameter_overrides(config, inputs.config_env)
        except TemplateError as exc:
            raise CheckInputError(str(exc)) from exc
        given.update(_known(declared, from_config, f"{config} parameter_overrides"))
    given.update(_known(declared, inputs.params, "--params"))
    values = {
        str(name): _default_text(spec["Default"])
        for name, spec in declared.items()
        if isinstance(spec, Mapping) and "Default" in spec
    }
    values.update(given)
    # Judged apart from the values: a value CloudFormation refuses is one failed rule, and the
    # other rules still get to say what else is wrong.
    try:
        template.parameters(given)
    except TemplateError as exc:
        return values, str(exc)
    return values, None


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _known(declared: Mapping[str, Any], given: Mapping[str, str], source: str) -> dict[str, str]:
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise CheckInputError(
            f"{source}: unknown parameter(s) {', '.join(unknown)}; "
            f"the template declares {', '.join(sorted(declared))}"
        )
    return {name: str(value) for name, value in given.items()}


# -- the coordinator ----------------------------------------------------------------------------


def _function_with_handler(reader: _Reader, handler: str) -> str:
    for kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        for logical_id in reader.resources(kind):
            value = reader.resolve(reader.function_value(logical_id, "Handler"), f"{logical_id}.Handler")
            if value == handler:
                return logical_id
    raise NotADrainTemplateError(
        f"{reader.template.path}: no function with Handler {handler}: is this a livekit-drain template?"
    )


def _coordinator_setting(reader: _Reader, logical_id: str, variable: str, settings_field: str) -> Any:
    raw = reader.function_variable(logical_id, variable)
    if raw is None:
        return _SETTINGS_FIELDS[settings_field].default
    return reader.resolve(raw, f"{logical_id}.Environment.Variables.{variable}")


def _coordinator_numbers(reader: _Reader, lifecycle: str, reconcile: str) -> CoordinatorNumbers:
    def whole(logical_id: str, variable: str, settings_field: str) -> int:
        value = _coordinator_setting(reader, logical_id, variable, settings_field)
        return _whole_seconds(value, f"{logical_id} {variable}")

    # The lifecycle function opens each drain with these; the reconcile function paces itself.
    livekit = _coordinator_setting(reader, lifecycle, "LIVEKIT_TIMEOUT_SECONDS", "livekit_timeout")
    return CoordinatorNumbers(
        drain_timeout=whole(lifecycle, "WORKER_DRAIN_TIMEOUT_SECONDS", "worker_drain_timeout"),
        stop_timeout=whole(lifecycle, "WORKER_STOP_TIMEOUT_SECONDS", "worker_stop_timeout"),
        heartbeat_timeout=whole(lifecycle, "HOOK_HEARTBEAT_TIMEOUT_SECONDS", "heartbeat_timeout"),
        drain_deadline=whole(lifecycle, "DRAIN_DEADLINE_SECONDS", "drain_deadline"),
        reconcile_period=whole(reconcile, "RECONCILE_PERIOD_SECONDS", "reconcile_period"),
        livekit_timeout=_seconds(livekit, f"{lifecycle} LIVEKIT_TIMEOUT_SECONDS"),
        host_stop_timeout=whole(lifecycle, "HOST_STOP_TIMEOUT_SECONDS", "host_stop_timeout"),
    )


def _whole_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    try:
        return int(str(raw)) if raw not in (None, "") else default
    except ValueError as exc:
        raise CheckInputError(f"parameter {name} is not a whole number: {raw!r}") from exc


def _function_timeout(reader: _Reader, logical_id: str) -> int:
    raw = reader.function_value(logical_id, "Timeout")
    if raw is None:
        return LAMBDA_DEFAULT_TIMEOUT_SECONDS
    return _whole_seconds(reader.resolve(raw, f"{logical_id}.Timeout"), f"{logical_id}.Timeout")


@dataclass(frozen=True)
class _Schedule:
    expression: str | None
    period: int | None
    window: int


def _schedule(reader: _Reader, logical_id: str) -> _Schedule:
    events = _mapping(reader.raw_properties(logical_id).get("Events", {}))
    for name, event in events.items():
        event = _mapping(event)
        if event.get("Type") not in ("ScheduleV2", "Schedule"):
            continue
        where = f"{logical_id}.Events.{name}"
        properties = _mapping(event.get("Properties", {}))
        expression = str(reader.resolve(properties.get("ScheduleExpression"), f"{where}.ScheduleExpression"))
        window_spec = _mapping(
            reader.resolve(properties.get("FlexibleTimeWindow", {}), f"{where}.FlexibleTimeWindow")
        )
        window = 0
        if str(window_spec.get("Mode", "OFF")).upper() == "FLEXIBLE":
            minutes = window_spec.get("MaximumWindowInMinutes", 0)
            window = 60 * _whole_seconds(minutes, f"{where}.FlexibleTimeWindow.MaximumWindowInMinutes")
        return _Schedule(expression, schedule_period_seconds(expression), window)
    return _Schedule(None, None, 0)


def _hook_heartbeat(reader: _Reader, fallback: int) -> tuple[int, str]:
    """The terminate hook's HeartbeatTimeout and where it is set."""
    terminating = "autoscaling:EC2_INSTANCE_TERMINATING"
    for logical_id in reader.resources("AWS::AutoScaling::LifecycleHook"):
        properties = reader.raw_properties(logical_id)
        transition = reader.resolve(
            properties.get("LifecycleTransition"), f"{logical_id}.LifecycleTransition"
        )
        if transition == terminating:
            return _hook_timeout(reader, properties.get("HeartbeatTimeout"), logical_id), logical_id
    for logical_id in reader.resources("AWS::AutoScaling::AutoScalingGroup"):
        where = f"{logical_id}.LifecycleHookSpecificationList"
        hooks = reader.raw_properties(logical_id).get("LifecycleHookSpecificationList", [])
        for index, hook in enumerate(hooks if isinstance(hooks, list) else []):
            hook = _mapping(hook)
            transition = reader.resolve(hook.get("LifecycleTransition"), f"{where}[{index}]")
            if transition == terminating:
                return _hook_timeout(reader, hook.get("HeartbeatTimeout"), f"{where}[{index}]"), logical_id
    return fallback, "HOOK_HEARTBEAT_TIMEOUT_SECONDS: no terminate hook in the template"


def _hook_timeout(reader: _Reader, raw: Any, where: str) -> int:
    if raw is None:
        return HOOK_DEFAULT_HEARTBEAT_SECONDS
    return _whole_seconds(reader.resolve(raw, f"{where}.HeartbeatTimeout"), f"{where}.HeartbeatTimeout")


# -- the worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Worker:
    source: str
    stop_timeout: int | None
    drain_timeout: int | None
    declared_stop_timeout: int | None
    init_process_enabled: bool
    argv: tuple[str, ...] | None
    fargate_settings: tuple[str, ...]


def _field(mapping: Mapping[str, Any], name: str) -> Any:
    """A task definition field by its API name (`stopTimeout`) or its CloudFormation name."""
    for key in (name, name[0].upper() + name[1:]):
        if key in mapping:
            return mapping[key]
    return None


_Resolve = Callable[[Any, str], Any]


def _environment(container: Mapping[str, Any], resolve: _Resolve, where: str) -> dict[str, Any]:
    """The container's environment, resolving a value only for the variables the budget reads."""
    wanted = {WORKER_DRAIN_TIMEOUT_ENV, WORKER_DECLARED_STOP_TIMEOUT_ENV}
    entries = _field(container, "environment")
    if isinstance(entries, Mapping):  # an intrinsic function that yields the list
        entries = resolve(entries, f"{where}.Environment")
    found: dict[str, Any] = {}
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        entry = _mapping(entry)
        name = resolve(_field(entry, "name"), f"{where}.Environment[{index}].Name")
        if name in wanted:
            found[str(name)] = resolve(_field(entry, "value"), f"{where}.Environment[{index}].Value")
    return found


def _argv(container: Mapping[str, Any], resolve: _Resolve, where: str) -> tuple[str, ...] | None:
    entry_point = resolve(_field(container, "entryPoint"), f"{where}.EntryPoint")
    command = resolve(_field(container, "command"), f"{where}.Command")
    parts: list[Any] = []
    # A command without an entryPoint runs under the image's ENTRYPOINT, if it has one.
    for value in (entry_point, command) if entry_point else (command,):
        if isinstance(value, str):
            parts.extend(shlex.split(value))
        elif isinstance(value, list):
            parts.extend(value)
    return tuple(str(part) for part in parts) if parts else None


def _worker_container(
    containers: list[Mapping[str, Any]], resolve: _Resolve, where: str
) -> tuple[int, dict[str, Any]]:
    """(index, environment) of the worker: the container that sets its drain timeout, else the
    only one, else the first essential one."""
    environments = [_environment(c, resolve, f"{where}[{i}]") for i, c in enumerate(containers)]
    for index, environment in enumerate(environments):
        if WORKER_DRAIN_TIMEOUT_ENV in environment:
            return index, environment
    for index, container in enumerate(containers):
        essential = resolve(_field(container, "essential"), f"{where}[{index}].Essential")
        if essential is None or _truthy(essential):
            return index, environments[index]
    return 0, environments[0]


def _resolved_entry(entry: Any, resolve: _Resolve, where: str) -> Any:
    """A container written as an intrinsic function (`!If [Cond, {...}, !Ref AWS::NoValue]`)."""
    if isinstance(entry, Mapping) and len(entry) == 1:
        key = str(next(iter(entry)))
        if key == "Ref" or key.startswith("Fn::"):
            return resolve(entry, where)
    return entry


def _worker_from(task_definition: Mapping[str, Any], resolve: _Resolve, source: str, where: str) -> _Worker:
    containers_value = _field(task_definition, "containerDefinitions")
    if isinstance(containers_value, Mapping):
        containers_value = resolve(containers_value, f"{where}.ContainerDefinitions")
    containers = [
        _mapping(_resolved_entry(entry, resolve, f"{where}.ContainerDefinitions[{index}]"))
        for index, entry in enumerate(containers_value if isinstance(containers_value, list) else [])
    ]
    containers = [container for container in containers if container]
    if not containers:
        raise CheckInputError(f"{source}: the task definition has no container definitions")
    index, environment = _worker_container(containers, resolve, f"{where}.ContainerDefinitions")
    container = containers[index]
    at = f"{where}.ContainerDefinitions[{index}]"
    name = resolve(_field(container, "name"), f"{at}.Name")
    stop = resolve(_field(container, "stopTimeout"), f"{at}.StopTimeout")
    linux = _mapping(resolve(_field(container, "linuxParameters") or {}, f"{at}.LinuxParameters"))
    drain = environment.get(WORKER_DRAIN_TIMEOUT_ENV)
    declared = environment.get(WORKER_DECLARED_STOP_TIMEOUT_ENV)
    compatibilities = resolve(
        _field(task_definition, "requiresCompatibilities"), f"{where}.RequiresCompatibilities"
    )
    fargate: list[str] = []
    if isinstance(compatibilities, list) and "FARGATE" in {str(c).upper() for c in compatibilities}:
        fargate.append(f"requiresCompatibilities {json.dumps(compatibilities)}")
    return _Worker(
        source=f"{source}, container {name!r}" if name else source,
        stop_timeout=None if stop is None else _whole_seconds(stop, f"{at}.stopTimeout"),
        drain_timeout=None if drain is None else _whole_seconds(drain, f"{at} {WORKER_DRAIN_TIMEOUT_ENV}"),
        declared_stop_timeout=(
            None if declared is None else _whole_seconds(declared, f"{at} {WORKER_DECLARED_STOP_TIMEOUT_ENV}")
        ),
        init_process_enabled=_truthy(_field(linux, "initProcessEnabled")),
        argv=_argv(container, resolve, at),
        fargate_settings=tuple(fargate),
    )


def _identity(value: Any, where: str) -> Any:
    return value


def _worker_from_file(path: Path) -> _Worker:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckInputError(f"cannot read task definition {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CheckInputError(f"task definition {path}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise CheckInputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise CheckInputError(f"{path}: JSON nested too deep") from exc
    if isinstance(document, Mapping) and isinstance(document.get("taskDefinition"), Mapping):
        document = document["taskDefinition"]
    if not isinstance(document, Mapping) or "containerDefinitions" not in document:
        raise CheckInputError(
            f"{path}: not a task definition (expected the JSON of `aws ecs describe-task-definition`)"
        )
    return _worker_from(document, _identity, f"task definition {path.name}", "taskDefinition")


def _worker_from_template(reader: _Reader) -> _Worker | None:
    """The worker's task definition in the template, the Fargate settings of its service added.

    The worker's is the one that sets LIVEKIT_DRAIN_TIMEOUT_SECONDS, else the first one.
    """
    candidates = [
        (lid, _worker_from(reader.raw_properties(lid), reader.resolve, f"task definition {lid}", lid))
        for lid in reader.resources("AWS::ECS::TaskDefinition")
    ]
    if not candidates:
        return None
    logical_id, worker = next(
        ((lid, w) for lid, w in candidates if w.drain_timeout is not None), candidates[0]
    )
    services = _service_fargate_settings(reader, logical_id)
    return replace(worker, fargate_settings=worker.fargate_settings + services)


def _refers_to(value: Any, logical_id: str) -> bool:
    if isinstance(value, Mapping):
        if value.get("Ref") == logical_id:
            return True
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute and attribute[0] == logical_id:
            return True
        return any(_refers_to(item, logical_id) for item in value.values())
    if isinstance(value, list):
        return any(_refers_to(item, logical_id) for item in value)
    return isinstance(value, str) and "${" + logical_id + "}" in value


def _fargate_in_strategy(strategy: Any) -> list[str]:
    providers = [str(_mapping(item).get("CapacityProvider", "")) for item in strategy or []]
    return [provider for provider in providers if provider.upper() in _FARGATE_PROVIDERS]


def _service_fargate_settings(reader: _Reader, task_definition: str) -> tuple[str, ...]:
    settings: list[str] = []
    for logical_id in reader.resources("AWS::ECS::Service"):
        properties = reader.raw_properties(logical_id)
        if not _refers_to(properties.get("TaskDefinition"), task_definition):
            continue
        launch_type = reader.resolve(properties.get("LaunchType"), f"{logical_id}.LaunchType")
        strategy = reader.resolve(
            properties.get("CapacityProviderStrategy"), f"{logical_id}.CapacityProviderStrategy"
        )
        if launch_type is not None and str(launch_type).upper() == "FARGATE":
            settings.append(f"service {logical_id} LaunchType FARGATE")
        elif strategy:
            settings.extend(
                f"service {logical_id} capacity provider {p}" for p in _fargate_in_strategy(strategy)
            )
        elif launch_type is None:
            settings.extend(_cluster_default_fargate(reader, logical_id))
    return tuple(settings)


def _cluster_default_fargate(reader: _Reader, service: str) -> list[str]:
    """A service with neither a launch type nor a strategy uses its cluster's default strategy."""
    found: list[str] = []
    for kind in ("AWS::ECS::Cluster", "AWS::ECS::ClusterCapacityProviderAssociations"):
        for logical_id in reader.resources(kind):
            where = f"{logical_id}.DefaultCapacityProviderStrategy"
            strategy = reader.resolve(
                reader.raw_properties(logical_id).get("DefaultCapacityProviderStrategy"), where
            )
            found.extend(
                f"service {service} uses the default capacity provider {p} of {logical_id}"
                for p in _fargate_in_strategy(strategy)
            )
    return found


# -- the hosts ----------------------------------------------------------------------------------


def _decoded_user_data(text: str) -> str:
    """User data as the instance reads it: base64 decoded when it is base64 (Fn::Base64)."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return text


def _hosts(reader: _Reader) -> tuple[HostStopTimeout, ...]:
    hosts: list[HostStopTimeout] = []
    for source, user_data in _ecs_host_user_data(reader):
        setting = host_stop_timeout_setting(user_data)
        hosts.append(
            HostStopTimeout(
                source=source,
                raw=setting,
                seconds=None if setting is None else ecs_duration_seconds(setting),
            )
        )
    return tuple(hosts)


def _warm_pool_checks(reader: _Reader) -> tuple[tuple[str, str | None], ...]:
    return tuple(
        (source, _last_setting(_WARM_POOLS_CHECK_SETTING, user_data))
        for source, user_data in _ecs_host_user_data(reader)
    )


def _ecs_host_user_data(reader: _Reader) -> list[tuple[str, str]]:
    """(where, decoded user data) of every launch template or configuration of ECS hosts."""
    found: list[tuple[str, str]] = []
    sources = [
        (lid, "launch template", _mapping(reader.raw_properties(lid).get("LaunchTemplateData", {})))
        for lid in reader.resources("AWS::EC2::LaunchTemplate")
    ] + [
        (lid, "launch configuration", reader.raw_properties(lid))
        for lid in reader.resources("AWS::AutoScaling::LaunchConfiguration")
    ]
    for logical_id, kind, properties in sources:
        raw = properties.get("UserData")
        if raw is None:
            continue
        resolved = reader.resolve(raw, f"{logical_id}.UserData")
        user_data = _decoded_user_data(str(resolved))
        # Only ECS hosts write ecs.config; another launch template is not the workers'.
        if "ecs.config" not in user_data and "ECS_CLUSTER" not in user_data:
            continue
        found.append((f"{kind} {logical_id}", user_data))
    return found


def _warm_pools(reader: _Reader) -> tuple[tuple[str, bool | None], ...]:
    found: list[tuple[str, bool | None]] = []
    for logical_id in reader.resources("AWS::AutoScaling::WarmPool"):
        policy = reader.resolve(
            reader.raw_properties(logical_id).get("InstanceReusePolicy"), f"{logical_id}.InstanceReusePolicy"
        )
        raw = _mapping(policy).get("ReuseOnScaleIn")
        found.append((f"warm pool {logical_id}", None if raw is None else _truthy(raw)))
    return tuple(found)


def _launch_hook(reader: _Reader, lifecycle: str) -> str:
    """The coordinator's launch hook, as its lifecycle function is told it ("" when none)."""
    raw = reader.function_variable(lifecycle, "LAUNCH_LIFECYCLE_HOOK_NAME")
    if raw is None:
        return ""
    return str(reader.resolve(raw, f"{lifecycle}.Environment.Variables.LAUNCH_LIFECYCLE_HOOK_NAME") or "")


def _managed_draining(reader: _Reader) -> tuple[tuple[str, str | None], ...]:
    found: list[tuple[str, str | None]] = []
    for logical_id in reader.resources("AWS::ECS::CapacityProvider"):
        provider = _mapping(reader.raw_properties(logical_id).get("AutoScalingGroupProvider", {}))
        raw = reader.resolve(provider.get("ManagedDraining"), f"{logical_id}.ManagedDraining")
        found.append((f"capacity provider {logical_id}", None if raw is None else str(raw)))
    return tuple(found)


# -- all together -------------------------------------------------------------------------------


def load_budget(inputs: CheckInputs) -> Budget:
    """Read the template (and the task definition file, if any) into a Budget.

    Raises `CheckInputError` when an input cannot be read or a needed value cannot be resolved.
    """
    try:
        template = load_template(inputs.template)
    except TemplateError as exc:
        raise CheckInputError(str(exc)) from exc
    return budget_of(template, inputs, inputs.samconfig)


def budget_of(template: Template, inputs: CheckInputs, samconfig: Path | None) -> Budget:
    """The Budget of a template already read, its parameters from `samconfig` (None: defaults
    only) and `inputs.params`; the task definition file, margin and cost model from `inputs`.
    """
    params, parameter_problem = _parameters(template, inputs, samconfig)
    reader = _Reader(template, params)
    lifecycle = _function_with_handler(reader, LIFECYCLE_HANDLER)
    reconcile = _function_with_handler(reader, RECONCILE_HANDLER)
    coordinator = _coordinator_numbers(reader, lifecycle, reconcile)
    heartbeat_timeout, heartbeat_source = _hook_heartbeat(reader, coordinator.heartbeat_timeout)
    schedule = _schedule(reader, reconcile)

    worker: _Worker | None
    if inputs.task_definition is not None:
        worker = _worker_from_file(inputs.task_definition)
    else:
        worker = _worker_from_template(reader)

    common: dict[str, Any] = {
        "coordinator": coordinator,
        "heartbeat_timeout": heartbeat_timeout,
        "heartbeat_source": heartbeat_source,
        "schedule_expression": schedule.expression,
        "schedule_period": schedule.period,
        "schedule_window": schedule.window,
        "reconcile_timeout": _function_timeout(reader, reconcile),
        "lifecycle_timeout": _function_timeout(reader, lifecycle),
        "hosts": _hosts(reader),
        "warm_pools": _warm_pools(reader),
        "warm_pool_checks": _warm_pool_checks(reader),
        "launch_hook": _launch_hook(reader, lifecycle),
        "managed_draining": _managed_draining(reader),
        "margin": inputs.margin,
        "p99_call_seconds": inputs.p99_call_seconds,
        "parameter_problem": parameter_problem,
        "cost": LookCost(
            aws_latency=inputs.aws_latency,
            livekit_latency=inputs.livekit_latency,
            rooms_per_drain=inputs.rooms_per_drain,
            open_drains=inputs.open_drains,
            shard_size=_whole_param(params, "ShardSize", 20),
            advance_concurrency=_whole_param(params, "AdvanceConcurrency", 10),
        ),
    }
    if worker is None:
        return Budget(
            worker_source="the coordinator's WORKER_DRAIN_TIMEOUT_SECONDS and WORKER_STOP_TIMEOUT_SECONDS",
            drain_timeout=coordinator.drain_timeout,
            stop_timeout=coordinator.stop_timeout,
            **common,
        )
    return Budget(
        worker_source=worker.source,
        # A worker that does not say its drain timeout is taken to use the coordinator's.
        drain_timeout=worker.drain_timeout if worker.drain_timeout is not None else coordinator.drain_timeout,
        stop_timeout=worker.stop_timeout,
        has_task_definition=True,
        init_process_enabled=worker.init_process_enabled,
        argv=worker.argv,
        declared_stop_timeout=worker.declared_stop_timeout,
        fargate_settings=worker.fargate_settings,
        **common,
    )
