"""The local world's shortcuts answer what the slow paths answered.

- moto's server keeps connections alive: a request the world's gate answers (its body unread by
  moto) leaves the connection fit for the next one;
- DynamoDB items serialize to the same JSON as moto's generic serializer writes;
- `Table.all_items` keeps moto's order;
- `LocalLiveKit.has_participant` agrees with `rooms()`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core.responses import get_service_model
from moto.core.serialize import JSONSerializer
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from drainctl.world import moto_speed
from drainctl.world.aws import LocalAws
from drainctl.world.clock import VirtualClock
from drainctl.world.livekit_server import LocalLiveKit


class _Undo:
    def __init__(self) -> None:
        self.saved: list[tuple[object, str, object]] = []

    def set(self, owner: object, name: str, value: object) -> None:
        self.saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def undo(self) -> None:
        while self.saved:
            owner, name, value = self.saved.pop()
            setattr(owner, name, value)


@pytest.fixture
def aws() -> Iterator[LocalAws]:
    with LocalAws(VirtualClock()) as local:
        yield local


def test_connections_stay_open_and_a_gated_answer_leaves_them_usable(aws: LocalAws) -> None:
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="t",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    refused = {"left": 1}

    def gate(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if environ.get("HTTP_X_AMZ_TARGET", "").endswith("PutItem") and refused["left"]:
            refused["left"] -= 1  # answered before moto reads the body
            body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
            return 400, [("Content-Type", "application/x-amz-json-1.0")], body
        return None

    aws.request_gate = gate
    with pytest.raises(ClientError, match="ThrottlingException"):
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"S": "x" * 5000}})
    for i in range(20):
        dynamodb.put_item(TableName="t", Item={"pk": {"S": f"k{i}"}})
    assert dynamodb.get_item(TableName="t", Key={"pk": {"S": "k7"}})["Item"] == {"pk": {"S": "k7"}}
    server = aws._server
    assert server is not None
    assert len(server._server.open_connections) <= 2  # type: ignore[attr-defined]


def _attribute_values() -> dict[str, Any]:
    return {
        "pk": {"S": "room#x"},
        "empty": {"S": ""},
        "n": {"N": "12.5"},
        "b": {"B": b"\x00\xffab"},
        "m": {"M": {"a": {"S": "y"}, "l": {"L": [{"N": "1"}, {"BOOL": False}, {"NULL": True}]}}},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
        "bs": {"BS": [b"x", b"y"]},
        "t": {"BOOL": True},
    }


@pytest.mark.parametrize(
    ("operation", "result"),
    [
        ("Query", {"Items": [_attribute_values()], "Count": 1, "LastEvaluatedKey": {"pk": {"S": "k"}}}),
        ("GetItem", {"Item": _attribute_values()}),
        ("BatchGetItem", {"Responses": {"t": [_attribute_values()]}, "UnprocessedKeys": {}}),
        ("UpdateItem", {"Attributes": _attribute_values()}),
    ],
)
def test_dynamodb_items_serialize_as_moto_serializes_them(operation: str, result: dict[str, Any]) -> None:
    model = get_service_model("dynamodb").operation_model(operation)
    generic = JSONSerializer(model).serialize(result)["body"]
    undo = _Undo()
    moto_speed.install(undo.set)
    try:
        fast = JSONSerializer(model).serialize(result)["body"]
    finally:
        undo.undo()
    assert fast == generic
    assert json.loads(fast)


def test_all_items_keeps_moto_order() -> None:
    rng = random.Random(3)
    table = Table(
        "t",
        account_id="123456789012",
        region="us-east-1",
        schema=[{"AttributeName": "h", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}],
        attr=[{"AttributeName": "h", "AttributeType": "S"}, {"AttributeName": "r", "AttributeType": "N"}],
    )
    for _ in range(300):
        h, r = f"h{rng.randrange(20)}", str(Decimal(rng.randrange(-500, 500)) / 7)
        table.items[DynamoType({"S": h})][DynamoType({"N": r})] = Item(
            DynamoType({"S": h}), DynamoType({"N": r}), {"h": {"S": h}, "r": {"N": r}}
        )
    moto_order = [(i.hash_key, i.range_key) for i in table.all_items()]
    undo = _Undo()
    moto_speed.install(undo.set)
    try:
        fast_order = [(i.hash_key, i.range_key) for i in table.all_items()]
    finally:
        undo.undo()
    assert fast_order == moto_order


def test_has_participant_agrees_with_rooms() -> None:
    livekit = LocalLiveKit()
    livekit.join("call-1", "caller-1", kind="SIP")
    livekit.join("call-1", "agent-1", kind="AGENT")
    for room, identity in [
        ("call-1", "caller-1"),
        ("call-1", "agent-1"),
        ("call-1", "x"),
        ("call-2", "caller-1"),
    ]:
        expected = any(p.identity == identity for p in livekit.rooms().get(room, []))
        assert livekit.has_participant(room, identity) is expected
    livekit.leave("call-1", "caller-1")
    livekit.leave("call-1", "agent-1")
    assert not livekit.has_participant("call-1", "agent-1")
