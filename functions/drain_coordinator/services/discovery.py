"""The audit of the room index: every room of the project listed once, and the participants
asked of only those rooms the index knows nothing about (domain/discovery.py says when).

With a complete index it costs one ListRooms, one BatchGetItem per 100 rooms, and nothing per
room; with an empty one (LiveKit sends no webhooks) it is the full scan, so nothing is missed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol

from drain_coordinator.domain.discovery import audit_candidates
from drain_coordinator.integrations.store import StoreError
from drain_coordinator.observability import MetricName, logger, put_metric


class AuditSessionsPort(Protocol):
    def room_names(self, within: float | None = None) -> list[str]: ...
    def discover(self, task_arns: Any, within: float | None = None, among: Any = None) -> dict[str, str]: ...


class AuditIndexPort(Protocol):
    def indexed(self, rooms: Any) -> set[str]: ...
    def record_agent(self, room: str, task_arn: str, identity: str, at: float) -> None: ...


# The identity an entry the audit wrote carries: no webhook's leave removes it (its TTL does).
AUDIT_IDENTITY = "audit"


def audit(
    sessions: AuditSessionsPort,
    index: AuditIndexPort | None,
    task_arns: Collection[str],
    known: Collection[str],
    left: Callable[[], float | None],
    at: float,
) -> dict[str, str]:
    """The rooms of `task_arns` the index missed (not among `known`, the rooms already asked
    about): found, logged, counted (`IndexMisses`) and written to the index, so the next reader
    (a task stop of the same worker, a finished room's webhook) finds them there and counts them
    no second time. `left()`: the seconds still allowed."""
    if not task_arns:
        return {}
    names = sessions.room_names(within=left())
    indexed = index.indexed(names) if index is not None else set()
    missed = sessions.discover(
        sorted(task_arns), within=left(), among=audit_candidates(names, indexed, known)
    )
    if missed:
        put_metric(MetricName.INDEX_MISSES, len(missed))
        logger.warning(
            "rooms the room index missed (their webhooks were lost): found by the audit",
            extra={"indexMisses": len(missed), "rooms": sorted(missed)[:20]},
        )
        if index is not None:
            _write_back(index, missed, at)
    return missed


def _write_back(index: AuditIndexPort, missed: dict[str, str], at: float) -> None:
    try:
        for room, task_arn in sorted(missed.items()):
            index.record_agent(room, task_arn, AUDIT_IDENTITY, at)
    except StoreError as exc:
        # The index is a shortcut: a later audit finds the room again (and counts it again).
        logger.warning("rooms the audit found not written to the index", extra={"error": str(exc)})
