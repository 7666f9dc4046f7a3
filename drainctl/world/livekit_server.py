"""LiveKit's RoomService as the local world serves it: Twirp over real HTTP on 127.0.0.1.

The coordinator reaches it with the real livekit-api client, so this server answers the way a
self-hosted LiveKit server (livekit-server with the twirp-go generated RoomService) does:

- `POST /twirp/livekit.RoomService/<Method>`, protobuf or JSON bodies (the reply uses the
  request's encoding; JSON with proto field names and default values, as twirp-go emits it).
- The API-key middleware runs first. A malformed `Authorization` header, an unparsable or
  badly signed JWT, an unknown API key or an expired token is refused with a bare
  `401` whose body is plain text, not Twirp JSON (the client then sees code `unknown`).
- A request with a valid token but without the grant a method needs is refused by the method
  itself with Twirp `unauthenticated` (HTTP 401, msg `permissions denied`). LiveKit does not
  use `permission_denied`/403 for a missing grant.
- Routing and decoding errors are Twirp `bad_route` (404) and `malformed` (400); unknown rooms
  and participants are `not_found` (404).

The same server answers `livekit.AgentDispatchService` (CreateDispatch, ListDispatch,
DeleteDispatch), as livekit-server serves both on one port (livekit/livekit
pkg/service/agent_dispatch_service.go): each method needs the `roomAdmin` grant for the
dispatch's room (`EnsureAdminPermission`), else Twirp `unauthenticated`. CreateDispatch opens the
room if needed, stores the dispatch and answers at once; the job request runs in the background
through `dispatcher`, which is the world's stand-in for LiveKit's worker selection (it must pick
only workers that report themselves available) and reports the job it started, if any, with
`dispatch_job`. A dispatch no worker took stays with no job, as livekit-server leaves it.

Room state lives in memory behind one lock. Tracks, regions, `empty_timeout` and
`departure_timeout` are not modelled; see `LocalLiveKit` for what is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import random
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.protocol import agent
from livekit.protocol.agent_dispatch import (
    AgentDispatch,
    AgentDispatchState,
    CreateAgentDispatchRequest,
    DeleteAgentDispatchRequest,
    ListAgentDispatchRequest,
    ListAgentDispatchResponse,
)
from livekit.protocol.models import ParticipantInfo, ParticipantPermission, Room
from livekit.protocol.room import (
    CreateRoomRequest,
    DeleteRoomRequest,
    DeleteRoomResponse,
    ListParticipantsRequest,
    ListParticipantsResponse,
    ListRoomsRequest,
    ListRoomsResponse,
    RemoveParticipantResponse,
    RoomParticipantIdentity,
    UpdateParticipantRequest,
)

logger = logging.getLogger(__name__)

ROOM_SERVICE_PATH: Final = "/twirp/livekit.RoomService/"
DISPATCH_SERVICE_PATH: Final = "/twirp/livekit.AgentDispatchService/"
_SERVICE_PATHS: Final = (ROOM_SERVICE_PATH, DISPATCH_SERVICE_PATH)

DEFAULT_API_KEY: Final = "devkey"
# A development secret only: the local world never holds a real credential.
DEFAULT_API_SECRET: Final = "local-world-dev-secret-0123456789abcdef"  # noqa: S105

# livekit/protocol verifies tokens with a one-minute leeway on exp and nbf.
TOKEN_LEEWAY_SECONDS: Final = 60.0

# LiveKit's defaults, reported on every room; neither timer is modelled.
_EMPTY_TIMEOUT_SECONDS: Final = 300
_DEPARTURE_TIMEOUT_SECONDS: Final = 20

_CONTENT_TYPE_PROTOBUF: Final = "application/protobuf"
_CONTENT_TYPE_JSON: Final = "application/json"

# HTTP status of each Twirp error code this server answers with (Twirp spec).
_TWIRP_STATUS: Final[Mapping[str, int]] = {
    "bad_route": 404,
    "malformed": 400,
    "invalid_argument": 400,
    "not_found": 404,
    "unauthenticated": 401,
    "unavailable": 503,
    "internal": 500,
    "resource_exhausted": 429,
}
# Decides, before a request is served, whether it is refused: (Twirp code, message), or None.
RequestGate = Callable[[str, Mapping[str, str]], tuple[str, str] | None]

RoomEventHook = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class DispatchRequest:
    """A CreateDispatch LiveKit accepted: its job request is the dispatcher's to run."""

    dispatch_id: str
    room: str
    agent_name: str
    metadata: str
    created_at: float


