"""LiveKit: which rooms the drain's worker tasks still hold, through livekit-api's RoomService.

A session is a room with an AGENT participant whose attribute `ecs.task_arn` names one of the
instance's worker tasks. A look asks only about the rooms it names (`still_held`: one ListRooms
by name, one ListParticipants per room that still exists): O(rooms the drain holds). The audit
(domain/discovery.py) lists every room's name once (`room_names`) and asks for the participants
of the few the room index does not know (`discover(..., among=...)`).

livekit-api (with aiohttp and every LiveKit protobuf module) is imported at the first request,
not with this module: a handler whose path asks LiveKit nothing never loads it (cold starts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from livekit.api import LiveKitAPI
    from livekit.protocol.models import ParticipantInfo

# The contract with the packaged worker (worker/): the attribute it sets on its agent participant.
SESSION_TAG_ATTRIBUTE = "ecs.task_arn"
# ... and a rescue job's agent: whether it found the call's checkpoint (livekit_drain_worker.rescue).
CHECKPOINT_ATTRIBUTE = "lk.drain.checkpoint"
T = TypeVar("T")
_CONCURRENCY = 16  # parallel ListParticipants calls: bounded so a big fleet does not hit rate limits


@cache
def _api() -> ModuleType:
    """livekit-api, imported when first needed."""
    from livekit import api

    return api


@cache
def _aiohttp() -> ModuleType:
    import aiohttp

    return aiohttp


@cache
def _not_callers() -> frozenset[Any]:
    """Participants who are nobody's call: agents, and LiveKit's own egress (recording, streaming
    out) and ingress (streaming in) participants. Kinds: livekit/protocol
    protobufs/livekit_models.proto, ParticipantInfo.Kind"""
    from livekit.protocol.models import ParticipantInfo

    kind = ParticipantInfo.Kind
    return frozenset({kind.AGENT, kind.EGRESS, kind.INGRESS})


class LiveKitProbeError(Exception):
    """LiveKit could not be asked (unreachable, timed out, refused): the answer proves nothing.

    `down`: the failure says LiveKit itself is unwell (no answer, a 5xx, refused credentials).
    A rate limit's 429 or a look that ran out of its own budget says nothing of the next look."""

    def __init__(self, message: str, *, down: bool = True) -> None:
        super().__init__(message)
        self.down = down


class RescueDispatchError(Exception):
    """LiveKit refused (or could not be asked for) a rescue's dispatch."""


@dataclass(frozen=True, slots=True)
class LiveKitCredentials:
    api_key: str
    api_secret: str

    def __repr__(self) -> str:  # never let the secret reach a log line
        return f"LiveKitCredentials(api_key={self.api_key!r}, api_secret='***')"


