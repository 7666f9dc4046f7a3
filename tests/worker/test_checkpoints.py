"""Call checkpoints (livekit_drain_worker.checkpoints) and the agent's rescue API
(livekit_drain_worker.rescue): the codec within DynamoDB's item size, the store against moto
over HTTP, a rescue job loading its checkpoint, the old agent leaving once replaced."""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from drainctl.world.aws import LocalAws
from drainctl.world.clock import VirtualClock
from livekit_drain_worker.checkpoints import (
    MAX_BODY_BYTES,
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    decode,
    encode,
)
from livekit_drain_worker.rescue import (
    CHECKPOINT_ATTRIBUTE,
    CHECKPOINT_TABLE_ENV,
    RESCUE_METADATA_KEY,
    RESCUE_OF_ATTRIBUTE,
    CallRescue,
    rescue_join_attributes,
    rescue_request,
)
from livekit_drain_worker.tagging import SESSION_TAG_ATTRIBUTE

NOW = 1_767_225_600.0
OLD_TASK = "arn:aws:ecs:us-east-1:123456789012:task/agents/old"
NEW_TASK = "arn:aws:ecs:us-east-1:123456789012:task/agents/new"


def history(turns: int, words: int = 12, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    items = []
    for n in range(turns):
        text = " ".join("".join(rng.choices(string.ascii_lowercase, k=7)) for _ in range(words))
        items.append(
            {
                "id": f"item_{n}",
                "type": "message",
                "role": "user" if n % 2 else "assistant",
                "content": [text],
            }
        )
    return {"items": items}


@pytest.fixture
def table() -> Iterator[Any]:
    """The template's checkpoint table, in moto over HTTP."""
    with LocalAws(VirtualClock(NOW)) as aws:
        dynamodb = boto3.resource(
            "dynamodb",
            endpoint_url=aws.endpoint_url,
            region_name=aws.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        made = dynamodb.create_table(
            TableName="livekit-drain-checkpoints",
            AttributeDefinitions=[{"AttributeName": "room", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "room", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield made


def test_a_checkpoint_round_trips_its_history_and_state() -> None:
    # GIVEN a checkpoint of ten turns and some registered state
    saved = Checkpoint("call-1", 10, history(10), {"order": {"pizza": 2}}, from_task=OLD_TASK)
    # WHEN encoded and decoded
    body, dropped = encode(saved)
    back = decode("call-1", {"body": body, "turn": 10, "from_task": OLD_TASK, "dropped": dropped})
    # THEN nothing is lost
    assert dropped == 0
    assert (back.history, back.state, back.turn, back.from_task) == (saved.history, saved.state, 10, OLD_TASK)


def test_a_history_over_the_item_limit_keeps_its_newest_items_and_the_whole_state() -> None:
    # GIVEN a history far over DynamoDB's item size, compressed (random words compress little)
    long = history(6000, words=20)
    # WHEN encoded
    body, dropped = encode(Checkpoint("call-1", 6000, long, {"name": "Ada"}))
    back = decode("call-1", {"body": body})
    # THEN it fits, only the oldest items went, the state is whole
    assert len(body) <= MAX_BODY_BYTES
    assert dropped > 0
    assert back.history["items"] == long["items"][dropped:]
    assert back.state == {"name": "Ada"}
    # AND one item fewer dropped would not fit (the fewest are dropped)
    smaller, _ = encode(
        Checkpoint("call-1", 1, {"items": long["items"][dropped - 1 :]}, {"name": "Ada"}), max_bytes=10**9
    )
    assert len(smaller) > MAX_BODY_BYTES


def test_a_state_too_large_alone_is_refused() -> None:
    # GIVEN a registered state that cannot fit whatever history is left out
    blob = "".join(random.Random(2).choices(string.printable, k=2 * MAX_BODY_BYTES))
    # WHEN encoded THEN a CheckpointError says so
    with pytest.raises(CheckpointError, match="registered state"):
        encode(Checkpoint("call-1", 1, history(2), {"blob": blob}))


def test_the_store_saves_and_loads_the_latest_turn_and_never_goes_back(table: Any) -> None:
    # GIVEN a store on the checkpoint table
    store = CheckpointStore(table, ttl_hours=24)
    # WHEN turns 3 then 2 are saved (an old agent, leaving, saving late)
    assert store.save(Checkpoint("call-1", 3, history(3), {"step": 3}), now=NOW)
    assert not store.save(Checkpoint("call-1", 2, history(2), {"step": 2}), now=NOW)
    # THEN the room's checkpoint is turn 3, with its TTL a day on
    loaded = store.load("call-1", now=NOW + 60)
    assert loaded is not None and loaded.turn == 3 and loaded.state == {"step": 3}
    item = table.get_item(Key={"room": "call-1"})["Item"]
    assert int(item["expires_at"]) == int(NOW + 24 * 3600)
    # AND after its TTL it is gone (whether or not DynamoDB has deleted it yet); an unknown room has none
    assert store.load("call-1", now=NOW + 24 * 3600 + 1) is None
    assert store.load("call-2", now=NOW) is None


def test_rescue_request_reads_only_the_coordinators_metadata() -> None:
    # GIVEN dispatch metadata from the coordinator, and others
    ours = json.dumps(
        {RESCUE_METADATA_KEY: {"checkpoint": "call-1", "from_task": OLD_TASK, "danger": "spot"}}
    )
    # THEN only the coordinator's names a rescue
    request = rescue_request(ours)
    assert request is not None and (request.checkpoint, request.from_task) == ("call-1", OLD_TASK)
    assert rescue_request("") is None
    assert rescue_request('{"user_id": 7}') is None
    assert rescue_request("not json") is None


# -- the agent's side, with stand-ins for livekit-agents' JobContext and AgentSession ------------------


@dataclass
class Participant:
    identity: str
    attributes: dict[str, str] = field(default_factory=dict)
    kind: int = 4  # agent

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attributes.update(attributes)


@dataclass
class Emitter:
    handlers: dict[str, list[Callable[..., None]]] = field(default_factory=dict)

    def on(self, event: str, callback: Callable[..., None]) -> None:
        self.handlers.setdefault(event, []).append(callback)

    def emit(self, event: str, *args: Any) -> None:
        for callback in self.handlers.get(event, []):
            callback(*args)


@dataclass
class Room(Emitter):
    name: str = "call-1"
    local_participant: Participant = field(default_factory=lambda: Participant("agent"))


@dataclass
class Job:
    metadata: str = ""


@dataclass
class Context:
    job: Job
    room: Room
    shut_down: list[str] = field(default_factory=list)

    def shutdown(self, reason: str = "") -> None:
        self.shut_down.append(reason)


@dataclass
class History:
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, **_: Any) -> dict[str, Any]:
        return {"items": list(self.items)}


@dataclass
class Session(Emitter):
    history: History = field(default_factory=History)

    def say_turn(self, text: str) -> None:
        self.history.items.append({"type": "message", "role": "user", "content": [text]})
        self.emit("conversation_item_added", object())


def test_an_agent_checkpoints_every_turn_and_its_rescue_carries_on_from_it(table: Any) -> None:
    store = CheckpointStore(table)

    async def run() -> None:
        # GIVEN an agent that opted in, on the old task, two turns into a call
        old_ctx = Context(
            Job(), Room(local_participant=Participant("agent-old", {SESSION_TAG_ATTRIBUTE: OLD_TASK}))
        )
        old = CallRescue.from_job(old_ctx, store=store)
        session = Session()
        order = {"pizza": 1}
        await old.follow(session, state=lambda: dict(order))
        session.say_turn("one pizza please")
        order["pizza"] = 2
        session.say_turn("make it two")
        await old.flush()
        # WHEN the coordinator's rescue job starts on another task
        metadata = json.dumps({RESCUE_METADATA_KEY: {"checkpoint": "call-1", "from_task": OLD_TASK}})
        new_ctx = Context(
            Job(metadata), Room(local_participant=Participant("agent-new", {SESSION_TAG_ATTRIBUTE: NEW_TASK}))
        )
        new = CallRescue.from_job(new_ctx, store=store)
        carried_on = Session()
        await new.follow(carried_on, state=lambda: new.state)
        # THEN it resumes with both turns and the last state, and says so on its participant
        assert new.resumed and new.state == {"pizza": 2}
        assert [i["content"] for i in new.history()["items"]] == [["one pizza please"], ["make it two"]]
        assert new_ctx.room.local_participant.attributes[RESCUE_OF_ATTRIBUTE] == OLD_TASK
        assert new_ctx.room.local_participant.attributes[CHECKPOINT_ATTRIBUTE] == "loaded"
        # AND the old agent stays until the new one is in its room, then leaves
        old_ctx.room.emit("participant_connected", Participant("caller-1", {}, kind=3))
        assert old_ctx.shut_down == []
        old_ctx.room.emit("participant_connected", new_ctx.room.local_participant)
        assert old_ctx.shut_down == ["call rescued by another worker"]
        # AND the new agent's checkpoints hold the whole call: its session's history starts
        # empty (as an AgentSession's does), the turns it was handed come first
        carried_on.say_turn("and a salad")
        await new.flush()
        saved = store.load("call-1")
        assert saved is not None and saved.turn == 3 and saved.from_task == NEW_TASK
        assert [i["content"] for i in saved.history["items"]] == [
            ["one pizza please"],
            ["make it two"],
            ["and a salad"],
        ]
        assert saved.state == {"pizza": 2}

    asyncio.run(run())


def test_a_rescue_without_a_checkpoint_starts_afresh_and_says_so(table: Any) -> None:
    async def run() -> None:
        # GIVEN a rescue job for a call nobody checkpointed
        metadata = json.dumps({RESCUE_METADATA_KEY: {"checkpoint": "call-9", "from_task": OLD_TASK}})
        ctx = Context(
            Job(metadata),
            Room(
                name="call-9", local_participant=Participant("agent-new", {SESSION_TAG_ATTRIBUTE: NEW_TASK})
            ),
        )
        rescue = CallRescue.from_job(ctx, store=CheckpointStore(table))
        await rescue.follow(Session())
        # THEN it carries on with no history, marked for the coordinator to count no_state
        assert rescue.resumed and rescue.history() == {} and rescue.state == {}
        assert ctx.room.local_participant.attributes[CHECKPOINT_ATTRIBUTE] == "none"

    asyncio.run(run())


def test_a_rescue_job_joins_marked_as_the_rescue_and_saying_whether_its_checkpoint_is_there(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the worker's environment naming the checkpoint table, which holds call-1's checkpoint
    client = table.meta.client
    monkeypatch.setenv(CHECKPOINT_TABLE_ENV, table.name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", client.meta.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", client.meta.region_name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    CheckpointStore(table).save(Checkpoint("call-1", 2, history(2), {"pizza": 2}, from_task=OLD_TASK))

    def rescue_of(room: str) -> str:
        return json.dumps({RESCUE_METADATA_KEY: {"checkpoint": room, "from_task": OLD_TASK}})

    # WHEN the worker accepts rescue jobs for call-1 and for a call never checkpointed, and a
    # job that is no rescue
    found = asyncio.run(rescue_join_attributes(rescue_of("call-1")))
    missing = asyncio.run(rescue_join_attributes(rescue_of("call-9")))
    plain = asyncio.run(rescue_join_attributes('{"call_seconds": 30}'))
    # THEN the rescue agents join saying whose call they take and whether its checkpoint is there
    # (the coordinator may look the moment they join); any other job joins with nothing more
    assert found == {RESCUE_OF_ATTRIBUTE: OLD_TASK, CHECKPOINT_ATTRIBUTE: "loaded"}
    assert missing == {RESCUE_OF_ATTRIBUTE: OLD_TASK, CHECKPOINT_ATTRIBUTE: "none"}
    assert plain == {}
