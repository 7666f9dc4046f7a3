"""The call's room as the world's call agent sees it: the local LiveKit's RoomService, in place
of the WebRTC signalling connection the local world does not have.

A real job process joins its room over WebRTC; LiveKit then tells it of every participant who
joins (``participant_connected``) or changes attributes (``participant_attributes_changed``),
and sets its own attributes (``LocalParticipant.set_attributes``). The local world has no media
server: the local agent server puts the job's participant in the room (`LocalAgentServer`), so
`RoomServiceRoom` gives the call agent what it needs of an ``rtc.Room`` through the
RoomService, with the real livekit-api client and the worker's API key:

- ``local_participant``: the job's participant in the room; ``set_attributes`` is
  ``UpdateParticipant`` (attributes merge, as LiveKit merges them);
- ``on("participant_connected" | "participant_attributes_changed")``: from ``ListParticipants``, polled every `poll_seconds`, with the events' arguments
  (``ParticipantInfo`` for the participant: it has the ``identity``, ``kind`` and
  ``attributes`` an ``rtc.RemoteParticipant`` has).

The world's own setting: ``DRAINCTL_LIVEKIT_HTTP_URL``, where the local LiveKit's RoomService
answers (the worker's ``LIVEKIT_URL`` is the local agent server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from livekit import api, rtc
from livekit.protocol.room import ListParticipantsRequest, UpdateParticipantRequest

ROOM_SERVICE_URL_ENV = "DRAINCTL_LIVEKIT_HTTP_URL"
POLL_SECONDS = 0.1

logger = logging.getLogger(__name__)


class RoomServiceError(Exception):
    """The job's participant never appeared in its room."""


class _LocalParticipant:
    def __init__(self, room: RoomServiceRoom, identity: str) -> None:
        self._room = room
        self.identity = identity
        self.attributes: dict[str, str] = {}

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        updated = await self._room.lk.room.update_participant(
            UpdateParticipantRequest(room=self._room.name, identity=self.identity, attributes=attributes)
        )
        self.attributes = dict(updated.attributes)


class RoomServiceRoom(rtc.EventEmitter[str]):
    """What the call agent needs of its ``rtc.Room``, through the RoomService (module doc)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        room: str,
        identity: str,
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__()
        self._url, self._key, self._secret = url, api_key, api_secret
        self._name = room
        self._me = _LocalParticipant(self, identity)
        self._poll_seconds = poll_seconds
        self._seen: dict[str, dict[str, str]] = {}
        self._lk: api.LiveKitAPI | None = None
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, room: str, identity: str, environ: Mapping[str, str] | None = None) -> RoomServiceRoom:
        env = os.environ if environ is None else environ
        return cls(
            env[ROOM_SERVICE_URL_ENV], env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"], room, identity
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def local_participant(self) -> _LocalParticipant:
        return self._me

    @property
    def lk(self) -> api.LiveKitAPI:
        if self._lk is None:
            raise RoomServiceError("the room is not started")
        return self._lk

    async def start(self, timeout_seconds: float = 10.0) -> None:
        """Wait for the job's participant to be in the room, then follow the room."""
        self._lk = api.LiveKitAPI(self._url, self._key, self._secret)
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while True:
            people = await self._participants()
            me = people.get(self._me.identity)
            if me is not None:
                break
            if asyncio.get_running_loop().time() >= deadline:
                raise RoomServiceError(f"{self._me.identity} did not join {self._name}")
            await asyncio.sleep(self._poll_seconds)
        self._me.attributes = dict(me.attributes)
        # Who was there before: an rtc.Room lists them in remote_participants, with no event.
        self._seen = {identity: dict(p.attributes) for identity, p in people.items()}
        self._poller = asyncio.get_running_loop().create_task(self._follow(), name="room_service_room")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._lk is not None:
            await self._lk.aclose()
            self._lk = None

    async def _participants(self) -> dict[str, Any]:
        answer = await self.lk.room.list_participants(ListParticipantsRequest(room=self._name))
        return {p.identity: p for p in answer.participants}

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                people = await self._participants()
            except api.TwirpError as error:
                logger.warning("room not readable", extra={"room": self._name, "error": str(error)})
                continue
            for identity, participant in people.items():
                attributes = dict(participant.attributes)
                if identity == self._me.identity:
                    self._me.attributes = attributes
                    continue
                before = self._seen.get(identity)
                self._seen[identity] = attributes
                if before is None:
                    self.emit("participant_connected", participant)
                elif before != attributes:
                    changed = {k: v for k, v in attributes.items() if before.get(k) != v}
                    self.emit("participant_attributes_changed", changed, participant)
            for identity in [i for i in self._seen if i not in people]:
                del self._seen[identity]
