"""The rescue ledger, in the drain table: one item per rescued call, so a second rescue of the
same call is refused while one runs, whichever function or invocation asks.

Item layout:
  pk          "rescue#<room>"
  kind        "rescue"
  status      running | rescued | failed; a new rescue may start only when it is not running
  version     optimistic lock: every update is conditional on the version read
  expires_at  TTL, from the start: a ledger entry outlives any call
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr

from drain_coordinator.domain.rescue import Danger, RescueFailure, RescueRecord, RescueStatus
from drain_coordinator.integrations.store import (
    StaleDrainError,
    get_item,
    put_if,
    put_if_version,
)

RESCUE_KIND = "rescue"
_TTL_SECONDS = 2 * 86400


class RescueStore:
    def __init__(self, table: Any, ttl_seconds: int = _TTL_SECONDS) -> None:
        self._table = table
        self._ttl_seconds = ttl_seconds

    def get(self, room: str) -> RescueRecord | None:
        item = get_item(self._table, _pk(room), "read a rescue")
        return None if item is None else _from_item(item)

    def begin(self, record: RescueRecord) -> RescueRecord | None:
        """Start a rescue of `record.room`: None when one runs already (the write that lost).
        A room rescued before (its new worker doomed in turn) may be rescued again."""
        earlier = self.get(record.room)
        if earlier is not None and earlier.running:
            return None
        attempts = (earlier.attempts + 1) if earlier is not None else 1
        version = (earlier.version + 1) if earlier is not None else 0
        fresh = replace(record, attempts=attempts, version=version)
        condition = (
            Attr("pk").not_exists()
            if earlier is None
            else Attr("version").eq(earlier.version) & Attr("status").ne(RescueStatus.RUNNING.value)
        )
        if not put_if(self._table, _to_item(fresh, self._ttl_seconds), condition, "start a rescue"):
            return None
        return fresh

    def save(self, record: RescueRecord) -> RescueRecord:
        saved = replace(record, version=record.version + 1)
        if not put_if_version(
            self._table, _to_item(saved, self._ttl_seconds), record.version, "save a rescue"
        ):
            raise StaleDrainError(f"rescue of {record.room} changed since it was read")
        return saved


def _pk(room: str) -> str:
    return f"rescue#{room}"


def _to_item(record: RescueRecord, ttl_seconds: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": _pk(record.room),
        "kind": RESCUE_KIND,
        "room": record.room,
        "from_task": record.from_task,
        "danger": record.danger.value,
        "started_at": _num(record.started_at),
        "status": record.status.value,
        "dispatch_id": record.dispatch_id,
        "to_task": record.to_task,
        "attempts": record.attempts,
        "version": record.version,
        "expires_at": int(record.started_at + ttl_seconds),
    }
    if record.reason is not None:
        item["reason"] = record.reason.value
    if record.ended_at is not None:
        item["ended_at"] = _num(record.ended_at)
    if record.gap_seconds is not None:
        item["gap_seconds"] = _num(record.gap_seconds)
    return item


def _from_item(item: dict[str, Any]) -> RescueRecord:
    reason = item.get("reason")
    return RescueRecord(
        room=str(item["room"]),
        from_task=str(item["from_task"]),
        danger=Danger(str(item["danger"])),
        started_at=float(item["started_at"]),
        status=RescueStatus(str(item["status"])),
        dispatch_id=str(item.get("dispatch_id", "")),
        reason=RescueFailure(str(reason)) if reason else None,
        ended_at=float(item["ended_at"]) if "ended_at" in item else None,
        gap_seconds=float(item["gap_seconds"]) if "gap_seconds" in item else None,
        to_task=str(item.get("to_task", "")),
        attempts=int(item.get("attempts", 1)),
        version=int(item.get("version", 0)),
    )


def _num(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))
