"""The drain table (DynamoDB): conditional writes, a sparse index of open drains, TTL.

Item layout (one table, `pk` only):
  pk          "drain#<instance id>"
  open_kind   "drain" while open, removed on close: the sparse GSI `open-items` holds open drains only
  deadline_at the GSI's range key, so reconcile reads the most urgent drains first
  version     optimistic lock: every save is conditional on the version read
  expires_at  TTL, set when the drain closes

A run's looks that saved nothing, one item a run (`record_looks`):
  pk          "looks#<run>"
  looks       instance id -> when the run looked at it
  open_kind   "looks", deadline_at until when the ticks read it, expires_at the same, for TTL.
              TTL deletes late (typically within two days), and an expired item still shows in
              queries until then: the tick's key condition on deadline_at leaves those out.
              https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ttl-expired-items.html
              The index is read eventually consistent: a record written a moment before the
              tick may be missed, and its drains then count as not looked at (first next tick).
              https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import BotoCoreError, ClientError

from drain_coordinator.domain.records import (
    DrainOutcome,
    DrainRecord,
    DrainStatus,
    LifecycleRef,
)
from drain_coordinator.domain.task_stops import TaskStopRecord, TaskStopStatus, Verdict
from drain_coordinator.integrations.aws_clients import describe_error, error_code

OPEN_INDEX = "open-items"
DRAIN_KIND = "drain"
TASK_STOP_KIND = "task_stop"
LOOKS_KIND = "looks"
# Looks in one item: about 40 bytes each, so an item stays far under DynamoDB's 400 KB.
_LOOKS_PER_ITEM = 5000


_OPEN_PAGE_SIZE = 100
TASK_DRAIN_KIND = "task_drain"
BATCH_GET_KEYS = 100  # BatchGetItem's limit per request
_BATCH_GET_ATTEMPTS = 3  # botocore retries throttled requests itself; this is for UnprocessedKeys
_BATCH_GET_BACKOFF_SECONDS = 0.05


class StaleDrainError(Exception):
    """Someone else saved this drain since it was read: re-read, decide again."""


class StoreError(Exception):
    """DynamoDB refused or failed a call after retries."""


class DrainStore:
    def __init__(self, table: Any, ttl_days: int = 30) -> None:
        self._table = table
        self._ttl_seconds = ttl_days * 86400

    def open_drain(self, record: DrainRecord) -> bool:
        """Save a new drain; False when one already exists for the instance (duplicate event)."""
        return put_new(self._table, _to_item(record, self._ttl_seconds), "open a drain")

    def get(self, instance_id: str) -> DrainRecord | None:
        item = get_item(self._table, _pk(instance_id), "read a drain")
        return None if item is None else _from_item(item)

    def open_drains(self) -> Iterator[DrainRecord]:
        """Open drains only, most urgent deadline first (the sparse index holds nothing else)."""
        for item in _open_items(self._table, DRAIN_KIND):
            yield _from_item(item)

    def get_many(self, instance_ids: Collection[str]) -> dict[str, DrainRecord]:
        """The drains of these instances that exist, read by key, 100 to a request."""
        items = batch_get(self._table, [_pk(i) for i in instance_ids], "read drains")
        return {r.instance_id: r for r in map(_from_item, items)}

    def point_tasks(self, instance_id: str, task_arns: Collection[str], at: float) -> None:
        """Remember which drain each of these tasks belongs to, so an event about a task (its
        STOPPED, its agent leaving a room) finds its drain by key, not by reading every open one."""
        try:
            with self._table.batch_writer() as batch:
                for arn in sorted(set(task_arns)):
                    batch.put_item(
                        Item={
                            "pk": _task_drain_pk(arn),
                            "kind": TASK_DRAIN_KIND,
                            "instance_id": instance_id,
                            "expires_at": int(at + self._ttl_seconds),
                        }
                    )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(describe_error(exc, "point tasks at their drain")) from exc

    def drain_of_task(self, task_arn: str) -> DrainRecord | None:
        """The drain of the instance this task ran on, if a drain has seen the task."""
        pointer = get_item(self._table, _task_drain_pk(task_arn), "read a task's drain")
        if pointer is None:
            return None
        return self.get(str(pointer["instance_id"]))

    def record_looks(self, run: str, looks: Mapping[str, float], until: float) -> None:
        """One run's looks that changed nothing but their own time (instance id -> when), in one
        item (a few for a very long run) instead of a write per drain; read by `recent_looks`
        until `until`."""
        ordered = sorted(looks.items())
        try:
            for part, start in enumerate(range(0, len(ordered), _LOOKS_PER_ITEM)):
                chunk = ordered[start : start + _LOOKS_PER_ITEM]
                self._table.put_item(
                    Item={
                        "pk": f"looks#{run}" + (f"#{part}" if part else ""),
                        "kind": LOOKS_KIND,
                        "open_kind": LOOKS_KIND,
                        "deadline_at": _num(until),
                        "expires_at": int(until) + 1,
                        "looks": {instance_id: _num(at) for instance_id, at in chunk},
                    }
                )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(describe_error(exc, "record a run's looks")) from exc

    def recent_looks(self, now: float) -> dict[str, float]:
        """Instance id -> its latest look among the runs' records still read at `now`."""
        latest: dict[str, float] = {}
        for item in _open_items(self._table, LOOKS_KIND, after=now):
            for instance_id, at in item.get("looks", {}).items():
                latest[str(instance_id)] = max(float(at), latest.get(str(instance_id), float("-inf")))
        return latest

    def item_for(self, record: DrainRecord) -> dict[str, Any]:
        """The item `open_drain` and `save` write for `record` (as it is, version included)."""
        return _to_item(record, self._ttl_seconds)

    def save(self, record: DrainRecord) -> DrainRecord:
        """Write `record` if nobody saved the drain since it was read; returns it with version + 1."""
        saved = _bump(record)
        if not put_if_version(
            self._table, _to_item(saved, self._ttl_seconds), record.version, "save a drain"
        ):
            raise StaleDrainError(f"drain for {record.instance_id} changed since it was read")
        return saved


