"""The local world's LiveKit RoomService, reached over HTTP by the real livekit-api client."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from google.protobuf import json_format
from livekit import api
from livekit.api.room_service import RoomService
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.room import (
    CreateRoomRequest,
    DeleteRoomRequest,
    ListParticipantsRequest,
    ListRoomsRequest,
    RoomParticipantIdentity,
    UpdateParticipantRequest,
)

from drainctl.world.clock import VirtualClock
from drainctl.world.livekit_server import (
    AccessTokenRejectedError,
    LocalLiveKit,
    ParticipantNotFoundError,
    RoomNotFoundError,
    verify_access_token,
)

T = TypeVar("T")

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/voice/0f6c3a4e9b8d4c1f"


@pytest.fixture
def livekit() -> Iterator[LocalLiveKit]:
    with LocalLiveKit() as server:
        yield server


def call_room_service(
    livekit: LocalLiveKit,
    call: Callable[[RoomService], Awaitable[T]],
    *,
    api_key: str | None = None,
    api_secret: str | None = None,
    token: str | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> T:
    """One RoomService call through a fresh livekit-api client, as the coordinator makes it."""

    async def run() -> T:
        if token is not None:
            client = api.LiveKitAPI.with_token(token, livekit.url, timeout=timeout)
        else:
            client = api.LiveKitAPI(
                livekit.url,
                api_key or livekit.api_key,
                api_secret or livekit.api_secret,
                timeout=timeout,
            )
        async with client:
            return await call(client.room)

    return asyncio.run(run())


def mint_token(livekit: LocalLiveKit, grants: api.VideoGrants, **ttl: float) -> str:
    token = api.AccessToken(livekit.api_key, livekit.api_secret).with_grants(grants)
    if ttl:
        token = token.with_ttl(datetime.timedelta(**ttl))
    return token.to_jwt()


def post_raw(
    livekit: LocalLiveKit,
    path: str,
    body: bytes,
    headers: dict[str, str],
    method: str = "POST",
) -> tuple[int, str, bytes]:
    """Status, content type and body of one hand-made HTTP request."""
    # The URL is always the local server's http:// address.
    url = livekit.url + path
    request = urllib.request.Request(url, data=body or None, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def list_rooms_json_headers(livekit: LocalLiveKit) -> dict[str, str]:
    token = mint_token(livekit, api.VideoGrants(room_list=True))
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


# --- RoomService ---------------------------------------------------------------------------------


def test_list_rooms_reports_every_open_room_with_its_participant_count(
    livekit: LocalLiveKit,
) -> None:
    # GIVEN two calls in progress, one with an agent and a caller, one with an agent only
    livekit.join("call-1", "agent-a", kind="AGENT")
    livekit.join("call-1", "caller-1", kind="SIP")
    livekit.join("call-2", "agent-b", kind="AGENT")

    # WHEN the client lists rooms
    response = call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()))

    # THEN both rooms are listed with LiveKit-shaped sids and the right counts
    counts = {r.name: r.num_participants for r in response.rooms}
    assert counts == {"call-1": 2, "call-2": 1}
    assert all(r.sid.startswith("RM_") for r in response.rooms)


def test_list_rooms_with_names_returns_only_those_rooms(livekit: LocalLiveKit) -> None:
    # GIVEN three open rooms
    for name in ("call-1", "call-2", "call-3"):
        livekit.join(name, "agent", kind="AGENT")

    # WHEN the client asks for two of them and one that is not open
    response = call_room_service(
        livekit,
        lambda room: room.list_rooms(ListRoomsRequest(names=["call-1", "call-3", "gone"])),
    )

    # THEN only the open rooms it named come back
    assert sorted(r.name for r in response.rooms) == ["call-1", "call-3"]


def test_list_participants_returns_kind_and_attributes_of_each_participant(
    livekit: LocalLiveKit,
) -> None:
    # GIVEN an agent tagged with its task ARN and a SIP caller in one room
    livekit.join("call-1", "agent-a", kind="AGENT", attributes={"ecs.task_arn": TASK_ARN})
    livekit.join("call-1", "caller-1", kind="SIP")

    # WHEN the client lists the room's participants
    response = call_room_service(
        livekit, lambda room: room.list_participants(ListParticipantsRequest(room="call-1"))
    )

    # THEN each participant keeps its kind and attributes and is active
    by_identity = {p.identity: p for p in response.participants}
    assert by_identity["agent-a"].kind == ParticipantInfo.Kind.AGENT
    assert dict(by_identity["agent-a"].attributes) == {"ecs.task_arn": TASK_ARN}
    assert by_identity["caller-1"].kind == ParticipantInfo.Kind.SIP
    assert dict(by_identity["caller-1"].attributes) == {}
    assert all(p.state == ParticipantInfo.State.ACTIVE for p in response.participants)
    assert all(p.sid.startswith("PA_") for p in response.participants)


def test_list_participants_of_a_room_not_open_is_empty(livekit: LocalLiveKit) -> None:
    # GIVEN no room at all
    # WHEN the client lists the participants of a room that is not open
    response = call_room_service(
        livekit, lambda room: room.list_participants(ListParticipantsRequest(room="gone"))
    )

    # THEN it gets an empty list, not an error, as from livekit-server
    assert list(response.participants) == []


def test_get_participant_returns_the_participant(livekit: LocalLiveKit) -> None:
    # GIVEN an agent in a room
    livekit.join("call-1", "agent-a", kind="AGENT", attributes={"ecs.task_arn": TASK_ARN})

    # WHEN the client gets it
    participant = call_room_service(
        livekit,
        lambda room: room.get_participant(RoomParticipantIdentity(room="call-1", identity="agent-a")),
    )

    # THEN it is that agent
    assert participant.identity == "agent-a"
    assert participant.attributes["ecs.task_arn"] == TASK_ARN


def test_get_participant_not_in_the_room_is_not_found(livekit: LocalLiveKit) -> None:
    # GIVEN a room without that participant
    livekit.join("call-1", "agent-a", kind="AGENT")

    # WHEN the client asks for someone else
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(
            livekit,
            lambda room: room.get_participant(RoomParticipantIdentity(room="call-1", identity="nobody")),
        )

    # THEN it is a Twirp not_found
    assert (raised.value.status, raised.value.code) == (404, "not_found")


def test_update_participant_merges_attributes_and_an_empty_value_deletes_a_key(
    livekit: LocalLiveKit,
) -> None:
    # GIVEN an agent with two attributes
    livekit.join("call-1", "agent-a", kind="AGENT", attributes={"ecs.task_arn": TASK_ARN, "x": "1"})

    # WHEN the client adds one attribute and clears another
    updated = call_room_service(
        livekit,
        lambda room: room.update_participant(
            UpdateParticipantRequest(
                room="call-1", identity="agent-a", attributes={"draining": "true", "x": ""}
            )
        ),
    )

    # THEN the attributes are merged, the cleared key is gone, and the room agrees
    expected = {"ecs.task_arn": TASK_ARN, "draining": "true"}
    assert dict(updated.attributes) == expected
    assert livekit.rooms()["call-1"][0].attributes == expected


def test_remove_participant_of_the_last_one_closes_the_room(livekit: LocalLiveKit) -> None:
    # GIVEN a room with one agent
    livekit.join("call-1", "agent-a", kind="AGENT")

    # WHEN the client removes it
    call_room_service(
        livekit,
        lambda room: room.remove_participant(RoomParticipantIdentity(room="call-1", identity="agent-a")),
    )

    # THEN the room is gone
    assert livekit.rooms() == {}


def test_create_room_then_delete_room_through_the_client(livekit: LocalLiveKit) -> None:
    # GIVEN no room
    # WHEN the client creates a room
    created = call_room_service(livekit, lambda room: room.create_room(CreateRoomRequest(name="call-9")))

    # THEN it is open and empty
    assert (created.name, created.num_participants) == ("call-9", 0)
    assert livekit.rooms() == {"call-9": []}

    # WHEN the client deletes it
    call_room_service(livekit, lambda room: room.delete_room(DeleteRoomRequest(room="call-9")))

    # THEN it is closed
    assert livekit.rooms() == {}


def test_delete_room_not_open_is_not_found(livekit: LocalLiveKit) -> None:
    # GIVEN no room
    # WHEN the client deletes a room that is not open
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(livekit, lambda room: room.delete_room(DeleteRoomRequest(room="gone")))

    # THEN it is a Twirp not_found
    assert (raised.value.status, raised.value.code) == (404, "not_found")


# --- authentication ------------------------------------------------------------------------------


def test_token_signed_with_the_wrong_secret_is_refused_with_401(livekit: LocalLiveKit) -> None:
    # GIVEN a client holding the right key but the wrong secret
    wrong_secret = "not-the-secret-of-this-server-0123456789"

    # WHEN it lists rooms
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()), api_secret=wrong_secret)

    # THEN LiveKit's key middleware refuses it with a 401
    assert raised.value.status == 401


def test_token_of_an_unknown_api_key_is_refused_with_401(livekit: LocalLiveKit) -> None:
    # GIVEN a client holding a key the server does not know
    # WHEN it lists rooms
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()), api_key="otherkey")

    # THEN it is refused with a 401
    assert raised.value.status == 401


def test_expired_token_is_refused_with_401(livekit: LocalLiveKit) -> None:
    # GIVEN a token that expired five minutes ago, beyond LiveKit's one-minute leeway
    token = mint_token(livekit, api.VideoGrants(room_list=True), minutes=-5)

    # WHEN it is used to list rooms
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()), token=token)

    # THEN it is refused with a 401
    assert raised.value.status == 401


def test_token_with_room_admin_for_another_room_is_denied_as_livekit_denies_it(
    livekit: LocalLiveKit,
) -> None:
    # GIVEN a token that is room admin of call-2 only
    livekit.join("call-1", "agent-a", kind="AGENT")
    token = mint_token(livekit, api.VideoGrants(room_admin=True, room="call-2"))

    # WHEN it lists the participants of call-1
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(
            livekit,
            lambda room: room.list_participants(ListParticipantsRequest(room="call-1")),
            token=token,
        )

    # THEN livekit-server's answer: Twirp unauthenticated (401) "permissions denied", not a 403
    error = raised.value
    assert (error.status, error.code, error.message) == (401, "unauthenticated", "permissions denied")


def test_token_without_room_list_cannot_list_rooms(livekit: LocalLiveKit) -> None:
    # GIVEN a valid token that only administers one room
    token = mint_token(livekit, api.VideoGrants(room_admin=True, room="call-1"))

    # WHEN it lists rooms
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()), token=token)

    # THEN the method refuses it for lack of the roomList grant
    assert (raised.value.status, raised.value.code) == (401, "unauthenticated")


def test_request_without_authorization_is_a_twirp_unauthenticated_error(
    livekit: LocalLiveKit,
) -> None:
    # GIVEN a request with no Authorization header
    # WHEN it lists rooms
    status, content_type, body = post_raw(
        livekit,
        "/twirp/livekit.RoomService/ListRooms",
        b"{}",
        {"Content-Type": "application/json"},
    )

    # THEN it is a Twirp JSON error
    assert (status, content_type) == (401, "application/json")
    assert json.loads(body) == {"code": "unauthenticated", "msg": "permissions denied"}


def test_garbled_bearer_token_is_a_plain_text_401(livekit: LocalLiveKit) -> None:
    # GIVEN a bearer token that is not a JWT
    headers = {"Content-Type": "application/json", "Authorization": "Bearer not-a-jwt"}

    # WHEN it lists rooms
    status, content_type, body = post_raw(livekit, "/twirp/livekit.RoomService/ListRooms", b"{}", headers)

    # THEN LiveKit's key middleware answers 401 in plain text, before Twirp is reached
    assert status == 401
    assert content_type.startswith("text/plain")
    assert body == b"invalid authorization token"


def test_verify_access_token_agrees_with_livekit_token_verifier(livekit: LocalLiveKit) -> None:
    # GIVEN a token minted by the livekit-api client
    token = mint_token(livekit, api.VideoGrants(room_admin=True, room="call-1"))
    now = datetime.datetime.now(datetime.UTC).timestamp()

    # WHEN both verifiers check it against the right secret
    ours = verify_access_token(token, {livekit.api_key: livekit.api_secret}, now)
    theirs = api.TokenVerifier(livekit.api_key, livekit.api_secret).verify(token)

    # THEN both accept it with the same grants
    assert theirs.video is not None
    assert ours["video"]["roomAdmin"] is theirs.video.room_admin is True
    assert ours["video"]["room"] == theirs.video.room == "call-1"

    # AND both refuse it against another secret
    other_secret = "another-secret-for-the-same-key-0123456789"
    with pytest.raises(AccessTokenRejectedError):
        verify_access_token(token, {livekit.api_key: other_secret}, now)
    with pytest.raises(Exception, match="Signature verification failed"):
        api.TokenVerifier(livekit.api_key, other_secret).verify(token)


# --- Twirp wire ----------------------------------------------------------------------------------


def test_json_request_gets_a_json_reply_with_proto_field_names(livekit: LocalLiveKit) -> None:
    # GIVEN a room with an agent
    livekit.join("call-1", "agent-a", kind="AGENT")

    # WHEN rooms are listed with a JSON body
    status, content_type, body = post_raw(
        livekit,
        "/twirp/livekit.RoomService/ListRooms",
        b'{"names": ["call-1"]}',
        list_rooms_json_headers(livekit),
    )

    # THEN the reply is JSON in twirp-go's shape and parses back into a Room
    assert (status, content_type) == (200, "application/json")
    reply = json.loads(body)
    assert reply["rooms"][0]["name"] == "call-1"
    assert reply["rooms"][0]["num_participants"] == 1
    assert json_format.ParseDict(reply["rooms"][0], Room()).num_participants == 1


@pytest.mark.parametrize(
    ("http_method", "path"),
    [
        ("POST", "/twirp/livekit.RoomService/DrainEverything"),
        ("GET", "/twirp/livekit.RoomService/ListRooms"),
        ("POST", "/twirp/livekit.Egress/ListEgress"),
    ],
)
def test_request_outside_the_room_service_routes_is_bad_route(
    livekit: LocalLiveKit, http_method: str, path: str
) -> None:
    # GIVEN a valid token
    headers = list_rooms_json_headers(livekit)

    # WHEN a request goes to an unknown method, with the wrong verb or to another service
    status, content_type, body = post_raw(
        livekit, path, b"{}" if http_method == "POST" else b"", headers, http_method
    )

    # THEN it is a Twirp bad_route 404
    assert (status, content_type) == (404, "application/json")
    assert json.loads(body)["code"] == "bad_route"


def test_unexpected_content_type_is_bad_route(livekit: LocalLiveKit) -> None:
    # GIVEN a valid token and a form-encoded body
    headers = list_rooms_json_headers(livekit) | {"Content-Type": "text/plain"}

    # WHEN rooms are listed
    status, _, body = post_raw(livekit, "/twirp/livekit.RoomService/ListRooms", b"x", headers)

    # THEN Twirp refuses the content type
    assert (status, json.loads(body)["code"]) == (404, "bad_route")


def test_undecodable_protobuf_body_is_malformed(livekit: LocalLiveKit) -> None:
    # GIVEN a valid token and bytes that are not a ListRoomsRequest
    headers = list_rooms_json_headers(livekit) | {"Content-Type": "application/protobuf"}

    # WHEN rooms are listed
    status, _, body = post_raw(livekit, "/twirp/livekit.RoomService/ListRooms", b"\xff\xff\xff", headers)

    # THEN it is a Twirp malformed 400
    assert (status, json.loads(body)["code"]) == (400, "malformed")


# --- faults --------------------------------------------------------------------------------------


def test_unreachable_fault_fails_the_client_with_a_connection_error_once(
    livekit: LocalLiveKit,
) -> None:
    # GIVEN the server drops every connection unanswered
    livekit.faults.unreachable = True

    # WHEN the client lists rooms
    with pytest.raises(aiohttp.ClientError):
        call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()))

    # THEN the client made one attempt: no failover for a self-hosted (non-Cloud) host
    assert livekit.request_counts["total"] == 1


def test_5xx_fault_is_a_503_unavailable_not_retried_against_a_self_hosted_url(
    livekit: LocalLiveKit,
) -> None:
    # GIVEN the server answers 503 to everything
    livekit.faults.status_5xx = True

    # WHEN the client (failover on, default 10 s timeout) lists rooms
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()))

    # THEN it sees the 503 after a single request, and it never looked for other regions
    assert (raised.value.status, raised.value.code) == (503, "unavailable")
    assert livekit.request_counts["total"] == 1
    assert livekit.request_counts["GET /settings/regions"] == 0


def test_delay_fault_times_out_a_call_the_caller_bounds(livekit: LocalLiveKit) -> None:
    # GIVEN the server holds every request far longer than the caller waits
    livekit.faults.delay_seconds = 60.0

    # WHEN the caller bounds the call with asyncio's timeout
    async def bounded(room: RoomService) -> Any:
        return await asyncio.wait_for(room.list_rooms(ListRoomsRequest()), timeout=0.2)

    # THEN it times out (the fixture's stop releases the held request)
    with pytest.raises(TimeoutError):
        call_room_service(livekit, bounded)


def test_livekit_api_timeout_option_does_not_bound_a_request(livekit: LocalLiveKit) -> None:
    # GIVEN a delay longer than the client's configured timeout
    livekit.faults.delay_seconds = 0.5

    # WHEN a client built with LiveKitAPI(timeout=0.1 s) lists rooms
    response = call_room_service(
        livekit,
        lambda room: room.list_rooms(ListRoomsRequest()),
        timeout=aiohttp.ClientTimeout(total=0.1),
    )

    # THEN it still gets its answer: livekit-api 1.2.2 posts with timeout=None, which aiohttp
    # reads as "no timeout", so callers must bound LiveKit calls themselves
    assert list(response.rooms) == []


def test_unauthorized_fault_refuses_a_valid_token_with_401(livekit: LocalLiveKit) -> None:
    # GIVEN the server refuses every token
    livekit.faults.unauthorized = True

    # WHEN the client, holding the right key and secret, lists rooms
    with pytest.raises(api.TwirpError) as raised:
        call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()))

    # THEN it is refused with a 401
    assert raised.value.status == 401


def test_cleared_faults_serve_again(livekit: LocalLiveKit) -> None:
    # GIVEN faults that were set and then cleared
    livekit.join("call-1", "agent-a", kind="AGENT")
    livekit.faults.status_5xx = True
    livekit.faults.unreachable = True
    livekit.faults.clear()

    # WHEN the client lists rooms
    response = call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()))

    # THEN it is answered
    assert [r.name for r in response.rooms] == ["call-1"]


# --- counters, events, world side ----------------------------------------------------------------


def test_request_counts_count_each_method_and_reset(livekit: LocalLiveKit) -> None:
    # GIVEN one room
    livekit.join("call-1", "agent-a", kind="AGENT")

    # WHEN the client lists rooms twice and participants once
    async def three_calls(room: RoomService) -> None:
        await room.list_rooms(ListRoomsRequest())
        await room.list_rooms(ListRoomsRequest(names=["call-1"]))
        await room.list_participants(ListParticipantsRequest(room="call-1"))

    call_room_service(livekit, three_calls)

    # THEN each method is counted, and the total
    counts = livekit.request_counts
    assert (counts["ListRooms"], counts["ListParticipants"], counts["total"]) == (2, 1, 3)

    # WHEN the counters are reset
    livekit.reset_counts()

    # THEN they read zero
    assert livekit.request_counts["total"] == 0
    assert livekit.request_counts["ListRooms"] == 0


def test_room_events_follow_a_call_from_first_join_to_last_leave(livekit: LocalLiveKit) -> None:
    # GIVEN a hook that records events
    events: list[tuple[str, dict[str, Any]]] = []
    livekit.on_room_event = lambda event, info: events.append((event, info))

    # WHEN an agent and a caller join, then the caller and the agent leave
    livekit.join("call-1", "agent-a", kind="AGENT", attributes={"ecs.task_arn": TASK_ARN})
    livekit.join("call-1", "caller-1", kind="SIP")
    livekit.leave("call-1", "caller-1")
    livekit.leave("call-1", "agent-a")

    # THEN the hook saw LiveKit's webhook events in order, with protobuf-JSON room info
    assert [event for event, _ in events] == [
        "room_started",
        "participant_joined",
        "participant_joined",
        "participant_left",
        "participant_left",
        "room_finished",
    ]
    joined = json_format.ParseDict(events[1][1]["participant"], ParticipantInfo())
    assert (joined.identity, joined.attributes["ecs.task_arn"]) == ("agent-a", TASK_ARN)
    assert json_format.ParseDict(events[-1][1]["room"], Room()).name == "call-1"
    assert "participant" not in events[-1][1]


def test_the_servers_event_record_keeps_who_joined_and_left_in_order_with_their_times() -> None:
    # GIVEN a server on a virtual clock
    clock = VirtualClock(1_000.0)
    with LocalLiveKit(delete_room_when_empty=False, clock=clock.now) as livekit:
        # WHEN a caller and an agent join, a second agent joins later, the first one leaves
        livekit.join("call-1", "caller-1", kind="SIP")
        livekit.join("call-1", "agent-a", kind="AGENT")
        clock.advance(1.25)
        livekit.join("call-1", "agent-b", kind="AGENT")
        clock.advance(0.5)
        livekit.leave("call-1", "agent-a")
        livekit.join("call-2", "caller-2", kind="SIP")

        # THEN the record has every event of the room in the order the server made them,
        # with who, what kind, and when (the clock's time, to the millisecond)
        record = [(e.event, e.identity, e.kind, e.at) for e in livekit.events("call-1")]
        assert record == [
            ("room_started", "", "", 1_000.0),
            ("participant_joined", "caller-1", "SIP", 1_000.0),
            ("participant_joined", "agent-a", "AGENT", 1_000.0),
            ("participant_joined", "agent-b", "AGENT", 1_001.25),
            ("participant_left", "agent-a", "AGENT", 1_001.75),
        ]
        assert [e.room for e in livekit.events()][-2:] == ["call-2", "call-2"]


def test_room_stays_open_when_empty_if_delete_room_when_empty_is_off() -> None:
    # GIVEN a server that keeps empty rooms
    with LocalLiveKit(delete_room_when_empty=False) as livekit:
        livekit.join("call-1", "agent-a", kind="AGENT")

        # WHEN the last participant leaves
        livekit.leave("call-1", "agent-a")

        # THEN the room is still listed, with no one in it
        response = call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()))
    assert [(r.name, r.num_participants) for r in response.rooms] == [("call-1", 0)]


def test_join_with_an_identity_already_in_the_room_replaces_that_participant(
    livekit: LocalLiveKit,
) -> None:
    # GIVEN an agent in a room
    livekit.join("call-1", "agent-a", kind="AGENT", attributes={"ecs.task_arn": "old"})
    old_sid = livekit.rooms()["call-1"][0].sid

    # WHEN the same identity joins again
    livekit.join("call-1", "agent-a", kind="AGENT", attributes={"ecs.task_arn": TASK_ARN})

    # THEN there is one participant with that identity, the new one
    [participant] = livekit.rooms()["call-1"]
    assert participant.sid != old_sid
    assert participant.attributes == {"ecs.task_arn": TASK_ARN}


def test_leave_or_delete_of_what_is_not_there_raises(livekit: LocalLiveKit) -> None:
    # GIVEN one room with one agent
    livekit.join("call-1", "agent-a", kind="AGENT")

    # WHEN / THEN leaving as someone else, leaving another room or deleting another room raises
    with pytest.raises(ParticipantNotFoundError):
        livekit.leave("call-1", "nobody")
    with pytest.raises(RoomNotFoundError):
        livekit.leave("gone", "agent-a")
    with pytest.raises(RoomNotFoundError):
        livekit.delete_room("gone")


def test_join_with_an_unknown_kind_raises(livekit: LocalLiveKit) -> None:
    # GIVEN / WHEN a join with a kind LiveKit does not have
    # THEN it raises and nothing joins
    with pytest.raises(ValueError, match="ROBOT"):
        livekit.join("call-1", "agent-a", kind="robot")
    assert livekit.rooms() == {}


def test_room_and_join_times_come_from_the_given_clock() -> None:
    # GIVEN a server stamping times with a virtual clock
    clock = VirtualClock(start=1_767_225_600.0)
    with LocalLiveKit(clock=clock.now) as livekit:
        livekit.join("call-1", "agent-a", kind="AGENT")
        clock.advance(90)
        livekit.join("call-1", "caller-1", kind="SIP")

        # WHEN the client reads the room and its participants
        async def read(room: RoomService) -> tuple[Any, Any]:
            rooms = await room.list_rooms(ListRoomsRequest())
            people = await room.list_participants(ListParticipantsRequest(room="call-1"))
            return rooms, people

        rooms, people = call_room_service(livekit, read)

    # THEN the times are the clock's, not the wall's
    assert rooms.rooms[0].creation_time == 1_767_225_600
    assert {p.identity: p.joined_at for p in people.participants} == {
        "agent-a": 1_767_225_600,
        "caller-1": 1_767_225_690,
    }


def test_concurrent_joins_and_leaves_keep_num_participants_right(livekit: LocalLiveKit) -> None:
    # GIVEN a long-lived agent and four threads that each join 50 callers and drop 25
    livekit.join("call-1", "agent-a", kind="AGENT")

    def churn(worker: int) -> None:
        for n in range(50):
            livekit.join("call-1", f"caller-{worker}-{n}", kind="SIP")
        for n in range(25):
            livekit.leave("call-1", f"caller-{worker}-{n}")

    threads = [threading.Thread(target=churn, args=(w,)) for w in range(4)]

    # WHEN they run while the client keeps listing
    for thread in threads:
        thread.start()
    for _ in range(5):
        call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()))
    for thread in threads:
        thread.join()
    response = call_room_service(livekit, lambda room: room.list_rooms(ListRoomsRequest()))

    # THEN the room counts the agent and the 100 callers still in it
    assert response.rooms[0].num_participants == 1 + 4 * 25
    assert len(livekit.rooms()["call-1"]) == 1 + 4 * 25
