"""Call rescue, the agent's side: checkpoint the conversation at every turn; carry a call on from
its checkpoint when the drain coordinator dispatches a rescue job into its room; leave a call
once the agent that took it over has joined.

Opt an agent in with a few lines in its entrypoint::

    from livekit_drain_worker.rescue import CallRescue

    async def entrypoint(ctx: JobContext) -> None:
        rescue = CallRescue.from_job(ctx)            # a rescue job? its checkpoint, loaded
        await ctx.connect()
        session = AgentSession(...)
        await session.start(agent=MyAgent(chat_ctx=rescue.chat_ctx()), room=ctx.room)
        await rescue.follow(session, state=lambda: {"order": my_order})
        if rescue.resumed:
            await session.say("Sorry about that, I'm still here. Where were we?")

`from_job` reads the job's dispatch metadata (the coordinator's `livekit_drain_rescue` key names
the checkpoint) and the checkpoint table (`LIVEKIT_DRAIN_CHECKPOINT_TABLE`, the stack's
`CheckpointTable`); `rescue.state` is the state the old agent registered. `follow` saves the
call's history (the history the job was handed, then livekit-agents' `AgentSession.history`,
which starts empty whatever the agent's chat context holds) and `state()` after every
conversation item, marks the participant (`lk.drain.rescue_of`, `lk.drain.checkpoint`: the
packaged worker already gives both when it accepts a rescue job, `rescue_join_attributes`),
and ends this job when another agent joins the room as this one's rescue (never before).

What a handover loses: the sentence being spoken when the old agent leaves, a tool call in
flight (its result never reaches the history), audio and images (left out of checkpoints).
Without a checkpoint table the agent runs as before: nothing is saved, a rescue starts afresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from livekit_drain_worker.checkpoints import (
    DEFAULT_TTL_HOURS,
    Checkpoint,
    CheckpointError,
    CheckpointStore,
)
from livekit_drain_worker.tagging import SESSION_TAG_ATTRIBUTE

CHECKPOINT_TABLE_ENV = "LIVEKIT_DRAIN_CHECKPOINT_TABLE"
CHECKPOINT_TTL_HOURS_ENV = "LIVEKIT_DRAIN_CHECKPOINT_TTL_HOURS"
# The coordinator's dispatch metadata (functions/drain_coordinator/services/rescue.py).
RESCUE_METADATA_KEY = "livekit_drain_rescue"
# The attributes of a rescue job's agent: the task it took the call from; whether it found the
# call's checkpoint ("loaded" or "none"), which the coordinator counts (`no_state`).
RESCUE_OF_ATTRIBUTE = "lk.drain.rescue_of"
CHECKPOINT_ATTRIBUTE = "lk.drain.checkpoint"
CHECKPOINT_LOADED = "loaded"
CHECKPOINT_NONE = "none"
AGENT_KIND = 4  # livekit.rtc ParticipantKind.PARTICIPANT_KIND_AGENT

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RescueRequest:
    checkpoint: str  # the checkpoint's key: the call's room
    from_task: str


def rescue_request(metadata: str) -> RescueRequest | None:
    """The rescue named by a job's dispatch metadata; None for any other job."""
    try:
        data = json.loads(metadata) if metadata else None
    except ValueError:
        return None
    found = data.get(RESCUE_METADATA_KEY) if isinstance(data, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("checkpoint"), str):
        return None
    return RescueRequest(found["checkpoint"], str(found.get("from_task", "")))


def store_from_env(environ: Mapping[str, str] | None = None) -> CheckpointStore | None:
    """The checkpoint table the stack created; None when the stack has no call rescue."""
    env = os.environ if environ is None else environ
    name = env.get(CHECKPOINT_TABLE_ENV, "")
    if not name:
        return None
    import boto3

    ttl = int(env.get(CHECKPOINT_TTL_HOURS_ENV) or DEFAULT_TTL_HOURS)
    return CheckpointStore(boto3.resource("dynamodb").Table(name), ttl_hours=ttl)


async def rescue_join_attributes(metadata: str) -> dict[str, str]:
    """The attributes a rescue job's agent joins with (the worker's ``request_fnc`` gives them
    when it accepts the job, so they are in the agent's join token): the task it takes the call
    from, and whether the call's checkpoint is there ("loaded") or not ("none"). The coordinator
    counts a rescue once the new agent is in the room: set only after the agent has connected,
    these would arrive after it looked, and a call carried on with its history would be counted
    `no_state`. {} for any other job."""
    request = rescue_request(metadata)
    if request is None:
        return {}
    found = False
    try:
        store = store_from_env()
        if store is not None:
            found = await asyncio.to_thread(store.load, request.checkpoint) is not None
    except CheckpointError as error:
        logger.warning("rescue job: checkpoint not readable on accept", extra={"error": str(error)})
    return {
        RESCUE_OF_ATTRIBUTE: request.from_task,
        CHECKPOINT_ATTRIBUTE: CHECKPOINT_LOADED if found else CHECKPOINT_NONE,
    }


# -- what this module needs of livekit-agents, as protocols -----------------------------------


class _Job(Protocol):
    @property
    def metadata(self) -> str: ...


class _Participant(Protocol):
    @property
    def attributes(self) -> dict[str, str]: ...


class _LocalParticipant(_Participant, Protocol):
    async def set_attributes(self, attributes: dict[str, str]) -> None: ...


