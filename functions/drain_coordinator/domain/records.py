"""The drain record: one instance held in `Terminating:Wait` until its calls end."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class DrainOutcome(StrEnum):
    DRAINED = "drained"  # no worker task and no session left
    DEADLINE = "deadline"  # released at the hard deadline, whatever was left
    GONE = "gone"  # the lifecycle action was ended by someone else (console, CLI, another tool)
    # The lifecycle action ran out under the coordinator: its heartbeat timer (or the hook's global
    # timeout) passed before a heartbeat reached Auto Scaling, and DefaultResult terminated it.
    EXPIRED = "expired"


class DrainStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class LifecycleRef:
    """Which lifecycle action a drain holds; the four keys every log line of a drain carries."""

    asg_name: str
    hook_name: str
    instance_id: str
    action_token: str

    def log_keys(self) -> dict[str, str]:
        return {
            "asgName": self.asg_name,
            "lifecycleHookName": self.hook_name,
            "lifecycleActionToken": self.action_token,
            "instanceID": self.instance_id,
        }


@dataclass(frozen=True, slots=True)
class DrainRecord:
    """Everything the coordinator knows about one drain, as stored.

    Times are epoch seconds. `last_heartbeat_at` starts at `hook_started_at`: the lifecycle
    hook's heartbeat timer starts when the instance enters `Terminating:Wait`.
    """

    lifecycle: LifecycleRef
    cluster: str
    container_instance_arn: str | None
    hook_started_at: float
    deadline_at: float
    heartbeat_timeout: int
    last_heartbeat_at: float
    opened_at: float
    status: DrainStatus = DrainStatus.OPEN
    # room -> task ARN of the agent that holds it; None until the first successful discovery.
    watched_rooms: dict[str, str] | None = None
    # True once every worker task was told to stop before the rooms were discovered: from then
    # on no worker takes a new job, so the watched set can only shrink.
    rooms_final: bool = False
    # True once a look scanned every room of the project for this drain (domain/discovery.py):
    # one audit per drain, for the rooms whose join webhook never reached the room index.
    rooms_audited: bool = False
    # The worker tasks the last successful look found on the instance; None before the first.
    # A DRAINING instance gets no new task, so later looks describe these (in batches, with the
    # other drains of the tick) instead of listing the instance again.
    known_tasks: tuple[str, ...] | None = None
    heartbeats: int = 0
    probe_errors: int = 0
    sessions_remaining: int | None = None
    tasks_remaining: int | None = None
    outcome: DrainOutcome | None = None
    dropped_sessions: int = 0
    closed_at: float | None = None
    # When a look last ran to its end (probe, decide, act, save); None before the first.
    looked_at: float | None = None
    version: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def instance_id(self) -> str:
        return self.lifecycle.instance_id

    @property
    def is_open(self) -> bool:
        return self.status is DrainStatus.OPEN

    @property
    def heartbeat_expires_at(self) -> float:
        return self.last_heartbeat_at + self.heartbeat_timeout

    @property
    def hook_expires_at(self) -> float:
        """When Auto Scaling ends the action whatever is sent: min(48 h, 100 x HeartbeatTimeout)
        after it started (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks.html)."""
        return self.hook_started_at + min(48 * 3600, 100 * self.heartbeat_timeout)

    def expired_by(self, now: float) -> bool:
        """By this record's own timers the action has run out: a 'gone' answer is an expiry."""
        return now >= self.heartbeat_expires_at or now >= self.hook_expires_at

    def with_heartbeat(self, now: float) -> DrainRecord:
        return replace(self, last_heartbeat_at=now, heartbeats=self.heartbeats + 1)

    def closed(self, outcome: DrainOutcome, now: float, dropped_sessions: int = 0) -> DrainRecord:
        return replace(
            self,
            status=DrainStatus.CLOSED,
            outcome=outcome,
            closed_at=now,
            dropped_sessions=dropped_sessions,
        )

    def superseded_by(self, ref: LifecycleRef, hook_started_at: float) -> bool:
        """A closed drain of this instance, and a later lifecycle action that is not its own: the
        instance was taken again (a warm pool with ReuseOnScaleIn returns it to the group, and a
        later scale-in opens a new terminate action with a new token). That action gets a drain
        of its own; a duplicate of this drain's event (same token), or a late copy of an earlier
        action's (it started before this one), does not.
        https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html"""
        return (
            not self.is_open
            and bool(ref.action_token)
            and bool(self.lifecycle.action_token)
            and ref.action_token != self.lifecycle.action_token
            and hook_started_at > self.hook_started_at
        )

    @property
    def drain_seconds(self) -> float | None:
        return None if self.closed_at is None else self.closed_at - self.hook_started_at


def save_needed(before: DrainRecord, after: DrainRecord) -> bool:
    """Whether a look must write its record: something but the time of the look changed. A look
    that changed nothing else writes nothing; the tick learns of it from its run's one record
    of the looks it made (domain/schedule.py, `with_looks`), not from a write per drain."""
    return replace(after, looked_at=before.looked_at) != before
