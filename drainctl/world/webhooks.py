"""LiveKit's webhooks as the local world sends them: signed like livekit-server, delivered to the
webhook function as Function URL invocations.

livekit-server builds a `livekit.WebhookEvent` for each room and participant change, stamps it
with an id (`EV_` + 12 characters) and `created_at` (epoch seconds), marshals it with protojson
(lowerCamelCase names, 64-bit integers as strings, enums by name, unset fields left out, fields
in declaration order), and POSTs those exact bytes with:

    Authorization: <JWT, HS256 with the API secret: iss = API key, nbf = now, exp = now + 5 min,
                    sha256 = base64(SHA-256(body))>          (the bare token, no "Bearer ")
    Content-Type: application/webhook+json

It sends from a queue, never inline with the change: `LiveKitWebhookSender` queues what
`LocalLiveKit.on_room_event` reports and sends when the world says so (once per step, after the
fleet moved), so a handler never runs inside a LiveKit request or a fleet update.

The token's `nbf`/`exp` are wall time, as the verifier checks them (livekit-api, PyJWT);
`created_at` is the world's virtual clock, as the coordinator's replay check reads it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, Generic, TypeVar

import jwt
from google.protobuf.descriptor import Descriptor
from google.protobuf.json_format import MessageToDict, ParseDict
from livekit.protocol.webhook import WebhookEvent

WEBHOOK_FUNCTION: Final = "WebhookFunction"
CONTENT_TYPE: Final = "application/webhook+json"
TOKEN_VALIDITY_SECONDS: Final = 300  # livekit-server: SetValidFor(5 * time.Minute)
# What the local world calls its function URL (a real one is https://<id>.lambda-url.<region>.on.aws/).
URL_ID: Final = "localwebhook00000000000000000000"
URL_HOST: Final = f"{URL_ID}.lambda-url.us-east-1.on.aws"
_SOURCE_IP: Final = "127.0.0.1"
_USER_AGENT: Final = "Go-http-client/1.1"

T = TypeVar("T")


# --- the body and its signature --------------------------------------------------------------


def webhook_body(event: str, info: Mapping[str, Any], *, event_id: str, created_at: float) -> str:
    """The JSON livekit-server posts for `event`; `info` as `LocalLiveKit.on_room_event` gives it."""
    message = WebhookEvent(event=event, id=event_id, created_at=int(created_at))
    if "room" in info:
        ParseDict(info["room"], message.room, ignore_unknown_fields=True)
    if "participant" in info:
        ParseDict(info["participant"], message.participant, ignore_unknown_fields=True)
    return protojson(message)


def protojson(message: Any) -> str:
    """Compact protobuf JSON with fields in declaration order, as Go's protojson.Marshal writes."""
    as_dict = MessageToDict(message)
    return json.dumps(_in_declaration_order(as_dict, message.DESCRIPTOR), separators=(",", ":"))


