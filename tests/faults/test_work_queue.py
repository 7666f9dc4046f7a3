"""The work queue as Lambda's SQS event source runs it in the local world
(drainctl/world/sqs_source.py): a batch the function fails comes back after the queue's
visibility timeout, and past the redrive policy's maxReceiveCount it is dead-lettered; a batch
it reports done is deleted."""

from __future__ import annotations

import itertools

from drain_coordinator.domain.schedule import Shard, WorkItem, WorkKind
from drainctl.world.hostile import DEPENDENCIES, LatencyTail
from drainctl.world.seeding import open_drains
from drainctl.world.world import World
from tests.faults.conftest import HandlerFaults


def queue_a_shard(world: World, instance_id: str) -> Shard:
    (source,) = world.event_sources
    shard = Shard(world.clock.now(), (WorkItem(WorkKind.DRAIN, instance_id, world.clock.now()),))
    world.aws.client("sqs").send_message(QueueUrl=source.queue_url, MessageBody=shard.to_body())
    source.busy = True  # as after a tick that sent it
    return shard


def test_a_shard_that_keeps_failing_comes_back_after_its_visibility_timeout_then_is_dead_lettered(
    world: World, handler_faults: HandlerFaults
) -> None:
    # GIVEN a shard on the work queue, and DynamoDB failing every read of its drain
    failing = handler_faults.errors("dynamodb", "BatchGetItem", code="InternalServerError", status=500)
    shard = queue_a_shard(world, "i-0123456789abcdef0")
    queue = world.template.resource("WorkQueue")

    # WHEN the world runs for five minutes
    world.run(lambda: False, limit_seconds=300)

    # THEN the advance function had the shard maxReceiveCount times, each after the last one's
    # visibility timeout, with its receive count one higher each time
    advances = [d for d in world.deliveries if d.function == "AdvanceFunction"]
    counts = [int(d.event["Records"][0]["attributes"]["ApproximateReceiveCount"]) for d in advances]
    assert counts == list(range(1, int(queue["RedrivePolicy"]["maxReceiveCount"]) + 1))
    gaps = [later.t - earlier.t for earlier, later in itertools.pairwise(advances)]
    assert all(gap >= int(queue["VisibilityTimeout"]) for gap in gaps)
    assert failing.attempts >= len(advances)
    # THEN the shard waits in the dead-letter queue, where the dead-letters alarm sees it
    sqs = world.aws.client("sqs")
    parked = sqs.receive_message(QueueUrl=world.queue_urls["DeadLetterQueue"]).get("Messages", [])
    assert [m["Body"] for m in parked] == [shard.to_body()]
    left = sqs.get_queue_attributes(
        QueueUrl=world.queue_urls["WorkQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert left["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_a_shard_the_function_finishes_is_deleted_and_not_seen_again(world: World) -> None:
    # GIVEN a shard naming a drain nobody has any more (closed since the tick planned it)
    queue_a_shard(world, "i-0123456789abcdef0")

    # WHEN the world runs for three minutes
    world.run(lambda: False, limit_seconds=180)

    # THEN the advance function had it once, reported no failure, and the queue is empty
    (advance,) = [d for d in world.deliveries if d.function == "AdvanceFunction"]
    assert advance.result == {"batchItemFailures": []}
    (source,) = world.event_sources
    assert not source.busy
    assert source.function_errors == []


def test_the_next_tick_starts_on_time_while_the_last_ones_shards_still_run(world: World) -> None:
    # GIVEN 100 open drains, AWS and LiveKit so slow that a shard's looks take most of its
    # invocation's time, and shards of looks sent ten seconds before a tick is due
    instances = open_drains(world, 100)
    world.hostility.set_latency(list(DEPENDENCIES), LatencyTail(0.5, 0.5))
    world.run(lambda: False, limit_seconds=world.period - 10)
    (source,) = world.event_sources
    sqs = world.aws.client("sqs")
    for start in range(0, len(instances), 20):
        part = instances[start : start + 20]
        shard = Shard(world.clock.now(), tuple(WorkItem(WorkKind.DRAIN, i, world.clock.now()) for i in part))
        sqs.send_message(QueueUrl=source.queue_url, MessageBody=shard.to_body())
    source.busy = True

    # WHEN the world runs for three periods
    world.run(lambda: False, limit_seconds=3 * world.period)

    # THEN the ticks came one period apart (to the world's one-second step), though advance
    # invocations that started before a tick were still running when it began
    ticks = [i for i in world.lambdas.invocations if i.function == "ReconcileFunction"]
    starts = [t.t for t in ticks]
    assert len(starts) >= 2
    assert all(abs((b - a) - world.period) <= 1.0 for a, b in itertools.pairwise(starts))
    advances = [i for i in world.lambdas.invocations if i.function == "AdvanceFunction"]
    assert any(a.t < tick.t < (a.ended_at or 0.0) for a in advances for tick in ticks)


def test_the_advance_function_takes_a_shard_as_soon_as_it_is_sent_while_the_tick_still_runs(
    world: World,
) -> None:
    # GIVEN 200 open drains, every hook due, and AWS and LiveKit so slow that the tick's own
    # looks take most of its 55 s
    open_drains(world, 200)
    world.hostility.set_latency(list(DEPENDENCIES), LatencyTail(0.5, 0.5))

    # WHEN the world runs until its first tick has ended
    def first_tick_ended() -> bool:
        return any(i.function == "ReconcileFunction" for i in world.lambdas.invocations)

    world.run(first_tick_ended, limit_seconds=2 * world.period)
    (tick,) = [i for i in world.lambdas.invocations if i.function == "ReconcileFunction"]
    world.run(lambda: False, limit_seconds=world.period)  # the advance invocations end too

    # THEN Lambda's pollers took the tick's shards while the tick was still running (long
    # polling answers when a message arrives: https://docs.aws.amazon.com/lambda/latest/dg/
    # services-sqs-scaling.html), within the world's one-second poll of their sending, not
    # once the tick had ended
    advances = [i for i in world.lambdas.invocations if i.function == "AdvanceFunction" and i.t < tick.t + 60]
    assert advances
    assert tick.ended_at is not None
    assert all(a.t < tick.ended_at for a in advances)