class LiveKitSessions:
    def __init__(
        self,
        url: str,
        credentials: Callable[[], LiveKitCredentials],
        timeout_seconds: float = 5.0,
    ) -> None:
        self._url = url
        self._credentials = credentials
        self._timeout = timeout_seconds

    def discover(
        self,
        task_arns: Collection[str],
        within: float | None = None,
        among: Collection[str] | None = None,
    ) -> dict[str, str]:
        """Every room held by an agent of one of these tasks: room -> task ARN. Without `among`,
        scans all rooms (ListRooms, then ListParticipants for each); with it, asks only for the
        participants of those rooms (no ListRooms).

        `within`: seconds the whole discovery may take (its requests overlap, 16 at a time); past
        it the look fails (LiveKitProbeError), so a slow LiveKit cannot hold a tick."""
        if not task_arns or (among is not None and not among):
            return {}
        names = None if among is None else sorted(set(among))
        return self._run(self._discover(frozenset(task_arns), names), within)

    def room_names(self, within: float | None = None) -> list[str]:
        """The name of every room of the project: one ListRooms (LiveKit does not page it).
        https://docs.livekit.io/reference/server/server-apis/ (RoomService.ListRooms)"""
        return self._run(self._room_names(), within)

    def still_held(self, rooms: Mapping[str, str], within: float | None = None) -> dict[str, str]:
        """The subset of `rooms` whose agent (same task) is still in the room."""
        if not rooms:
            return {}
        return self._run(self._still_held(dict(rooms)), within)

    def callers_still_in(self, rooms: Mapping[str, str]) -> dict[str, str]:
        """The subset of `rooms` that still exist with a caller (a participant who is no agent,
        egress or ingress).

        When a worker dies its agent drops out of the room at once, but the caller stays on the
        line until they give up: these are the calls the stop dropped.
        """
        if not rooms:
            return {}
        return self._run(self._callers_still_in(dict(rooms)))

    def _run(self, coro: Awaitable[T], within: float | None = None) -> T:
        if within is not None and within <= 0:
            if isinstance(coro, Coroutine):
                coro.close()  # never started: closed, not left for the collector to warn about
            raise LiveKitProbeError("no time left to ask LiveKit", down=False)
        try:
            return asyncio.run(_within(coro, within))
        except TimeoutError as exc:
            if within is not None:
                raise LiveKitProbeError(f"LiveKit look ran out of time ({within:.1f} s)", down=False) from exc
            raise LiveKitProbeError(f"LiveKit unreachable: {type(exc).__name__}: {exc}") from exc
        except LiveKitProbeError:
            raise
        except _api().TwirpError as exc:
            throttled = exc.code == _api().TwirpErrorCode.RESOURCE_EXHAUSTED
            raise LiveKitProbeError(
                f"LiveKit answered {exc.status} {exc.code}: {exc.message}", down=not throttled
            ) from exc
        except (_aiohttp().ClientError, OSError) as exc:
            raise LiveKitProbeError(f"LiveKit unreachable: {type(exc).__name__}: {exc}") from exc

    def _client(self) -> LiveKitAPI:
        creds = self._credentials()
        api = _api()
        client: LiveKitAPI = api.LiveKitAPI(
            url=self._url,
            api_key=creds.api_key,
            api_secret=creds.api_secret,
            timeout=_aiohttp().ClientTimeout(total=self._timeout),
            # A failed look is retried by the next tick; LiveKit Cloud region failover would
            # only stretch one look past the Lambda's budget.
            failover=False,
        )
        return client

    async def _bounded(self, call: Awaitable[T]) -> T:
        # livekit-api passes timeout=None on each request, which aiohttp reads as "no timeout":
        # the session's ClientTimeout alone would let a hung LiveKit hold the Lambda to its end.
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except TimeoutError as exc:  # this call's own bound, not the look's (that one cancels)
            raise LiveKitProbeError(f"LiveKit did not answer within {self._timeout:.1f} s") from exc

    async def _room_names(self) -> list[str]:
        async with self._client() as lk:
            rooms = await self._bounded(lk.room.list_rooms(_api().ListRoomsRequest()))
        return sorted(room.name for room in rooms.rooms)

    async def _discover(self, task_arns: frozenset[str], names: list[str] | None) -> dict[str, str]:
        async with self._client() as lk:
            if names is None:
                rooms = await self._bounded(lk.room.list_rooms(_api().ListRoomsRequest()))
                names = [room.name for room in rooms.rooms]
            present = await self._participants_of(lk, names)
        held = {
            room: next((arn for arn in map(_agent_task, people) if arn in task_arns), None)
            for room, people in present.items()
        }
        return {room: arn for room, arn in held.items() if arn is not None}

    async def _still_held(self, rooms: dict[str, str]) -> dict[str, str]:
        async with self._client() as lk:
            present = await self._participants_of(lk, await self._existing(lk, rooms))
        # A room only counts for the task that held it when it was discovered.
        return {
            room: rooms[room]
            for room, people in present.items()
            if any(_agent_task(p) == rooms[room] for p in people)
        }

    async def _callers_still_in(self, rooms: dict[str, str]) -> dict[str, str]:
        async with self._client() as lk:
            present = await self._participants_of(lk, await self._existing(lk, rooms))
        # A caller attended by another task's agent is no dropped call: a rescue carried it on.
        return {
            room: rooms[room]
            for room, people in present.items()
            if any(p.kind not in _not_callers() for p in people)
            and not any(_agent_task(p) not in (None, rooms[room]) for p in people)
        }

    async def _existing(self, lk: LiveKitAPI, rooms: Mapping[str, str]) -> list[str]:
        """The names among `rooms` that LiveKit still has (ListRooms drops the ended ones)."""
        answer = await self._bounded(lk.room.list_rooms(_api().ListRoomsRequest(names=sorted(rooms))))
        return [room.name for room in answer.rooms]

    async def _participants_of(self, lk: LiveKitAPI, names: list[str]) -> dict[str, list[ParticipantInfo]]:
        """Each room's participants, asked in parallel (bounded); a room that ended is left out."""
        gate = asyncio.Semaphore(_CONCURRENCY)
        api = _api()

        async def participants(room: str) -> tuple[str, list[ParticipantInfo] | None]:
            async with gate:
                try:
                    resp = await self._bounded(
                        lk.room.list_participants(api.ListParticipantsRequest(room=room))
                    )
                except api.TwirpError as exc:
                    if exc.code == api.TwirpErrorCode.NOT_FOUND:
                        return room, None  # the room ended between the two calls
                    raise
            return room, list(resp.participants)

        results = await asyncio.gather(*(participants(name) for name in names))
        return {room: people for room, people in results if people is not None}