def _in_declaration_order(value: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    ordered: dict[str, Any] = {}
    for fd in descriptor.fields:
        if fd.json_name not in value:
            continue
        item = value[fd.json_name]
        nested = fd.message_type
        if nested is not None and nested.GetOptions().map_entry:
            item = dict(sorted(item.items()))  # Go marshals map entries sorted by key
        elif nested is not None and isinstance(item, dict):
            item = _in_declaration_order(item, nested)
        elif nested is not None and isinstance(item, list):
            item = [_in_declaration_order(v, nested) if isinstance(v, dict) else v for v in item]
        ordered[fd.json_name] = item
    return ordered


def sign(body: str, api_key: str, api_secret: str, *, now: float | None = None) -> str:
    """The Authorization value livekit-server sends with `body`: a bare JWT."""
    issued = int(time.time() if now is None else now)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    claims = {"iss": api_key, "nbf": issued, "exp": issued + TOKEN_VALIDITY_SECONDS, "sha256": digest}
    return jwt.encode(claims, api_secret, algorithm="HS256")


# --- the Function URL request ----------------------------------------------------------------


def function_url_event(
    body: str, authorization: str | None, *, at: float, request_id: str | None = None
) -> dict[str, Any]:
    """The Lambda Function URL event (payload format 2.0) for a POST of `body` with that header."""
    headers = {
        "accept-encoding": "gzip",
        "content-length": str(len(body.encode())),
        "content-type": CONTENT_TYPE,
        "host": URL_HOST,
        "user-agent": _USER_AGENT,
        "x-amzn-tls-cipher-suite": "TLS_AES_128_GCM_SHA256",
        "x-amzn-tls-version": "TLSv1.3",
        "x-forwarded-for": _SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if authorization is not None:
        headers["authorization"] = authorization
    moment = datetime.fromtimestamp(at, tz=UTC)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": dict(sorted(headers.items())),
        "requestContext": {
            "accountId": "anonymous",
            "apiId": URL_ID,
            "domainName": URL_HOST,
            "domainPrefix": URL_ID,
            "http": {
                "method": "POST",
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": _SOURCE_IP,
                "userAgent": _USER_AGENT,
            },
            "requestId": request_id or str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(at * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }


def resign(
    event: Mapping[str, Any], api_key: str, api_secret: str, *, now: float | None = None
) -> dict[str, Any]:
    """A recorded Function URL event with a fresh Authorization over its unchanged body.

    A recorded token is only good for five minutes after it was minted; replaying a recorded
    webhook (tests, `sam local invoke`) signs its body again with the key and secret at hand.
    """
    renewed = json.loads(json.dumps(event))
    body = request_body(renewed)
    renewed["headers"]["authorization"] = sign(body, api_key, api_secret, now=now)
    return dict(renewed)


def request_body(event: Mapping[str, Any]) -> str:
    """The body of a Function URL event, decoded if Lambda base64-encoded it."""
    raw = str(event.get("body") or "")
    if event.get("isBase64Encoded"):
        return base64.b64decode(raw).decode()
    return raw


def decoded_response(response: Any) -> dict[str, Any]:
    """A Function URL response with its JSON body read: {"statusCode": ..., **body}."""
    if not isinstance(response, dict):
        return {"statusCode": 200, "body": response}
    decoded: dict[str, Any] = {"statusCode": response.get("statusCode", 200)}
    try:
        body = json.loads(response.get("body") or "{}")
    except (TypeError, ValueError):
        body = {"body": response.get("body")}
    if isinstance(body, dict):
        decoded.update(body)
    return decoded


# --- the sender ------------------------------------------------------------------------------


# livekit-server's webhook notifier: 10 workers, 100 queued each, dropped when full
# (livekit/protocol, webhook/url_notifier.go, DefaultURLNotifierConfig).
NOTIFIER_WORKERS: Final = 10
NOTIFIER_QUEUE_SIZE: Final = 100


class LiveKitWebhookSender(Generic[T]):
    """Queues LocalLiveKit's room events and sends each as a signed webhook through `send`.

    Wire it with `livekit.on_room_event = sender.on_room_event`; call `send_queued()` when the
    webhooks should arrive. `send` receives the Function URL event and returns what the
    invocation reported. Set `paused` to hold webhooks back (LiveKit cannot reach the URL);
    `dropped` counts events discarded by `drop_queued()` (lost webhooks).
    """

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        clock: Callable[[], float],
        send: Callable[[dict[str, Any]], T],
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.paused = False
        self.dropped = 0
        self.sent: list[dict[str, Any]] = []
        self._clock = clock
        self._send = send
        # Its own generator: sending webhooks must not shift the world's seeded choices.
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._queue: list[tuple[str, dict[str, Any], float]] = []

    def on_room_event(self, event: str, info: dict[str, Any]) -> None:
        # May be called from LiveKit's request threads: only queue here.
        with self._lock:
            self._queue.append((event, info, self._clock()))

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def drop_queued(self) -> int:
        with self._lock:
            lost, self._queue = len(self._queue), []
        self.dropped += lost
        return lost

    def send_queued(self) -> list[T]:
        if self.paused:
            return []
        with self._lock:
            batch, self._queue = self._queue, []
        return [self._send(self._request(event, info, at)) for event, info, at in batch]

    def lanes(self) -> list[Callable[[], list[T]]]:
        """The queued webhooks as livekit-server's URL notifier sends them: a pool of
        `NOTIFIER_WORKERS` workers, each event on the worker its key (the room) picks, so one
        room's webhooks keep their order; a worker queues at most `NOTIFIER_QUEUE_SIZE` and drops
        what comes beyond (livekit/protocol, webhook/url_notifier.go: DefaultURLNotifierConfig,
        DropWhenFull). One sending function a worker, to run side by side."""
        if self.paused:
            return []
        with self._lock:
            batch, self._queue = self._queue, []
        by_worker: dict[int, list[tuple[str, dict[str, Any], float]]] = {}
        for item in batch:
            room = str(item[1].get("room", {}).get("name", "")) if isinstance(item[1], Mapping) else ""
            by_worker.setdefault(zlib.crc32(room.encode()) % NOTIFIER_WORKERS, []).append(item)
        out: list[Callable[[], list[T]]] = []
        for queue in by_worker.values():
            kept = queue[:NOTIFIER_QUEUE_SIZE]
            self.dropped += len(queue) - len(kept)
            out.append(partial(self._send_all, kept))
        return out

    def _send_all(self, items: list[tuple[str, dict[str, Any], float]]) -> list[T]:
        return [self._send(self._request(event, info, at)) for event, info, at in items]

    def _request(self, event: str, info: Mapping[str, Any], at: float) -> dict[str, Any]:
        body = webhook_body(event, info, event_id=self._event_id(), created_at=at)
        request = function_url_event(
            body,
            sign(body, self.api_key, self.api_secret),
            at=self._clock(),
            request_id=str(uuid.UUID(int=self._random.getrandbits(128))),
        )
        self.sent.append(request)
        return request

    def _event_id(self) -> str:
        alphabet = string.ascii_letters + string.digits
        return "EV_" + "".join(self._random.choice(alphabet) for _ in range(12))