# Runs a dispatch's job request (called outside the lock, from the serving thread).
Dispatcher = Callable[[DispatchRequest], None]


@dataclass
class LiveKitFaults:
    """Faults the server injects into every request while set; change them at any time.

    Checked in this order: `unreachable`, `delay_seconds`, `status_5xx`, `unauthorized`.
    """

    # Close the connection without answering (the client sees a disconnect).
    unreachable: bool = False
    # Sleep this long (real time) before answering.
    delay_seconds: float = 0.0
    # Answer 503 Twirp `unavailable`.
    status_5xx: bool = False
    # Answer 401 whatever the token, as LiveKit does when the key or secret is wrong.
    unauthorized: bool = False

    def clear(self) -> None:
        self.unreachable = False
        self.delay_seconds = 0.0
        self.status_5xx = False
        self.unauthorized = False


@dataclass(frozen=True)
class ParticipantSnapshot:
    """A participant as `LocalLiveKit.rooms()` reports it, for assertions."""

    identity: str
    sid: str
    name: str
    kind: str
    attributes: Mapping[str, str]
    joined_at: int


@dataclass(frozen=True)
class RoomEventRecord:
    """One room event as `LocalLiveKit.events()` keeps it, in the order the server made them: a
    webhook's event name, room and participant, `at` the `clock` time (a webhook's
    ``created_at``, to the millisecond)."""

    at: float
    event: str  # room_started, participant_joined, participant_left, room_finished
    room: str
    identity: str = ""
    kind: str = ""  # the participant's ParticipantInfo.Kind name


class RoomNotFoundError(LookupError):
    """The room is not open on the local LiveKit."""


class ParticipantNotFoundError(LookupError):
    """The participant is not in that room."""


class AccessTokenRejectedError(Exception):
    """LiveKit's API-key middleware refuses the token (answered with a plain-text 401)."""


class _TwirpError(Exception):
    def __init__(self, code: str, msg: str, meta: Mapping[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})

    @property
    def status(self) -> int:
        return _TWIRP_STATUS[self.code]

    def body(self) -> bytes:
        payload: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:
            payload["meta"] = self.meta
        return json.dumps(payload).encode()


def _permissions_denied() -> _TwirpError:
    return _TwirpError("unauthenticated", "permissions denied")


def _bad_route(msg: str, http_method: str, path: str) -> _TwirpError:
    return _TwirpError("bad_route", msg, {"twirp_invalid_route": f"{http_method} {path}"})


# --- access tokens ---------------------------------------------------------------------------


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def verify_access_token(token: str, api_secrets: Mapping[str, str], now: float) -> dict[str, Any]:
    """The claims of a LiveKit API token, checked as livekit-server checks them.

    HS256 only; the issuer names the API key whose secret must have signed it; `exp` is
    required; `exp` and `nbf` are compared with `now` (epoch seconds, wall time: clients mint
    tokens with the real time) with LiveKit's one-minute leeway.

    Raises AccessTokenRejectedError with the reason.
    """
    segments = token.split(".")
    if len(segments) != 3:
        raise AccessTokenRejectedError("invalid authorization token")
    try:
        header = json.loads(_b64url_decode(segments[0]))
        claims = json.loads(_b64url_decode(segments[1]))
        signature = _b64url_decode(segments[2])
    except (ValueError, binascii.Error) as err:
        raise AccessTokenRejectedError("invalid authorization token") from err
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AccessTokenRejectedError("invalid authorization token")
    if header.get("alg") != "HS256":
        raise AccessTokenRejectedError("invalid authorization token: signing method not allowed")
    api_key = claims.get("iss", "")
    if not isinstance(api_key, str):
        raise AccessTokenRejectedError("invalid authorization token")

    secret = api_secrets.get(api_key)
    if not secret:
        raise AccessTokenRejectedError(f"invalid API key: {api_key}")
    signed = f"{segments[0]}.{segments[1]}".encode()
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise AccessTokenRejectedError("invalid authorization token: signature is invalid")

    exp = claims.get("exp")
    if not _is_number(exp):
        raise AccessTokenRejectedError("invalid authorization token: exp claim is required")
    if now >= cast(float, exp) + TOKEN_LEEWAY_SECONDS:
        raise AccessTokenRejectedError("invalid authorization token: token is expired")
    nbf = claims.get("nbf")
    if nbf is not None:
        if not _is_number(nbf):
            raise AccessTokenRejectedError("invalid authorization token: nbf is invalid")
        if now + TOKEN_LEEWAY_SECONDS < cast(float, nbf):
            raise AccessTokenRejectedError("invalid authorization token: token is not valid yet")
    video = claims.get("video", {})
    if not isinstance(video, dict):
        raise AccessTokenRejectedError("invalid authorization token: video grant is invalid")
    return claims


