"""Webhook state in the drain table (DynamoDB): the room -> task index, and the webhooks taken.

Room index items:
  pk          "room#<room name>"
  task_arn    the worker task whose agent joined the room (the agent's `ecs.task_arn`)
  identity    that agent's participant identity (a leave only marks the entry it made)
  left_at     set when that agent's leave webhook came: the entry is kept LEFT_ROOM_KEEP_SECONDS
              more, so the stop of a task whose agent died with it (a crash, its host terminated)
              still finds the rooms whose callers it left on the line, whichever of the leave
              webhook and the ECS "STOPPED" event is handled first
  open_kind   "rooms#<task arn>": the sparse `open-items` index then answers "which rooms does
              this task hold?" with one query per task, beside open drains and task stops
  deadline_at the entry's expiry (the index's range key)
  expires_at  TTL: an entry whose leave webhook was lost goes by itself

Webhook ledger items:
  pk          "webhook#<event id>", written once (conditional): a second delivery is a replay
  in_progress_until  while set, the claim of an invocation still at work; past it (the
              invocation timed out), a retry of the event may take the claim over
  expires_at  TTL, well past the window in which a webhook's token is valid
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import BotoCoreError, ClientError

from drain_coordinator.integrations.aws_clients import describe_error
from drain_coordinator.integrations.store import OPEN_INDEX, StoreError, batch_get, get_item, put_if, write_if

ROOM_KIND = "room"
WEBHOOK_KIND = "webhook"
ROOMS_OF_TASK_PREFIX = "rooms#"
DEFAULT_ROOM_TTL_SECONDS = 24 * 3600  # calls last minutes: a day outlives any of them
DEFAULT_LEDGER_TTL_SECONDS = 3600  # tokens live 5 minutes (+1 of leeway); an hour is ample
# A room its agent left is kept this long: a caller left in silence has hung up by then, so past
# it there is no call left for a task stop to count.
LEFT_ROOM_KEEP_SECONDS = 300
_ROOM_PK_PREFIX = "room#"


class RoomIndex:
    def __init__(
        self,
        table: Any,
        ttl_seconds: int = DEFAULT_ROOM_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._ttl_seconds = ttl_seconds
        self._clock = clock

    def record_agent(self, room: str, task_arn: str, identity: str, at: float) -> None:
        """The agent `identity` of `task_arn` is in `room` (the last agent to join wins)."""
        item = self.item_for(room, task_arn, identity, at)
        try:
            self._table.put_item(Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(describe_error(exc, "index a room")) from exc

    def item_for(self, room: str, task_arn: str, identity: str, at: float) -> dict[str, Any]:
        """The index entry `record_agent` writes."""
        expires_at = int(at + self._ttl_seconds)
        return {
            "pk": _room_pk(room),
            "kind": ROOM_KIND,
            "room": room,
            "task_arn": task_arn,
            "identity": identity,
            "joined_at": _num(at),
            "open_kind": ROOMS_OF_TASK_PREFIX + task_arn,
            "deadline_at": expires_at,
            "expires_at": expires_at,
        }

    def left(self, room: str, identity: str, at: float, keep_seconds: float = LEFT_ROOM_KEEP_SECONDS) -> bool:
        """The agent `identity` left `room`: its entry is marked left and kept `keep_seconds`
        (if that agent made it; False otherwise). A left room is no longer held by the task
        (`rooms_held_by`), but its task's stop still counts a caller still in it."""
        expires_at = int(at + keep_seconds)
        return write_if(
            lambda: self._table.update_item(
                Key={"pk": _room_pk(room)},
                UpdateExpression="SET left_at = :at, expires_at = :exp, deadline_at = :exp",
                ConditionExpression=Attr("pk").exists() & Attr("identity").eq(identity),
                ExpressionAttributeValues={":at": _num(at), ":exp": expires_at},
            ),
            "mark a room left in the index",
        )

    def forget(self, room: str, identity: str = "") -> bool:
        """Drop the room's entry; with `identity`, only if that agent made it. False if none went."""
        condition: ConditionBase = Attr("pk").exists()
        if identity:
            condition = condition & Attr("identity").eq(identity)
        return write_if(
            lambda: self._table.delete_item(Key={"pk": _room_pk(room)}, ConditionExpression=condition),
            "drop a room from the index",
        )

    def task_of(self, room: str) -> str | None:
        """The task whose agent holds `room`, as the webhooks last told it; None if unknown."""
        item = get_item(self._table, _room_pk(room), "read the room index")
        if item is None or self._expired(item):
            return None
        return str(item["task_arn"])

    def rooms_held_by(self, task_arns: Collection[str], *, with_left: bool = False) -> dict[str, str]:
        """room -> task ARN for every indexed room of these tasks (one index query per task);
        `with_left`: also the rooms their agents left in the last LEFT_ROOM_KEEP_SECONDS.

        The index only knows what webhooks told it: a room whose join webhook was lost is
        missing, so a caller that must not miss a room still scans LiveKit to be sure.
        """
        held: dict[str, str] = {}
        for task_arn in sorted(set(task_arns)):
            kwargs: dict[str, Any] = {
                "IndexName": OPEN_INDEX,
                "KeyConditionExpression": Key("open_kind").eq(ROOMS_OF_TASK_PREFIX + task_arn),
            }
            try:
                while True:
                    page = self._table.query(**kwargs)
                    for item in page.get("Items", []):
                        if not self._expired(item) and (with_left or "left_at" not in item):
                            held[str(item["room"])] = task_arn
                    if "LastEvaluatedKey" not in page:
                        break
                    kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(describe_error(exc, "query the room index")) from exc
        return held

    def indexed(self, rooms: Collection[str]) -> set[str]:
        """The names among `rooms` that the index has an entry for (whichever task's, its agent
        still in the room or lately left), read by key, 100 to a BatchGetItem request: an audit
        of R rooms costs ceil(R / 100) reads.

        BatchGetItem answers at most 100 keys (and 16 MB) a request and may hand back some as
        UnprocessedKeys (throttled, or over the size limit), to be asked again.
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html"""
        items = batch_get(self._table, [_room_pk(name) for name in rooms], "read the room index")
        return {str(item["room"]) for item in items if not self._expired(item)}

    def _expired(self, item: dict[str, Any]) -> bool:
        # DynamoDB's TTL deletes late (up to days): an item past its time is gone in all but fact.
        return int(item.get("expires_at", 0)) <= self._clock()


