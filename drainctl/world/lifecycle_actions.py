"""Lifecycle actions of the local Auto Scaling: what AWS keeps for an instance held by a hook.

A pure, thread-safe record keeper: it knows tokens, deadlines and how each action ended, and
nothing about moto or HTTP. Times are epoch seconds from the world's virtual clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

TERMINATING: Final = "autoscaling:EC2_INSTANCE_TERMINATING"
LAUNCHING: Final = "autoscaling:EC2_INSTANCE_LAUNCHING"

# AWS caps the whole wait at 48 h or 100 heartbeat timeouts, whichever is shorter.
MAX_GLOBAL_TIMEOUT_SECONDS: Final = 172_800
GLOBAL_TIMEOUT_HEARTBEATS: Final = 100

LifecycleActionResult = Literal["CONTINUE", "ABANDON"]
LifecycleActionEnd = Literal["CONTINUE", "ABANDON", "heartbeat_timeout", "global_timeout", "group_deleted"]

WAIT: Final = "Terminating:Wait"
PROCEED: Final = "Terminating:Proceed"
TERMINATED: Final = "Terminated"
IN_SERVICE: Final = "InService"
# A group with a warm pool: a terminate hook holding an instance on its way back to the pool
# (ReuseOnScaleIn) waits in Warmed:Pending:Wait; a launch hook holding an instance on its way
# into the group waits in Pending:Wait. In the pool it is Warmed:Stopped (or Running, Hibernated).
# https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html
WARMED_PENDING_WAIT: Final = "Warmed:Pending:Wait"
WARMED_PENDING_PROCEED: Final = "Warmed:Pending:Proceed"
PENDING_WAIT: Final = "Pending:Wait"
PENDING_PROCEED: Final = "Pending:Proceed"
# Where an action's instance comes from and goes to (the event's Origin and Destination).
EC2: Final = "EC2"
GROUP: Final = "AutoScalingGroup"
WARM_POOL: Final = "WarmPool"


def warmed(pool_state: str) -> str:
    """The lifecycle state of an instance resting in a warm pool of this PoolState."""
    return f"Warmed:{pool_state}"


def global_timeout_for(heartbeat_timeout: int) -> int:
    """The longest an action may stay open, counted from its start."""
    return min(MAX_GLOBAL_TIMEOUT_SECONDS, GLOBAL_TIMEOUT_HEARTBEATS * heartbeat_timeout)


class NoActiveLifecycleActionError(Exception):
    """No open action matches the token or instance id (unknown, mismatched or ended)."""


@dataclass(frozen=True)
class LifecycleAction:
    """One instance held by one lifecycle hook. Immutable: every change makes a new record."""

    token: str
    group_name: str
    hook_name: str
    instance_id: str
    transition: str
    heartbeat_timeout: int
    default_result: LifecycleActionResult
    started_at: float
    heartbeat_deadline: float
    global_deadline: float
    heartbeats: int = 0
    heartbeat_times: tuple[float, ...] = ()  # when each heartbeat was recorded
    ended_by: LifecycleActionEnd | None = None
    ended_at: float | None = None
    # The result AWS applied: the caller's on completion, the hook's DefaultResult on a timeout.
    result: LifecycleActionResult | None = None
    origin: str = GROUP
    destination: str = EC2
    event: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_open(self) -> bool:
        return self.ended_by is None

    def expiry(self) -> tuple[LifecycleActionEnd, float]:
        """Which timer runs out first, and when."""
        if self.heartbeat_deadline < self.global_deadline:
            return "heartbeat_timeout", self.heartbeat_deadline
        return "global_timeout", self.global_deadline


class LifecycleActionLog:
    """Every lifecycle action of one local world, open or ended, and the states it set."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._actions: dict[str, LifecycleAction] = {}
        self._states: dict[str, str] = {}

    # -- read access ---------------------------------------------------------------------------

    def actions(self) -> list[LifecycleAction]:
        """All actions in the order they started."""
        with self._lock:
            return list(self._actions.values())

    def open_actions(self) -> list[LifecycleAction]:
        with self._lock:
            return [a for a in self._actions.values() if a.is_open]

    def action_for(
        self, instance_id: str, hook_name: str | None = None, transition: str | None = TERMINATING
    ) -> LifecycleAction | None:
        """The latest action of an instance, open or ended: of `hook_name`, or (several hooks
        holding it at once) of the group's first hook; a terminate action unless `transition`
        says otherwise (None: any)."""
        with self._lock:
            found = [
                a
                for a in self._actions.values()
                if a.instance_id == instance_id
                and (hook_name is None or a.hook_name == hook_name)
                and (transition is None or a.transition == transition)
            ]
            if not found:
                return None
            latest = found[-1].started_at
            return next(a for a in found if a.started_at == latest)

    def state_of(self, instance_id: str) -> str | None:
        """The lifecycle state a hook put the instance in; None if no hook ever held it."""
        with self._lock:
            return self._states.get(instance_id)

    # -- changes -------------------------------------------------------------------------------

    def start(
        self,
        *,
        token: str,
        group_name: str,
        hook_name: str,
        instance_id: str,
        transition: str,
        heartbeat_timeout: int,
        default_result: LifecycleActionResult,
        now: float,
        event: dict[str, Any] | None = None,
        origin: str = GROUP,
        destination: str = EC2,
        wait_state: str = WAIT,
    ) -> LifecycleAction:
        action = LifecycleAction(
            token=token,
            group_name=group_name,
            hook_name=hook_name,
            instance_id=instance_id,
            transition=transition,
            heartbeat_timeout=heartbeat_timeout,
            default_result=default_result,
            started_at=now,
            heartbeat_deadline=now + heartbeat_timeout,
            global_deadline=now + global_timeout_for(heartbeat_timeout),
            origin=origin,
            destination=destination,
            event=event or {},
        )
        with self._lock:
            if token in self._actions:
                raise ValueError("a lifecycle action token is used once")
            self._actions[token] = action
            self._states[instance_id] = wait_state
        return action

    def find_open(
        self,
        *,
        group_name: str,
        hook_name: str,
        token: str | None = None,
        instance_id: str | None = None,
    ) -> LifecycleAction:
        """The open action matching every identifier given, or NoActiveLifecycleActionError."""
        if token is None and instance_id is None:
            raise NoActiveLifecycleActionError("Either LifecycleActionToken or InstanceId must be specified")
        with self._lock:
            for action in self._actions.values():
                if (
                    action.is_open
                    and action.group_name == group_name
                    and action.hook_name == hook_name
                    and (token is None or action.token == token)
                    and (instance_id is None or action.instance_id == instance_id)
                ):
                    return action
        if token is not None:
            raise NoActiveLifecycleActionError(f"No active Lifecycle Action found with token {token}")
        raise NoActiveLifecycleActionError(f"No active Lifecycle Action found with instance ID {instance_id}")

    def record_heartbeat(self, token: str, now: float) -> LifecycleAction:
        """Restart the heartbeat timer, never past the global deadline."""
        with self._lock:
            action = self._open(token)
            updated = replace(
                action,
                heartbeats=action.heartbeats + 1,
                heartbeat_times=(*action.heartbeat_times, now),
                heartbeat_deadline=min(now + action.heartbeat_timeout, action.global_deadline),
            )
            self._actions[token] = updated
            return updated

    def end(
        self,
        token: str,
        *,
        ended_by: LifecycleActionEnd,
        at: float,
        result: LifecycleActionResult | None,
    ) -> LifecycleAction:
        with self._lock:
            action = self._open(token)
            ended = replace(action, ended_by=ended_by, ended_at=at, result=result)
            self._actions[token] = ended
            return ended

    def set_state(self, instance_id: str, state: str) -> None:
        with self._lock:
            self._states[instance_id] = state

    def due(self, now: float) -> list[LifecycleAction]:
        """Open actions whose heartbeat or global timer has run out at `now`."""
        with self._lock:
            return [a for a in self._actions.values() if a.is_open and a.expiry()[1] <= now]

    def _open(self, token: str) -> LifecycleAction:
        action = self._actions.get(token)
        if action is None or not action.is_open:
            raise NoActiveLifecycleActionError(f"No active Lifecycle Action found with token {token}")
        return action
