"""DrainStore against the drain table created from template.yaml, on moto over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from drain_coordinator.domain.records import DrainOutcome, DrainRecord, DrainStatus
from drain_coordinator.integrations.store import OPEN_INDEX, DrainStore, StaleDrainError, StoreError
from drainctl.world.world import World
from tests.factories import T0, TASK_A, TASK_B, a_record, a_ref
from tests.integration.conftest import SINGLE_ATTEMPT, aws_resource, closed_port_url

TTL_DAYS = 30
INSTANCE_1 = "i-0aaaaaaaaaaaaaaa1"
INSTANCE_2 = "i-0aaaaaaaaaaaaaaa2"
INSTANCE_3 = "i-0aaaaaaaaaaaaaaa3"


@pytest.fixture
def store(world: World) -> DrainStore:
    table = aws_resource("dynamodb", world.aws.endpoint_url).Table(world.table_name)
    return DrainStore(table, ttl_days=TTL_DAYS)


def raw_item(world: World, instance_id: str) -> dict[str, Any]:
    answer = world.aws.client("dynamodb").get_item(
        TableName=world.table_name, Key={"pk": {"S": f"drain#{instance_id}"}}, ConsistentRead=True
    )
    item: dict[str, Any] = answer["Item"]
    return item


def open_index_keys(world: World) -> list[str]:
    """The partition keys the sparse index holds, read past the adapter."""
    answer = world.aws.client("dynamodb").scan(TableName=world.table_name, IndexName=OPEN_INDEX)
    return sorted(item["pk"]["S"] for item in answer["Items"])


def a_drain(instance_id: str, **overrides: Any) -> DrainRecord:
    return a_record(lifecycle=a_ref(instance_id), **overrides)


# -- opening ---------------------------------------------------------------------------------------


def test_open_drain_is_conditional_on_no_drain_for_the_instance(store: DrainStore) -> None:
    # GIVEN a drain already open for the instance
    first = a_drain(INSTANCE_1, deadline=1200)
    assert store.open_drain(first) is True

    # WHEN a duplicate event opens it again, with other values
    second = store.open_drain(a_drain(INSTANCE_1, deadline=600, heartbeats=7))

    # THEN the second open is refused and the first record stays as it was
    assert second is False
    assert store.get(INSTANCE_1) == first


def test_get_of_an_instance_without_drain_is_none(store: DrainStore) -> None:
    # GIVEN an empty table / WHEN / THEN
    assert store.get(INSTANCE_1) is None


# -- saving ----------------------------------------------------------------------------------------


def test_save_bumps_the_version_it_stores(store: DrainStore) -> None:
    # GIVEN an open drain
    store.open_drain(a_drain(INSTANCE_1))
    read = store.get(INSTANCE_1)
    assert read is not None

    # WHEN a look saves a heartbeat on it
    saved = store.save(read.with_heartbeat(T0 + 120))

    # THEN the saved record is one version up, and that is what the table holds
    assert saved.version == read.version + 1
    assert store.get(INSTANCE_1) == saved


def test_save_with_a_stale_version_is_stale_drain_error(store: DrainStore) -> None:
    # GIVEN a drain saved once since it was opened
    store.open_drain(a_drain(INSTANCE_1))
    opened = store.get(INSTANCE_1)
    assert opened is not None
    store.save(opened.with_heartbeat(T0 + 120))

    # WHEN the record read before that save is saved
    # THEN the write is refused and the table keeps the newer record
    with pytest.raises(StaleDrainError, match=INSTANCE_1):
        store.save(opened.with_heartbeat(T0 + 180))
    current = store.get(INSTANCE_1)
    assert current is not None
    assert current.last_heartbeat_at == T0 + 120


def test_save_of_a_drain_never_opened_is_stale_drain_error(store: DrainStore) -> None:
    # GIVEN no drain for the instance / WHEN a record is saved as if read
    # THEN there was no version to match
    with pytest.raises(StaleDrainError):
        store.save(a_drain(INSTANCE_1))
    assert store.get(INSTANCE_1) is None


def test_two_looks_racing_on_one_drain_exactly_one_save_wins(store: DrainStore) -> None:
    # GIVEN two looks that read the same drain
    store.open_drain(a_drain(INSTANCE_1))
    look_a = store.get(INSTANCE_1)
    look_b = store.get(INSTANCE_1)
    assert look_a is not None
    assert look_b is not None

    # WHEN both save what they decided
    outcomes: list[str] = []
    for record in (look_a.with_heartbeat(T0 + 60), look_b.closed(DrainOutcome.DRAINED, T0 + 61)):
        try:
            store.save(record)
            outcomes.append("saved")
        except StaleDrainError:
            outcomes.append("stale")

    # THEN the first writer wins, the second is told to re-read, and the table holds the winner's
    assert outcomes == ["saved", "stale"]
    current = store.get(INSTANCE_1)
    assert current is not None
    assert current.is_open
    assert current.heartbeats == 1
    assert current.version == 1


# -- the open-drains index ------------------------------------------------------------------------


def test_open_drains_lists_open_drains_most_urgent_first(store: DrainStore) -> None:
    # GIVEN three drains opened in an order unlike their deadlines
    for instance_id, deadline in ((INSTANCE_1, 1200), (INSTANCE_2, 300), (INSTANCE_3, 900)):
        store.open_drain(a_drain(instance_id, deadline=deadline))

    # WHEN reconcile lists the open drains
    listed = list(store.open_drains())

    # THEN they come by deadline
    assert [r.instance_id for r in listed] == [INSTANCE_2, INSTANCE_3, INSTANCE_1]
    assert [r.deadline_at for r in listed] == [T0 + 300, T0 + 900, T0 + 1200]


def test_closed_drain_leaves_the_sparse_open_index(world: World, store: DrainStore) -> None:
    # GIVEN two open drains
    store.open_drain(a_drain(INSTANCE_1, deadline=300))
    store.open_drain(a_drain(INSTANCE_2, deadline=600))
    first = store.get(INSTANCE_1)
    assert first is not None

    # WHEN the most urgent one closes
    store.save(first.closed(DrainOutcome.DRAINED, T0 + 240))

    # THEN it is gone from the index (read directly, and through the adapter) but kept in the table
    assert open_index_keys(world) == [f"drain#{INSTANCE_2}"]
    assert [r.instance_id for r in store.open_drains()] == [INSTANCE_2]
    closed = store.get(INSTANCE_1)
    assert closed is not None
    assert closed.status is DrainStatus.CLOSED


def test_open_drains_of_an_empty_table_is_empty(store: DrainStore) -> None:
    # GIVEN / WHEN / THEN
    assert list(store.open_drains()) == []


def test_closed_drain_carries_ttl_and_no_open_kind(world: World, store: DrainStore) -> None:
    # GIVEN an open drain, stored with the index key and no expiry
    store.open_drain(a_drain(INSTANCE_1))
    opened_item = raw_item(world, INSTANCE_1)
    assert opened_item["open_kind"] == {"S": "drain"}
    assert "expires_at" not in opened_item
    opened = store.get(INSTANCE_1)
    assert opened is not None

    # WHEN it closes
    closed_at = T0 + 540.25
    store.save(opened.closed(DrainOutcome.DEADLINE, closed_at, dropped_sessions=2))

    # THEN the item expires ttl days after closing, as an epoch-seconds number, and left the index
    item = raw_item(world, INSTANCE_1)
    assert item["expires_at"] == {"N": str(int(closed_at) + TTL_DAYS * 86400)}
    assert "open_kind" not in item
    assert item["status"] == {"S": "closed"}
    assert item["outcome"] == {"S": "deadline"}


def test_table_ttl_attribute_is_the_one_the_store_writes(world: World) -> None:
    # GIVEN the table the template declares / WHEN its TTL is described
    ttl = world.aws.client("dynamodb").describe_time_to_live(TableName=world.table_name)

    # THEN DynamoDB expires items on the attribute closed drains carry
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


# -- a run's looks ---------------------------------------------------------------------------------


def test_the_looks_of_runs_are_read_back_latest_first_until_their_time_passes(
    world: World, store: DrainStore
) -> None:
    # GIVEN three runs' records of their looks, one of them past the time it is read until (TTL
    # has not deleted it yet: DynamoDB's TTL deletes late), and an open drain
    store.open_drain(a_drain(INSTANCE_3))
    store.record_looks("t0#a", {INSTANCE_1: T0, INSTANCE_2: T0 + 0.5}, until=T0 + 180)
    store.record_looks("t60#a", {INSTANCE_1: T0 + 60.25}, until=T0 + 240)
    store.record_looks("old#a", {INSTANCE_3: T0 - 100}, until=T0 + 50)

    # WHEN the tick at T0 + 120 reads them
    looks = store.recent_looks(T0 + 120)

    # THEN each drain has its latest look among the records still read, the stale one left out
    assert looks == {INSTANCE_1: T0 + 60.25, INSTANCE_2: T0 + 0.5}
    # AND those records expire by TTL, and stay out of the open drains the tick reads
    assert [r.instance_id for r in store.open_drains()] == [INSTANCE_3]
    item = world.aws.client("dynamodb").get_item(TableName=world.table_name, Key={"pk": {"S": "looks#t60#a"}})
    assert item["Item"]["expires_at"] == {"N": str(int(T0 + 240) + 1)}


# -- round trips -----------------------------------------------------------------------------------


def test_every_field_of_a_closed_drain_round_trips(store: DrainStore) -> None:
    # GIVEN a drain with every field set to something other than its default
    opened = a_drain(INSTANCE_1)
    store.open_drain(opened)
    full = replace(
        opened,
        hook_started_at=T0 + 0.125,
        last_heartbeat_at=T0 + 360.5,
        opened_at=T0 + 1.75,
        watched_rooms={"call-00001": TASK_A, "call-00002": TASK_B},
        rooms_final=True,
        heartbeats=2,
        probe_errors=3,
        sessions_remaining=1,
        tasks_remaining=4,
        extra={"ecs": "not_registered", "note": "x"},
    ).closed(DrainOutcome.DEADLINE, T0 + 1199.875, dropped_sessions=1)

    # WHEN it is saved and read back
    saved = store.save(full)

    # THEN nothing was lost or changed
    assert store.get(INSTANCE_1) == saved
    assert saved == replace(full, version=full.version + 1)


def test_unset_fields_of_an_open_drain_round_trip_as_none(store: DrainStore) -> None:
    # GIVEN a drain opened before anything was learnt about it
    bare = a_drain(
        INSTANCE_1,
        container_instance_arn=None,
        watched_rooms=None,
        sessions_remaining=None,
        tasks_remaining=None,
    )

    # WHEN it is opened and read back
    store.open_drain(bare)

    # THEN the unknowns are still unknown, not zero or empty
    read = store.get(INSTANCE_1)
    assert read == bare
    assert read is not None
    assert read.container_instance_arn is None
    assert read.watched_rooms is None
    assert read.sessions_remaining is None
    assert read.outcome is None
    assert read.closed_at is None


def test_no_rooms_found_round_trips_apart_from_not_looked_yet(store: DrainStore) -> None:
    # GIVEN a drain whose discovery found no room (an empty map, not None)
    store.open_drain(a_drain(INSTANCE_1, watched_rooms={}, sessions_remaining=0, tasks_remaining=0))

    # WHEN it is read back
    read = store.get(INSTANCE_1)

    # THEN "looked and found nothing" is still told apart from "never looked"
    assert read is not None
    assert read.watched_rooms == {}
    assert read.sessions_remaining == 0
    assert read.tasks_remaining == 0


# -- failures --------------------------------------------------------------------------------------


STORE_CALLS: dict[str, Callable[[DrainStore], object]] = {
    "open_drain": lambda store: store.open_drain(a_drain(INSTANCE_1)),
    "get": lambda store: store.get(INSTANCE_1),
    "save": lambda store: store.save(a_drain(INSTANCE_1)),
    "open_drains": lambda store: list(store.open_drains()),
    "record_looks": lambda store: store.record_looks("run", {INSTANCE_1: T0}, T0 + 180),
    "recent_looks": lambda store: store.recent_looks(T0),
}


@pytest.mark.parametrize("call", sorted(STORE_CALLS))
def test_missing_table_is_store_error(world: World, call: str) -> None:
    # GIVEN a store on a table that does not exist
    table = aws_resource("dynamodb", world.aws.endpoint_url).Table("livekit-drain-no-such-table")
    store = DrainStore(table)

    # WHEN / THEN every call reports DynamoDB's refusal as the store's own error
    with pytest.raises(StoreError, match="ResourceNotFoundException"):
        STORE_CALLS[call](store)


def test_unreachable_dynamodb_is_store_error() -> None:
    # GIVEN a store whose DynamoDB endpoint does not answer (connection refused)
    table = aws_resource("dynamodb", closed_port_url(), config=SINGLE_ATTEMPT).Table("livekit-drain")
    store = DrainStore(table)

    # WHEN / THEN the failure is the store's error, which reconcile catches per drain, not a
    # botocore exception that would end the whole tick
    with pytest.raises(StoreError):
        store.get(INSTANCE_1)


# -- by key ----------------------------------------------------------------------------------------


def test_a_drain_is_found_by_its_tasks_and_read_by_key_in_batches(store: DrainStore) -> None:
    # GIVEN two open drains, the first having listed its two tasks and audited its rooms
    first = a_drain(INSTANCE_1, known_tasks=(TASK_A, TASK_B), rooms_audited=True)
    assert store.open_drain(first) and store.open_drain(a_drain(INSTANCE_2))
    store.point_tasks(INSTANCE_1, [TASK_A, TASK_B], T0)

    # WHEN an event about a task looks for its drain, and a shard reads drains by key
    found = store.drain_of_task(TASK_B)
    many = store.get_many([INSTANCE_1, INSTANCE_2, INSTANCE_3])

    # THEN the task's drain comes back as saved, a task no drain saw has none, the two exist
    assert found == first
    assert store.drain_of_task("arn:aws:ecs:us-east-1:123456789012:task/agents/never-seen") is None
    assert set(many) == {INSTANCE_1, INSTANCE_2}
    assert many[INSTANCE_1].known_tasks == (TASK_A, TASK_B)
