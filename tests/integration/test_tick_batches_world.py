"""A reconcile tick over many open drains in the local world: ECS and DynamoDB are read in
batches for all the drains of the tick, not request by request for each drain."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from drainctl.bench import seed_open_drains
from drainctl.world.world import World, WorldConfig

OPEN_DRAINS = 100
AwsCalls = Counter[tuple[str, str]]


@pytest.fixture
def aws_calls() -> Iterator[AwsCalls]:
    """Every AWS API call the handlers make (their clients come from boto3's default session)."""
    calls: AwsCalls = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[(model.service_model.service_name, model.name)] += 1

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register("before-call", count, unique_id="tick-batches-aws-calls")
    yield calls
    events.unregister("before-call", unique_id="tick-batches-aws-calls")


def _by_service(calls: AwsCalls, service: str) -> dict[str, int]:
    return {name: n for (svc, name), n in calls.items() if svc == service}


def test_a_tick_over_a_hundred_drains_reads_ecs_and_dynamodb_in_batches(aws_calls: AwsCalls) -> None:
    # GIVEN 100 open drains in the middle of their drains (tasks known, rooms audited), one
    # worker and one call each, their heartbeats not due, all in the tick's own shard (how one
    # invocation reads; the shards it would send read alike)
    config = WorldConfig(seed=5, livekit_webhooks=False, params={"ShardSize": str(OPEN_DRAINS)})
    with World(config) as world:
        world.tick()  # the function's cold start, with nothing open
        seed_open_drains(world, OPEN_DRAINS, heartbeat_due=False)
        aws_calls.clear()
        # WHEN one reconcile tick looks at every one of them
        world.clock.advance(world.period)
        delivery = world.tick()
    steps = delivery.result["steps"] if isinstance(delivery.result, dict) else []
    assert sum(1 for s in steps if s.get("action") == "wait") == OPEN_DRAINS
    ecs, dynamodb = _by_service(aws_calls, "ecs"), _by_service(aws_calls, "dynamodb")
    # THEN ECS was asked for the tasks of all the drains in one DescribeTasks (100 to a request),
    # with no listing of any instance
    assert ecs.get("DescribeTasks", 0) == 1, ecs
    assert "ListTasks" not in ecs, ecs
    assert sum(ecs.values()) <= 3, ecs
    # THEN DynamoDB was read a page of 100 open drains at a time, never one drain at a time
    reads = {k: v for k, v in dynamodb.items() if k in ("Query", "GetItem", "BatchGetItem", "Scan")}
    assert reads.get("GetItem", 0) == 0, dynamodb
    assert sum(reads.values()) <= 4, dynamodb
