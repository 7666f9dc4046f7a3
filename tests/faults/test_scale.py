"""Many drains open at once (a fleet-wide scale-in). One reconcile tick heartbeats 1,000 of them
inside the function's timeout before it looks at any: requests cost virtual time, and a look
never delays a heartbeat. What does not fit waits for the next tick, most urgent first; one
drain's failure does not stop the others."""

from __future__ import annotations

import uuid

import pytest

from drain_coordinator import wiring
from drain_coordinator.domain.records import DrainRecord, LifecycleRef
from drain_coordinator.integrations.store import DrainStore
from drainctl.world.lifecycle_actions import TERMINATING
from drainctl.world.world import World
from tests.faults.conftest import HandlerFaults, SimulatedCrashError
from tests.integration.conftest import aws_resource

DRAINS = 1000
# Virtual seconds one request to AWS or LiveKit costs. A heartbeat and its save are two
# requests, a look seven: one after the other, 1,000 looks take far longer than 55 s.
SECONDS_PER_REQUEST = 0.02


def open_drains_for_every_instance(world: World, count: int = DRAINS) -> list[str]:
    """Every instance of the group scaled in at once, each holding one call, its drain open and
    its rooms known. The scale-in is not what is tested: the lifecycle actions are opened in the
    world's Auto Scaling directly, and no event is delivered."""
    instances = world.create_fleet(count)
    store = DrainStore(aws_resource("dynamodb", world.aws.endpoint_url).Table(world.table_name))
    now = world.clock.now()
    for instance_id in instances:
        (worker,) = world.workers_on(instance_id)
        call = world.fleet.start_call(worker, now, 3000.0)
        action = world.aws.lifecycle.start(
            token=str(uuid.UUID(int=world.rng.getrandbits(128))),
            group_name=world.config.group_name,
            hook_name=world.hook_name,
            instance_id=instance_id,
            transition=TERMINATING,
            heartbeat_timeout=world.hook_heartbeat_timeout,
            default_result="CONTINUE",
            now=now,
        )
        store.open_drain(
            DrainRecord(
                lifecycle=LifecycleRef(world.config.group_name, world.hook_name, instance_id, action.token),
                cluster=world.config.cluster,
                container_instance_arn=worker.container_instance_arn,
                hook_started_at=now,
                deadline_at=now + float(world.params["DrainDeadline"]),
                heartbeat_timeout=world.hook_heartbeat_timeout,
                # a heartbeat is due at the next look: every drain calls Auto Scaling too
                last_heartbeat_at=now - world.hook_heartbeat_timeout + world.period,
                opened_at=now,
                watched_rooms={call.room: worker.task_arn},
                rooms_final=True,
            )
        )
    return instances


@pytest.mark.slow
def test_one_tick_heartbeats_a_thousand_open_drains_within_its_timeout(world: World) -> None:
    # GIVEN 1,000 open drains, each with a call on its instance and a heartbeat due
    instances = open_drains_for_every_instance(world)
    wiring.reset(clock=world.clock.now)

    # WHEN one reconcile tick runs (no work queue to fan out to), every request costing virtual time
    requests_before = world.latency.requests
    world.latency.set(SECONDS_PER_REQUEST)
    tick = world.tick()
    world.latency.set(0.0)

    # THEN every drain's heartbeat was sent first, before any look, each exactly once
    steps = tick.result["steps"]
    beats = [s for s in steps if s["action"] == "heartbeat" and s.get("reason") == "before_look"]
    assert {s["instance_id"] for s in beats} == set(instances)
    assert steps[: len(beats)] == beats
    assert all(world.aws.lifecycle.action_for(i).heartbeats == 1 for i in instances)  # type: ignore[union-attr]
    # THEN the looks that did not fit were deferred, counted, not lost; the invocation ended
    # inside its timeout on the virtual clock, though its requests would have taken far longer
    looks = [s for s in steps[len(beats) :] if s["action"] != "error"]
    assert tick.result["deferred"] == DRAINS - len(looks) > 0
    (invocation,) = [i for i in world.lambdas.invocations if i.function == "ReconcileFunction"]
    timeout = world._timeout_of("ReconcileFunction")
    assert invocation.remaining_millis is not None
    assert invocation.remaining_millis >= 0
    assert (world.latency.requests - requests_before) * SECONDS_PER_REQUEST > timeout / 2


def test_heartbeats_a_tick_has_no_time_for_come_first_in_the_next_one(world: World) -> None:
    # GIVEN 300 open drains, all due a heartbeat, and AWS so slow (a fifth of a second a
    # request) that one tick cannot even heartbeat them all
    instances = open_drains_for_every_instance(world, 300)
    wiring.reset(clock=world.clock.now)
    world.latency.set(0.2)

    # WHEN two ticks run
    first = world.tick()
    world.clock.advance(world.period)
    second = world.tick()
    world.latency.set(0.0)

    # THEN the first stopped with time to spare, and the second heartbeat the drains the first
    # never reached before any other (the most urgent hook first, none starved)
    first_beaten = [s["instance_id"] for s in first.result["steps"] if s["action"] == "heartbeat"]
    second_beaten = [s["instance_id"] for s in second.result["steps"] if s["action"] == "heartbeat"]
    assert 0 < len(first_beaten) < len(instances)
    assert first.result["deferred"] == len(instances)
    (invocation, _) = [i for i in world.lambdas.invocations if i.function == "ReconcileFunction"]
    assert invocation.remaining_millis is not None
    assert invocation.remaining_millis >= 0
    missed = set(instances) - set(first_beaten)
    assert second_beaten
    assert set(second_beaten[: len(missed)]) <= missed
    assert len(set(second_beaten) & missed) == min(len(missed), len(second_beaten))


def test_one_drain_failing_its_look_does_not_stop_the_others(
    world: World, handler_faults: HandlerFaults
) -> None:
    # GIVEN 30 open drains, and the save of one of them failing unexpectedly (a bug, a crash)
    instances = open_drains_for_every_instance(world, 30)
    doomed = instances[7]
    crash = handler_faults.crash(
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