class WebhookLedger:
    """Which webhook events were already taken, so a replayed one is refused.

    A claim is first held in progress until the invocation that made it would have timed out:
    if that invocation dies with it (a Lambda timeout runs no `finally`), LiveKit's retry of the
    same event, after that time, takes the claim over instead of being refused as a replay. The
    same rule as Powertools Idempotency's in-progress expiry; see the README for why the ledger
    stays ours (a replay of a taken event is refused and counted, not answered again).
    """

    def __init__(
        self,
        table: Any,
        ttl_seconds: int = DEFAULT_LEDGER_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._ttl_seconds = ttl_seconds
        self._clock = clock

    def first_sighting(self, event_id: str, created_at: float, hold_seconds: float | None = None) -> bool:
        """Claim the event; False when it was taken before, or is being taken by a live invocation.
        `hold_seconds`: how long the claim stays in progress (the invocation's time left)."""
        now = self._clock()
        item: dict[str, Any] = {
            "pk": _webhook_pk(event_id),
            "kind": WEBHOOK_KIND,
            "created_at": _num(created_at),
            "expires_at": int(created_at + self._ttl_seconds),
        }
        if hold_seconds is not None:
            item["in_progress_until"] = _num(now + hold_seconds)
        abandoned = Attr("in_progress_until").exists() & Attr("in_progress_until").lt(_num(now))
        return put_if(self._table, item, Attr("pk").not_exists() | abandoned, "record a webhook")

    def taken(self, event_id: str) -> None:
        """The event was handled: its claim is final, a replay of it is refused from now on."""
        try:
            self._table.update_item(
                Key={"pk": _webhook_pk(event_id)}, UpdateExpression="REMOVE in_progress_until"
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(describe_error(exc, "record a webhook as taken")) from exc

    def release(self, event_id: str) -> None:
        """Forget the event: its handling failed and LiveKit's retry must be taken, not refused."""
        try:
            self._table.delete_item(Key={"pk": _webhook_pk(event_id)})
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(describe_error(exc, "release a webhook")) from exc


def _room_pk(room: str) -> str:
    return _ROOM_PK_PREFIX + room


def _webhook_pk(event_id: str) -> str:
    return f"webhook#{event_id}"


def _num(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))