class _Room(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def local_participant(self) -> _LocalParticipant: ...

    def on(self, event: str, callback: Callable[..., None]) -> Any: ...


class _JobContext(Protocol):
    @property
    def job(self) -> _Job: ...

    @property
    def room(self) -> _Room: ...

    def shutdown(self, reason: str = "") -> None: ...


class _History(Protocol):
    def to_dict(self, **kwargs: Any) -> dict[str, Any]: ...


class _Session(Protocol):
    @property
    def history(self) -> _History: ...

    def on(self, event: str, callback: Callable[..., None]) -> Any: ...


@dataclass
class CallRescue:
    """One job's part in call rescue (see the module's docstring)."""

    ctx: _JobContext
    store: CheckpointStore | None
    request: RescueRequest | None = None
    checkpoint: Checkpoint | None = None
    _turn: int = 0
    _saving: set[asyncio.Task[None]] = field(default_factory=set)
    _state: Callable[[], dict[str, Any]] = dict

    @classmethod
    def from_job(cls, ctx: _JobContext, store: CheckpointStore | None = None) -> CallRescue:
        """Read the job's dispatch metadata and, for a rescue job, load its checkpoint."""
        chosen = store if store is not None else store_from_env()
        request = rescue_request(ctx.job.metadata)
        checkpoint = None
        if request is not None and chosen is not None:
            try:
                checkpoint = chosen.load(request.checkpoint)
            except CheckpointError as error:
                logger.error(
                    "rescue job: checkpoint unreadable, starting afresh", extra={"error": str(error)}
                )
        if request is not None:
            logger.info(
                "rescue job: carrying a call on",
                extra={"from_task": request.from_task, "checkpoint": checkpoint is not None},
            )
        rescue = cls(ctx, chosen, request, checkpoint)
        rescue._turn = checkpoint.turn if checkpoint is not None else 0
        return rescue

    @property
    def resumed(self) -> bool:
        """This job carries on a call another agent held."""
        return self.request is not None

    @property
    def state(self) -> dict[str, Any]:
        """The state the old agent registered ({} for a new call, or without its checkpoint)."""
        return dict(self.checkpoint.state) if self.checkpoint is not None else {}

    def history(self) -> dict[str, Any]:
        """The saved history as ChatContext.to_dict() gave it ({} when there is none)."""
        return dict(self.checkpoint.history) if self.checkpoint is not None else {}

    def chat_ctx(self) -> Any:
        """The conversation to start the agent with: the saved one, or an empty ChatContext."""
        from livekit.agents import llm

        saved = self.history()
        return llm.ChatContext.from_dict(saved) if saved else llm.ChatContext.empty()

    async def follow(self, session: _Session, state: Callable[[], dict[str, Any]] | None = None) -> None:
        """Checkpoint `session` at every conversation item; leave when this call's rescue joins.
        Call once the session has started (the room connected)."""
        if state is not None:
            self._state = state
        room = self.ctx.room
        me = room.local_participant
        if self.resumed:
            await me.set_attributes(
                {
                    RESCUE_OF_ATTRIBUTE: self.request.from_task if self.request else "",
                    CHECKPOINT_ATTRIBUTE: CHECKPOINT_LOADED
                    if self.checkpoint is not None
                    else CHECKPOINT_NONE,
                }
            )
        session.on("conversation_item_added", lambda _event: self._save_soon(session))

        def maybe_replaced(participant: Any, *_: Any) -> None:
            own = me.attributes.get(SESSION_TAG_ATTRIBUTE, "")
            if replaced_by(participant, own):
                logger.info("call rescued by another agent: leaving the room")
                self.ctx.shutdown(reason="call rescued by another worker")

        room.on("participant_connected", maybe_replaced)
        room.on("participant_attributes_changed", lambda _changed, participant: maybe_replaced(participant))

    def _save_soon(self, session: _Session) -> None:
        if self.store is None:
            return
        self._turn += 1
        checkpoint = Checkpoint(
            room=self.ctx.room.name,
            turn=self._turn,
            history=self._whole_history(session),
            state=self._state(),
            from_task=self.ctx.room.local_participant.attributes.get(SESSION_TAG_ATTRIBUTE, ""),
        )
        task = asyncio.get_running_loop().create_task(self._save(checkpoint))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    def _whole_history(self, session: _Session) -> dict[str, Any]:
        """The call's whole conversation: what this job was handed, then this session's items.
        An `AgentSession`'s history starts empty whatever its agent's chat context holds, so a
        rescue job that saved only its session would leave the earlier turns out of every later
        checkpoint (and a second rescue would start without them)."""
        current = session.history.to_dict(exclude_image=True, exclude_audio=True)
        handed = list(self.history().get("items", []))
        if not handed:
            return current
        known = {item.get("id") for item in handed if isinstance(item, dict) and item.get("id")}
        fresh = [
            item
            for item in current.get("items", [])
            if not (isinstance(item, dict) and item.get("id") and item.get("id") in known)
        ]
        return {**current, "items": handed + fresh}

    async def _save(self, checkpoint: Checkpoint) -> None:
        store = self.store
        assert store is not None
        try:
            await asyncio.to_thread(store.save, checkpoint)
        except CheckpointError as error:
            # The call goes on; a rescue would start from the last checkpoint saved.
            logger.warning("checkpoint not saved", extra={"turn": checkpoint.turn, "error": str(error)})

    async def flush(self) -> None:
        """Wait for the checkpoints being saved."""
        if self._saving:
            await asyncio.gather(*list(self._saving))


def replaced_by(participant: Any, own_task: str) -> bool:
    """`participant` is an agent that joined as the rescue of this task's call."""
    attributes = getattr(participant, "attributes", {}) or {}
    return (
        bool(own_task)
        and attributes.get(RESCUE_OF_ATTRIBUTE) == own_task
        and (getattr(participant, "kind", AGENT_KIND) == AGENT_KIND)
    )