def _bump(record: DrainRecord) -> DrainRecord:
    return replace(record, version=record.version + 1)


def _pk(instance_id: str) -> str:
    return f"drain#{instance_id}"


def _to_item(record: DrainRecord, ttl_seconds: int) -> dict[str, Any]:
    ref = record.lifecycle
    item: dict[str, Any] = {
        "pk": _pk(ref.instance_id),
        "kind": DRAIN_KIND,
        "asg_name": ref.asg_name,
        "hook_name": ref.hook_name,
        "instance_id": ref.instance_id,
        "action_token": ref.action_token,
        "cluster": record.cluster,
        "hook_started_at": _num(record.hook_started_at),
        "deadline_at": _num(record.deadline_at),
        "heartbeat_timeout": record.heartbeat_timeout,
        "last_heartbeat_at": _num(record.last_heartbeat_at),
        "opened_at": _num(record.opened_at),
        "status": record.status.value,
        "rooms_final": record.rooms_final,
        "rooms_audited": record.rooms_audited,
        "heartbeats": record.heartbeats,
        "probe_errors": record.probe_errors,
        "dropped_sessions": record.dropped_sessions,
        "version": record.version,
    }
    if record.container_instance_arn is not None:
        item["container_instance_arn"] = record.container_instance_arn
    if record.watched_rooms is not None:
        item["watched_rooms"] = dict(record.watched_rooms)
    if record.known_tasks is not None:
        item["known_tasks"] = list(record.known_tasks)
    if record.sessions_remaining is not None:
        item["sessions_remaining"] = record.sessions_remaining
    if record.tasks_remaining is not None:
        item["tasks_remaining"] = record.tasks_remaining
    if record.looked_at is not None:
        item["looked_at"] = _num(record.looked_at)
    if record.extra:
        item["extra"] = dict(record.extra)
    if record.is_open:
        item["open_kind"] = DRAIN_KIND
    else:
        item["outcome"] = record.outcome.value if record.outcome else None
        item["closed_at"] = _num(record.closed_at or 0.0)
        item["expires_at"] = int((record.closed_at or 0.0) + ttl_seconds)
    return item


