from __future__ import annotations

from dataclasses import replace

import pytest

from drain_coordinator.domain.decide import (
    Complete,
    DrainPolicy,
    Heartbeat,
    Hold,
    Wait,
    apply,
    decide,
    heartbeat_due,
)
from drain_coordinator.domain.probe import Probe, WorkerTask, discovery_final
from drain_coordinator.domain.records import DrainOutcome, DrainStatus
from tests.factories import T0, a_probe, a_record

POLICY = DrainPolicy(reconcile_period_seconds=60)


def test_decide_completes_drained_when_no_task_and_no_session_remain() -> None:
    # GIVEN an open drain whose instance is empty
    record = a_record()
    # WHEN it is looked at right after it opened
    action = decide(record, a_probe(sessions=0, tasks=0), T0 + 1, POLICY)
    # THEN the instance is released at once
    assert action == Complete(outcome=DrainOutcome.DRAINED)


@pytest.mark.parametrize(("sessions", "tasks"), [(1, 0), (0, 1), (3, 2)])
def test_decide_waits_while_sessions_or_tasks_remain(sessions: int, tasks: int) -> None:
    action = decide(a_record(), a_probe(sessions=sessions, tasks=tasks), T0 + 60, POLICY)
    assert isinstance(action, Wait)


def test_decide_heartbeats_when_the_hook_would_expire_before_the_look_after_next() -> None:
    # GIVEN a 300 s hook whose timer started at T0 and a 60 s period
    record = a_record(heartbeat_timeout=300)
    # WHEN looked at 180 s in (120 s left = two periods)
    action = decide(record, a_probe(sessions=2, tasks=1), T0 + 180, POLICY)
    # THEN a heartbeat is sent now
    assert action == Heartbeat()
    # AND 60 s earlier it was not yet due
    assert isinstance(decide(record, a_probe(sessions=2, tasks=1), T0 + 120, POLICY), Wait)


def test_decide_completes_at_deadline_counting_sessions_still_held_as_dropped() -> None:
    record = a_record(deadline=1200)
    action = decide(record, a_probe(sessions=2, tasks=1), T0 + 1150, POLICY)
    assert action == Complete(outcome=DrainOutcome.DEADLINE, dropped_sessions=2)


def test_decide_holds_when_probe_fails_before_deadline() -> None:
    action = decide(a_record(), Probe.failed("LiveKit unreachable"), T0 + 60, POLICY)
    assert action == Hold(error="LiveKit unreachable", heartbeat=False)


def test_decide_holds_with_heartbeat_when_probe_fails_and_hook_is_due() -> None:
    action = decide(a_record(), Probe.failed("ECS throttled"), T0 + 200, POLICY)
    assert action == Hold(error="ECS throttled", heartbeat=True)


def test_decide_at_deadline_with_failed_probe_drops_last_known_sessions() -> None:
    record = a_record(sessions_remaining=4)
    action = decide(record, Probe.failed("timeout"), T0 + 1190, POLICY)
    assert action == Complete(outcome=DrainOutcome.DEADLINE, dropped_sessions=4)


def test_decide_on_closed_drain_does_nothing() -> None:
    record = a_record().closed(DrainOutcome.DRAINED, T0 + 30)
    assert decide(record, a_probe(), T0 + 60, POLICY) == Wait(reason="closed")


def test_apply_heartbeat_restarts_the_hook_timer() -> None:
    record = apply(a_record(), Heartbeat(), a_probe(sessions=1), T0 + 180)
    assert record.last_heartbeat_at == T0 + 180
    assert record.heartbeats == 1
    assert not heartbeat_due(record, T0 + 240, POLICY)


def test_apply_complete_closes_with_outcome_and_dropped_sessions() -> None:
    record = apply(a_record(), Complete(DrainOutcome.DEADLINE, 3), a_probe(sessions=3, tasks=1), T0 + 1150)
    assert record.status is DrainStatus.CLOSED
    assert record.outcome is DrainOutcome.DEADLINE
    assert record.dropped_sessions == 3
    assert record.drain_seconds == 1150


def test_apply_failed_probe_counts_probe_errors_and_keeps_last_known_sessions() -> None:
    record = replace(a_record(), sessions_remaining=2)
    after = apply(record, Hold(error="x", heartbeat=False), Probe.failed("x"), T0 + 60)
    assert after.probe_errors == 1
    assert after.sessions_remaining == 2


def test_discovery_is_final_once_every_worker_task_was_told_to_stop_daemons_aside() -> None:
    # GIVEN two workers told to stop and a daemon that ECS stops last
    told = WorkerTask(arn="a", last_status="RUNNING", desired_status="STOPPED")
    daemon = WorkerTask(arn="d", last_status="RUNNING", desired_status="RUNNING", daemon=True)
    running = WorkerTask(arn="b", last_status="RUNNING", desired_status="RUNNING")
    # THEN the daemon does not keep discovery open, a running worker does
    assert discovery_final((told, daemon))
    assert not discovery_final((told, running, daemon))
    assert discovery_final(())
