"""The pure decision that advances a drain. No I/O: a function of the record, a probe and now.

Rules (docs/ARCHITECTURE.md), each property-tested in tests/unit/test_decide_properties.py:
1. Never complete while sessions or tasks remain, before the deadline.
2. Always complete by the deadline; sessions still held then are dropped and counted.
3. Heartbeat before the hook's heartbeat timer runs out, every time, while the drain is open.
4. A failed probe never completes a drain early; it holds (heartbeats) until the deadline.
5. Duplicate, late and out-of-order events change nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from drain_coordinator.domain.probe import Probe
from drain_coordinator.domain.records import DrainOutcome, DrainRecord


@dataclass(frozen=True, slots=True)
class DrainPolicy:
    """The timers a decision needs, validated in settings.py."""

    reconcile_period_seconds: int = 60

    @property
    def slack_seconds(self) -> int:
        # The next look is at most one period away: act now for anything due before then.
        return self.reconcile_period_seconds


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to send: the hook's timer has time left and calls still run."""

    reason: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Calls still run and the hook's timer would run out before the next look."""


@dataclass(frozen=True, slots=True)
class Hold:
    """The probe failed: prove nothing, keep the instance (heartbeat if due)."""

    error: str
    heartbeat: bool


@dataclass(frozen=True, slots=True)
class Complete:
    outcome: DrainOutcome
    dropped_sessions: int = 0


Action = Wait | Heartbeat | Hold | Complete


def heartbeat_due(record: DrainRecord, now: float, policy: DrainPolicy) -> bool:
    """Due when the hook's timer would run out before the look after next.

    Two periods of margin: one missed or late tick (a throttled Lambda, a cold start) still
    leaves the hook alive.
    """
    return record.heartbeat_expires_at - now <= 2 * policy.slack_seconds


def deadline_reached(record: DrainRecord, now: float, policy: DrainPolicy) -> bool:
    """The deadline is hard: if the next look would come after it, this look is the last."""
    return now + policy.slack_seconds >= record.deadline_at


def decide(record: DrainRecord, probe: Probe, now: float, policy: DrainPolicy) -> Action:
    if not record.is_open:
        return Wait(reason="closed")
    if probe.empty:
        return Complete(outcome=DrainOutcome.DRAINED)
    if deadline_reached(record, now, policy):
        if probe.ok:
            dropped = probe.session_count
        elif probe.sessions_seen is not None:
            dropped = len(probe.sessions_seen)
        else:
            dropped = record.sessions_remaining or 0
        return Complete(outcome=DrainOutcome.DEADLINE, dropped_sessions=dropped)
    if not probe.ok:
        return Hold(error=probe.error or "probe failed", heartbeat=heartbeat_due(record, now, policy))
    if heartbeat_due(record, now, policy):
        return Heartbeat()
    return Wait(reason="calls in progress")


def apply(record: DrainRecord, action: Action, probe: Probe, now: float) -> DrainRecord:
    """The record after `action` was carried out at `now` (the I/O succeeded)."""
    if probe.ok:
        record = replace(record, sessions_remaining=probe.session_count, tasks_remaining=probe.task_count)
    else:
        record = replace(record, probe_errors=record.probe_errors + 1)
        if probe.sessions_seen is not None:
            record = replace(
                record, sessions_remaining=len(probe.sessions_seen), watched_rooms=probe.sessions_seen
            )
    match action:
        case Complete(outcome=outcome, dropped_sessions=dropped):
            return record.closed(outcome, now, dropped)
        case Heartbeat() | Hold(heartbeat=True):
            return record.with_heartbeat(now)
        case _:
            return record