def _from_item(item: dict[str, Any]) -> DrainRecord:
    outcome = item.get("outcome")
    return DrainRecord(
        lifecycle=LifecycleRef(
            asg_name=str(item["asg_name"]),
            hook_name=str(item["hook_name"]),
            instance_id=str(item["instance_id"]),
            action_token=str(item["action_token"]),
        ),
        cluster=str(item["cluster"]),
        container_instance_arn=_opt_str(item.get("container_instance_arn")),
        hook_started_at=float(item["hook_started_at"]),
        deadline_at=float(item["deadline_at"]),
        heartbeat_timeout=int(item["heartbeat_timeout"]),
        last_heartbeat_at=float(item["last_heartbeat_at"]),
        opened_at=float(item["opened_at"]),
        status=DrainStatus(item["status"]),
        watched_rooms=(
            {str(k): str(v) for k, v in item["watched_rooms"].items()} if "watched_rooms" in item else None
        ),
        rooms_final=bool(item.get("rooms_final", False)),
        rooms_audited=bool(item.get("rooms_audited", False)),
        known_tasks=tuple(str(t) for t in item["known_tasks"]) if "known_tasks" in item else None,
        heartbeats=int(item.get("heartbeats", 0)),
        probe_errors=int(item.get("probe_errors", 0)),
        sessions_remaining=_opt_int(item.get("sessions_remaining")),
        tasks_remaining=_opt_int(item.get("tasks_remaining")),
        outcome=DrainOutcome(outcome) if outcome else None,
        dropped_sessions=int(item.get("dropped_sessions", 0)),
        closed_at=float(item["closed_at"]) if "closed_at" in item else None,
        looked_at=float(item["looked_at"]) if "looked_at" in item else None,
        version=int(item.get("version", 0)),
        extra={str(k): str(v) for k, v in item.get("extra", {}).items()},
    )


def _num(value: float) -> Decimal:
    # DynamoDB numbers go through Decimal; millisecond precision is plenty for a drain.
    return Decimal(str(round(value, 3)))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class TaskStopStore:
    """Task-stop records in the same table: pk "task#<task arn>", open ones in the sparse index."""

    def __init__(self, table: Any, ttl_days: int = 30) -> None:
        self._table = table
        self._ttl_seconds = ttl_days * 86400

    def get(self, task_arn: str) -> TaskStopRecord | None:
        item = get_item(self._table, _task_pk(task_arn), "read a task stop")
        return None if item is None else _task_from_item(item)

    def create(self, record: TaskStopRecord) -> bool:
        """Save a new record; False when one exists already (a duplicate or late event)."""
        return put_new(self._table, _task_to_item(record, self._ttl_seconds), "open a task stop")

    def save(self, record: TaskStopRecord) -> TaskStopRecord:
        saved = replace(record, version=record.version + 1)
        if not put_if_version(
            self._table, _task_to_item(saved, self._ttl_seconds), record.version, "save a task stop"
        ):
            raise StaleDrainError(f"task stop {record.task_arn} changed since it was read")
        return saved

    def open_stops(self) -> Iterator[TaskStopRecord]:
        for item in _open_items(self._table, TASK_STOP_KIND):
            yield _task_from_item(item)

    def get_many(self, task_arns: Collection[str]) -> dict[str, TaskStopRecord]:
        """The task stops of these tasks that exist, read by key, 100 to a request."""
        items = batch_get(self._table, [_task_pk(a) for a in task_arns], "read task stops")
        return {r.task_arn: r for r in map(_task_from_item, items)}


def batch_get(table: Any, pks: Collection[str], what: str) -> list[dict[str, Any]]:
    """The items with these keys that exist, strongly consistent, 100 keys to a BatchGetItem
    (its limit), keys left unprocessed (throttled, over 16 MB) asked again after a pause.
    https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html"""
    wanted = sorted(set(pks))
    client, name = table.meta.client, table.name
    found: list[dict[str, Any]] = []
    for start in range(0, len(wanted), BATCH_GET_KEYS):
        # The table resource's client (de)serialises DynamoDB's typed values itself.
        keys: list[dict[str, Any]] = [{"pk": pk} for pk in wanted[start : start + BATCH_GET_KEYS]]
        for attempt in range(_BATCH_GET_ATTEMPTS):
            if attempt:
                time.sleep(_BATCH_GET_BACKOFF_SECONDS * 2**attempt)
            try:
                answer = client.batch_get_item(RequestItems={name: {"Keys": keys, "ConsistentRead": True}})
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(describe_error(exc, what)) from exc
            found += [dict(item) for item in answer.get("Responses", {}).get(name, [])]
            keys = answer.get("UnprocessedKeys", {}).get(name, {}).get("Keys", [])
            if not keys:
                break
        else:
            raise StoreError(f"{what}: keys left unprocessed after retries")
    return found


def get_item(table: Any, pk: str, what: str) -> dict[str, Any] | None:
    try:
        item = table.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(describe_error(exc, what)) from exc
    return None if item is None else dict(item)


def put_new(table: Any, item: dict[str, Any], what: str) -> bool:
    """Write an item that must not exist yet; False when it does (the write that lost)."""
    return _put_if(table, item, Attr("pk").not_exists(), what)


