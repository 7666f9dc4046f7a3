"""Call rescue, sequenced: settle the rescues a look can see, plan new ones (domain/rescue.py),
dispatch them into their rooms, count every outcome.

A look of a drain (drains.py) or of a task stop (task_stops.py) hands its calls here with
what threatens them. A doomed call gets a rescue job in its room (LiveKit AgentDispatchService
CreateDispatch, metadata naming its checkpoint); LiveKit gives it to an available worker; the new
agent loads the checkpoint, joins, and the old agent leaves (the packaged worker,
livekit_drain_worker.rescue). A later look sees the new agent in the room and counts the rescue,
or, once `join_timeout_seconds` have passed without it, counts the failure with its reason and
withdraws the dispatch. The ledger (integrations/rescues.py) refuses a second rescue of a call
while one runs. Nothing here ever fails a look: a rescue that cannot be asked about is left for
the next one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from drain_coordinator.domain.rescue import (
    AgentSeen,
    CallAtRisk,
    Rescue,
    RescueFailure,
    RescuePolicy,
    RescueRecord,
    RescueStatus,
    plan_rescues,
    settle,
)
from drain_coordinator.integrations.livekit import LiveKitProbeError, RescueDispatchError, RoomAgent
from drain_coordinator.integrations.secrets import CredentialsError
from drain_coordinator.integrations.store import StaleDrainError, StoreError
from drain_coordinator.observability import MetricName, logger, put_metric, put_metric_by

# The dispatch metadata's key, read by the packaged worker's rescue job (livekit_drain_worker.rescue).
RESCUE_METADATA_KEY = "livekit_drain_rescue"
DEFAULT_JOIN_TIMEOUT_SECONDS = 30.0
_LOOK_ERRORS = (StoreError, LiveKitProbeError, CredentialsError, StaleDrainError)


class RescueStorePort(Protocol):
    def get(self, room: str) -> RescueRecord | None: ...
    def begin(self, record: RescueRecord) -> RescueRecord | None: ...
    def save(self, record: RescueRecord) -> RescueRecord: ...


class RescueLiveKitPort(Protocol):
    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> str: ...
    def dispatch_jobs(self, room: str, dispatch_id: str) -> int | None: ...
    def delete_dispatch(self, room: str, dispatch_id: str) -> None: ...
    def agents_in(self, room: str) -> list[RoomAgent]: ...


@dataclass(frozen=True, slots=True)
class RescueStep:
    """What a look did about one call: a log line, a replay line."""

    action: str  # rescue_dispatched | rescue_refused | rescued | rescue_failed
    room: str
    reason: str | None = None
    danger: str | None = None
    gap_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {
                "action": self.action,
                "room": self.room,
                "reason": self.reason,
                "danger": self.danger,
                "gap_seconds": self.gap_seconds,
            }.items()
            if v is not None
        }


def rescue_metadata(rescue: Rescue) -> str:
    """What the rescue job reads from its dispatch: the checkpoint's key (the room) and the task
    it takes the call from."""
    return json.dumps(
        {
            RESCUE_METADATA_KEY: {
                "checkpoint": rescue.room,
                "from_task": rescue.task_arn,
                "danger": rescue.danger.value,
            }
        },
        sort_keys=True,
    )


@dataclass
class Rescuer:
    store: RescueStorePort
    livekit: RescueLiveKitPort
    policy: RescuePolicy
    clock: Callable[[], float]
    # The agent name the workers register with (explicit dispatch targets it; "" for none).
    agent_name: str = ""
    join_timeout_seconds: float = DEFAULT_JOIN_TIMEOUT_SECONDS

    def look(self, calls: Sequence[CallAtRisk], also_settle: Iterable[str] = ()) -> list[RescueStep]:
        """Settle the running rescues of these calls' rooms (and of `also_settle`: rooms the look
        watched before, whose old agent may have left since), then dispatch the doomed calls."""
        steps: list[RescueStep] = []
        try:
            running: set[str] = set()
            handed: set[tuple[str, str]] = set()  # (room, task) a rescue already took the call from
            for room in sorted({c.room for c in calls} | set(also_settle)):
                record = self.store.get(room)
                if record is None:
                    continue
                if record.running:
                    ended = self._settle(record)
                    if ended is None:
                        running.add(room)
                        continue
                    steps.append(ended)
                    record = self.store.get(room) or record
                if record.status is RescueStatus.RESCUED:
                    handed.add((room, record.from_task))
            now = self.clock()
            # A call its rescue took over is not doomed again while its old agent is leaving.
            marked = [
                replace(c, rescue_running=c.room in running or (c.room, c.task_arn) in handed) for c in calls
            ]
            plan = plan_rescues(marked, now, self.policy, free_slots=None)
            for rescue in plan.rescue:
                steps.append(self._dispatch(rescue, now))
        except _LOOK_ERRORS as exc:
            logger.warning("rescue look cut short: the next look takes it up", extra={"error": str(exc)})
        return steps

    def _dispatch(self, rescue: Rescue, now: float) -> RescueStep:
        logger.append_keys(room=rescue.room)
        begun = self.store.begin(RescueRecord(rescue.room, rescue.task_arn, rescue.danger, started_at=now))
        if begun is None:
            logger.info("rescue refused: one already runs for this call")
            return RescueStep("rescue_refused", rescue.room, reason="running", danger=rescue.danger.value)
        try:
            dispatch_id = self.livekit.create_dispatch(rescue.room, self.agent_name, rescue_metadata(rescue))
        except RescueDispatchError as exc:
            self.store.save(
                replace(
                    begun, status=RescueStatus.FAILED, reason=RescueFailure.DISPATCH_REFUSED, ended_at=now
                )
            )
            _count_failure(RescueFailure.DISPATCH_REFUSED)
            logger.error(
                "rescue dispatch refused: the call stays on its doomed worker",
                extra={"error": str(exc), "danger": rescue.danger.value},
            )
            return RescueStep(
                "rescue_failed",
                rescue.room,
                reason=RescueFailure.DISPATCH_REFUSED.value,
                danger=rescue.danger.value,
            )
        self.store.save(replace(begun, dispatch_id=dispatch_id))
        logger.info(
            "rescue dispatched: a healthy worker takes the call over",
            extra={
                "danger": rescue.danger.value,
                "fromTask": rescue.task_arn,
                "killAt": rescue.kill_at,
                "dispatchId": dispatch_id,
            },
        )
        return RescueStep("rescue_dispatched", rescue.room, danger=rescue.danger.value)

    def _settle(self, record: RescueRecord) -> RescueStep | None:
        now = self.clock()
        agents = [
            AgentSeen(a.identity, a.task_arn, a.joined_at, a.checkpoint)
            for a in self.livekit.agents_in(record.room)
        ]
        joined = any(a.task_arn and a.task_arn != record.from_task for a in agents)
        jobs: int | None = 0
        if not joined and now - record.started_at >= self.join_timeout_seconds and record.dispatch_id:
            jobs = self.livekit.dispatch_jobs(record.room, record.dispatch_id)
        settled = settle(record, agents, jobs, now, self.join_timeout_seconds)
        if settled is None:
            return None
        logger.append_keys(room=record.room)
        if settled.status is RescueStatus.RESCUED:
            self.store.save(
                replace(
                    record,
                    status=RescueStatus.RESCUED,
                    to_task=settled.to_task,
                    gap_seconds=settled.gap_seconds,
                    ended_at=now,
                    reason=RescueFailure.NO_STATE if settled.without_state else None,
                )
            )
            put_metric(MetricName.CALLS_RESCUED)
            if settled.gap_seconds is not None:
                put_metric(MetricName.RESCUE_GAP_SECONDS, settled.gap_seconds)
            if settled.without_state:
                _count_failure(RescueFailure.NO_STATE)
                logger.warning("call rescued without its checkpoint: the new agent starts afresh")
            logger.info(
                "call rescued: the new agent joined",
                extra={"toTask": settled.to_task, "gapSeconds": settled.gap_seconds},
            )
            return RescueStep(
                "rescued",
                record.room,
                danger=record.danger.value,
                gap_seconds=settled.gap_seconds,
                reason=RescueFailure.NO_STATE.value if settled.without_state else None,
            )
        assert settled.reason is not None
        if record.dispatch_id:
            self.livekit.delete_dispatch(record.room, record.dispatch_id)
        self.store.save(replace(record, status=RescueStatus.FAILED, reason=settled.reason, ended_at=now))
        _count_failure(settled.reason)
        logger.error(
            "rescue failed: the call stays on its doomed worker",
            extra={"reason": settled.reason.value, "danger": record.danger.value},
        )
        return RescueStep(
            "rescue_failed", record.room, reason=settled.reason.value, danger=record.danger.value
        )


def _count_failure(reason: RescueFailure) -> None:
    # Once for the alarm (every reason), once by reason for the dashboard.
    put_metric(MetricName.RESCUE_FAILED)
    put_metric_by(MetricName.RESCUE_FAILED, "Reason", reason.value)
