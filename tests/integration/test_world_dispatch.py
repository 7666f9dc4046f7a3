"""The local LiveKit's AgentDispatchService, reached by the real livekit-api client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from livekit import api
from livekit.api.agent_dispatch_service import AgentDispatchService
from livekit.protocol import agent

from drainctl.world.livekit_server import DispatchRequest, LocalLiveKit

T = TypeVar("T")


@pytest.fixture
def livekit() -> Iterator[LocalLiveKit]:
    with LocalLiveKit() as server:
        yield server


def call_dispatch(
    livekit: LocalLiveKit, call: Callable[[AgentDispatchService], Awaitable[T]], token: str | None = None
) -> T:
    async def run() -> T:
        client = (
            api.LiveKitAPI.with_token(token, livekit.url)
            if token is not None
            else api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret)
        )
        async with client:
            return await call(client.agent_dispatch)

    return asyncio.run(run())


def create(room: str, metadata: str = "") -> Callable[[AgentDispatchService], Awaitable[api.AgentDispatch]]:
    return lambda d: d.create_dispatch(
        api.CreateAgentDispatchRequest(room=room, agent_name="voice", metadata=metadata)
    )


def test_create_dispatch_stores_it_and_hands_its_job_request_to_the_dispatcher(livekit: LocalLiveKit) -> None:
    # GIVEN a call's room and a dispatcher standing in for LiveKit's worker selection
    livekit.join("call-1", "caller-1", kind="SIP")
    asked: list[DispatchRequest] = []
    livekit.dispatcher = asked.append
    # WHEN a dispatch is created through livekit-api
    made = call_dispatch(livekit, create("call-1", '{"checkpoint": "call-1"}'))
    # THEN it answers at once with the dispatch, the dispatcher got its job request, ListDispatch shows it
    assert made.id.startswith("AD_") and made.room == "call-1" and made.agent_name == "voice"
    assert [(r.dispatch_id, r.room, r.metadata) for r in asked] == [
        (made.id, "call-1", '{"checkpoint": "call-1"}')
    ]
    listed = call_dispatch(livekit, lambda d: d.list_dispatch("call-1"))
    assert [d.id for d in listed] == [made.id]
    assert list(listed[0].state.jobs) == []  # no worker took it yet


def test_a_job_the_dispatcher_reports_shows_in_list_dispatch(livekit: LocalLiveKit) -> None:
    # GIVEN a dispatch whose job a worker took and runs
    livekit.join("call-1", "caller-1", kind="SIP")
    made = call_dispatch(livekit, create("call-1"))
    livekit.dispatch_job("call-1", made.id, job_id="AJ_1", worker_id="W1", status="JS_PENDING")
    livekit.dispatch_job(
        "call-1", made.id, job_id="AJ_1", worker_id="W1", status="JS_RUNNING", identity="agent-1"
    )
    # WHEN listed by id
    found = call_dispatch(livekit, lambda d: d.get_dispatch(made.id, "call-1"))
    # THEN its one job is running on that worker, as that participant
    assert found is not None
    (job,) = found.state.jobs
    assert (job.id, job.state.worker_id, job.state.participant_identity) == ("AJ_1", "W1", "agent-1")
    assert job.state.status == agent.JobStatus.JS_RUNNING


def test_delete_dispatch_removes_it_and_a_second_delete_is_not_found(livekit: LocalLiveKit) -> None:
    # GIVEN a dispatch
    livekit.join("call-1", "caller-1", kind="SIP")
    made = call_dispatch(livekit, create("call-1"))
    # WHEN it is deleted, twice
    deleted = call_dispatch(livekit, lambda d: d.delete_dispatch(made.id, "call-1"))
    with pytest.raises(api.TwirpError) as again:
        call_dispatch(livekit, lambda d: d.delete_dispatch(made.id, "call-1"))
    # THEN the first answers the dispatch, marked deleted; the room lists none; the second is not_found
    assert deleted.id == made.id and deleted.state.deleted_at > 0
    assert call_dispatch(livekit, lambda d: d.list_dispatch("call-1")) == []
    assert again.value.code == api.TwirpErrorCode.NOT_FOUND


@pytest.mark.parametrize(
    "grants",
    [
        api.VideoGrants(room_list=True),
        api.VideoGrants(room_admin=True, room="another-room"),
        api.VideoGrants(room_create=True),
    ],
    ids=["room_list", "admin_of_another_room", "room_create"],
)
def test_every_dispatch_method_needs_room_admin_for_the_dispatch_room(
    livekit: LocalLiveKit, grants: api.VideoGrants
) -> None:
    # GIVEN a token without room admin on call-1
    livekit.join("call-1", "caller-1", kind="SIP")
    asked: list[DispatchRequest] = []
    livekit.dispatcher = asked.append
    token = api.AccessToken(livekit.api_key, livekit.api_secret).with_grants(grants).to_jwt()
    calls: list[Callable[[AgentDispatchService], Awaitable[object]]] = [
        lambda d: d.create_dispatch(api.CreateAgentDispatchRequest(room="call-1", agent_name="voice")),
        lambda d: d.list_dispatch("call-1"),
        lambda d: d.delete_dispatch("AD_x", "call-1"),
    ]
    for call in calls:
        # WHEN each method is called with it
        with pytest.raises(api.TwirpError) as refused:
            call_dispatch(livekit, call, token=token)
        # THEN LiveKit refuses it as unauthenticated (permissions denied), and nothing is dispatched
        assert refused.value.code == api.TwirpErrorCode.UNAUTHENTICATED
    assert asked == []


def test_a_room_that_closes_takes_its_dispatches_with_it(livekit: LocalLiveKit) -> None:
    # GIVEN a dispatch in a room
    livekit.join("call-1", "caller-1", kind="SIP")
    call_dispatch(livekit, create("call-1"))
    # WHEN the caller leaves and the room closes
    livekit.leave("call-1", "caller-1")
    # THEN the room has no dispatch left
    assert livekit.dispatches("call-1") == []
    assert livekit.request_counts["CreateDispatch"] == 1