def put_if_version(table: Any, item: dict[str, Any], version: int, what: str) -> bool:
    """Replace an item still at `version`; False when someone saved it since (optimistic lock)."""
    return _put_if(table, item, Attr("version").eq(version), what)


def put_if(table: Any, item: dict[str, Any], condition: Any, what: str) -> bool:
    """Write an item if `condition` holds for the one stored; False when it does not."""
    return _put_if(table, item, condition, what)


def _put_if(table: Any, item: dict[str, Any], condition: Any, what: str) -> bool:
    return write_if(lambda: table.put_item(Item=item, ConditionExpression=condition), what)


def write_if(write: Callable[[], Any], what: str) -> bool:
    """Run one conditional write (put, update or delete with a ConditionExpression): False when
    its condition did not hold, StoreError when the table could not be written."""
    try:
        write()
    except BotoCoreError as exc:
        raise StoreError(describe_error(exc, what)) from exc
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise StoreError(describe_error(exc, what)) from exc
    return True


def _open_items(table: Any, kind: str, after: float | None = None) -> Iterator[dict[str, Any]]:
    """Every item of one kind in the sparse open-items index (with `after`, those whose
    deadline_at is later), page by page, by deadline."""
    condition: ConditionBase = Key("open_kind").eq(kind)
    if after is not None:
        condition = condition & Key("deadline_at").gt(_num(after))
    kwargs: dict[str, Any] = {
        "IndexName": OPEN_INDEX,
        "KeyConditionExpression": condition,
        # Bounded pages: each request answers in a bounded time, well inside its read timeout.
        "Limit": _OPEN_PAGE_SIZE,
    }
    try:
        while True:
            page = table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(describe_error(exc, f"list open {kind} items")) from exc


def _task_pk(task_arn: str) -> str:
    return f"task#{task_arn}"


def _task_drain_pk(task_arn: str) -> str:
    return f"task-drain#{task_arn}"


def _task_to_item(record: TaskStopRecord, ttl_seconds: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": _task_pk(record.task_arn),
        "kind": TASK_STOP_KIND,
        "task_arn": record.task_arn,
        "cluster_arn": record.cluster_arn,
        "service": record.service,
        "family": record.family,
        "stopping_at": _num(record.stopping_at),
        "stop_timeout": record.stop_timeout,
        "deadline_at": _num(record.kill_at),
        "opened_at": _num(record.opened_at),
        "watched_rooms": dict(record.watched_rooms),
        "at_risk_warned": record.at_risk_warned,
        "status": record.status.value,
        "dropped_sessions": record.dropped_sessions,
        "reason": record.reason,
        "version": record.version,
    }
    if record.container_instance_arn:
        item["container_instance_arn"] = record.container_instance_arn
    if record.sessions_remaining is not None:
        item["sessions_remaining"] = record.sessions_remaining
    if record.exit_code is not None:
        item["exit_code"] = record.exit_code
    if record.is_open:
        item["open_kind"] = TASK_STOP_KIND
    else:
        item["verdict"] = record.verdict.value if record.verdict else None
        stopped_at = record.stopped_at or record.opened_at
        item["stopped_at"] = _num(stopped_at)
        item["expires_at"] = int(stopped_at + ttl_seconds)
    return item


def _task_from_item(item: dict[str, Any]) -> TaskStopRecord:
    verdict = item.get("verdict")
    return TaskStopRecord(
        task_arn=str(item["task_arn"]),
        cluster_arn=str(item["cluster_arn"]),
        container_instance_arn=_opt_str(item.get("container_instance_arn")),
        service=str(item.get("service", "")),
        family=str(item.get("family", "")),
        stopping_at=float(item["stopping_at"]),
        stop_timeout=int(item["stop_timeout"]),
        opened_at=float(item["opened_at"]),
        watched_rooms={str(k): str(v) for k, v in item.get("watched_rooms", {}).items()},
        sessions_remaining=_opt_int(item.get("sessions_remaining")),
        at_risk_warned=bool(item.get("at_risk_warned", False)),
        status=TaskStopStatus(item["status"]),
        verdict=Verdict(verdict) if verdict else None,
        dropped_sessions=int(item.get("dropped_sessions", 0)),
        stopped_at=float(item["stopped_at"]) if "stopped_at" in item else None,
        exit_code=_opt_int(item.get("exit_code")),
        reason=str(item.get("reason", "")),
        version=int(item.get("version", 0)),
    )
