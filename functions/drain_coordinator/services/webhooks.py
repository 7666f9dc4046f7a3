"""LiveKit webhooks: verify, index, look again. An accelerator only: reconcile stays the sure path.

    receive(body, authorization)
      1. verify: livekit-api's WebhookReceiver (JWT signed with the API secret, issued by our API
         key, unexpired, its `sha256` claim the hash of the body) -> else refused
      2. fresh: `created_at` within MAX_EVENT_AGE_SECONDS of now -> else refused as a replay
      3. intent: index an agent's room / look again at the drains watching a room / ignore
      4. first sighting of the event id (ledger) -> else refused as a replay
      5. act: index write, or `Coordinator.advance` on each drain watching the room

Nothing touches a drain before steps 1, 2 and 4 pass. Refusals raise `WebhookRefusedError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from drain_coordinator.domain.records import DrainRecord
from drain_coordinator.domain.webhooks import (
    MAX_EVENT_AGE_SECONDS,
    Ignore,
    IndexAgent,
    LookAgain,
    RoomWebhook,
    drains_watching,
    intent_of,
    staleness,
)
from drain_coordinator.integrations.autoscaling import AutoScalingError
from drain_coordinator.integrations.livekit import SESSION_TAG_ATTRIBUTE, LiveKitCredentials
from drain_coordinator.integrations.store import StoreError
from drain_coordinator.observability import logger
from drain_coordinator.services.drains import DrainStep

if TYPE_CHECKING:
    from livekit.protocol.webhook import WebhookEvent

_BEARER = "Bearer "
_ANSWER_RESERVE_SECONDS = 2.0


class WebhookRefusedError(Exception):
    """The request is not a fresh webhook signed by our LiveKit: answer 401, act on nothing."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DrainsPort(Protocol):
    def drain_of_task(self, task_arn: str) -> DrainRecord | None: ...
    def advance(self, record: DrainRecord, within: float | None = None) -> DrainStep: ...


class RoomIndexPort(Protocol):
    def record_agent(self, room: str, task_arn: str, identity: str, at: float) -> None: ...
    def left(self, room: str, identity: str, at: float) -> bool: ...
    def forget(self, room: str, identity: str = "") -> bool: ...
    def task_of(self, room: str) -> str | None: ...


class WebhookLedgerPort(Protocol):
    def first_sighting(self, event_id: str, created_at: float, hold_seconds: float | None = None) -> bool: ...
    def taken(self, event_id: str) -> None: ...
    def release(self, event_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What one accepted webhook did: the Function URL's 200 body, and a log line."""

    action: str  # indexed | looked_again | ignored
    event: str
    event_id: str
    room: str = ""
    reason: str = ""
    steps: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"action": self.action, "event": self.event, "event_id": self.event_id}
        if self.room:
            body["room"] = self.room
        if self.reason:
            body["reason"] = self.reason
        body["steps"] = list(self.steps)
        return body


