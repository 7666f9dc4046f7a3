"""Call rescue, the pure rules: which calls are doomed, which of them to hand to a healthy worker now.

A call is doomed when the worker holding it will be gone before the coordinator looks again:
- a Spot interruption warning names its instance (EC2 reclaims it two minutes later whatever a
  hook says: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html);
- the next look would come after its drain's deadline (the drain then completes with it on);
- its task's stop timeout would SIGKILL the worker before the next look (ECS sends SIGKILL
  `stopTimeout` seconds after SIGTERM:
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#container_definition_timeout);
- the user set `RescueOnDeploy` and a deploy told its worker to stop (the deploy then waits for
  a handover, not for the longest call).

Rules, each property-tested in tests/unit/test_rescue_properties.py:
1. A call is rescued at most once at a time: never while a rescue of it runs.
2. Never a call whose agent is healthy and in no danger.
3. Always before the kill when a healthy worker has room: a call whose kill comes before the
   next look is rescued at this look, as long as the fleet has a free slot for it.
4. Never more rescues than free slots; the most urgent calls (earliest kill) go first, and the
   rest are reported `no_capacity`, kept where they are as long as possible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Danger(StrEnum):
    """Why a call is doomed."""

    SPOT = "spot"
    DEADLINE = "deadline"
    STOP_TIMEOUT = "stop_timeout"
    DEPLOY = "deploy"


class RescueFailure(StrEnum):
    """Why a rescue did not save a call (the `Reason` of `RescueFailed`)."""

    NO_CAPACITY = "no_capacity"  # no worker with room: the call stays on its worker meanwhile
    NO_STATE = "no_state"  # no checkpoint: the new agent carries on with an empty history
    DISPATCH_REFUSED = "dispatch_refused"  # LiveKit refused CreateDispatch
    TIMEOUT = "timeout"  # the new agent never joined


@dataclass(frozen=True, slots=True)
class RescuePolicy:
    """What the decision needs to know of the coordinator's settings."""

    reconcile_period_seconds: int = 60
    rescue_on_deploy: bool = False
    # Seconds a rescue needs before the kill: the dispatch, the new job's assignment and join.
    handover_seconds: float = 10.0

    @property
    def horizon_seconds(self) -> float:
        """A kill sooner than this is one the next look would be too late for."""
        return self.reconcile_period_seconds + self.handover_seconds


@dataclass(frozen=True, slots=True)
class Worry:
    """What threatens the worker task holding a call, as one look sees it (all times epoch s)."""

    reclaim_at: float | None = None  # the Spot reclaim of its instance
    deadline_at: float | None = None  # its drain's deadline
    sigkill_at: float | None = None  # SIGTERM + stopTimeout, once told to stop
    stopped_by_deploy: bool = False  # a deploy (not an instance drain) told it to stop


@dataclass(frozen=True, slots=True)
class CallAtRisk:
    room: str
    task_arn: str
    worry: Worry
    rescue_running: bool = False  # a rescue of this room was dispatched and has not ended


@dataclass(frozen=True, slots=True)
class Rescue:
    room: str
    task_arn: str
    danger: Danger
    kill_at: float | None  # None: no kill time known (a deploy's stop waits on its own)


@dataclass(frozen=True, slots=True)
class RescuePlan:
    rescue: tuple[Rescue, ...] = ()
    # Doomed, no free slot: kept on its worker, tried again at the next look.
    no_capacity: tuple[Rescue, ...] = ()


def kill_at(worry: Worry) -> float | None:
    """When the worker goes whatever it does: the earliest of the reclaim, deadline and SIGKILL."""
    times = [t for t in (worry.reclaim_at, worry.deadline_at, worry.sigkill_at) if t is not None]
    return min(times) if times else None


def danger_of(worry: Worry, now: float, policy: RescuePolicy) -> Danger | None:
    """Why the call is doomed at this look, or None while its worker is in no danger."""
    if worry.reclaim_at is not None:
        return Danger.SPOT  # the warning alone dooms it: nothing delays a reclaim
    horizon = now + policy.horizon_seconds
    if worry.sigkill_at is not None and worry.sigkill_at <= horizon:
        return Danger.STOP_TIMEOUT
    if worry.deadline_at is not None and worry.deadline_at <= horizon:
        return Danger.DEADLINE
    if policy.rescue_on_deploy and worry.stopped_by_deploy:
        return Danger.DEPLOY
    return None