@dataclass(frozen=True, slots=True)
class RoomAgent:
    """An agent participant of a room, as a rescue's look sees it."""

    identity: str
    task_arn: str
    joined_at: float
    checkpoint: str


class LiveKitRescues(LiveKitSessions):
    """A rescue's calls to LiveKit: AgentDispatchService (CreateDispatch, ListDispatch,
    DeleteDispatch, each needing `roomAdmin` on the room: livekit-api mints that grant), and the
    room's agents (RoomService ListParticipants).
    https://docs.livekit.io/agents/server/agent-dispatch/#explicit-agent-dispatch"""

    def create_dispatch(self, room: str, agent_name: str, metadata: str) -> str:
        """A new agent job in `room`: LiveKit answers at once with the dispatch's id and gives
        its job to an available worker of `agent_name` in the background."""

        async def create() -> str:
            async with self._client() as lk:
                made = await self._bounded(
                    lk.agent_dispatch.create_dispatch(
                        _api().CreateAgentDispatchRequest(room=room, agent_name=agent_name, metadata=metadata)
                    )
                )
            return made.id

        try:
            return self._run(create())
        except LiveKitProbeError as exc:
            raise RescueDispatchError(str(exc)) from exc

    def dispatch_jobs(self, room: str, dispatch_id: str) -> int | None:
        """How many jobs LiveKit started for the dispatch; None when it is gone."""

        async def jobs() -> int | None:
            async with self._client() as lk:
                found = await self._bounded(lk.agent_dispatch.get_dispatch(dispatch_id, room))
            return None if found is None else len(found.state.jobs)

        return self._run(jobs())

    def delete_dispatch(self, room: str, dispatch_id: str) -> None:
        """Withdraw a dispatch no worker took (a room that ended has none left: not an error)."""

        async def delete() -> None:
            async with self._client() as lk:
                try:
                    await self._bounded(lk.agent_dispatch.delete_dispatch(dispatch_id, room))
                except _api().TwirpError as exc:
                    if exc.code != _api().TwirpErrorCode.NOT_FOUND:
                        raise

        self._run(delete())

    def agents_in(self, room: str) -> list[RoomAgent]:
        """The agent participants of `room`, with the task each is tagged with."""

        async def agents() -> list[RoomAgent]:
            from livekit.protocol.models import ParticipantInfo

            async with self._client() as lk:
                people = (await self._participants_of(lk, [room])).get(room, [])
            return [
                RoomAgent(
                    identity=p.identity,
                    task_arn=_agent_task(p) or "",
                    joined_at=(p.joined_at_ms / 1000) if p.joined_at_ms else float(p.joined_at),
                    checkpoint=p.attributes.get(CHECKPOINT_ATTRIBUTE, ""),
                )
                for p in people
                if p.kind == ParticipantInfo.Kind.AGENT
            ]

        return self._run(agents())


async def _within(coro: Awaitable[T], seconds: float | None) -> T:
    if seconds is None:
        return await coro
    async with asyncio.timeout(seconds):
        return await coro


def _agent_task(participant: ParticipantInfo) -> str | None:
    """The task ARN an AGENT participant is tagged with, if any."""
    from livekit.protocol.models import ParticipantInfo

    if participant.kind != ParticipantInfo.Kind.AGENT:
        return None
    return participant.attributes.get(SESSION_TAG_ATTRIBUTE) or None
