"""LiveKit webhooks, once verified: what each one means for the drains. Pure: no I/O.

A webhook only ever makes a drain look again sooner; the every-minute reconcile stays the path
that is never lost. What a verified webhook asks for:

- `participant_joined` of an agent tagged `ecs.task_arn` -> `IndexAgent`: remember room -> task.
- `participant_left` of such an agent, or `room_finished` -> `LookAgain`: the drain of the agent's
  task (found by key: the event's tag, or the room index for `room_finished`) is advanced now if
  it watches the room. The agent's room is marked left in the index (kept a few minutes, for the
  stop of a task that died with its agent to count the caller left behind); a finished room
  leaves it.
- anything else (callers, untagged agents, room_started, tracks, egress...) -> `Ignore`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # The webhook function's cold start parses requests: the drain records come with the service.
    from drain_coordinator.domain.records import DrainRecord

PARTICIPANT_JOINED = "participant_joined"
PARTICIPANT_LEFT = "participant_left"
ROOM_FINISHED = "room_finished"

# livekit-server signs each webhook with a token valid for 5 minutes: an event older than that
# cannot be a first delivery, only a replay.
MAX_EVENT_AGE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class RoomWebhook:
    """The parts of a LiveKit `WebhookEvent` the coordinator reads."""

    event_id: str
    event: str
    created_at: float  # epoch seconds, stamped by livekit-server
    room: str
    participant_identity: str = ""
    # Set only for an AGENT participant carrying the `ecs.task_arn` attribute.
    agent_task_arn: str | None = None


@dataclass(frozen=True, slots=True)
class IndexAgent:
    room: str
    task_arn: str
    identity: str


@dataclass(frozen=True, slots=True)
class LookAgain:
    room: str
    reason: str  # agent_left | room_finished
    # The agent that left (empty for room_finished): its index entry is dropped, not a newer one's.
    identity: str = ""
    # The task of the agent that left (its `ecs.task_arn`): its drain is found by that key.
    # Empty for room_finished: the room index tells the task.
    task_arn: str = ""


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: str


Intent = IndexAgent | LookAgain | Ignore


def intent_of(hook: RoomWebhook) -> Intent:
    if not hook.room:
        return Ignore(reason="no_room")
    if hook.event == ROOM_FINISHED:
        return LookAgain(room=hook.room, reason="room_finished")
    if hook.event not in (PARTICIPANT_JOINED, PARTICIPANT_LEFT):
        return Ignore(reason=f"event_{hook.event or 'unnamed'}")
    if hook.agent_task_arn is None:
        return Ignore(reason="not_a_tagged_agent")
    if hook.event == PARTICIPANT_JOINED:
        return IndexAgent(room=hook.room, task_arn=hook.agent_task_arn, identity=hook.participant_identity)
    return LookAgain(
        room=hook.room, reason="agent_left", identity=hook.participant_identity, task_arn=hook.agent_task_arn
    )


def staleness(created_at: float, now: float, max_age: float = MAX_EVENT_AGE_SECONDS) -> str | None:
    """Why an event cannot be a first delivery at `now`, or None when its age is plausible."""
    if created_at <= 0:
        return "no_created_at"
    if now - created_at > max_age:
        return "too_old"
    if created_at - now > max_age:
        # Beyond any clock skew: the stamp is not livekit-server's.
        return "from_the_future"
    return None


def drains_watching(room: str, drains: Iterable[DrainRecord]) -> list[DrainRecord]:
    """The open drains whose watched rooms include `room`. A drain that has not discovered its
    rooms yet watches none: its next look (reconcile) discovers them."""
    return [d for d in drains if d.is_open and d.watched_rooms is not None and room in d.watched_rooms]


# Sample (Function URL, payload format 2.0; headers arrive lower-cased):
# {"version": "2.0", "routeKey": "$default", "rawPath": "/",
#  "headers": {"authorization": "eyJhbGciOiJIUzI1NiIs...", "content-type": "application/webhook+json", ...},
#  "requestContext": {"http": {"method": "POST", "path": "/", ...}, "requestId": "...", ...},
#  "body": "{\"event\":\"participant_left\",\"room\":{...},\"participant\":{...},\"id\":\"EV_...\",...}",
#  "isBase64Encoded": false}


class BadRequestError(ValueError):
    """The invocation is no Function URL request."""


@dataclass(frozen=True, slots=True)
class UrlRequest:
    method: str
    authorization: str | None
    body: str


def parse_url_request(event: dict[str, Any]) -> UrlRequest:
    """The Function URL request as the webhook handler needs it: method, Authorization, body text."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    if not isinstance(method, str):
        raise BadRequestError("no requestContext.http.method")
    headers = event.get("headers") or {}
    if not isinstance(headers, dict):
        raise BadRequestError("headers is not an object")
    # Function URLs lower-case header names already; other callers may not.
    lowered = {str(k).lower(): v for k, v in headers.items()}
    authorization = lowered.get("authorization")
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        raise BadRequestError("body is not a string")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BadRequestError("body is not base64 of UTF-8 text") from exc
    return UrlRequest(
        method=method.upper(),
        authorization=authorization if isinstance(authorization, str) else None,
        body=raw,
    )
