"""Rules 1-5 of docs/ARCHITECTURE.md as properties over whole drains, ticks and probes drawn by hypothesis."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from drain_coordinator.domain.decide import Complete, DrainPolicy, Heartbeat, Hold, apply, decide
from drain_coordinator.domain.probe import Probe
from drain_coordinator.domain.records import DrainOutcome, DrainRecord
from tests.factories import T0, a_probe, a_record


@dataclass(frozen=True)
class Look:
    gap: float  # seconds since the previous look (at most one period: the schedule's promise)
    probe: Probe


periods = st.sampled_from([10, 30, 60, 120])


@st.composite
def drains(draw: st.DrawFn) -> tuple[DrainPolicy, DrainRecord, list[Look]]:
    period = draw(periods)
    heartbeat_timeout = draw(st.integers(min_value=max(30, 3 * period), max_value=7200))
    deadline = draw(st.integers(min_value=60, max_value=min(172800, 100 * heartbeat_timeout, 20_000)))
    probe = st.one_of(
        st.builds(a_probe, st.integers(0, 5), st.integers(0, 3)),
        st.builds(Probe.failed, st.sampled_from(["LiveKit unreachable", "ECS 503", "401"])),
    )
    looks = draw(
        st.lists(
            st.builds(Look, st.floats(min_value=0.5, max_value=period), probe),
            min_size=1,
            max_size=400,
        )
    )
    record = a_record(deadline=deadline, heartbeat_timeout=heartbeat_timeout)
    return DrainPolicy(reconcile_period_seconds=period), record, looks


def run(
    policy: DrainPolicy, record: DrainRecord, looks: list[Look]
) -> list[tuple[float, object, Probe, DrainRecord]]:
    """Play the looks, the first one at once (the lifecycle handler looks when it opens)."""
    now = T0
    trace = []
    for i, look in enumerate(looks):
        now = now if i == 0 else now + look.gap
        if not record.is_open:
            break
        before = record
        action = decide(record, look.probe, now, policy)
        record = apply(record, action, look.probe, now)
        trace.append((now, action, look.probe, before))
    return trace


@settings(max_examples=300, deadline=None)
@given(drains())
def test_rule1_never_completes_while_sessions_or_tasks_remain_before_deadline(
    case: tuple[DrainPolicy, DrainRecord, list[Look]],
) -> None:
    policy, record, looks = case
    for now, action, probe, before in run(policy, record, looks):
        if isinstance(action, Complete) and action.outcome is DrainOutcome.DRAINED:
            assert probe.ok and probe.session_count == 0 and probe.task_count == 0
        if isinstance(action, Complete) and action.outcome is DrainOutcome.DEADLINE:
            # only in the last period before the deadline
            assert now + policy.reconcile_period_seconds >= before.deadline_at


@settings(max_examples=300, deadline=None)
@given(drains())
def test_rule2_always_completes_by_the_deadline_and_counts_dropped(
    case: tuple[DrainPolicy, DrainRecord, list[Look]],
) -> None:
    policy, record, looks = case
    trace = run(policy, record, looks)
    for now, action, probe, before in trace:
        if isinstance(action, Complete):
            assert now <= before.deadline_at
            if action.outcome is DrainOutcome.DEADLINE:
                expected = probe.session_count if probe.ok else (before.sessions_remaining or 0)
                assert action.dropped_sessions == expected
    # A drain still open after its last look never outlived its deadline at that look.
    last_now, _, _, last_before = trace[-1]
    assert last_now < last_before.deadline_at


@settings(max_examples=300, deadline=None)
@given(drains())
def test_rule3_hook_never_expires_while_the_drain_is_open(
    case: tuple[DrainPolicy, DrainRecord, list[Look]],
) -> None:
    policy, record, looks = case
    for now, _action, _probe, before in run(policy, record, looks):
        # every look happens while the hook is still alive
        assert now < before.heartbeat_expires_at


@settings(max_examples=300, deadline=None)
@given(drains())
def test_rule4_failed_probe_never_completes_before_deadline(
    case: tuple[DrainPolicy, DrainRecord, list[Look]],
) -> None:
    policy, record, looks = case
    for now, action, probe, before in run(policy, record, looks):
        if not probe.ok:
            assert isinstance(action, Hold) or (
                isinstance(action, Complete)
                and action.outcome is DrainOutcome.DEADLINE
                and now + policy.reconcile_period_seconds >= before.deadline_at
            )


@settings(max_examples=300, deadline=None)
@given(drains(), st.integers(min_value=0, max_value=399))
def test_rule5_the_same_look_twice_changes_nothing_twice(
    case: tuple[DrainPolicy, DrainRecord, list[Look]], index: int
) -> None:
    policy, record, looks = case
    trace = run(policy, record, looks)
    now, action, probe, before = trace[index % len(trace)]
    once = apply(before, action, probe, now)
    # WHEN the same look is delivered again (duplicate event, retried tick)
    again = decide(once, probe, now, policy)
    twice = apply(once, again, probe, now)
    # THEN no second heartbeat and no second completion
    assert not isinstance(again, Heartbeat) and not (isinstance(again, Hold) and again.heartbeat)
    assert not isinstance(again, Complete)
    assert twice.heartbeats == once.heartbeats
    assert twice.status == once.status and twice.outcome == once.outcome


@settings(max_examples=200, deadline=None)
@given(drains(), st.floats(min_value=1, max_value=600))
def test_rule5_a_late_look_from_the_past_never_completes_a_busy_drain(
    case: tuple[DrainPolicy, DrainRecord, list[Look]], lateness: float
) -> None:
    policy, record, looks = case
    trace = run(policy, record, looks)
    now, _action, _probe, before = trace[-1]
    busy = a_probe(sessions=1, tasks=1)
    late = decide(before, busy, max(before.hook_started_at, now - lateness), policy)
    assert not (isinstance(late, Complete) and late.outcome is DrainOutcome.DRAINED)
