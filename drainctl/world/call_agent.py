"""The agent the local world's real worker runs: a "call" that needs no media.

``LIVEKIT_AGENT_ENTRYPOINT=drainctl.world.call_agent:entrypoint``. The job's metadata (set by
the dispatch) says how the call goes, as JSON:

- ``call_seconds``: the caller hangs up after this long (the job ends itself, as an agent does
  when its caller leaves); absent, the call lives until its room ends or the worker ends it.
- ``shutdown_seconds``: how long the job takes to close once asked to (a goodbye, a recording
  flushed); absent, it closes at once, as an `AgentSession` does.

Like a real agent, the entrypoint returns at once and the call goes on in the background, so a
shutdown request from the worker (its drain timed out, the room ended) is served promptly.
It never connects to the room: the local agent server puts the agent's participant there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from livekit.agents import JobContext

logger = logging.getLogger(__name__)

ENTRYPOINT = "drainctl.world.call_agent:entrypoint"

# Tasks of running calls: the loop holds tasks only weakly.
_calls: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class CallPlan:
    call_seconds: float | None = None
    shutdown_seconds: float | None = None

    def metadata(self) -> str:
        plan: dict[str, float] = {}
        if self.call_seconds is not None:
            plan["call_seconds"] = self.call_seconds
        if self.shutdown_seconds is not None:
            plan["shutdown_seconds"] = self.shutdown_seconds
        return json.dumps(plan)

    @classmethod
    def from_metadata(cls, metadata: str) -> CallPlan:
        try:
            plan: Any = json.loads(metadata or "{}")
        except ValueError:
            plan = {}
        if not isinstance(plan, dict):
            plan = {}
        return cls(_seconds(plan.get("call_seconds")), _seconds(plan.get("shutdown_seconds")))


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
    if plan.call_seconds is not None:
        task = asyncio.get_running_loop().create_task(_hang_up_after(ctx, plan.call_seconds))
        _calls.add(task)
        task.add_done_callback(_calls.discard)


async def _hang_up_after(ctx: JobContext, seconds: float) -> None:
    await asyncio.sleep(seconds)
    logger.info("caller hung up", extra={"job_id": ctx.job.id})
    ctx.shutdown(reason="caller hung up")