@dataclass
class WebhookService:
    credentials: Callable[[], LiveKitCredentials]
    drains: DrainsPort
    index: RoomIndexPort
    ledger: WebhookLedgerPort
    clock: Callable[[], float]
    max_age_seconds: float = MAX_EVENT_AGE_SECONDS

    def receive(
        self, body: str, authorization: str | None, remaining_seconds: Callable[[], float] | None = None
    ) -> WebhookOutcome:
        """`remaining_seconds`: the invocation's time left; it bounds the looks and how long the
        event's claim is held in progress should the invocation time out."""
        hook = _room_webhook(self._verify(body, authorization))
        logger.append_keys(webhookEvent=hook.event, webhookId=hook.event_id, room=hook.room)
        if not hook.event_id:
            raise WebhookRefusedError("unreadable", "the event has no id")
        stale = staleness(hook.created_at, self.clock(), self.max_age_seconds)
        if stale is not None:
            raise WebhookRefusedError("replayed", f"created_at {hook.created_at:.0f} is {stale}")
        intent = intent_of(hook)
        if isinstance(intent, Ignore):
            # Nothing is done for it, so nothing needs guarding against its replay: no ledger write.
            return WebhookOutcome("ignored", hook.event, hook.event_id, hook.room, intent.reason)
        hold = None if remaining_seconds is None else remaining_seconds()
        if not self.ledger.first_sighting(hook.event_id, hook.created_at, hold):
            raise WebhookRefusedError("replayed", f"event {hook.event_id} was taken before")
        try:
            if isinstance(intent, IndexAgent):
                self.index.record_agent(intent.room, intent.task_arn, intent.identity, hook.created_at)
                outcome = WebhookOutcome("indexed", hook.event, hook.event_id, hook.room)
            else:
                outcome = self._look_again(hook, intent, remaining_seconds)
        except BaseException:
            # LiveKit retries a failed delivery with the same event id: let that retry in.
            self.ledger.release(hook.event_id)
            raise
        self.ledger.taken(hook.event_id)
        return outcome

    def _verify(self, body: str, authorization: str | None) -> WebhookEvent:
        token = (authorization or "").strip()
        if token.startswith(_BEARER):
            token = token[len(_BEARER) :].strip()
        if not token:
            raise WebhookRefusedError("unsigned", "no Authorization header")
        # livekit-api's verifier, loaded for a request that carries a token (not at import:
        # cold starts); jwt and protobuf come with it.
        import jwt
        from google.protobuf.json_format import ParseError
        from livekit import api

        creds = self.credentials()
        receiver = api.WebhookReceiver(api.TokenVerifier(creds.api_key, creds.api_secret))
        try:
            return receiver.receive(body, token)
        except jwt.InvalidIssuerError as exc:
            raise WebhookRefusedError("wrong_key", "the token was issued for another API key") from exc
        except jwt.ExpiredSignatureError as exc:
            raise WebhookRefusedError("replayed", "the token has expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise WebhookRefusedError("bad_signature", "not signed with our API secret") from exc
        except jwt.PyJWTError as exc:
            raise WebhookRefusedError("bad_token", type(exc).__name__) from exc
        except ParseError as exc:
            raise WebhookRefusedError("unreadable", "the signed body is no WebhookEvent") from exc
        except Exception as exc:
            # livekit-api raises a bare Exception for a missing or mismatched body hash.
            raise WebhookRefusedError("bad_signature", str(exc)) from exc

    def _look_again(
        self, hook: RoomWebhook, intent: LookAgain, remaining_seconds: Callable[[], float] | None
    ) -> WebhookOutcome:
        steps: list[dict[str, Any]] = []
        # By key, O(1) whatever the number of open drains: the task (the agent's tag, or the
        # index for a finished room), then the drain that saw that task on its instance.
        try:
            task_arn = intent.task_arn or self.index.task_of(intent.room)
            drain = self.drains.drain_of_task(task_arn) if task_arn else None
        except StoreError as exc:
            # A shortcut only: the next reconcile tick looks at every drain anyway.
            logger.warning("drain of the room not found: left to reconcile", extra={"error": str(exc)})
            drain = None
        for record in drains_watching(intent.room, [drain] if drain is not None else []):
            # Keep back a second or two to answer LiveKit and mark the event taken.
            within = None if remaining_seconds is None else remaining_seconds() - _ANSWER_RESERVE_SECONDS
            try:
                steps.append(self.drains.advance(record, within).as_dict())
            except (AutoScalingError, StoreError) as exc:
                # This look failed; the next reconcile tick looks again.
                logger.exception("drain not advanced on a webhook", extra={"instanceID": record.instance_id})
                steps.append({"action": "error", "instance_id": record.instance_id, "error": str(exc)})
            finally:
                logger.remove_keys(["asgName", "lifecycleHookName", "lifecycleActionToken", "instanceID"])
        try:
            if intent.identity:
                # Kept a while, marked left: if the agent died with its task (a crash, its host
                # terminated), that task's stop still finds the room and counts its caller.
                self.index.left(intent.room, intent.identity, hook.created_at)
            else:
                self.index.forget(intent.room)
        except StoreError as exc:
            # The index is a shortcut, never the truth: its entry's TTL removes it anyway.
            logger.warning("room not dropped from the index", extra={"error": str(exc)})
        return WebhookOutcome(
            "looked_again" if steps else "ignored",
            hook.event,
            hook.event_id,
            hook.room,
            intent.reason if steps else "no_drain_watches_the_room",
            tuple(steps),
        )


def _room_webhook(event: WebhookEvent) -> RoomWebhook:
    from livekit.protocol.models import ParticipantInfo

    participant = event.participant if event.HasField("participant") else None
    task_arn: str | None = None
    if participant is not None and participant.kind == ParticipantInfo.Kind.AGENT:
        task_arn = participant.attributes.get(SESSION_TAG_ATTRIBUTE) or None
    return RoomWebhook(
        event_id=event.id,
        event=event.event,
        created_at=float(event.created_at),
        room=event.room.name if event.HasField("room") else "",
        participant_identity=participant.identity if participant is not None else "",
        agent_task_arn=task_arn,
    )
