"""Hostile and malformed events, drawn by hypothesis: the parsers answer with a trigger, a skip or
EventRejectedError and nothing else; the handlers never raise, and log and count what they reject.

Events are drawn three ways: any JSON value at all; a real event (events/) with one part deleted,
replaced by any JSON value or by a huge string; a well-formed envelope around any detail.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drain_coordinator import wiring
from drain_coordinator.domain.events import (
    EventRejectedError,
    RebalanceRecommended,
    Skip,
    SpotInterruption,
    TerminateRequested,
    parse_ec2_event,
    parse_lifecycle_function_event,
)
from drain_coordinator.domain.task_stops import TaskStateChange, parse_task_state_event
from drain_coordinator.handlers import lifecycle, reconcile, task_state
from drain_coordinator.observability import logger
from drain_coordinator.services.drains import Coordinator
from drain_coordinator.services.task_stops import TaskStopTracker
from drain_coordinator.settings import Settings
from tests.factories import T0
from tests.fakes import (
    FakeClock,
    FakeEcs,
    FakeLambdaContext,
    FakeLifecycle,
    FakeSessions,
    FakeStore,
    FakeTaskStopStore,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
GROUP = "livekit-agents-asg"
HOOK = "livekit-drain-terminate"
CLUSTER = "livekit-agents"
SETTINGS_ENV = {
    "DRAIN_TABLE_NAME": "livekit-drain",
    "ECS_CLUSTER_NAME": CLUSTER,
    "ASG_NAME": GROUP,
    "LIFECYCLE_HOOK_NAME": HOOK,
    "LIVEKIT_URL": "http://127.0.0.1:7880",
    "LIVEKIT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-AbCdEf",
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _event(name: str) -> dict[str, Any]:
    loaded = json.loads((EVENTS / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


LIFECYCLE_EVENTS = [
    _event("asg-terminate-lifecycle-action.json"),
    _event("asg-launch-lifecycle-action.json"),
    _event("asg-test-notification.json"),
    _event("ec2-spot-interruption-warning.json"),
    _event("ec2-rebalance-recommendation.json"),
]
TASK_EVENTS = [
    _event(name)
    for name in (
        "ecs-task-stopping-deploy.json",
        "ecs-task-stopped-graceful.json",
        "ecs-task-stopped-forced-kill.json",
        "ecs-task-stopped-oom.json",
        "ecs-task-stopped-crash.json",
    )
]
SCHEDULE_EVENTS = [_event("scheduled-reconcile.json")]

# -- strategies ----------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        ["", "aws.ec2", "aws.ecs", "aws.autoscaling", "2026-01-01T00:00:00Z", "i-0598c7d356eba48d7"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4),
    ),
    max_leaves=12,
)
huge_strings = st.sampled_from(["x" * 200_000, "\u0000" * 70_000, "🎧" * 50_000, "i-" + "0" * 100_000])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _mutated(draw: st.DrawFn, samples: list[dict[str, Any]]) -> Any:
    event = copy.deepcopy(draw(st.sampled_from(samples)))
    path = draw(st.sampled_from(list(_paths(event))))
    how = draw(st.sampled_from(["delete", "replace", "huge"]))
    if not path:
        return draw(json_values) if how != "huge" else draw(huge_strings)
    parent = event
    for part in path[:-1]:
        parent = parent[part]
    if how == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values if how == "replace" else huge_strings)
    return event


@st.composite
def mutations(draw: st.DrawFn, samples: list[dict[str, Any]]) -> Any:
    """A real event with one part deleted, or replaced by any JSON value or a huge string."""
    return _mutated(draw, samples)


@st.composite
def envelopes(draw: st.DrawFn, samples: list[dict[str, Any]]) -> Any:
    """A real event's envelope around a detail of its own keys with any JSON values."""
    event = copy.deepcopy(draw(st.sampled_from(samples)))
    event["detail"] = draw(st.dictionaries(st.sampled_from(sorted(event["detail"])), json_values, max_size=6))
    return event


def lifecycle_function_events() -> st.SearchStrategy[Any]:
    return st.one_of(json_values, mutations(LIFECYCLE_EVENTS), envelopes(LIFECYCLE_EVENTS))


def task_state_events() -> st.SearchStrategy[Any]:
    return st.one_of(json_values, mutations(TASK_EVENTS), envelopes(TASK_EVENTS))


# -- the parsers ---------------------------------------------------------------------------------


def _parses_or_rejects(parse: Callable[[Any], object], event: Any, accepted: tuple[type, ...]) -> None:
    rejection = ""
    try:
        result = parse(event)
    except EventRejectedError as exc:
        rejection = str(exc) or "(no reason)"
        result = None
    if rejection:
        assert len(rejection) < 1_000  # the reason names the problem, it does not echo the input
    else:
        assert isinstance(result, accepted)


@FUZZ
@given(lifecycle_function_events())
def test_lifecycle_parser_answers_a_trigger_a_skip_or_a_rejection(event: Any) -> None:
    _parses_or_rejects(
        lambda e: parse_lifecycle_function_event(e, asg_name=GROUP, hook_name=HOOK),
        event,
        (TerminateRequested, SpotInterruption, RebalanceRecommended, Skip),
    )


