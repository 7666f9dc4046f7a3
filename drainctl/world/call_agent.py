"""The agent the local world's real worker runs: a "call" that needs no media.

``LIVEKIT_AGENT_ENTRYPOINT=drainctl.world.call_agent:entrypoint``. The job's metadata (set by
the dispatch) says how the call goes, as JSON:

- ``call_seconds``: the caller hangs up after this long (the job ends itself, as an agent does
  when its caller leaves); absent, the call lives until its room ends or the worker ends it.
- ``shutdown_seconds``: how long the job takes to close once asked to (a goodbye, a recording
  flushed); absent, it closes at once, as an `AgentSession` does.
- ``call_rescue``: the agent opts into call rescue (``livekit_drain_worker.rescue.CallRescue``)
  with a real livekit-agents `AgentSession` (no STT, LLM or TTS: no media here), holding
  ``conversation`` (``[[role, text], ...]``, played as the call's turns: the agent's lines
  through ``session.say``, the caller's as the transcripts an STT would add) and registering
  ``state``. A rescue job (the coordinator's dispatch metadata) always opts in: it loads the
  checkpoint, starts its agent with the saved conversation, says `RESUME_LINE`, and shows what
  it carried on with in its participant's attributes (`HISTORY_ATTRIBUTE`, `STATE_ATTRIBUTE`).
  Its room is `RoomServiceRoom` (drainctl/world/call_room.py), the local world having no
  WebRTC.

Like a real agent, the entrypoint returns at once and the call goes on in the background, so a
shutdown request from the worker (its drain timed out, the room ended) is served promptly.
It never connects to the room: the local agent server puts the agent's participant there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, cast

from livekit.agents import Agent, AgentSession, JobContext, llm

from drainctl.world.call_room import RoomServiceRoom

logger = logging.getLogger(__name__)

ENTRYPOINT = "drainctl.world.call_agent:entrypoint"
RESUME_LINE = "Sorry about that, I'm still here. Where were we?"
# What a rescue job's agent carried on with: its agent's chat context (the messages' "role:
# text"), and the state it was handed, as JSON.
HISTORY_ATTRIBUTE = "drainctl.world.history"
STATE_ATTRIBUTE = "drainctl.world.state"

# Tasks of running calls: the loop holds tasks only weakly.
_calls: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class CallPlan:
    call_seconds: float | None = None
    shutdown_seconds: float | None = None
    call_rescue: bool = False
    conversation: tuple[tuple[str, str], ...] = ()
    state: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> str:
        plan: dict[str, Any] = {}
        if self.call_seconds is not None:
            plan["call_seconds"] = self.call_seconds
        if self.shutdown_seconds is not None:
            plan["shutdown_seconds"] = self.shutdown_seconds
        if self.call_rescue:
            plan["call_rescue"] = True
            plan["conversation"] = [list(turn) for turn in self.conversation]
            plan["state"] = self.state
        return json.dumps(plan)

    @classmethod
    def from_metadata(cls, metadata: str) -> CallPlan:
        try:
            plan: Any = json.loads(metadata or "{}")
        except ValueError:
            plan = {}
        if not isinstance(plan, dict):
            plan = {}
        turns = plan.get("conversation")
        conversation = tuple(
            (str(turn[0]), str(turn[1]))
            for turn in (turns if isinstance(turns, list) else [])
            if isinstance(turn, list) and len(turn) == 2
        )
        state = plan.get("state")
        return cls(
            _seconds(plan.get("call_seconds")),
            _seconds(plan.get("shutdown_seconds")),
            call_rescue=plan.get("call_rescue") is True,
            conversation=conversation,
            state=dict(state) if isinstance(state, dict) else {},
        )


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def entrypoint(ctx: JobContext) -> None:
    plan = CallPlan.from_metadata(ctx.job.metadata)
    logger.info(
        "call started",
        extra={"job_id": ctx.job.id, "room": ctx.job.room.name, "call_seconds": plan.call_seconds},
    )
    if plan.shutdown_seconds is not None:
        linger = plan.shutdown_seconds

        async def close_slowly(reason: str) -> None:
            logger.info("call closing", extra={"reason": reason, "shutdown_seconds": linger})
            await asyncio.sleep(linger)

        ctx.add_shutdown_callback(close_slowly)
    # The worker's package is on the job process's path (the image's /app), not the project's.
    from livekit_drain_worker.rescue import rescue_request

    if plan.call_rescue or rescue_request(ctx.job.metadata) is not None:
        _background(_rescuable_call(ctx, plan))
    if plan.call_seconds is not None:
        _background(_hang_up_after(ctx, plan.call_seconds))


def _background(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _calls.add(task)
    task.add_done_callback(_calls.discard)


@dataclass
class _RescuableJob:
    """The job as CallRescue sees it: livekit-agents' JobContext, with the RoomService room."""

    ctx: JobContext
    room: RoomServiceRoom

    @property
    def job(self) -> Any:
        return self.ctx.job

    def shutdown(self, reason: str = "") -> None:
        self.ctx.shutdown(reason=reason)


async def _rescuable_call(ctx: JobContext, plan: CallPlan) -> None:
    from livekit_drain_worker.rescue import CallRescue

    room = RoomServiceRoom.from_env(ctx.job.room.name, ctx.local_participant_identity)
    job = _RescuableJob(ctx, room)
    rescue = await asyncio.to_thread(CallRescue.from_job, job)
    await room.start()
    session: AgentSession[Any] = AgentSession()

    async def close(_reason: str) -> None:
        await rescue.flush()
        await session.aclose()
        await room.aclose()

    ctx.add_shutdown_callback(close)
    agent = Agent(instructions="A call of the local world.", chat_ctx=rescue.chat_ctx())
    await session.start(agent=agent)
    state = rescue.state if rescue.resumed else dict(plan.state)
    # AgentSession.on takes only its own event names: wider than CallRescue's protocol says.
    await rescue.follow(cast(Any, session), state=lambda: state)
    if rescue.resumed:
        carried = [
            f"{item.role}: {item.text_content}" for item in agent.chat_ctx.items if item.type == "message"
        ]
        await room.local_participant.set_attributes(
            {HISTORY_ATTRIBUTE: json.dumps(carried), STATE_ATTRIBUTE: json.dumps(state, sort_keys=True)}
        )
        logger.info("call carried on", extra={"job_id": ctx.job.id, "messages": len(carried)})
        await session.say(RESUME_LINE).wait_for_playout()
        return
    for role, text in plan.conversation:
        if role == "assistant":
            await session.say(text).wait_for_playout()
        else:
            # What an STT would add at the end of the caller's turn (no media here).
            session._conversation_item_added(llm.ChatMessage(role="user", content=[text]))
    logger.info("conversation held", extra={"job_id": ctx.job.id, "turns": len(plan.conversation)})


async def _hang_up_after(ctx: JobContext, seconds: float) -> None:
    await asyncio.sleep(seconds)
    logger.info("caller hung up", extra={"job_id": ctx.job.id})
    ctx.shutdown(reason="caller hung up")
