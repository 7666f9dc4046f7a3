"""Session tagging: the contract between this worker and the drain coordinator.

Every agent participant this worker puts in a room carries the attribute
``ecs.task_arn`` = this task's ARN. The coordinator counts the rooms that hold an AGENT
participant tagged with the ARN of a task it is draining.

The tag is given when the job is accepted (`JobRequest.accept(attributes=...)`): livekit-agents
sends it in its availability answer and the server puts it in the agent's join token, so the
participant is tagged from the moment it joins. `TaggedEntrypoint` checks it again once the room
is connected and sets it if the server dropped it (servers older than participant attributes
in the availability answer do).

No livekit import here: the classes are typed against small protocols that livekit-agents'
`JobRequest` and `JobContext` satisfy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

SESSION_TAG_ATTRIBUTE = "ecs.task_arn"

logger = logging.getLogger(__name__)


class JobInfo(Protocol):
    @property
    def metadata(self) -> str: ...


# More attributes for a job, from its dispatch metadata (a rescue job's: livekit_drain_worker.rescue).
JoinAttributes = Callable[[str], Awaitable[dict[str, str]]]


class AcceptableJob(Protocol):
    """What the worker needs of livekit-agents' `JobRequest`."""

    @property
    def job(self) -> JobInfo: ...

    @property
    def id(self) -> str: ...

    async def accept(self, *, attributes: dict[str, str] | None = None) -> None: ...


class TaggableParticipant(Protocol):
    @property
    def attributes(self) -> dict[str, str]: ...

    async def set_attributes(self, attributes: dict[str, str]) -> None: ...


class ConnectableRoom(Protocol):
    def isconnected(self) -> bool: ...

    @property
    def local_participant(self) -> TaggableParticipant: ...


class SessionContext(Protocol):
    """What the worker needs of livekit-agents' `JobContext`."""

    @property
    def room(self) -> ConnectableRoom: ...


def session_attributes(task_arn: str | None) -> dict[str, str]:
    """The attributes that tag an agent participant as held by this task; empty off ECS."""
    return {SESSION_TAG_ATTRIBUTE: task_arn} if task_arn else {}


class TaggingRequestHandler:
    """A livekit-agents ``request_fnc``: accept every job, tagged with this task's ARN.

    A class rather than a closure so that livekit-agents can pickle it with the worker options.
    """

    def __init__(self, task_arn: str | None, join_attributes: JoinAttributes | None = None) -> None:
        self.task_arn = task_arn
        # A module-level function, so that the handler still pickles.
        self.join_attributes = join_attributes

    async def __call__(self, request: AcceptableJob) -> None:
        attributes = session_attributes(self.task_arn)
        if self.join_attributes is not None:
            attributes.update(await self.join_attributes(request.job.metadata))
        await request.accept(attributes=attributes or None)
        logger.info(
            "job accepted",
            extra={"job_id": request.id, "tagged": bool(attributes), "task_arn": self.task_arn},
        )


async def ensure_session_tag(participant: TaggableParticipant, task_arn: str | None) -> bool:
    """Set the tag on `participant` unless it already holds it; True when it had to be set."""
    wanted = session_attributes(task_arn)
    if not wanted or participant.attributes.get(SESSION_TAG_ATTRIBUTE) == task_arn:
        return False
    await participant.set_attributes(wanted)
    logger.warning(
        "agent participant joined untagged: tag set after connect",
        extra={"attribute": SESSION_TAG_ATTRIBUTE, "task_arn": task_arn},
    )
    return True


ContextT = TypeVar("ContextT", bound=SessionContext)


class TaggedEntrypoint(Generic[ContextT]):
    """Wrap the agent's entrypoint so the session is checked for its tag once connected.

    The agent's own code decides when to connect (and with which options), so the check waits
    for the room to be connected, polling, for at most `connect_wait_seconds`.
    """

    def __init__(
        self,
        entrypoint: Callable[[ContextT], Awaitable[None]],
        task_arn: str | None,
        *,
        poll_seconds: float = 0.25,
        connect_wait_seconds: float = 120.0,
    ) -> None:
        self.entrypoint = entrypoint
        self.task_arn = task_arn
        self.poll_seconds = poll_seconds
        self.connect_wait_seconds = connect_wait_seconds
        self._checks: set[asyncio.Task[None]] = set()

    def __getstate__(self) -> dict[str, object]:
        # Tasks of a running loop cannot be pickled; a new job process starts with none.
        state = dict(self.__dict__)
        state["_checks"] = set()
        return state

    async def __call__(self, ctx: ContextT) -> None:
        if self.task_arn:
            check = asyncio.create_task(self._check_tag_once_connected(ctx.room))
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)
        await self.entrypoint(ctx)

    async def _check_tag_once_connected(self, room: ConnectableRoom) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_wait_seconds
        while not room.isconnected():
            if loop.time() >= deadline:
                logger.warning(
                    "room not connected in time: session tag not checked",
                    extra={"wait_seconds": self.connect_wait_seconds},
                )
                return
            await asyncio.sleep(self.poll_seconds)
        try:
            await ensure_session_tag(room.local_participant, self.task_arn)
        except Exception as error:
            # The call goes on; the coordinator may not see it, which the log must say.
            logger.error(
                "could not tag the agent participant",
                extra={"task_arn": self.task_arn, "error": repr(error)},
            )