@FUZZ
@given(st.one_of(json_values, mutations(LIFECYCLE_EVENTS[3:]), envelopes(LIFECYCLE_EVENTS[3:])))
def test_spot_parser_answers_a_trigger_a_skip_or_a_rejection(event: Any) -> None:
    _parses_or_rejects(parse_ec2_event, event, (SpotInterruption, RebalanceRecommended, Skip))


@FUZZ
@given(task_state_events())
def test_task_state_parser_answers_a_change_a_skip_or_a_rejection(event: Any) -> None:
    _parses_or_rejects(
        lambda e: parse_task_state_event(e, cluster=CLUSTER, family=""), event, (TaskStateChange, Skip)
    )


@given(st.sampled_from(LIFECYCLE_EVENTS))
def test_every_lifecycle_function_event_file_parses_without_rejection(event: dict[str, Any]) -> None:
    result = parse_lifecycle_function_event(event, asg_name=GROUP, hook_name=HOOK)
    assert isinstance(result, TerminateRequested | SpotInterruption | RebalanceRecommended | Skip)


@given(st.sampled_from(["2026-01-01T00:00:00", 1_767_225_600, "yesterday", "9999-99-99T00:00:00Z"]))
def test_an_event_time_that_is_no_utc_stamp_is_rejected(time: object) -> None:
    event = {**LIFECYCLE_EVENTS[0], "time": time}
    with pytest.raises(EventRejectedError, match=r"^time"):
        parse_lifecycle_function_event(event, asg_name=GROUP, hook_name=HOOK)


# -- the handlers --------------------------------------------------------------------------------


@contextlib.contextmanager
def wired_to_fakes() -> Iterator[None]:
    config = Settings.from_env(SETTINGS_ENV)
    store, lifecycle_actions, ecs, sessions = FakeStore(), FakeLifecycle(), FakeEcs(), FakeSessions()
    clock = FakeClock(T0)
    coordinator = Coordinator(
        policy=config.policy,
        cluster=config.cluster,
        drain_deadline_seconds=config.drain_deadline,
        heartbeat_timeout_seconds=config.heartbeat_timeout,
        store=store,
        lifecycle=lifecycle_actions,
        ecs=ecs,
        sessions=sessions,
        clock=clock,
    )
    tracker = TaskStopTracker(
        store=FakeTaskStopStore(),
        ecs=ecs,
        sessions=sessions,
        drains=coordinator,
        clock=clock,
        cluster=CLUSTER,
    )
    wiring.install(config, coordinator, tracker)
    try:
        yield
    finally:
        wiring.reset()


def invoke(
    entry: Callable[[Any, Any], dict[str, Any]], event: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The handler's answer, and every JSON document it printed (log lines and EMF metrics)."""
    out = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.stream
    handler.stream = out
    try:
        with wired_to_fakes(), contextlib.redirect_stdout(out):
            result = entry(event, FakeLambdaContext())
    finally:
        handler.stream = previous
    return result, [json.loads(line) for line in out.getvalue().split("\n") if line.startswith("{")]


def _rejections_are_logged_whole_and_counted(
    result: dict[str, Any], printed: list[dict[str, Any]], event: Any
) -> None:
    assert isinstance(result["steps"], list)
    rejected = [s for s in result["steps"] if s.get("action") == "reject"]
    if not rejected:
        return
    (line,) = [p for p in printed if p.get("message") == "event rejected"]
    if event is None:
        # a JSON null payload (a direct invoke): Powertools leaves a null-valued key off the line
        assert "event" not in line
    else:
        # compared as JSON text: NaN, which a direct invoke may send, equals nothing, not itself
        assert json.dumps(line["event"], sort_keys=True) == json.dumps(event, sort_keys=True, default=str)
    counts = [p["EventsRejected"] for p in printed if "EventsRejected" in p]
    assert counts in ([1.0], [[1.0]])  # one EMF value, a list or not


@FUZZ
@given(lifecycle_function_events())
def test_lifecycle_handler_never_raises_and_counts_what_it_rejects(event: Any) -> None:
    result, printed = invoke(lifecycle.handler, event)
    _rejections_are_logged_whole_and_counted(result, printed, event)


@FUZZ
@given(task_state_events())
def test_task_state_handler_never_raises_and_counts_what_it_rejects(event: Any) -> None:
    result, printed = invoke(task_state.handler, event)
    _rejections_are_logged_whole_and_counted(result, printed, event)


@FUZZ
@given(st.one_of(json_values, mutations(SCHEDULE_EVENTS), mutations(LIFECYCLE_EVENTS)))
def test_reconcile_handler_never_raises_and_counts_what_it_rejects(event: Any) -> None:
    result, printed = invoke(reconcile.handler, event)
    _rejections_are_logged_whole_and_counted(result, printed, event)
    if (
        isinstance(event, dict)
        and event.get("source") == "aws.scheduler"
        and event.get("detail-type") == "Scheduled Event"
    ):
        assert result["steps"] == []


def test_a_huge_hostile_event_is_rejected_and_logged_whole() -> None:
    # GIVEN an event of an unknown source carrying a 200 kB string
    event = {**LIFECYCLE_EVENTS[0], "source": "evil.corp", "detail": {"payload": "x" * 200_000}}
    # WHEN the lifecycle function receives it
    result, printed = invoke(lifecycle.handler, event)
    # THEN it is rejected, logged whole, and counted, without an exception
    assert result["steps"] == [{"action": "reject", "reason": "unexpected source 'evil.corp'"}]
    _rejections_are_logged_whole_and_counted(result, printed, event)
