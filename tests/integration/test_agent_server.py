"""The local agent server speaks LiveKit's worker protocol: a bare protobuf client over aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from livekit import api
from livekit.protocol import agent

from drainctl.world.agent_server import LocalAgentServer, NoWorkerAvailableError
from drainctl.world.livekit_server import LocalLiveKit

TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/0123456789abcdef0123456789abcdef"


@pytest.fixture
def livekit() -> Iterator[LocalLiveKit]:
    with LocalLiveKit(delete_room_when_empty=False) as server:
        yield server


@pytest.fixture
def agent_server(livekit: LocalLiveKit) -> Iterator[LocalAgentServer]:
    with LocalAgentServer(livekit) as server:
        yield server


def worker_token(livekit: LocalLiveKit, *, agent_grant: bool = True) -> str:
    return (
        api.AccessToken(livekit.api_key, livekit.api_secret)
        .with_grants(api.VideoGrants(agent=agent_grant))
        .to_jwt()
    )


async def send(ws: aiohttp.ClientWebSocketResponse, message: agent.WorkerMessage) -> None:
    await ws.send_bytes(message.SerializeToString())


async def receive(ws: aiohttp.ClientWebSocketResponse) -> agent.ServerMessage:
    message = agent.ServerMessage()
    message.ParseFromString(await asyncio.wait_for(ws.receive_bytes(), 10))
    return message


async def register(
    session: aiohttp.ClientSession, server: LocalAgentServer
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(
        server.url + "/agent", headers={"Authorization": f"Bearer {worker_token(server.livekit)}"}
    )
    await send(ws, agent.WorkerMessage(register=agent.RegisterWorkerRequest(type=agent.JT_ROOM, version="t")))
    answer = await receive(ws)
    assert answer.WhichOneof("message") == "register"
    return ws


def test_a_worker_token_without_the_agent_grant_is_refused_and_a_plain_get_is_not_found(
    agent_server: LocalAgentServer,
) -> None:
    async def scenario() -> tuple[int, int, int]:
        async with aiohttp.ClientSession() as session:
            # GIVEN a token for a room participant, not for an agent worker
            token = worker_token(agent_server.livekit, agent_grant=False)
            # WHEN it dials /agent, and a plain GET without an upgrade is sent
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(
                    agent_server.url + "/agent", headers={"Authorization": f"Bearer {token}"}
                )
            with pytest.raises(aiohttp.WSServerHandshakeError) as unsigned:
                await session.ws_connect(
                    agent_server.url + "/agent", headers={"Authorization": "Bearer x.y.z"}
                )
            async with session.get(agent_server.http_url + "/agent") as plain:
                return refused.value.status, unsigned.value.status, plain.status

    # THEN LiveKit's answers: 401 for both tokens, 404 for the GET
    assert asyncio.run(scenario()) == (401, 401, 404)


def test_a_dispatched_job_puts_an_agent_carrying_the_availability_attributes_in_the_room_until_it_ends(
    livekit: LocalLiveKit, agent_server: LocalAgentServer
) -> None:
    async def scenario() -> tuple[list[str], list[str], str]:
        async with aiohttp.ClientSession() as session:
            # GIVEN a registered worker that answers pings and accepts with the session tag
            ws = await register(session, agent_server)
            await send(ws, agent.WorkerMessage(ping=agent.WorkerPing(timestamp=42)))
            pong = await receive(ws)
            assert pong.pong.last_timestamp == 42

            # WHEN a job is dispatched to a room
            dispatched = asyncio.create_task(asyncio.to_thread(agent_server.dispatch, "call-1"))
            request = await receive(ws)
            job_id = request.availability.job.id
            await send(
                ws,
                agent.WorkerMessage(
                    availability=agent.AvailabilityResponse(
                        job_id=job_id,
                        available=True,
                        participant_identity="agent-1",
                        participant_attributes={"ecs.task_arn": TASK_ARN},
                    )
                ),
            )
            assignment = await receive(ws)
            await dispatched
            await send(
                ws,
                agent.WorkerMessage(update_job=agent.UpdateJobStatus(job_id=job_id, status=agent.JS_RUNNING)),
            )
            await asyncio.to_thread(agent_server.wait_for, lambda s: bool(livekit.rooms().get("call-1")), 5)
            during = [p.attributes.get("ecs.task_arn", "") for p in livekit.rooms()["call-1"]]
            await send(
                ws,
                agent.WorkerMessage(update_job=agent.UpdateJobStatus(job_id=job_id, status=agent.JS_SUCCESS)),
            )
            await asyncio.to_thread(agent_server.wait_for, lambda s: not livekit.rooms().get("call-1"), 5)
            after = [p.identity for p in livekit.rooms()["call-1"]]
            claims = api.TokenVerifier(livekit.api_key, livekit.api_secret).verify(
                assignment.assignment.token
            )
            await ws.close()
            return during, after, claims.attributes.get("ecs.task_arn", "")

    during, after, token_tag = asyncio.run(scenario())

    # THEN the agent was in the room tagged, its join token carried the tag, and it left
    assert during == [TASK_ARN]
    assert token_tag == TASK_ARN
    assert after == []


def test_a_full_worker_is_not_asked_and_a_refusal_moves_the_job_to_no_one(
    agent_server: LocalAgentServer,
) -> None:
    async def scenario() -> tuple[bool, bool]:
        async with aiohttp.ClientSession() as session:
            # GIVEN one worker that reports itself full
            ws = await register(session, agent_server)
            await send(
                ws,
                agent.WorkerMessage(update_worker=agent.UpdateWorkerStatus(status=agent.WS_FULL, load=1.0)),
            )
            await asyncio.to_thread(agent_server.wait_for, lambda s: s.workers()[0].status == "WS_FULL", 5)
            # WHEN a job is dispatched
            try:
                await asyncio.to_thread(agent_server.dispatch, "call-full")
                full_refused = False
            except NoWorkerAvailableError:
                full_refused = True
            # AND once it is available again but answers "not available"
            await send(
                ws, agent.WorkerMessage(update_worker=agent.UpdateWorkerStatus(status=agent.WS_AVAILABLE))
            )
            await asyncio.to_thread(
                agent_server.wait_for, lambda s: s.workers()[0].status == "WS_AVAILABLE", 5
            )
            dispatched = asyncio.create_task(asyncio.to_thread(agent_server.dispatch, "call-2"))
            request = await receive(ws)
            await send(
                ws,
                agent.WorkerMessage(
                    availability=agent.AvailabilityResponse(
                        job_id=request.availability.job.id, available=False
                    )
                ),
            )
            try:
                await dispatched
                refusal_refused = False
            except NoWorkerAvailableError:
                refusal_refused = True
            await ws.close()
            return full_refused, refusal_refused

    # THEN no job was assigned either time
    assert asyncio.run(scenario()) == (True, True)


def test_a_room_that_closes_terminates_its_jobs(
    livekit: LocalLiveKit, agent_server: LocalAgentServer
) -> None:
    async def scenario() -> str:
        async with aiohttp.ClientSession() as session:
            # GIVEN a job running in a room
            ws = await register(session, agent_server)
            dispatched = asyncio.create_task(asyncio.to_thread(agent_server.dispatch, "call-3"))
            request = await receive(ws)
            job_id = request.availability.job.id
            await send(
                ws,
                agent.WorkerMessage(
                    availability=agent.AvailabilityResponse(
                        job_id=job_id, available=True, participant_identity="a"
                    )
                ),
            )
            await receive(ws)
            await dispatched
            # WHEN the room is deleted
            await asyncio.to_thread(livekit.delete_room, "call-3")
            # THEN the worker is told to end the job
            termination = await receive(ws)
            await ws.close()
            return termination.termination.job_id if termination.HasField("termination") else ""

    job_id = asyncio.run(scenario())
    assert job_id
    assert [j.status for j in agent_server.jobs()] == ["JS_SUCCESS"]
