"""LiveKit webhooks in the local world: signed like livekit-server, sent to the real webhook
handler through its Function URL, indexed in the real (moto) table; forged ones refused; and
the release latency they buy against polling alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit import api
from livekit.protocol.models import ParticipantInfo

from drain_coordinator.integrations.room_index import RoomIndex, WebhookLedger
from drain_coordinator.integrations.store import DrainStore, TaskStopStore
from drainctl.world.clock import VirtualClock
from drainctl.world.livekit_server import LocalLiveKit
from drainctl.world.webhooks import (
    CONTENT_TYPE,
    LiveKitWebhookSender,
    function_url_event,
    request_body,
    sign,
)
from drainctl.world.world import Delivery, World, WorldConfig
from tests.integration.conftest import aws_resource

TASK_A = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/0123456789abcdef0123456789abcdef"
TASK_B = "arn:aws:ecs:us-east-1:123456789012:task/livekit-agents/fedcba9876543210fedcba9876543210"
TASK_STATE_FUNCTION = "TaskStateFunction"
WEBHOOK_FUNCTION = "WebhookFunction"


def table_of(world: World) -> Any:
    return aws_resource("dynamodb", world.aws.endpoint_url).Table(world.table_name)


def webhook_deliveries(world: World) -> list[Delivery]:
    return [d for d in world.deliveries if d.function == WEBHOOK_FUNCTION]


# --- the index and the ledger in DynamoDB ----------------------------------------------------


def test_room_index_answers_by_room_and_by_task(world: World) -> None:
    # GIVEN agents of two tasks in three rooms
    index = RoomIndex(table_of(world), clock=world.clock.now)
    now = world.clock.now()
    index.record_agent("call-1", TASK_A, "agent-1", now)
    index.record_agent("call-2", TASK_A, "agent-2", now)
    index.record_agent("call-3", TASK_B, "agent-3", now)

    # WHEN it is asked by room and by task
    # THEN each room names its task, and each task its rooms (one index query per task)
    assert index.task_of("call-2") == TASK_A
    assert index.task_of("call-9") is None
    assert index.rooms_held_by([TASK_A]) == {"call-1": TASK_A, "call-2": TASK_A}
    assert index.rooms_held_by([TASK_A, TASK_B]) == {"call-1": TASK_A, "call-2": TASK_A, "call-3": TASK_B}


def test_room_index_items_stay_out_of_the_open_drains(world: World) -> None:
    # GIVEN an indexed room in the table the drains live in
    RoomIndex(table_of(world), clock=world.clock.now).record_agent(
        "call-1", TASK_A, "agent-1", world.clock.now()
    )

    # WHEN the coordinator lists its open drains and task stops
    # THEN it sees neither the index's items nor trips over them
    assert list(DrainStore(table_of(world)).open_drains()) == []
    assert list(TaskStopStore(table_of(world)).open_stops()) == []


def test_room_index_forgets_only_the_entry_its_agent_made(world: World) -> None:
    # GIVEN a room whose first agent was replaced by a second one
    index = RoomIndex(table_of(world), clock=world.clock.now)
    index.record_agent("call-1", TASK_A, "agent-old", world.clock.now())
    index.record_agent("call-1", TASK_B, "agent-new", world.clock.now())

    # WHEN the first agent's leave arrives late
    dropped = index.forget("call-1", "agent-old")

    # THEN the second agent's entry stays; the room's end drops it
    assert dropped is False
    assert index.task_of("call-1") == TASK_B
    assert index.forget("call-1") is True
    assert index.task_of("call-1") is None
    assert index.forget("call-1") is False


def test_room_index_keeps_a_room_its_agent_left_for_the_tasks_stop_a_few_minutes(world: World) -> None:
    # GIVEN two rooms of one task, the second taken over since by another task's agent
    index = RoomIndex(table_of(world), clock=world.clock.now)
    index.record_agent("call-1", TASK_A, "agent-1", world.clock.now())
    index.record_agent("call-2", TASK_A, "agent-2", world.clock.now())
    index.record_agent("call-2", TASK_B, "agent-3", world.clock.now())

    # WHEN the first agents' leave webhooks arrive
    assert index.left("call-1", "agent-1", world.clock.now(), keep_seconds=300) is True
    assert index.left("call-2", "agent-2", world.clock.now(), keep_seconds=300) is False

    # THEN the left room is held by the task no more, but its stop still finds it, for five
    # minutes; the room the other agent took is untouched
    assert index.rooms_held_by([TASK_A]) == {}
    assert index.rooms_held_by([TASK_A], with_left=True) == {"call-1": TASK_A}
    assert index.rooms_held_by([TASK_B]) == {"call-2": TASK_B}
    assert index.indexed(["call-1", "call-2", "call-3"]) == {"call-1", "call-2"}
    world.clock.advance(301)
    assert index.rooms_held_by([TASK_A], with_left=True) == {}
    assert index.task_of("call-1") is None


def test_room_index_entry_past_its_time_counts_as_gone(world: World) -> None:
    # GIVEN a room indexed with a one-hour TTL whose leave webhook was lost
    index = RoomIndex(table_of(world), ttl_seconds=3600, clock=world.clock.now)
    index.record_agent("call-1", TASK_A, "agent-1", world.clock.now())

    # WHEN more than the TTL passes (DynamoDB may not have deleted it yet)
    world.clock.advance(3601)

    # THEN the index no longer reports it
    assert index.task_of("call-1") is None
    assert index.rooms_held_by([TASK_A]) == {}


def test_room_index_tells_which_of_many_rooms_it_knows_a_hundred_to_a_request(world: World) -> None:
    # GIVEN 250 indexed rooms, one of them past its time, among 300 names
    index = RoomIndex(table_of(world), ttl_seconds=3600, clock=world.clock.now)
    index.record_agent("old-call", TASK_B, "agent-old", world.clock.now() - 7200)
    with table_of(world).batch_writer() as batch:
        for n in range(250):
            batch.put_item(Item=index.item_for(f"call-{n:03d}", TASK_A, f"agent-{n}", world.clock.now()))
    names = [f"call-{n:03d}" for n in range(300)] + ["old-call"]

    # WHEN the audit asks which of the names the index has
    known = index.indexed(names)

    # THEN every live entry is named, the expired and unknown ones are not
    assert known == {f"call-{n:03d}" for n in range(250)}


def test_ledger_takes_an_event_once_until_released(world: World) -> None:
    # GIVEN the webhook ledger
    ledger = WebhookLedger(table_of(world))
    now = world.clock.now()

    # WHEN the same event id is offered twice, released, then offered again
    first, second = ledger.first_sighting("EV_abc", now), ledger.first_sighting("EV_abc", now)
    ledger.release("EV_abc")
    third = ledger.first_sighting("EV_abc", now)

    # THEN only the first and the one after the release are first sightings
    assert (first, second, third) == (True, False, True)


def test_a_claim_whose_invocation_timed_out_is_taken_over_by_the_retry(world: World) -> None:
    # GIVEN an event claimed by an invocation with 10 s left, which then timed out: Lambda ran
    # no `finally`, so the claim was neither released nor marked taken
    ledger = WebhookLedger(table_of(world), clock=world.clock.now)
    created = world.clock.now()
    assert ledger.first_sighting("EV_slow", created, hold_seconds=10)

    # WHEN LiveKit retries the delivery while the invocation could still be running, then after
    retried_at_once = ledger.first_sighting("EV_slow", created, hold_seconds=10)
    world.clock.advance(11)
    retried_later = ledger.first_sighting("EV_slow", created, hold_seconds=10)

    # THEN the early retry is refused (one look at a time), the later one takes the event over;
    # once taken, a replay is refused for good
    assert (retried_at_once, retried_later) == (False, True)
    ledger.taken("EV_slow")
    world.clock.advance(60)
    assert ledger.first_sighting("EV_slow", created, hold_seconds=10) is False


# --- the sender ------------------------------------------------------------------------------


@pytest.fixture
def sender_on(
    local_livekit: LocalLiveKit,
) -> Iterator[tuple[LiveKitWebhookSender[dict[str, Any]], VirtualClock]]:
    clock = VirtualClock()
    sender: LiveKitWebhookSender[dict[str, Any]] = LiveKitWebhookSender(
        api_key=local_livekit.api_key,
        api_secret=local_livekit.api_secret,
        clock=clock.now,
        send=lambda request: request,
    )
    local_livekit.on_room_event = sender.on_room_event
    yield sender, clock
    local_livekit.on_room_event = None


def test_sender_posts_what_livekit_api_verifies_with_the_servers_key(
    local_livekit: LocalLiveKit,
    sender_on: tuple[LiveKitWebhookSender[dict[str, Any]], VirtualClock],
) -> None:
    # GIVEN a call: a caller and a tagged agent join, the agent leaves, the caller hangs up
    sender, clock = sender_on
    local_livekit.join("call-1", "caller-1", kind="SIP")
    local_livekit.join("call-1", "agent-1", kind="AGENT", attributes={"ecs.task_arn": TASK_A})
    clock.advance(42)
    local_livekit.leave("call-1", "agent-1")
    local_livekit.leave("call-1", "caller-1")

    # WHEN the queued webhooks are sent
    assert sender.queued == 6
    requests = sender.send_queued()

    # THEN each is a Function URL POST whose bare token livekit-api's receiver accepts
    receiver = api.WebhookReceiver(api.TokenVerifier(local_livekit.api_key, local_livekit.api_secret))
    events = [receiver.receive(request_body(r), r["headers"]["authorization"]) for r in requests]
    assert [e.event for e in events] == [
        "room_started",
        "participant_joined",
        "participant_joined",
        "participant_left",
        "participant_left",
        "room_finished",
    ]
    assert all(r["headers"]["content-type"] == CONTENT_TYPE for r in requests)
    assert all(r["requestContext"]["http"]["method"] == "POST" for r in requests)
    assert not any(r["headers"]["authorization"].startswith("Bearer") for r in requests)
    # THEN the agent's events carry its kind and tag; created_at is the world's clock; ids unique
    left = events[3]
    assert left.participant.kind == ParticipantInfo.Kind.AGENT
    assert left.participant.attributes["ecs.task_arn"] == TASK_A
    assert left.created_at == int(clock.now())
    assert events[0].created_at == int(clock.now()) - 42
    assert len({e.id for e in events}) == 6
    assert all(e.id.startswith("EV_") for e in events)
    # THEN the body is protobuf JSON as livekit-server writes it: camelCase, int64 as strings
    body = json.loads(request_body(requests[3]))
    assert list(body)[:3] == ["event", "room", "participant"]
    assert body["createdAt"] == str(int(clock.now()))
    assert body["participant"]["kind"] == "AGENT"
    assert sender.queued == 0


def test_paused_sender_holds_webhooks_and_drop_loses_them(
    local_livekit: LocalLiveKit,
    sender_on: tuple[LiveKitWebhookSender[dict[str, Any]], VirtualClock],
) -> None:
    # GIVEN a sender that cannot reach the URL
    sender, _ = sender_on
    sender.paused = True
    local_livekit.join("call-1", "caller-1", kind="SIP")

    # WHEN it is asked to send, then its queue is lost
    held = sender.send_queued()
    lost = sender.drop_queued()

    # THEN nothing was sent, and what was queued is counted as dropped
    assert held == []
    assert lost == 2
    assert sender.dropped == 2
    assert sender.queued == 0


# --- the world -------------------------------------------------------------------------------


def test_world_indexes_the_room_of_each_call_through_the_webhook_function(world: World) -> None:
    # GIVEN a worker on an instance
    (instance,) = world.create_fleet(1)
    (worker,) = world.workers_on(instance)

    # WHEN it takes a call and the world moves on a second
    call = world.fleet.start_call(worker, world.clock.now(), 300.0)
    world.step(1.0)

    # THEN the webhook function took LiveKit's webhooks and indexed the room to the worker's task
    assert [d.result["statusCode"] for d in webhook_deliveries(world)] == [200, 200, 200]
    assert [d.result["action"] for d in webhook_deliveries(world)] == ["ignored", "ignored", "indexed"]
    index = RoomIndex(table_of(world), clock=world.clock.now)
    assert index.task_of(call.room) == worker.task_arn
    assert index.rooms_held_by([worker.task_arn]) == {call.room: worker.task_arn}


def test_forged_webhooks_are_refused_in_the_world_and_set_off_the_alarm(world: World) -> None:
    # GIVEN an instance draining while its call runs, the drain watching the call's room
    (instance,) = world.create_fleet(1)
    (worker,) = world.workers_on(instance)
    call = world.fleet.start_call(worker, world.clock.now(), 600.0)
    world.step(1.0)
    assert world.webhooks is not None
    genuine = [r for r in world.webhooks.sent if json.loads(request_body(r))["event"] == "participant_joined"]
    world.aws.terminate_instance(instance)
    world.run(lambda: False, limit_seconds=70)
    drain = _drain_item(world, instance)
    assert call.room in drain["watched_rooms"]

    # WHEN someone posts ten webhooks signed with a secret that is not LiveKit's: the call's
    # agent "leaving", and agents of a made-up task "joining"
    forged_bodies = [request_body(r).replace(worker.task_arn, TASK_B) for r in genuine]
    forged_bodies += [request_body(r).replace("participant_joined", "participant_left") for r in genuine]
    forged = [
        function_url_event(
            body,
            sign(body, world.livekit.api_key, "forged-secret-of-the-same-length!!!!"),
            at=world.clock.now(),
        )
        for body in forged_bodies * 5
    ][:10]
    answers = [world.invoke_url(WEBHOOK_FUNCTION, request) for request in forged]

    # THEN every one is refused with 401, the drain is exactly as it was, nothing was indexed
    assert [a.result["statusCode"] for a in answers] == [401] * 10
    assert {a.result["reason"] for a in answers} == {"bad_signature"}
    assert _drain_item(world, instance) == drain
    assert RoomIndex(table_of(world), clock=world.clock.now).rooms_held_by([TASK_B]) == {}
    assert world.instance_state(instance) == "Terminating:Wait"
    # THEN the refused calls set off the template's alarm
    fired = {f.alarm.name: f.value for f in world.alarms_firing()}
    assert fired.get("livekit-drain-webhooks-refused") == 10.0


def _drain_item(world: World, instance_id: str) -> dict[str, Any]:
    item = table_of(world).get_item(Key={"pk": f"drain#{instance_id}"}, ConsistentRead=True)["Item"]
    assert isinstance(item, dict)
    return item


# --- release latency -------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    path: str
    seconds_after_last_call: float
    released_by: str


def _release_after_last_call(*, webhooks: bool, task_events: bool, path: str) -> Release:
    """Scale in an instance whose two calls end 157 s and 121 s later; how long after the last
    one ends does Auto Scaling get the completion?"""
    with World(WorldConfig(livekit_webhooks=webhooks)) as world:
        if not task_events:
            # The ECS task-state rule's events go unrouted: as if EventBridge lost them.
            world.routes = [r for r in world.routes if r.logical_id != TASK_STATE_FUNCTION]
        (instance,) = world.create_fleet(1)
        (worker,) = world.workers_on(instance)
        calls = [world.fleet.start_call(worker, world.clock.now(), length) for length in (157.0, 121.0)]
        world.aws.terminate_instance(instance)
        released = world.run(lambda: world.instance_state(instance) == "Terminated", limit_seconds=900)
        assert released
        action = world.aws.lifecycle.action_for(instance)
        assert action is not None and action.ended_at is not None
        last_call_ended = max(c.ends_at for c in calls)
        assert all(c.ended_at == c.ends_at for c in calls), "every call ended by itself"
        completing = next(
            d.function
            for d in world.deliveries
            if any(
                s.get("action") == "complete" and s.get("instance_id") == instance
                for s in (d.result or {}).get("steps", [])
            )
        )
        return Release(path, action.ended_at - last_call_ended, completing)


def test_webhooks_release_within_seconds_of_the_last_call_where_polling_waits_for_its_tick(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the same scale-in, with ECS's task-state events lost, once with LiveKit's webhooks
    # and once with the every-minute reconcile alone (and, for reference, the task events alone)
    polling = _release_after_last_call(webhooks=False, task_events=False, path="polling alone")
    hooked = _release_after_last_call(webhooks=True, task_events=False, path="webhooks + polling")
    tasks = _release_after_last_call(webhooks=False, task_events=True, path="ECS task events + polling")
    everything = _release_after_last_call(webhooks=True, task_events=True, path="all three")

    # WHEN the figures are printed
    with capsys.disabled():
        print("\nrelease after the last call ended (virtual seconds):")
        for r in (polling, hooked, tasks, everything):
            print(f"  {r.path:<28} {r.seconds_after_last_call:6.1f} s  (completed by {r.released_by})")

    # THEN the webhook released the instance within seconds, by itself; polling waited for a tick
    assert hooked.released_by == WEBHOOK_FUNCTION
    assert hooked.seconds_after_last_call <= 5
    assert polling.released_by == "ReconcileFunction"
    assert polling.seconds_after_last_call > hooked.seconds_after_last_call
