from __future__ import annotations

import asyncio
import pickle
from dataclasses import dataclass, field

from livekit.agents import JobRequest
from livekit.agents.job import JobAcceptArguments
from livekit.protocol import agent, models

from livekit_drain_worker import SESSION_TAG_ATTRIBUTE
from livekit_drain_worker.tagging import (
    TaggedEntrypoint,
    TaggingRequestHandler,
    ensure_session_tag,
    session_attributes,
)
from livekit_drain_worker.testing import EXAMPLE_TASK_ARN


@dataclass
class FakeParticipant:
    attributes: dict[str, str] = field(default_factory=dict)
    updates: list[dict[str, str]] = field(default_factory=list)

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.updates.append(dict(attributes))
        self.attributes.update(attributes)


@dataclass
class FakeRoom:
    local_participant: FakeParticipant
    connected: bool = True

    def isconnected(self) -> bool:
        return self.connected


@dataclass
class FakeJobContext:
    room: FakeRoom


def job_request(accepted: list[JobAcceptArguments], metadata: str = "") -> JobRequest:
    """livekit-agents' own JobRequest, answering into `accepted` as the worker would."""

    async def on_accept(arguments: JobAcceptArguments) -> None:
        accepted.append(arguments)

    async def on_reject(terminate: bool) -> None:
        raise AssertionError("the job was rejected")

    job = agent.Job(id="AJ_3f9Qx2", room=models.Room(sid="RM_7hT2", name="call-42"), metadata=metadata)
    return JobRequest(job=job, on_reject=on_reject, on_accept=on_accept)


def test_session_tag_attribute_is_the_coordinator_contract() -> None:
    # GIVEN the attribute the drain coordinator looks for
    # WHEN the worker builds its session attributes
    attributes = session_attributes(EXAMPLE_TASK_ARN)

    # THEN they are exactly the task ARN under ecs.task_arn
    assert SESSION_TAG_ATTRIBUTE == "ecs.task_arn"
    assert attributes == {"ecs.task_arn": EXAMPLE_TASK_ARN}


def test_accepted_job_is_tagged_with_the_task_arn_at_join() -> None:
    # GIVEN a job request as livekit-agents hands it to the worker
    accepted: list[JobAcceptArguments] = []
    request = job_request(accepted)

    # WHEN the worker's request handler answers it
    asyncio.run(TaggingRequestHandler(EXAMPLE_TASK_ARN)(request))

    # THEN the job is accepted with exactly the session tag as participant attributes
    assert len(accepted) == 1
    assert accepted[0].attributes == {"ecs.task_arn": EXAMPLE_TASK_ARN}
    assert accepted[0].identity == "agent-AJ_3f9Qx2"


async def _rescue_of(metadata: str) -> dict[str, str]:
    return {"lk.drain.rescue_of": metadata} if metadata else {}


def test_a_job_joins_with_the_attributes_its_metadata_calls_for_beside_the_tag() -> None:
    # GIVEN a handler that adds attributes from a job's metadata (a rescue job's, in the worker)
    accepted: list[JobAcceptArguments] = []
    handler = TaggingRequestHandler(EXAMPLE_TASK_ARN, _rescue_of)
    # WHEN it answers a job with metadata, and one without
    asyncio.run(handler(job_request(accepted, metadata="old-task")))
    asyncio.run(handler(job_request(accepted)))
    # THEN the first joins with them and the tag, the second with the tag alone
    assert [a.attributes for a in accepted] == [
        {"ecs.task_arn": EXAMPLE_TASK_ARN, "lk.drain.rescue_of": "old-task"},
        {"ecs.task_arn": EXAMPLE_TASK_ARN},
    ]
    # AND the handler still pickles (livekit-agents sends the worker options to job processes)
    assert pickle.loads(pickle.dumps(handler)).join_attributes is _rescue_of  # noqa: S301 - our own object


def test_job_accepted_off_ecs_carries_no_tag() -> None:
    # GIVEN a worker run locally, without a task ARN
    accepted: list[JobAcceptArguments] = []
    request = job_request(accepted)

    # WHEN it answers a job request
    asyncio.run(TaggingRequestHandler(None)(request))

    # THEN the job is accepted without attributes
    assert len(accepted) == 1
    assert accepted[0].attributes is None


def test_untagged_participant_is_tagged_after_connect() -> None:
    # GIVEN an agent participant that joined without the tag (an older LiveKit server)
    participant = FakeParticipant(attributes={"lk.agent.name": ""})

    # WHEN the worker checks the tag
    changed = asyncio.run(ensure_session_tag(participant, EXAMPLE_TASK_ARN))

    # THEN it sets exactly the session tag
    assert changed is True
    assert participant.updates == [{"ecs.task_arn": EXAMPLE_TASK_ARN}]


def test_tagged_participant_is_left_alone() -> None:
    # GIVEN an agent participant that joined tagged
    participant = FakeParticipant(attributes={"ecs.task_arn": EXAMPLE_TASK_ARN})

    # WHEN the worker checks the tag
    changed = asyncio.run(ensure_session_tag(participant, EXAMPLE_TASK_ARN))

    # THEN nothing is sent
    assert changed is False
    assert participant.updates == []


def test_tagged_entrypoint_runs_the_agent_and_checks_the_tag_once_connected() -> None:
    # GIVEN the agent's entrypoint, wrapped, and a room the agent connects to
    ran: list[FakeJobContext] = []

    async def agent_entrypoint(ctx: FakeJobContext) -> None:
        ctx.room.connected = True
        ran.append(ctx)

    participant = FakeParticipant()
    ctx = FakeJobContext(room=FakeRoom(local_participant=participant, connected=False))
    wrapped = TaggedEntrypoint(agent_entrypoint, EXAMPLE_TASK_ARN, poll_seconds=0)

    # WHEN a job runs it, until the tag check is done
    async def run_job() -> None:
        await wrapped(ctx)
        await asyncio.gather(*wrapped._checks)

    asyncio.run(run_job())

    # THEN the agent ran and the participant holds the tag
    assert ran == [ctx]
    assert participant.attributes == {"ecs.task_arn": EXAMPLE_TASK_ARN}


def test_tagged_entrypoint_survives_pickling_for_job_processes() -> None:
    # GIVEN the wrapped example entrypoint, as handed to livekit-agents' job processes
    from livekit_drain_worker.example_agent import entrypoint

    wrapped = TaggedEntrypoint(entrypoint, EXAMPLE_TASK_ARN)

    # WHEN it is pickled and unpickled
    copy = pickle.loads(pickle.dumps(wrapped))  # noqa: S301 - our own object

    # THEN it still wraps the same entrypoint for the same task
    assert copy.entrypoint is entrypoint
    assert copy.task_arn == EXAMPLE_TASK_ARN
