"""Many drains open at once (a fleet-wide scale-in), with every request costing virtual time.

One tick cannot look at 1,000 drains in its 55 s: it does its own shard and sends the rest to the
work queue, where the advance function takes them, up to its event source's concurrency at once
(the local world polls the queue as Lambda does: drainctl/world/sqs_source.py). In every
invocation a due heartbeat is sent before any look. When the queue refuses the shards, the tick
does what fits, most urgent first, and the next tick starts with what it missed; one drain's
failure does not stop the others."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from drain_coordinator import wiring
from drain_coordinator.domain.schedule import HEARTBEATS_PER_SHARD
from drain_coordinator.integrations.store import DrainStore
from drainctl.world.hostile import DEPENDENCIES, LatencyTail
from drainctl.world.seeding import open_drains
from drainctl.world.world import World, WorldConfig
from tests.faults.conftest import HandlerFaults, SimulatedCrashError
from tests.integration.conftest import aws_resource

DRAINS = 1000
# Virtual seconds one request to AWS or LiveKit costs. A heartbeat and its save are two
# requests, a look seven: one after the other, 1,000 looks take far longer than 55 s.
SECONDS_PER_REQUEST = 0.02


def every_request_costs(world: World, seconds: float) -> None:
    world.hostility.set_latency(list(DEPENDENCIES), LatencyTail(seconds, seconds))


@pytest.mark.slow
def test_a_thousand_open_drains_are_heartbeaten_within_one_period_over_the_work_queue(world: World) -> None:
    # GIVEN 1,000 open drains, each with a call on its instance and a heartbeat due, and every
    # request to AWS or LiveKit costing a fiftieth of a second
    instances = open_drains(world, DRAINS)
    wiring.reset(clock=world.clock.now)
    every_request_costs(world, SECONDS_PER_REQUEST)
    began = world.clock.now()

    # WHEN one reconcile tick runs, the world's pollers taking the shards it sends
    tick = world.tick()

    # THEN the tick kept one shard and sent the heartbeats of the rest in heartbeat-only shards,
    # no look shard (the looks wait for the next tick); each was taken by one advance invocation
    shard_size = int(world.params["ShardSize"])
    assert tick.result["shards_sent"] == math.ceil((DRAINS - shard_size) / HEARTBEATS_PER_SHARD)
    assert tick.result["deferred"] == DRAINS - shard_size
    advances = [i for i in world.lambdas.invocations if i.function == "AdvanceFunction"]
    assert len(advances) == tick.result["shards_sent"]
    # THEN every hook was heartbeaten exactly once, within the period, and no invocation ran
    # out of time
    assert all(world.aws.lifecycle.action_for(i).heartbeats == 1 for i in instances)  # type: ignore[union-attr]
    assert not world.lambdas.timed_out()
    assert max(i.ended_at or 0.0 for i in world.lambdas.invocations) - began < world.period
    # THEN in each invocation every heartbeat came before any look
    for invocation in advances:
        (record,) = invocation.event["Records"]
        assert invocation.result == {"batchItemFailures": []}, record["messageId"]
    steps = tick.result["steps"]
    beats = [s for s in steps if s["action"] == "heartbeat" and s.get("reason") == "before_look"]
    assert len(beats) == shard_size
    assert steps[: len(beats)] == beats


def test_when_the_work_queue_refuses_shards_the_next_tick_starts_with_what_the_first_missed(
    world: World, handler_faults: HandlerFaults
) -> None:
    # GIVEN 300 open drains, all due a heartbeat, AWS so slow (a fifth of a second a request)
    # that one tick cannot even heartbeat them all, and the work queue refusing every shard
    instances = open_drains(world, 300)
    refused = handler_faults.errors("sqs", "SendMessageBatch", code="AccessDenied", status=403)
    every_request_costs(world, 0.2)

    # WHEN two ticks run
    first = world.tick()
    world.clock.advance(world.period)
    second = world.tick()

    # THEN the first stopped with time to spare, and the second heartbeat the drains the first
    # never reached before any other (the most urgent hook first, none starved)
    assert refused.attempts >= 2
    assert first.result["shards_sent"] == 0
    first_beaten = [s["instance_id"] for s in first.result["steps"] if s["action"] == "heartbeat"]
    second_beaten = [s["instance_id"] for s in second.result["steps"] if s["action"] == "heartbeat"]
    assert 0 < len(first_beaten) < len(instances)
    assert first.result["deferred"] == len(instances)
    assert not world.lambdas.timed_out()
    missed = set(instances) - set(first_beaten)
    assert second_beaten
    assert set(second_beaten[: len(missed)]) <= missed
    assert len(set(second_beaten) & missed) == min(len(missed), len(second_beaten))


def test_one_drain_failing_its_look_does_not_stop_the_others(handler_faults_one_shard: HandlerFaults) -> None:
    # GIVEN 30 open drains, all in one shard, and the save of one of them failing unexpectedly
    # (a bug, a crash)
    world = handler_faults_one_shard.world
    instances = open_drains(world, 30)
    doomed = instances[7]
    crash = handler_faults_one_shard.crash(
        "dynamodb", "PutItem", when=lambda request: doomed.encode() in (request.body or b"")
    )

    # WHEN a tick runs
    with pytest.raises(SimulatedCrashError):
        world.tick()

    # THEN every other drain had its look, and its heartbeat sent and saved; the invocation still
    # failed, so the error is seen (function errors alarm, dead-letter queue)
    store = DrainStore(aws_resource("dynamodb", world.aws.endpoint_url).Table(world.table_name))
    assert crash.crashed == 1
    for instance_id in instances:
        action = world.aws.lifecycle.action_for(instance_id)
        record = store.get(instance_id)
        assert action is not None
        assert record is not None
        assert action.heartbeats == 1
        assert record.heartbeats == (0 if instance_id == doomed else 1)


@pytest.fixture
def handler_faults_one_shard() -> Iterator[HandlerFaults]:
    with World(WorldConfig(params={"ShardSize": "50"})) as started:
        faults = HandlerFaults(started)
        try:
            yield faults
        finally:
            faults.clear()