def plan_rescues(
    calls: Iterable[CallAtRisk], now: float, policy: RescuePolicy, free_slots: int | None
) -> RescuePlan:
    """The rescues to dispatch at this look. `free_slots`: calls the healthy workers have room
    for (None: unknown, LiveKit will tell; every doomed call is dispatched)."""
    looked = list(calls)
    doomed: list[Rescue] = []
    # A room whose rescue runs is left alone, whichever task it is seen on.
    seen: set[str] = {call.room for call in looked if call.rescue_running}
    for call in looked:
        if call.room in seen:
            continue
        danger = danger_of(call.worry, now, policy)
        if danger is None:
            continue
        seen.add(call.room)
        doomed.append(Rescue(call.room, call.task_arn, danger, kill_at(call.worry)))
    # Earliest kill first; a deploy's stop (no kill time) last; then by room, to be stable.
    doomed.sort(key=lambda r: (r.kill_at is None, r.kill_at or 0.0, r.room))
    if free_slots is None:
        return RescuePlan(rescue=tuple(doomed))
    room = max(0, free_slots)
    return RescuePlan(rescue=tuple(doomed[:room]), no_capacity=tuple(doomed[room:]))


def worries_of(
    rooms: Mapping[str, str],
    *,
    reclaim_at: float | None = None,
    deadline_at: float | None = None,
    sigkill_at: Mapping[str, float] | None = None,
    stopped_by_deploy: frozenset[str] = frozenset(),
    running: frozenset[str] = frozenset(),
) -> list[CallAtRisk]:
    """The calls of one look (room -> task ARN) with what threatens their tasks."""
    kills = sigkill_at or {}
    return [
        CallAtRisk(
            room=room,
            task_arn=arn,
            worry=Worry(
                reclaim_at=reclaim_at,
                deadline_at=deadline_at,
                sigkill_at=kills.get(arn),
                stopped_by_deploy=arn in stopped_by_deploy,
            ),
            rescue_running=room in running,
        )
        for room, arn in sorted(rooms.items())
    ]


# -- a rescue once dispatched ----------------------------------------------------------------------


class RescueStatus(StrEnum):
    RUNNING = "running"  # dispatched, the new agent not seen yet
    RESCUED = "rescued"  # the new agent joined: the call goes on there
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RescueRecord:
    """One rescue of one call, as the drain table keeps it (pk "rescue#<room>")."""

    room: str
    from_task: str
    danger: Danger
    started_at: float
    status: RescueStatus = RescueStatus.RUNNING
    dispatch_id: str = ""
    reason: RescueFailure | None = None
    ended_at: float | None = None
    # the new agent's join, seconds after the dispatch; its task
    gap_seconds: float | None = None
    to_task: str = ""
    attempts: int = 1
    version: int = 0

    @property
    def running(self) -> bool:
        return self.status is RescueStatus.RUNNING


@dataclass(frozen=True, slots=True)
class AgentSeen:
    """An agent participant in a rescued call's room."""

    identity: str
    task_arn: str
    joined_at: float
    checkpoint: str = ""  # "loaded" | "none" | "" (an agent that says nothing of it)


@dataclass(frozen=True, slots=True)
class Settled:
    """What a look learned of a running rescue: None fields mean still running."""

    status: RescueStatus
    reason: RescueFailure | None = None
    to_task: str = ""
    gap_seconds: float | None = None
    # The new agent joined but found no checkpoint: the call goes on with an empty history.
    without_state: bool = False


CHECKPOINT_LOADED = "loaded"


def settle(
    rescue: RescueRecord,
    agents: Iterable[AgentSeen],
    jobs: int | None,
    now: float,
    join_timeout_seconds: float,
) -> Settled | None:
    """A running rescue, seen again: joined (rescued), given up (failed with its reason), or None
    while it may still join. `jobs`: how many jobs LiveKit started for its dispatch (None: the
    dispatch is gone)."""
    if not rescue.running:
        return None
    joined = sorted(
        (a for a in agents if a.task_arn and a.task_arn != rescue.from_task), key=lambda a: a.joined_at
    )
    if joined:
        first = joined[0]
        return Settled(
            status=RescueStatus.RESCUED,
            to_task=first.task_arn,
            gap_seconds=max(0.0, first.joined_at - rescue.started_at),
            without_state=first.checkpoint != CHECKPOINT_LOADED,
        )
    if now - rescue.started_at < join_timeout_seconds:
        return None
    # No worker with room took the job (LiveKit started none), or one took it and never joined.
    reason = RescueFailure.NO_CAPACITY if not jobs else RescueFailure.TIMEOUT
    return Settled(status=RescueStatus.FAILED, reason=reason)