@dataclass(frozen=True)
class _VideoGrant:
    room_list: bool = False
    room_create: bool = False
    room_admin: bool = False
    room: str = ""

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> _VideoGrant:
        video = claims.get("video", {})
        room = video.get("room", "")
        return cls(
            room_list=video.get("roomList") is True,
            room_create=video.get("roomCreate") is True,
            room_admin=video.get("roomAdmin") is True,
            room=room if isinstance(room, str) else "",
        )


def _require_list(grant: _VideoGrant | None) -> None:
    if grant is None or not grant.room_list:
        raise _permissions_denied()


def _require_create(grant: _VideoGrant | None) -> None:
    if grant is None or not grant.room_create:
        raise _permissions_denied()


def _require_admin(grant: _VideoGrant | None, room: str) -> None:
    if grant is None or not grant.room_admin or grant.room != room:
        raise _permissions_denied()


# --- room state ------------------------------------------------------------------------------


@dataclass
class _Participant:
    identity: str
    sid: str
    name: str
    kind: int
    attributes: dict[str, str]
    joined_at_ms: int
    metadata: str = ""
    version: int = 1

    def to_proto(self) -> ParticipantInfo:
        return ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            state=ParticipantInfo.State.ACTIVE,
            kind=cast(ParticipantInfo.Kind, self.kind),
            attributes=self.attributes,
            metadata=self.metadata,
            joined_at=self.joined_at_ms // 1000,
            joined_at_ms=self.joined_at_ms,
            version=self.version,
            permission=ParticipantPermission(can_subscribe=True, can_publish=True, can_publish_data=True),
        )


@dataclass
class _Room:
    name: str
    sid: str
    creation_time_ms: int
    metadata: str = ""
    max_participants: int = 0
    participants: dict[str, _Participant] = field(default_factory=dict)

    def to_proto(self) -> Room:
        return Room(
            sid=self.sid,
            name=self.name,
            empty_timeout=_EMPTY_TIMEOUT_SECONDS,
            departure_timeout=_DEPARTURE_TIMEOUT_SECONDS,
            max_participants=self.max_participants,
            creation_time=self.creation_time_ms // 1000,
            creation_time_ms=self.creation_time_ms,
            metadata=self.metadata,
            num_participants=len(self.participants),
        )


_RoomEvent = tuple[str, dict[str, Any]]


def _event_info(room: _Room, participant: _Participant | None = None) -> dict[str, Any]:
    # Protobuf JSON mapping, so a webhook can rebuild the messages with json_format.ParseDict.
    info: dict[str, Any] = {"room": json_format.MessageToDict(room.to_proto())}
    if participant is not None:
        info["participant"] = json_format.MessageToDict(participant.to_proto())
    return info


_Rpc = tuple[type[Message], Callable[[Any, _VideoGrant | None], Message]]


