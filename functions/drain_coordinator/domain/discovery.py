"""Which rooms a look asks LiveKit about, and when it scans them all. Pure.

The webhook function keeps a room index (room -> the task whose agent joined it), written on
every agent join and leave. A look asks LiveKit only about the rooms that index names for the
drain's worker tasks, and the rooms the drain already watches: O(rooms the drain holds) requests,
whatever the number of rooms in the project.

The index only knows what webhooks told it, and LiveKit drops a webhook it could not deliver
after its retries. So each drain audits once: one ListRooms of the whole project, and
ListParticipants only for the rooms the index knows nothing about (an indexed room is another
task's, or one of ours already asked). The audit runs at the first look that sees every worker
task told to stop (a stopping LiveKit worker takes no new job, so nothing it holds can appear
after it), or, for workers ECS never tells to stop (standalone tasks), at the last look before
the deadline, so the calls the deadline cuts are counted. Rooms the audit finds that the index
missed are logged and counted (`IndexMisses`).
https://docs.livekit.io/home/server/webhooks/ (delivery is retried, then dropped)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from drain_coordinator.domain.decide import DrainPolicy
from drain_coordinator.domain.probe import WorkerTask, discovery_final
from drain_coordinator.domain.records import DrainRecord


@dataclass(frozen=True, slots=True)
class DiscoveryPlan:
    """What one look asks before it asks LiveKit about its candidate rooms."""

    # Ask the room index which rooms the tasks hold (the watched set may still grow).
    read_index: bool
    # Scan every room of the project once (ListRooms), for the rooms the index missed.
    audit: bool
    # Every worker task was told to stop at this look: no room of theirs can appear any more.
    final: bool


def discovery_plan(
    record: DrainRecord, tasks: tuple[WorkerTask, ...], now: float, policy: DrainPolicy
) -> DiscoveryPlan:
    final = discovery_final(tasks)
    if record.rooms_audited:
        # Audited once already: from a final look on, the watched set can only shrink.
        return DiscoveryPlan(
            read_index=not record.rooms_final, audit=False, final=record.rooms_final or final
        )
    has_workers = any(not t.daemon for t in tasks) or bool(record.watched_rooms)
    last_look = now + policy.slack_seconds >= record.deadline_at
    return DiscoveryPlan(read_index=True, audit=has_workers and (final or last_look), final=final)


def audit_candidates(
    project_rooms: Collection[str], indexed: Collection[str], known: Collection[str]
) -> list[str]:
    """The rooms an audit must ask LiveKit about: in the project, unknown to the index (any
    task's entry), and not among the rooms this look asks about anyway."""
    skip = set(indexed) | set(known)
    return sorted(room for room in project_rooms if room not in skip)


def index_misses(found: Mapping[str, str], indexed_ours: Mapping[str, str]) -> dict[str, str]:
    """Rooms held by the drain's tasks that the index did not name for them."""
    return {room: arn for room, arn in found.items() if indexed_ours.get(room) != arn}
