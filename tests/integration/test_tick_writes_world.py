"""Reconcile ticks over open drains and task stops whose looks change nothing, in the local world
over real boto3: no record is written; each run records its looks in one item, which the next
ticks read (their order, and `DrainsDeferred`, see every drain looked at)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from drain_coordinator.integrations import aws_clients
from drain_coordinator.integrations.store import DrainStore
from drainctl.bench import seed_open_drains
from drainctl.world.alarms import datapoints
from drainctl.world.hostile import DEPENDENCIES, LatencyTail
from drainctl.world.world import World, WorldConfig

INSTANCES, WORKERS = 4, 2
# Long enough that no hook falls due in the ticks counted (a heartbeat is a change, and saved).
HOOK_HEARTBEAT_TIMEOUT = 600
CALL_SECONDS = 560.0  # up through every tick counted, within the workers' drain timeout
Writes = Counter[tuple[str, str]]


def _key_of(value: Any) -> str:
    # The table resource's calls pass plain strings; a client's pass typed values ({"S": ...}).
    return str(next(iter(value.values())) if isinstance(value, dict) else value)


@pytest.fixture
def dynamodb_writes() -> Iterator[Writes]:
    """(operation, item kind) of every DynamoDB write the handlers make, the kind being the item
    key's prefix ("drain", "task", "looks", ...)."""
    writes: Writes = Counter()

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        keys: list[Any] = []
        if model.name == "PutItem":
            keys = [params["Item"]["pk"]]
        elif model.name in ("UpdateItem", "DeleteItem"):
            keys = [params["Key"]["pk"]]
        elif model.name == "BatchWriteItem":
            for requests in params["RequestItems"].values():
                for request in requests:
                    item = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
                    keys.append(item["pk"])
        for key in keys:
            writes[(model.name, _key_of(key).split("#", 1)[0])] += 1

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register("before-parameter-build.dynamodb", count, unique_id="tick-writes")
    yield writes
    events.unregister("before-parameter-build.dynamodb", unique_id="tick-writes")


def test_ticks_whose_looks_change_nothing_write_one_item_each_and_no_record(dynamodb_writes: Writes) -> None:
    # GIVEN 4 instances of 2 workers scaled in, each worker with a call that outlasts the test:
    # their drains open, every worker told to stop (a task stop each), nothing changing
    params = {"HookHeartbeatTimeout": str(HOOK_HEARTBEAT_TIMEOUT)}
    with World(WorldConfig(seed=5, params=params)) as world:
        ids = world.create_fleet(INSTANCES + 1, WORKERS)[:INSTANCES]
        now = world.clock.now()
        for instance_id in ids:
            for worker in world.workers_on(instance_id):
                world.fleet.start_call(worker, now, CALL_SECONDS)
        world.step(1.0)
        for instance_id in ids:
            world.aws.terminate_instance(instance_id, should_decrement_desired_capacity=True)
        for _ in range(2 * world.period):  # the drains opened, looked at and ticked once
            world.step(1.0)
        stops = [s for s in world.deliveries if s.function == "TaskStateFunction"]
        since = world.clock.now()

        # WHEN the next four periods go by (a tick each)
        per_period: list[Writes] = []
        looked: list[set[str]] = []
        for _ in range(4):
            dynamodb_writes.clear()
            deliveries = [d for _ in range(world.period) for d in world.step(1.0)]
            per_period.append(Counter(dynamodb_writes))
            ticks = [d for d in deliveries if d.function == world.schedule.logical_id]
            assert len(ticks) == 1, [d.function for d in deliveries]
            steps = ticks[0].result["steps"] if isinstance(ticks[0].result, dict) else []
            looked.append({s["instance_id"] for s in steps if s.get("action") == "wait"})
        deferred = [
            p for p in datapoints(world.lambdas.invocations) if p.t > since and p.metric == "DrainsDeferred"
        ]
        sampled = {s["task_arn"] for s in steps if s.get("action") == "task_sampled"}

    assert len(stops) == INSTANCES * WORKERS
    assert len(sampled) == INSTANCES * WORKERS
    # THEN each tick looked at every drain and wrote one item, the record of its looks: no drain
    # and no task stop written (before: a drain's record a tick, its look's time a period old)
    assert looked == [set(ids)] * 4
    assert per_period == [Counter({("PutItem", "looks"): 1})] * 4
    # AND the ticks read those records: up to four periods after the drains' records were last
    # written, none counted as not looked at
    assert deferred == []


def test_a_tick_and_the_shard_it_sends_running_side_by_side_each_record_their_own_looks() -> None:
    # GIVEN 10 open drains in the middle of their drains, shards of 5 (the tick keeps 5 and
    # sends 5 to the advance function), and AWS and LiveKit answering in 0.1 s: the tick's
    # invocation and the shard's run side by side, their requests interleaved
    params = {"ShardSize": "5", "HookHeartbeatTimeout": str(HOOK_HEARTBEAT_TIMEOUT)}
    with World(WorldConfig(seed=5, livekit_webhooks=False, params=params)) as world:
        world.tick()  # the functions' cold start, with nothing open
        ids = seed_open_drains(world, 10, heartbeat_due=False)
        world.hostility.set_latency(list(DEPENDENCIES), LatencyTail(0.1, 0.1))
        table = DrainStore(aws_clients.resource("dynamodb").Table(world.table_name))
        since = world.clock.now()

        # WHEN three ticks run a period apart, each with its shard
        recorded: list[set[str]] = []
        for _ in range(3):
            started = world.clock.now()
            delivery = world.tick()
            shard = [i for i in world.lambdas.invocations if i.function == "AdvanceFunction"][-1]
            assert started <= shard.t < delivery.t  # the shard began while the tick ran
            looks = table.recent_looks(world.clock.now())
            recorded.append({i for i, at in looks.items() if at >= started})
            world.clock.advance(world.period)
        deferred = [
            p for p in datapoints(world.lambdas.invocations) if p.t > since and p.metric == "DrainsDeferred"
        ]

    # THEN every look of each tick, the tick's own and the shard's, was recorded
    assert recorded == [set(ids)] * 3
    # AND no drain counted as not looked at
    assert deferred == []