class LocalLiveKit:
    """A LiveKit server's RoomService on 127.0.0.1, with rooms the world fills directly.

    The world calls `create_room`/`join`/`leave`/`delete_room`; the coordinator reads the same
    rooms over Twirp. Rooms are created on first join, as LiveKit does. With
    `delete_room_when_empty` the room closes the moment its last participant leaves: LiveKit
    would wait `departure_timeout`/`empty_timeout` first, which is not modelled. A room made by
    `create_room` that nobody has joined stays open until deleted.

    `on_room_event(event, info)` is called after every change, outside the lock, with LiveKit's
    webhook event names (`room_started`, `participant_joined`, `participant_left`,
    `room_finished`) and `info` = {"room": Room, "participant": ParticipantInfo} as protobuf
    JSON dicts (no participant for room events).

    `events()` is the server's own record of those events, in the order it made them, with the
    participant's identity and kind and the `clock` time: who joined before whom left.

    `request_counts` counts every request that reached the server, faults and refusals
    included: per RoomService method, under "<HTTP method> <path>" for any other path, and in
    "total".
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        *,
        delete_room_when_empty: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` stamps room creation and join times (e.g. the world's virtual clock); token
        expiry is always checked against wall time."""
        self.api_key = api_key
        self.api_secret = api_secret
        self.delete_room_when_empty = delete_room_when_empty
        self.faults = LiveKitFaults()
        self.on_room_event: RoomEventHook | None = None
        # Called after `on_room_event`, in order: other parts of the world that follow rooms
        # (the local agent server ends the jobs of a room that closes).
        self.room_listeners: list[RoomEventHook] = []
        # Refuses a request before it is served (the world's rate limit, an invocation's deadline).
        self.request_gate: RequestGate | None = None
        # The job request of each new dispatch; None: no worker ever takes one.
        self.dispatcher: Dispatcher | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._rooms: dict[str, _Room] = {}
        self._dispatches: dict[str, dict[str, AgentDispatch]] = {}  # room -> id -> dispatch
        self._counts: Counter[str] = Counter()
        self._events: list[RoomEventRecord] = []
        # Seeded so a replayed world hands out the same sids.
        self._sid_random = random.Random(0)
        self._stopping = threading.Event()
        self._server: _RoomServiceHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._rpcs: dict[str, _Rpc] = {
            "CreateRoom": (CreateRoomRequest, self._create_room_rpc),
            "ListRooms": (ListRoomsRequest, self._list_rooms_rpc),
            "DeleteRoom": (DeleteRoomRequest, self._delete_room_rpc),
            "ListParticipants": (ListParticipantsRequest, self._list_participants_rpc),
            "GetParticipant": (RoomParticipantIdentity, self._get_participant_rpc),
            "RemoveParticipant": (RoomParticipantIdentity, self._remove_participant_rpc),
            "UpdateParticipant": (UpdateParticipantRequest, self._update_participant_rpc),
            "CreateDispatch": (CreateAgentDispatchRequest, self._create_dispatch_rpc),
            "ListDispatch": (ListAgentDispatchRequest, self._list_dispatch_rpc),
            "DeleteDispatch": (DeleteAgentDispatchRequest, self._delete_dispatch_rpc),
        }
        self._dispatch_methods = frozenset({"CreateDispatch", "ListDispatch", "DeleteDispatch"})

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the local LiveKit is already started")
        self._stopping.clear()
        self._server = _RoomServiceHTTPServer(self)
        # A short poll keeps `stop` quick: shutdown waits for the loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="local-livekit",
            daemon=True,
        )
        self._thread.start()
        logger.info("local livekit started", extra={"url": self.url})

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        # Wakes requests held by `delay_seconds` so they end without answering.
        self._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = None
        self._thread = None
        logger.info("local livekit stopped")

    def __enter__(self) -> LocalLiveKit:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local LiveKit is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- the world's side --------------------------------------------------------------------

    def create_room(self, name: str) -> None:
        """Open an empty room; a room already open is left as it is."""
        with self._lock:
            events = [] if name in self._rooms else self._open_room_locked(name)
        self._emit(events)

    def join(
        self,
        room: str,
        identity: str,
        *,
        kind: str = "STANDARD",
        attributes: Mapping[str, str] | None = None,
        name: str = "",
    ) -> None:
        """Put a participant in a room, opening the room if needed.

        `kind` is a ParticipantInfo.Kind name: STANDARD, AGENT, SIP (or INGRESS, EGRESS...).
        Joining with an identity already in the room replaces that participant, as LiveKit
        does with a duplicate identity.
        """
        kind_value = ParticipantInfo.Kind.Value(kind.upper())
        events: list[_RoomEvent] = []
        with self._lock:
            if room not in self._rooms:
                events += self._open_room_locked(room)
            record = self._rooms[room]
            if identity in record.participants:
                events += self._remove_participant_locked(record, identity, may_close=False)
            participant = _Participant(
                identity=identity,
                sid=self._new_sid("PA_"),
                name=name,
                kind=kind_value,
                attributes=dict(attributes or {}),
                joined_at_ms=self._now_ms(),
            )
            record.participants[identity] = participant
            events.append(self._event_locked("participant_joined", record, participant))
        self._emit(events)

    def leave(self, room: str, identity: str) -> None:
        """Take a participant out; the room closes if it empties and `delete_room_when_empty`."""
        with self._lock:
            record = self._rooms.get(room)
            if record is None:
                raise RoomNotFoundError(room)
            if identity not in record.participants:
                raise ParticipantNotFoundError(f"{identity} in {room}")
            events = self._remove_participant_locked(record, identity, may_close=True)
        self._emit(events)

    def delete_room(self, name: str) -> None:
        """Close a room, disconnecting everyone in it."""
        with self._lock:
            record = self._rooms.get(name)
            if record is None:
                raise RoomNotFoundError(name)
            events = self._close_room_locked(record)
        self._emit(events)

    def dispatch_job(
        self, room: str, dispatch_id: str, *, job_id: str, worker_id: str, status: str, identity: str = ""
    ) -> None:
        """The dispatcher's report on a dispatch's job: started (`JS_PENDING`), running, ended
        (`JS_SUCCESS`/`JS_FAILED`). A dispatch deleted meanwhile is left as it is."""
        with self._lock:
            dispatch = self._dispatches.get(room, {}).get(dispatch_id)
            if dispatch is None:
                return
            job = next((j for j in dispatch.state.jobs if j.id == job_id), None)
            if job is None:
                job = dispatch.state.jobs.add(
                    id=job_id,
                    dispatch_id=dispatch_id,
                    type=agent.JobType.JT_ROOM,
                    agent_name=dispatch.agent_name,
                    metadata=dispatch.metadata,
                )
                job.room.name = room
            job.state.status = cast(agent.JobStatus, agent.JobStatus.Value(status))
            job.state.worker_id = worker_id
            job.state.updated_at = self._now_ms() * 1_000_000
            if identity:
                job.state.participant_identity = identity

    def dispatches(self, room: str) -> list[AgentDispatch]:
        """The dispatches of a room, as ListDispatch answers (copies)."""
        with self._lock:
            return [_copy(d) for d in self._dispatches.get(room, {}).values()]

    def room_sid(self, name: str) -> str | None:
        """The sid of the open room `name`; None when it is not open."""
        with self._lock:
            record = self._rooms.get(name)
            return None if record is None else record.sid

    def has_participant(self, room: str, identity: str) -> bool:
        """Is `identity` in the open room `room`? (One lookup: `rooms()` copies every room.)"""
        with self._lock:
            record = self._rooms.get(room)
            return record is not None and identity in record.participants

    def rooms(self) -> dict[str, list[ParticipantSnapshot]]:
        """Open rooms and their participants, in the order they were opened and joined."""
        with self._lock:
            return {
                record.name: [
                    ParticipantSnapshot(
                        identity=p.identity,
                        sid=p.sid,
                        name=p.name,
                        kind=ParticipantInfo.Kind.Name(p.kind),
                        attributes=dict(p.attributes),
                        joined_at=p.joined_at_ms // 1000,
                    )
                    for p in record.participants.values()
                ]
                for record in self._rooms.values()
            }

    def events(self, room: str | None = None) -> list[RoomEventRecord]:
        """The room events so far (of `room` only, if given), oldest first."""
        with self._lock:
            return [e for e in self._events if room is None or e.room == room]

    @property
    def request_counts(self) -> Mapping[str, int]:
        """A copy of the counters; a key never counted reads 0."""
        with self._lock:
            return Counter(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    # --- state changes (caller holds the lock) -----------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _new_sid(self, prefix: str) -> str:
        alphabet = string.ascii_letters + string.digits
        return prefix + "".join(self._sid_random.choice(alphabet) for _ in range(12))

    def _open_room_locked(self, name: str) -> list[_RoomEvent]:
        record = _Room(name=name, sid=self._new_sid("RM_"), creation_time_ms=self._now_ms())
        self._rooms[name] = record
        return [self._event_locked("room_started", record)]

    def _remove_participant_locked(
        self, record: _Room, identity: str, *, may_close: bool
    ) -> list[_RoomEvent]:
        participant = record.participants.pop(identity)
        events: list[_RoomEvent] = [self._event_locked("participant_left", record, participant)]
        if may_close and self.delete_room_when_empty and not record.participants:
            events += self._close_room_locked(record)
        return events

    def _close_room_locked(self, record: _Room) -> list[_RoomEvent]:
        events: list[_RoomEvent] = []
        for identity in list(record.participants):
            events += self._remove_participant_locked(record, identity, may_close=False)
        del self._rooms[record.name]
        self._dispatches.pop(record.name, None)  # a room's dispatches end with it
        events.append(self._event_locked("room_finished", record))
        return events

    def _event_locked(self, event: str, record: _Room, participant: _Participant | None = None) -> _RoomEvent:
        self._events.append(
            RoomEventRecord(
                at=self._now_ms() / 1000,
                event=event,
                room=record.name,
                identity="" if participant is None else participant.identity,
                kind="" if participant is None else ParticipantInfo.Kind.Name(participant.kind),
            )
        )
        return (event, _event_info(record, participant))

    def _emit(self, events: list[_RoomEvent]) -> None:
        hook = self.on_room_event
        for event, info in events:
            logger.debug("livekit room event", extra={"event": event, "room": info["room"]})
            if hook is not None:
                hook(event, info)
            for listener in list(self.room_listeners):
                listener(event, info)

    # --- RoomService -------------------------------------------------------------------------

    def _create_room_rpc(self, req: CreateRoomRequest, grant: _VideoGrant | None) -> Room:
        _require_create(grant)
        if not req.name:
            raise _TwirpError("invalid_argument", "no room name")
        events: list[_RoomEvent] = []
        with self._lock:
            if req.name not in self._rooms:
                events = self._open_room_locked(req.name)
            record = self._rooms[req.name]
            if req.metadata:
                record.metadata = req.metadata
            if req.max_participants:
                record.max_participants = req.max_participants
            room = record.to_proto()
        self._emit(events)
        return room

    def _list_rooms_rpc(self, req: ListRoomsRequest, grant: _VideoGrant | None) -> Message:
        _require_list(grant)
        names = set(req.names)
        with self._lock:
            rooms = [r.to_proto() for r in self._rooms.values() if not names or r.name in names]
        return ListRoomsResponse(rooms=rooms)

    def _delete_room_rpc(self, req: DeleteRoomRequest, grant: _VideoGrant | None) -> Message:
        _require_create(grant)
        with self._lock:
            record = self._rooms.get(req.room)
            if record is None:
                raise _TwirpError("not_found", "requested room does not exist")
            events = self._close_room_locked(record)
        self._emit(events)
        return DeleteRoomResponse()

    def _list_participants_rpc(self, req: ListParticipantsRequest, grant: _VideoGrant | None) -> Message:
        _require_admin(grant, req.room)
        with self._lock:
            record = self._rooms.get(req.room)
            # LiveKit lists no one, rather than an error, for a room that is not open.
            participants = [] if record is None else list(record.participants.values())
            return ListParticipantsResponse(participants=[p.to_proto() for p in participants])

    def _get_participant_rpc(self, req: RoomParticipantIdentity, grant: _VideoGrant | None) -> Message:
        _require_admin(grant, req.room)
        with self._lock:
            return self._participant_locked(req.room, req.identity).to_proto()

    def _remove_participant_rpc(self, req: RoomParticipantIdentity, grant: _VideoGrant | None) -> Message:
        _require_admin(grant, req.room)
        with self._lock:
            record = self._rooms.get(req.room)
            if record is None or req.identity not in record.participants:
                raise _TwirpError("not_found", "participant not found")
            events = self._remove_participant_locked(record, req.identity, may_close=True)
        self._emit(events)
        return RemoveParticipantResponse()

    def _update_participant_rpc(self, req: UpdateParticipantRequest, grant: _VideoGrant | None) -> Message:
        _require_admin(grant, req.room)
        with self._lock:
            participant = self._participant_locked(req.room, req.identity)
            # Attributes merge into the participant's; an empty value deletes the key.
            for key, value in req.attributes.items():
                if value:
                    participant.attributes[key] = value
                else:
                    participant.attributes.pop(key, None)
            if req.metadata:
                participant.metadata = req.metadata
            if req.name:
                participant.name = req.name
            participant.version += 1
            return participant.to_proto()

    # --- AgentDispatchService ----------------------------------------------------------------

    def _create_dispatch_rpc(self, req: CreateAgentDispatchRequest, grant: _VideoGrant | None) -> Message:
        _require_admin(grant, req.room)
        if not req.room:
            raise _TwirpError("invalid_argument", "room name is required")
        events: list[_RoomEvent] = []
        with self._lock:
            if req.room not in self._rooms:
                events = self._open_room_locked(req.room)
            dispatch = AgentDispatch(
                id=self._new_sid("AD_"),
                agent_name=req.agent_name,
                room=req.room,
                metadata=req.metadata,
                state=AgentDispatchState(created_at=self._now_ms() * 1_000_000),
            )
            self._dispatches.setdefault(req.room, {})[dispatch.id] = dispatch
            reply = _copy(dispatch)
        self._emit(events)
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher(
                DispatchRequest(reply.id, req.room, req.agent_name, req.metadata, created_at=self._clock())
            )
        return reply

    def _list_dispatch_rpc(self, req: ListAgentDispatchRequest, grant: _VideoGrant | None) -> Message:
        _require_admin(grant, req.room)
        with self._lock:
            found = [
                _copy(d)
                for d in self._dispatches.get(req.room, {}).values()
                if not req.dispatch_id or d.id == req.dispatch_id
            ]
        return ListAgentDispatchResponse(agent_dispatches=found)

    def _delete_dispatch_rpc(self, req: DeleteAgentDispatchRequest, grant: _VideoGrant | None) -> Message:
        _require_admin(grant, req.room)
        with self._lock:
            dispatch = self._dispatches.get(req.room, {}).pop(req.dispatch_id, None)
            if dispatch is None:
                raise _TwirpError("not_found", "dispatch not found")
            dispatch.state.deleted_at = self._now_ms() * 1_000_000
            return _copy(dispatch)

    def _participant_locked(self, room: str, identity: str) -> _Participant:
        record = self._rooms.get(room)
        participant = None if record is None else record.participants.get(identity)
        if participant is None:
            raise _TwirpError("not_found", "participant does not exist")
        return participant

    # --- HTTP --------------------------------------------------------------------------------

    def _count(self, http_method: str, path: str) -> None:
        key = _method_of(path) or f"{http_method} {path}"
        with self._lock:
            self._counts[key] += 1
            self._counts["total"] += 1

    def _serve(
        self, http_method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[str, bytes]:
        """The reply (content type, body) to one request; raises what must be refused."""
        grant = self._authenticate(headers.get("Authorization", ""))

        if http_method != "POST":
            msg = f'unsupported method "{http_method}" (only POST is allowed)'
            raise _bad_route(msg, http_method, path)
        method = _method_of(path)
        rpc = self._rpcs.get(method)
        if rpc is None or (method in self._dispatch_methods) != path.startswith(DISPATCH_SERVICE_PATH):
            raise _bad_route(f'no handler for path "{path}"', http_method, path)
        request_type, handler = rpc

        raw_content_type = headers.get("Content-Type", "")
        content_type = raw_content_type.split(";", 1)[0].strip().lower()
        if content_type == _CONTENT_TYPE_PROTOBUF:
            try:
                request = request_type.FromString(body)
            except DecodeError as err:
                raise _TwirpError("malformed", "the protobuf request could not be decoded") from err
            return _CONTENT_TYPE_PROTOBUF, handler(request, grant).SerializeToString()
        if content_type == _CONTENT_TYPE_JSON:
            request = request_type()
            try:
                json_format.Parse(body, request, ignore_unknown_fields=True)
            except json_format.ParseError as err:
                raise _TwirpError("malformed", "the json request could not be decoded") from err
            reply = json_format.MessageToDict(
                handler(request, grant),
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
            return _CONTENT_TYPE_JSON, json.dumps(reply).encode()
        msg = f'unexpected Content-Type: "{raw_content_type}"'
        raise _bad_route(msg, http_method, path)

    def _authenticate(self, authorization: str) -> _VideoGrant | None:
        # Without a token the request goes on with no grants; each method then refuses it.
        if not authorization:
            return None
        if not authorization.startswith("Bearer "):
            raise AccessTokenRejectedError("invalid authorization header. Must start with Bearer ")
        claims = verify_access_token(
            authorization[len("Bearer ") :], {self.api_key: self.api_secret}, time.time()
        )
        return _VideoGrant.from_claims(claims)


def _method_of(path: str) -> str:
    """The Twirp method a path names, under either service; "" for any other path."""
    for prefix in _SERVICE_PATHS:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return ""


def _copy(dispatch: AgentDispatch) -> AgentDispatch:
    copy = AgentDispatch()
    copy.CopyFrom(dispatch)
    return copy


class _RoomServiceHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The coordinator opens up to 16 connections at once; the default backlog of 5 would make
    # bursts wait for the kernel's retry (about a second each).
    request_queue_size = 128

    def __init__(self, world: LocalLiveKit) -> None:
        self.world = world
        super().__init__(("127.0.0.1", 0), _RoomServiceHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeouts, the unreachable fault) is not a server error.
        logger.debug("livekit connection error", exc_info=True)


class _RoomServiceHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, as aiohttp's pooled connections expect from livekit-server.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body would wait for the
    # client's delayed ACK (tens of milliseconds a request).
    disable_nagle_algorithm = True
    # Idle keep-alive connections end on their own.
    timeout = 30

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("livekit http", extra={"line": format % args})

    def _handle(self) -> None:
        self._answer(cast(_RoomServiceHTTPServer, self.server).world)

    def _answer(self, world: LocalLiveKit) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path = urlsplit(self.path).path
        world._count(self.command, path)

        faults = world.faults
        if faults.unreachable:
            self.close_connection = True
            return
        if faults.delay_seconds > 0 and world._stopping.wait(faults.delay_seconds):
            self.close_connection = True
            return
        if faults.status_5xx:
            self._reply_twirp_error(_TwirpError("unavailable", "livekit is unavailable"))
            return
        if faults.unauthorized:
            self._reply(401, "text/plain; charset=utf-8", b"invalid API key")
            return

        gate = world.request_gate
        refused = gate(path, {key: value for key, value in self.headers.items()}) if gate else None
        if refused is not None:
            self._reply_twirp_error(_TwirpError(*refused))
            return
        headers = {key: self.headers.get(key, "") for key in ("Authorization", "Content-Type")}
        try:
            content_type, reply = world._serve(self.command, path, headers, body)
        except AccessTokenRejectedError as err:
            self._reply(401, "text/plain; charset=utf-8", str(err).encode())
        except _TwirpError as err:
            self._reply_twirp_error(err)
        except Exception:
            logger.exception("livekit request failed", extra={"path": path})
            self._reply_twirp_error(_TwirpError("internal", "internal error"))
        else:
            self._reply(200, content_type, reply)

    def _reply_twirp_error(self, err: _TwirpError) -> None:
        # Twirp errors are JSON whatever the request's encoding.
        self._reply(err.status, _CONTENT_TYPE_JSON, err.body())

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # The client gave up (e.g. its timeout ran out during a delay): nothing to answer.
            self.close_connection = True
