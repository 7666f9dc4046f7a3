"""The deadline waits for SIGTERM: properties of `extended_deadline` over whole drains drawn by
hypothesis, where ECS tells the workers to stop at any look (a replacement that takes minutes to
become healthy, a full cluster), or never (a standalone task)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from drain_coordinator.domain.deadline import (
    DeadlinePolicy,
    awaiting_sigterm,
    extended_deadline,
    global_timeout_seconds,
    hook_cap,
)
from drain_coordinator.domain.decide import Complete, DrainPolicy, apply, decide
from drain_coordinator.domain.probe import Probe, WorkerTask
from drain_coordinator.domain.records import DrainOutcome, DrainRecord
from tests.factories import T0, TASK_A, a_record

SERVICE = "service:livekit-agents"
STANDALONE = "family:livekit-agent"


@dataclass(frozen=True)
class Look:
    gap: float
    probe: Probe


def a_look_probe(sessions: int, told: bool, group: str, tasks: int) -> Probe:
    task_list = tuple(
        WorkerTask(
            arn=f"{TASK_A[:-2]}{i:02d}",
            last_status="RUNNING",
            desired_status="STOPPED" if told else "RUNNING",
            group=group,
        )
        for i in range(tasks)
    )
    return Probe(tasks=task_list, sessions={f"call-{i}": TASK_A for i in range(sessions)})


@st.composite
def drains(draw: st.DrawFn) -> tuple[DrainPolicy, DeadlinePolicy, DrainRecord, list[Look]]:
    period = draw(st.sampled_from([10, 30, 60, 120]))
    heartbeat_timeout = draw(st.integers(min_value=max(30, 3 * period), max_value=600))
    deadline = draw(st.integers(min_value=60, max_value=min(172800, 100 * heartbeat_timeout)))
    stop_timeout = draw(st.integers(min_value=30, max_value=3600))
    probe = st.one_of(
        st.builds(
            a_look_probe,
            st.integers(0, 4),
            st.booleans(),
            st.sampled_from([SERVICE, STANDALONE, ""]),
            st.integers(0, 3),
        ),
        st.builds(Probe.failed, st.sampled_from(["LiveKit unreachable", "ECS 503"])),
    )
    looks = draw(
        st.lists(st.builds(Look, st.floats(min_value=0.5, max_value=period), probe), min_size=1, max_size=300)
    )
    record = a_record(deadline=deadline, heartbeat_timeout=heartbeat_timeout)
    return (
        DrainPolicy(reconcile_period_seconds=period),
        DeadlinePolicy(stop_timeout_seconds=stop_timeout, reconcile_period_seconds=period),
        record,
        looks,
    )


def run(
    policy: DrainPolicy, deadlines: DeadlinePolicy, record: DrainRecord, looks: list[Look]
) -> list[tuple[float, object, Probe, DrainRecord]]:
    """Each look: extend the deadline, decide, apply; the trace holds the record the look decided on."""
    now = T0
    trace = []
    for i, look in enumerate(looks):
        now = now if i == 0 else now + look.gap
        if not record.is_open:
            break
        record = replace(record, deadline_at=extended_deadline(record, look.probe, now, deadlines))
        action = decide(record, look.probe, now, policy)
        trace.append((now, action, look.probe, record))
        record = apply(record, action, look.probe, now)
    return trace


@settings(max_examples=300, deadline=None)
@given(drains())
def test_no_deadline_completion_before_a_worker_seen_unstopped_had_its_whole_stop_timeout(
    case: tuple[DrainPolicy, DeadlinePolicy, DrainRecord, list[Look]],
) -> None:
    # GIVEN looks that see service workers not yet told to stop at any time
    policy, deadlines, record, looks = case
    # WHEN the drain is played look by look
    trace = run(policy, deadlines, record, looks)
    # THEN a deadline completion comes only once every worker seen unstopped at L (told by the
    # next look, L + period at the latest) had its stopTimeout, or at the hook's global timeout
    unstopped_at = [now for now, _, probe, _ in trace if awaiting_sigterm(probe)]
    period = policy.reconcile_period_seconds
    for now, action, _probe, before in trace:
        if isinstance(action, Complete) and action.outcome is DrainOutcome.DEADLINE:
            for seen in (s for s in unstopped_at if s <= now):
                assert now >= min(seen + period + deadlines.stop_timeout_seconds, hook_cap(before) - period)


@settings(max_examples=300, deadline=None)
@given(drains())
def test_the_deadline_never_passes_the_hooks_global_timeout_and_the_drain_closes_by_then(
    case: tuple[DrainPolicy, DeadlinePolicy, DrainRecord, list[Look]],
) -> None:
    policy, deadlines, record, looks = case
    configured = record.deadline_at
    cap = T0 + global_timeout_seconds(record.heartbeat_timeout)
    # WHEN the drain is played
    trace = run(policy, deadlines, record, looks)
    # THEN the deadline stays within the configured one or the global timeout, only ever later,
    # and no look happens with the drain open past it
    previous = configured
    for now, action, _probe, before in trace:
        assert before.deadline_at <= max(configured, cap)
        assert before.deadline_at >= previous
        previous = before.deadline_at
        if isinstance(action, Complete):
            assert now <= before.deadline_at
    last_now, last_action, _, last_before = trace[-1]
    assert isinstance(last_action, Complete) or last_now < last_before.deadline_at


@settings(max_examples=300, deadline=None)
@given(drains())
def test_a_failed_look_or_one_with_every_worker_told_leaves_the_deadline_alone(
    case: tuple[DrainPolicy, DeadlinePolicy, DrainRecord, list[Look]],
) -> None:
    policy, deadlines, record, looks = case
    for now, _action, probe, before in run(policy, deadlines, record, looks):
        if not awaiting_sigterm(probe):
            assert extended_deadline(before, probe, now, deadlines) == before.deadline_at


def test_a_standalone_task_never_told_to_stop_does_not_extend_the_deadline() -> None:
    # GIVEN a look that sees only a standalone task (ECS never stops it on DRAINING)
    record = a_record(deadline=1200)
    probe = a_look_probe(sessions=2, told=False, group=STANDALONE, tasks=1)
    # WHEN the deadline is extended near its end
    extended = extended_deadline(record, probe, T0 + 1100, DeadlinePolicy(900, 60))
    # THEN it stays where it was: waiting cannot help
    assert extended == record.deadline_at


def test_a_service_task_still_waiting_for_its_replacement_moves_the_deadline_past_its_stop_timeout() -> None:
    # GIVEN the case of issue 11: at +660 s ECS has still not told the worker to stop
    record = a_record(deadline=1200)
    probe = a_look_probe(sessions=1, told=False, group=SERVICE, tasks=1)
    # WHEN the look extends the deadline
    extended = extended_deadline(record, probe, T0 + 660, DeadlinePolicy(900, 60))
    # THEN it lies past the worker's SIGKILL, which comes at +720 + 900 s at the latest
    assert extended == T0 + 660 + 900 + 120


def test_a_spot_drain_keeps_its_reclaim_deadline() -> None:
    record = a_record(deadline=180, extra={"reclaim_at": str(T0 + 120)})
    probe = a_look_probe(sessions=1, told=False, group=SERVICE, tasks=1)
    assert extended_deadline(record, probe, T0 + 10, DeadlinePolicy(900, 60)) == record.deadline_at
