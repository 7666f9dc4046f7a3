"""Call checkpoints: a session's conversation and registered state, saved at every turn, read back
by the rescue job that carries the call on (livekit_drain_worker.rescue).

No livekit import here: the codec and the store work on plain JSON-able data, so they are tested
without livekit-agents (tests/worker/test_checkpoints.py, against moto).

A checkpoint is one DynamoDB item per room in the stack's checkpoint table (`CheckpointTable`,
KMS-encrypted, readable and writable by the worker role only):

  room        the call's room (the key; the rescue's dispatch metadata names it)
  turn        how many turns were saved: a write never goes backwards (an old agent that is
              leaving cannot overwrite what the new one saved)
  body        zlib-compressed JSON {"history": ChatContext.to_dict(), "state": {...}}
  dropped     oldest history items left out to fit the item size limit
  saved_at, from_task, expires_at (TTL)

DynamoDB items are at most 400 KB, names and values included
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items):
the codec keeps the body under `MAX_BODY_BYTES` by leaving out the oldest history items first
(the registered state is never cut: too large a state is an error).
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# Room for the item's other attributes below DynamoDB's 400 KB (409,600 bytes).
MAX_BODY_BYTES = 380_000
DEFAULT_TTL_HOURS = 24


class CheckpointError(Exception):
    """A checkpoint could not be saved or read (DynamoDB refused, too large a state)."""


@dataclass(frozen=True)
class Checkpoint:
    room: str
    turn: int
    # ChatContext.to_dict() of the session's history: {"items": [...]}
    history: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # what the agent registered
    from_task: str = ""
    saved_at: float = 0.0
    dropped: int = 0  # oldest history items left out to fit the item size limit


def encode(checkpoint: Checkpoint, max_bytes: int = MAX_BODY_BYTES) -> tuple[bytes, int]:
    """The compressed body and how many of the oldest history items it leaves out to fit."""
    items = list(checkpoint.history.get("items", []))
    rest = {k: v for k, v in checkpoint.history.items() if k != "items"}
    low, high = 0, len(items)
    # The fewest items to leave out: bodies shrink as items go, so search for the first fit.
    best: bytes | None = None
    best_dropped = 0
    while low <= high:
        drop = (low + high) // 2
        body = _compress({"history": {**rest, "items": items[drop:]}, "state": checkpoint.state})
        if len(body) <= max_bytes:
            best, best_dropped = body, drop
            high = drop - 1
        else:
            low = drop + 1
    if best is None:
        raise CheckpointError(
            f"the registered state alone is {len(_compress({'state': checkpoint.state}))} bytes "
            f"compressed: over the {max_bytes}-byte checkpoint limit"
        )
    return best, best_dropped


def decode(room: str, item: Mapping[str, Any]) -> Checkpoint:
    raw = item["body"]
    data = json.loads(zlib.decompress(bytes(raw.value if hasattr(raw, "value") else raw)))
    return Checkpoint(
        room=room,
        turn=int(item.get("turn", 0)),
        history=dict(data.get("history", {})),
        state=dict(data.get("state", {})),
        from_task=str(item.get("from_task", "")),
        saved_at=float(item.get("saved_at", 0)),
        dropped=int(item.get("dropped", 0)),
    )


def _compress(data: Mapping[str, Any]) -> bytes:
    return zlib.compress(json.dumps(data, separators=(",", ":"), sort_keys=True).encode(), level=6)


class CheckpointStore:
    """The checkpoint table, through a boto3 Table resource."""

    def __init__(self, table: Any, ttl_hours: int = DEFAULT_TTL_HOURS) -> None:
        self._table = table
        self._ttl_seconds = ttl_hours * 3600

    def save(self, checkpoint: Checkpoint, now: float | None = None) -> bool:
        """Write the checkpoint unless a later turn is stored already; False when one is."""
        at = time.time() if now is None else now
        body, dropped = encode(checkpoint)
        item = {
            "room": checkpoint.room,
            "turn": checkpoint.turn,
            "body": body,
            "dropped": dropped,
            "from_task": checkpoint.from_task,
            "saved_at": int(at),
            "expires_at": int(at + self._ttl_seconds),
        }
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(#room) OR #turn <= :turn",
                ExpressionAttributeNames={"#room": "room", "#turn": "turn"},
                ExpressionAttributeValues={":turn": checkpoint.turn},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise CheckpointError(f"could not save the checkpoint of {checkpoint.room}: {exc}") from exc
        except BotoCoreError as exc:
            raise CheckpointError(f"could not save the checkpoint of {checkpoint.room}: {exc}") from exc
        return True

    def load(self, room: str, now: float | None = None) -> Checkpoint | None:
        """The room's checkpoint; None when there is none (or its TTL has passed: DynamoDB
        deletes expired items late, so expiry is checked here too)."""
        try:
            item = self._table.get_item(Key={"room": room}, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise CheckpointError(f"could not read the checkpoint of {room}: {exc}") from exc
        at = time.time() if now is None else now
        if item is None or float(item.get("expires_at", at + 1)) <= at:
            return None
        return decode(room, item)
